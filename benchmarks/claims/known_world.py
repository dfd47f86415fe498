"""
Shared machinery of the claims measured on the linear-Gaussian world, where ``grad_a Q`` is known: datasets of
one-step transitions, fitting the critic and the denoiser of a DenoisePG model on them, and scoring action-gradient
estimates against the truth.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from benchmarks import started
from sb3_denoise_pg import DenoisePG
from sb3_denoise_pg.envs import LinearGaussianWorld

# Behaviour policy of the datasets: a ~ N(BEHAVIOUR_MEAN, BEHAVIOUR_STD^2), clipped to the action bounds
BEHAVIOUR_MEAN, BEHAVIOUR_STD = 0.2, 0.3


def transitions(env: LinearGaussianWorld, n: int, seed: int) -> ReplayBufferSamples:
    """``n`` one-step transitions of ``env`` under the Gaussian behaviour policy, as a float32 batch."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, env.observation_space.shape[0]))
    actions = np.clip(BEHAVIOUR_MEAN + BEHAVIOUR_STD * rng.normal(size=(n, env.action_space.shape[0])), -1, 1)
    next_obs = env.sample_outcome(obs, actions, rng)
    rewards = -np.sum((next_obs - env.goal) ** 2, axis=1, keepdims=True)

    def tensor(array: np.ndarray) -> th.Tensor:
        return th.as_tensor(array, dtype=th.float32)

    return ReplayBufferSamples(tensor(obs), tensor(actions), tensor(next_obs), th.ones(n, 1), tensor(rewards))


def take(data: ReplayBufferSamples, index: th.Tensor) -> ReplayBufferSamples:
    return ReplayBufferSamples(*(None if field is None else field[index] for field in data))


def make_model(env: LinearGaussianWorld, seed: int, n_noise_samples: int = 32, net_arch: tuple[int, ...] = (128, 128)):
    model = DenoisePG(
        "MlpPolicy",
        env,
        seed=seed,
        denoiser_sigma=0.1,
        n_noise_samples=n_noise_samples,
        policy_kwargs=dict(net_arch=list(net_arch)),
        device="cpu",
    )
    model.set_logger(configure(None, []))
    return model


def fit(
    model: DenoisePG,
    data: ReplayBufferSamples,
    gradient_steps: int,
    batch_size: int = 256,
    critic_rewards: Callable[[ReplayBufferSamples], th.Tensor] | None = None,
) -> None:
    """
    Train the critic (by TD: here the episode ends, so its target is the reward) and the denoiser on ``data``, as
    ``DenoisePG.train`` does; the actor plays no part in either.

    :param critic_rewards: Rewards the critic is trained on instead of the batch's (a deliberately wrong critic)
    """
    stats: dict[str, list[float]] = {"critic_loss": [], "denoiser_loss": []}
    generator = th.Generator().manual_seed(int(model.seed or 0))
    for _ in range(gradient_steps):
        batch = take(data, th.randint(len(data.actions), (batch_size,), generator=generator))
        targets = batch.rewards if critic_rewards is None else critic_rewards(batch)
        model._update_critic(batch, targets, stats)
        model._update_denoiser(batch, stats)


@dataclass
class Agreement:
    """Agreement of an estimate of ``grad_a Q`` at a set of transitions with the truth."""

    batch_cosine: float  # mean over minibatches of the cosine of their means: what one actor update follows
    sample_cosine: float  # mean over transitions of the per-transition cosine


def _cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sum(x * y, axis=-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1) + 1e-12)


def agreement(estimate: th.Tensor, truth: np.ndarray, minibatch: int = 256) -> Agreement:
    estimate_np = estimate.detach().numpy().astype(np.float64)
    n_batches = len(truth) // minibatch
    shape = (n_batches, minibatch, truth.shape[1])
    means_est = estimate_np[: n_batches * minibatch].reshape(shape).mean(1)
    means_true = truth[: n_batches * minibatch].reshape(shape).mean(1)
    return Agreement(float(_cosine(means_est, means_true).mean()), float(_cosine(estimate_np, truth).mean()))


