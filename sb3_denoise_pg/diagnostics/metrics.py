"""
How close an action-gradient signal is to a measured truth, at three levels, with bootstrap intervals over states:

- ``state``: the cosine at each state (reported as the mean over states, its interval, and the median);
- ``batch``: the cosine of the batch means, ``cos(mean_i g_i, mean_i t_i)``;
- ``parameter``: the cosine, in the actor's parameter space, of the update each would make,
  ``cos(sum_i J_i^T g_i, sum_i J_i^T t_i)`` with ``J_i`` the actor's Jacobian at state ``i``: what learning sees.

The parameter-space cosine needs only the actor's Gram matrix ``K = J J^T`` over (state, action dimension) pairs,
``g^T K t / sqrt(g^T K g t^T K t)``, so that a bootstrap resample of states is a reweighting of rows, not a new
backward pass. Signals are ranked by paired differences: the same resamples for the signal and the reference, so
that the truth's own noise, which lowers every signal's cosine alike, cancels.
"""

from dataclasses import dataclass

import numpy as np
import torch as th

LEVELS = ("state", "batch", "parameter")


def actor_gram_matrix(actions: th.Tensor, parameters: list[th.Tensor]) -> np.ndarray:
    """
    ``K = J J^T`` of the actor's Jacobian at a batch of states, over (state, action dimension) pairs.

    :param actions: ``mu_theta(s)`` of the batch, shape ``(n, d)``, still attached to the actor's graph
    :param parameters: The actor's parameters
    :return: Shape ``(n * d, n * d)``, rows in state-major order (row ``i * d + j``)
    """
    rows = []
    flat = actions.reshape(-1)
    for k in range(flat.shape[0]):
        grads = th.autograd.grad(flat[k], parameters, retain_graph=True, allow_unused=True)
        grads = [g if g is not None else th.zeros_like(p) for g, p in zip(grads, parameters, strict=True)]
        rows.append(th.cat([g.reshape(-1) for g in grads]))
    jacobian = th.stack(rows).double()
    return (jacobian @ jacobian.T).cpu().numpy()


def _safe_divide(dots: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """``dots / norms``; 0 where a norm is zero (no direction), NaN where anything is not finite (never 0)."""
    out = np.where(np.isfinite(dots) & np.isfinite(norms), 0.0, np.nan)
    return np.divide(dots, norms, out=out, where=np.isfinite(out) & (norms > 0))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosines of ``(..., d)`` arrays; 0 where a row has zero norm, NaN where a row is not finite."""
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return _safe_divide(np.sum(a * b, axis=-1), norms)


def _quadratic_cosines(a: np.ndarray, b: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """``a^T K b / sqrt(a^T K a b^T K b)`` for rows of ``(m, n * d)`` arrays; 0 where a norm is zero, NaN where not finite."""
    ka, kb = a @ gram, b @ gram
    norms = np.sqrt(np.clip(np.sum(ka * a, axis=1), 0, None) * np.clip(np.sum(kb * b, axis=1), 0, None))
    return _safe_divide(np.sum(ka * b, axis=1), norms)


def level_cosines(signal: np.ndarray, truth: np.ndarray, counts: np.ndarray, gram: np.ndarray | None) -> dict[str, np.ndarray]:
    """
    The cosine of ``signal`` with ``truth`` at each level, for each weighting of the states (a bootstrap resample is
    the count of each state in it).

    :param signal: Shape ``(n, d)``
    :param truth: Shape ``(n, d)``
    :param counts: Shape ``(m, n)``: how often each state is in each of ``m`` resamples (a row of ones: the sample)
    :param gram: The actor's Gram matrix (:func:`actor_gram_matrix`), ``None`` to skip the parameter level
    :return: Level -> shape ``(m,)``
    """
    n = signal.shape[0]
    per_state = _cosines(signal, truth)
    result = {
        "state": counts @ per_state / n,
        "batch": _cosines(counts @ signal, counts @ truth),
    }
    if gram is not None:
        weighted_signal = (counts[:, :, None] * signal[None]).reshape(len(counts), -1)
        weighted_truth = (counts[:, :, None] * truth[None]).reshape(len(counts), -1)
        result["parameter"] = _quadratic_cosines(weighted_signal, weighted_truth, gram)
    return result


def bootstrap_counts(n_states: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """
    :return: Shape ``(1 + n_resamples, n_states)``: the sample itself (all ones), then resamples with replacement
    """
    draws = rng.integers(0, n_states, size=(n_resamples, n_states))
    resamples = np.stack([np.bincount(row, minlength=n_states) for row in draws]) if n_resamples else np.zeros((0, n_states))
    return np.concatenate([np.ones((1, n_states)), resamples]).astype(np.float64)


@dataclass(frozen=True)
class Interval:
    """A value on the sample and a 95% percentile bootstrap interval."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray) -> "Interval":
        """:param values: The value on the sample first, then on each resample"""
        if len(values) == 1:
            return cls(float(values[0]), float("nan"), float("nan"))
        low, high = np.percentile(values[1:], [2.5, 97.5])
        return cls(float(values[0]), float(low), float(high))

    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


def split_half_ceiling(split_half: float) -> float:
    """
    The expected cosine of a truth with its noise-free value, from the cosine ``rho`` between two independent halves
    of it: with noise of equal spread in each half, ``sqrt(2 rho / (1 + rho))`` (the Spearman-Brown step from half to
    whole); 0 when ``rho <= 0``. A signal's measured cosine with the truth is, in expectation, about its cosine with
    the noise-free truth times this ceiling. Exact in the limit of many dimensions (the parameter level), rough for
    one state's few action dimensions.
    """
    return float(np.sqrt(2 * split_half / (1 + split_half))) if split_half > 0 else 0.0
