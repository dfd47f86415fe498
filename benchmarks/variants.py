"""
Resumable runs of training variants in parallel processes, and their learning curves: the machinery shared by the
ablation (``benchmarks.ablation``) and the pretraining claim (``benchmarks.claims.pretraining``).
"""

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

Spec = tuple[Any, ...]


def _run_and_save(worker: Callable[..., dict], spec: Spec, path: Path) -> dict:
    """In a worker process: one torch thread, ``worker(*spec)``, its wall time added, saved as JSON to ``path``."""
    import torch as th

    th.set_num_threads(1)
    start = time.perf_counter()
    result = {**worker(*spec), "wall_time_s": round(time.perf_counter() - start, 1)}
    path.write_text(json.dumps(result) + "\n")
    return result


def run_plan(
    plan: Sequence[Spec],
    worker: Callable[..., dict],
    path_of: Callable[..., Path],
    jobs: int,
    describe: Callable[[dict], str],
) -> list[dict]:
    """
    Run every spec of ``plan`` whose result file is missing, ``jobs`` single-threaded processes at a time, save each
    result (with its ``wall_time_s``) as JSON, and load all results.

    :param plan: Argument tuples of ``worker``, one per run
    :param worker: ``worker(*spec)`` trains and returns the run's result, a JSON-serialisable dict; a module level
        function (it is pickled into the worker processes)
    :param path_of: ``path_of(*spec)``: where the run's result lives; finished runs are not redone
    :param jobs: Parallel processes
    :param describe: One line about a finished run's result, printed as it finishes
    :return: The results of the whole plan, in its order
    """
    todo = [spec for spec in plan if not path_of(*spec).is_file()]
    print(f"{len(plan)} runs, {len(plan) - len(todo)} finished", flush=True)
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(_run_and_save, worker, spec, path_of(*spec)) for spec in todo]
        for future in futures:
            print(describe(future.result()), flush=True)
    return [json.loads(path_of(*spec).read_text()) for spec in plan]


def plot_mean_curve(ax: Any, runs: Sequence[dict], label: str) -> np.ndarray:
    """
    Plot the mean evaluation return of ``runs`` with a 95% normal confidence band across them.

    :param ax: A matplotlib axis
    :param runs: Results with ``timesteps`` and ``returns`` lists (truncated to the shortest)
    :param label: Legend label, the number of runs is appended
    :return: The returns, shape ``(runs, evaluations)``
    """
    length = min(len(run["returns"]) for run in runs)
    returns = np.array([run["returns"][:length] for run in runs])
    steps = runs[0]["timesteps"][:length]
    mean = returns.mean(axis=0)
    sem = returns.std(axis=0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
    ax.plot(steps, mean, label=f"{label} ({len(runs)} seeds)")
    ax.fill_between(steps, mean - 1.96 * sem, mean + 1.96 * sem, alpha=0.2)
    return returns


def learn_with_evaluations(
    model: Any, env_id: str, steps: int, eval_freq: int, eval_episodes: int, eval_seed: int, offset: int = 0
) -> dict[str, list]:
    """
    ``model.learn(steps)`` with a deterministic evaluation every ``eval_freq`` steps.

    :param model: An SB3 model with its training env
    :param env_id: Gymnasium id of the evaluation env
    :param steps: Training env-steps
    :param eval_freq: Evaluate every this many steps
    :param eval_episodes: Episodes per evaluation
    :param eval_seed: Seed of the evaluation env's first reset (the same for runs that should be paired)
    :param offset: Added to the recorded timesteps (env-steps spent before ``learn``)
    :return: ``timesteps`` and mean ``returns`` of the evaluations
    """
    import tempfile

    import gymnasium as gym
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.monitor import Monitor

    eval_env = Monitor(gym.make(env_id))
    eval_env.reset(seed=eval_seed)
    with tempfile.TemporaryDirectory() as log_path:  # EvalCallback keeps its history only when it has a log path
        callback = EvalCallback(eval_env, n_eval_episodes=eval_episodes, eval_freq=eval_freq, log_path=log_path, verbose=0)
        model.learn(steps, callback=callback)
    return {
        "timesteps": [int(t) + offset for t in callback.evaluations_timesteps],
        "returns": [float(np.mean(r)) for r in callback.evaluations_results],
    }