def score_both(model: DenoisePG, env: LinearGaussianWorld, data: ReplayBufferSamples) -> dict[str, Agreement]:
    """
    DenoisePG's estimate and the critic's input-gradient (TD3's), each against the true gradient; when the model
    uses the critic control variate, also its estimate without it, from the same draws.
    """
    truth = env.true_action_gradient(data.observations.numpy().astype(np.float64), data.actions.numpy().astype(np.float64))
    th.manual_seed(1)
    estimate = model.estimate(data)
    scores = {"denoise_pg": agreement(estimate.gradient, truth)}
    if estimate.critic_gradient is not None:
        scores["denoise_pg_without_cv"] = agreement(estimate.gradient_without_cv, truth)
    scores["critic"] = agreement(model.critic_action_gradient(data.observations, data.actions), truth)
    return scores


# ---- reporting, shared by the claims on this world ----------------------------------------------------------------

METHODS = {
    "denoise_pg": "DenoisePG",
    "denoise_pg_without_cv": "DenoisePG without control variate",
    "critic": "critic grad (TD3)",
}
METRICS = {"batch_cosine": "minibatch (256) mean", "sample_cosine": "per transition"}


def _methods(rows: list[dict]) -> dict[str, str]:
    """The methods the rows were scored with (runs made before the control variate have no estimate without it)."""
    return {method: name for method, name in METHODS.items() if all(method in row for row in rows)}


def _mean_over(rows: list[dict], method: str, metric: str, **where: object) -> float:
    values = [row[method][metric] for row in rows if all(row[key] == value for key, value in where.items())]
    return float(np.mean(values))


def cosine_table(rows: list[dict], x_key: str, group_key: str) -> str:
    """Markdown table of mean cosines per (``x_key``, ``group_key``) cell, both methods and both metrics."""
    from benchmarks import markdown_table

    table, methods = [], _methods(rows)
    for x, group in sorted({(row[x_key], row[group_key]) for row in rows}):
        cell = {x_key: x, group_key: group}
        n_seeds = sum(1 for row in rows if row[x_key] == x and row[group_key] == group)
        means = [f"{_mean_over(rows, m, k, **cell):.2f}" for k in METRICS for m in methods]
        table.append([x, group, n_seeds, *means])
    headers = [x_key, group_key, "seeds", *(f"cos {METRICS[k]}: {methods[m]}" for k in METRICS for m in methods)]
    return markdown_table(headers, table)


def plot_cosines(rows: list[dict], x_key: str, group_key: str, xlabel: str, path: Path, log_x: bool = False) -> None:
    """Mean cosine with the true gradient against ``x_key``, one line per method and ``group_key`` value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = sorted({row[x_key] for row in rows})
    fig, axes = plt.subplots(1, len(METRICS), figsize=(10, 4), sharey=True)
    for ax, (metric, title) in zip(axes, METRICS.items(), strict=True):
        for group in sorted({row[group_key] for row in rows}):
            for (method, name), style in zip(_methods(rows).items(), ("-o", ":^", "--s"), strict=False):
                values = [_mean_over(rows, method, metric, **{x_key: x, group_key: group}) for x in xs]
                ax.plot(xs, values, style, label=f"{name}, {group_key} {group}")
        if log_x:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_title(f"cosine with true grad_a Q, {title}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cosine")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def measure_grid(measure: Callable[..., dict], settings: list[tuple], n_seeds: int) -> tuple[list[dict], float, dict]:
    """
    ``measure(seed, *setting)`` for every seed and setting, seed-major, on one torch thread, printing each row.

    :return: The rows, the seconds they took, and what made them (``benchmarks.started()`` at the start)
    """
    th.set_num_threads(1)
    rows, start, made = [], time.perf_counter(), started()
    for seed in range(n_seeds):
        for setting in settings:
            rows.append(measure(seed, *setting))
            print(f"{time.perf_counter() - start:.0f} s: {rows[-1]}", flush=True)
    return rows, time.perf_counter() - start, made


def write_results(
    output: Path,
    name: str,
    rows: list[dict],
    table: str,
    command: str,
    seconds: float,
    made: dict[str, str | None],
    description: str = "",
) -> str:
    """
    ``<name>.json`` (every measurement) and ``<name>.md`` (the command, its duration, what made it, a description of
    the setting if any, and the table).

    :param made: From ``benchmarks.started()`` when the measurement started
    :return: The text of ``<name>.md``
    """
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{name}.json").write_text(json.dumps({"command": command, **made, "rows": rows}, indent=1) + "\n")
    made_by = f"sb3-denoise-pg {made['version']}, commit {made['commit']}, {made['date'][:10]}"
    text = f"`{command}` ({seconds:.0f} s on one core; {made_by})\n\n" + (f"{description}\n\n" if description else "")
    (output / f"{name}.md").write_text(f"{text}{table}\n")
    return text + table
