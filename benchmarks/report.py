"""
Report of a (possibly partial) benchmark suite: learning curves, final returns with IQM and 95% CIs and the
normalised aggregate, written to ``benchmarks/results/<suite>/``. It reads only the runs under the log root
(``benchmarks/results/<suite>/logs/`` by default); the throughput table is the one of ``benchmarks.throughput``,
linked, not copied.

    python -m benchmarks.report --suite quick [--log-root benchmarks/results/quick/logs]
"""

import argparse
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib
import numpy as np
from rliable import metrics
from scipy import stats

from benchmarks import REPO_ROOT, RESULTS_DIR, markdown_table, relative_path
from benchmarks.figures import first_in_row, grid, save_figure, shared_legend, steps_in_thousands, style
from benchmarks.suites import SUITES, get_suite
from benchmarks.throughput import OUTPUT_DIR as THROUGHPUT_DIR
from benchmarks.training import MARKER, UnreadableRun, default_log_root, read_run

matplotlib.use("Agg")

RANDOM_SCORES = RESULTS_DIR / "random_scores.json"
CURVES = "learning_curves.png"


@dataclass(frozen=True)
class Run:
    """
    Evaluations of one finished run.

    :param algo: Zoo name of the algorithm
    :param env_id: Gymnasium id
    :param seed: Seed
    :param timesteps: Env steps of each evaluation
    :param returns: Mean deterministic evaluation return of each evaluation
    """

    algo: str
    env_id: str
    seed: int
    timesteps: np.ndarray
    returns: np.ndarray

    @property
    def final_return(self) -> float:
        return float(self.returns[-1])


def load_runs(log_root: Path) -> list[Run]:
    """The runs under ``log_root`` (zoo layout) that the runner marked finished."""
    runs = []
    for marker_path in sorted(log_root.glob(f"[!.]*/*/{MARKER}")):
        try:
            marker, evaluations = read_run(marker_path.parent)
        except UnreadableRun as error:
            print(f"report: left out a run whose files cannot be read: {error}", file=sys.stderr)
            continue
        returns = evaluations["results"].mean(axis=1)
        runs.append(Run(marker["algo"], marker["env_id"], marker["seed"], evaluations["timesteps"], returns))
    return runs


def finals_by_seed(runs: list[Run], env_id: str, algo: str) -> dict[int, float]:
    """Final return of each seed of (env, algo), ordered by seed."""
    return dict(sorted((run.seed, run.final_return) for run in runs if (run.env_id, run.algo) == (env_id, algo)))


def final_scores(runs: list[Run], env_id: str, algo: str) -> np.ndarray:
    """Final returns of (env, algo), ordered by seed."""
    return np.array(list(finals_by_seed(runs, env_id, algo).values()))


def random_score(env_id: str, n_episodes: int = 10, seed: int = 0) -> float:
    """Mean return of a uniform random policy on ``env_id``."""
    import sb3_denoise_pg  # noqa: F401  (registers the project's env ids)

    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = []
    for episode in range(n_episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def load_random_scores(env_ids: list[str], path: Path = RANDOM_SCORES) -> dict[str, float]:
    """Random scores of ``env_ids`` from the cache at ``path``, measuring (and caching) the missing ones."""
    scores = json.loads(path.read_text()) if path.is_file() else {}
    missing = [env_id for env_id in env_ids if env_id not in scores]
    for env_id in missing:
        try:
            scores[env_id] = random_score(env_id)
        except gym.error.Error as error:
            warnings.warn(f"No random score for {env_id}: {error}")
    if any(env_id in scores for env_id in missing):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(sorted(scores.items())), indent=2) + "\n")
    return scores


def _stratified_bootstrap_iqm(scores: np.ndarray, reps: int, seed: int) -> tuple[float, float, float]:
    """IQM and its 95% percentile CI, runs resampled within each task, as rliable's StratifiedBootstrap does."""
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, scores.shape[0], size=(reps, *scores.shape))
    samples = np.take_along_axis(np.broadcast_to(scores, (reps, *scores.shape)), indices, axis=1)
    estimates = stats.trim_mean(samples.reshape(reps, -1), 0.25, axis=1)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(metrics.aggregate_iqm(scores)), float(low), float(high)


def iqm_ci(scores: np.ndarray, reps: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """
    IQM of ``scores`` (runs x tasks) with its 95% stratified-bootstrap CI.

    :return: IQM, lower and upper bounds of the CI
    """
    try:
        from rliable import library
    except Exception:  # rliable.library imports arch, which breaks with pandas >= 3 (arch 7.2)
        return _stratified_bootstrap_iqm(scores, reps, seed)
    # rliable's bootstrap draws from the global numpy generator
    np.random.seed(seed)
    points, intervals = library.get_interval_estimates(
        {"algo": scores}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps
    )
    return float(points["algo"][0]), float(intervals["algo"][0, 0]), float(intervals["algo"][1, 0])


def _format_iqm(scores: np.ndarray, n_seeds: int, reps: int) -> str:
    if len(scores) == 0:
        return f"missing (0/{n_seeds})"
    iqm, low, high = iqm_ci(scores[:, None], reps)
    # Runs with more seeds than the suite plans (--seeds) count as planned
    return f"{iqm:.1f} [{low:.1f}, {high:.1f}] ({len(scores)}/{max(n_seeds, len(scores))})"


def final_return_table(runs: list[Run], env_ids: list[str], algos: list[str], n_seeds: int, reps: int) -> str:
    rows = [[env_id] + [_format_iqm(final_scores(runs, env_id, algo), n_seeds, reps) for algo in algos] for env_id in env_ids]
    return markdown_table(["Env", *algos], rows)


def per_seed_table(runs: list[Run], env_ids: list[str], algos: list[str]) -> str:
    """
    Every seed's final return, and each algorithm's paired difference to TD3 over the seeds both finished: a seed
    evaluates every algorithm from the same start states, so the pairs cancel the start states' share of the return.
    """
    rows = []
    for env_id in env_ids:
        td3 = finals_by_seed(runs, env_id, "td3")
        for algo in algos:
            finals = finals_by_seed(runs, env_id, algo)
            if not finals:
                continue
            differences = [finals[seed] - td3[seed] for seed in finals if seed in td3]
            paired = ""
            if algo != "td3" and differences:
                ahead = sum(difference > 0 for difference in differences)
                paired = f"{np.mean(differences):+.1f} ({ahead}/{len(differences)} seeds ahead)"
            per_seed = ", ".join(f"{seed}: {final:.1f}" for seed, final in finals.items())
            rows.append([env_id, algo, per_seed, paired])
    return markdown_table(["Env", "Algorithm", "seed: final return", "minus TD3, same seeds: mean (seeds ahead)"], rows)


def _common_seed_scores(runs: list[Run], env_ids: list[str], algo: str) -> np.ndarray:
    """Final returns (seeds x envs) of ``algo`` over the seeds it finished on every env of ``env_ids``."""
    seeds = set.intersection(*({run.seed for run in runs if (run.env_id, run.algo) == (env_id, algo)} for env_id in env_ids))
    by_key = {(run.env_id, run.seed): run.final_return for run in runs if run.algo == algo}
    return np.array([[by_key[env_id, seed] for env_id in env_ids] for seed in sorted(seeds)]).reshape(len(seeds), len(env_ids))


def normalized_table(runs: list[Run], env_ids: list[str], algos: list[str], random_scores: dict[str, float], reps: int) -> str:
    """Aggregate over envs of (R - random) / (TD3 - random), TD3 being the mean final return of TD3 on the env."""
    references = {
        env_id: final_scores(runs, env_id, "td3").mean() for env_id in env_ids if len(final_scores(runs, env_id, "td3"))
    }
    usable = [env_id for env_id in env_ids if env_id in references and env_id in random_scores]
    # A TD3 score equal to the random one leaves nothing to normalise by
    usable = [env_id for env_id in usable if abs(references[env_id] - random_scores[env_id]) > 1e-6]
    if not usable:
        return "No env has both a TD3 and a random score yet."
    low = np.array([random_scores[env_id] for env_id in usable])
    high = np.array([references[env_id] for env_id in usable])
    rows = []
    for algo in algos:
        scores = (_common_seed_scores(runs, usable, algo) - low) / (high - low)
        if len(scores) == 0:
            rows.append([algo, "missing", "", "0"])
            continue
        iqm, ci_low, ci_high = iqm_ci(scores, reps)
        rows.append([algo, f"{iqm:.2f}", f"[{ci_low:.2f}, {ci_high:.2f}]", str(len(scores))])
    caption = (
        f"Envs: {', '.join(usable)}. IQM over (seed, env) of the normalised final return, 95% stratified-bootstrap CI, "
        "over the seeds an algorithm finished on all these envs."
    )
    return caption + "\n\n" + markdown_table(["Algorithm", "Normalised IQM", "95% CI", "Seeds"], rows)


def _mean_and_ci(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds (rows) and half-width of its 95% Student-t CI (0 for a single seed)."""
    mean = returns.mean(axis=0)
    if len(returns) < 2:
        return mean, np.zeros_like(mean)
    return mean, stats.t.ppf(0.975, len(returns) - 1) * returns.std(axis=0, ddof=1) / np.sqrt(len(returns))


def plot_curves(runs: list[Run], env_ids: list[str], algos: list[str], path: Path) -> None:
    """
    One panel per env with a finished run (of any of ``algos``), in the order of ``env_ids``, in rows of three: mean
    deterministic evaluation return across seeds vs env steps, with its 95% CI, and one legend for the figure (the
    seeds of each algorithm in each panel's title). Without any finished run, one empty panel says so.
    """
    with_runs = {run.env_id for run in runs if run.algo in algos}
    env_ids = [env_id for env_id in env_ids if env_id in with_runs]
    with style():
        fig, panels = grid(max(1, len(env_ids)))
        if not env_ids:
            panels[0].text(0.5, 0.5, "No finished run yet", ha="center", va="center", transform=panels[0].transAxes)
            panels[0].set_axis_off()
            save_figure(fig, path)
            return
        for ax, env_id in zip(panels, env_ids, strict=True):
            seeds = []
            for index, algo in enumerate(algos):
                algo_runs = [run for run in runs if (run.env_id, run.algo) == (env_id, algo)]
                if not algo_runs:
                    continue
                seeds.append(f"{len(algo_runs)}")
                # Runs of one suite share their evaluation steps; truncate in case one protocol changed
                length = min(len(run.timesteps) for run in algo_runs)
                mean, half_width = _mean_and_ci(np.stack([run.returns[:length] for run in algo_runs]))
                timesteps = algo_runs[0].timesteps[:length]
                ax.plot(timesteps, mean, color=f"C{index}", label=algo)
                ax.fill_between(timesteps, mean - half_width, mean + half_width, color=f"C{index}", alpha=0.2)
            counts = seeds[0] if len(set(seeds)) == 1 else "/".join(seeds)
            ax.set(title=f"{env_id.split('/')[-1]} ({counts} seed{'' if counts == '1' else 's'})", xlabel="env steps")
            steps_in_thousands(ax)
        for ax in first_in_row(panels):
            ax.set_ylabel("evaluation return")
        shared_legend(fig, panels)
        save_figure(fig, path)


# The one throughput table, repository-relative
THROUGHPUT_TABLE = relative_path(THROUGHPUT_DIR / "throughput.md", REPO_ROOT)


def _link(target: Path, output_dir: Path) -> str:
    """Link to ``target`` from a file in ``output_dir``: relative inside the repository, repository-relative else."""
    if output_dir.resolve().is_relative_to(REPO_ROOT):
        return os.path.relpath(target.resolve(), output_dir.resolve())
    return relative_path(target, REPO_ROOT)


def write_report(
    suite_name: str, log_root: Path, output_dir: Path, random_scores_path: Path = RANDOM_SCORES, reps: int = 10_000
) -> str:
    """
    Write ``results.md`` and the learning curves of a suite to ``output_dir``.

    :param suite_name: Suite, whose envs, algorithms and seeds are expected (others found are reported too)
    :param log_root: Zoo log folder of the suite
    :param output_dir: Where to write
    :param random_scores_path: Cache of random scores
    :param reps: Bootstrap replications
    :return: The markdown of ``results.md``
    """
    suite = get_suite(suite_name)
    runs = load_runs(log_root)
    env_ids = list(dict.fromkeys([*suite.env_ids, *(run.env_id for run in runs)]))
    algos = list(dict.fromkeys([*suite.algos, *(run.algo for run in runs)]))
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_curves(runs, env_ids, algos, output_dir / CURVES)
    sections = [
        f"# Benchmark results: {suite.name}",
        f"{len(runs)} finished runs in `{log_root.name}/`.",
        "## Final deterministic evaluation return",
        "IQM over seeds [95% stratified-bootstrap CI] (seeds finished / planned) of the final return: the mean of the "
        "last evaluation's episodes of each seed.",
        final_return_table(runs, env_ids, algos, suite.n_seeds, reps),
        "Per seed, and paired with TD3's run of the same seed (same evaluation start states):",
        per_seed_table(runs, env_ids, algos),
        "## Normalised return, aggregated over envs",
        "(R - random) / (TD3 - random): random is a uniform random policy (`random_scores.json`).",
        normalized_table(runs, env_ids, algos, load_random_scores(env_ids, random_scores_path), reps),
        "## Learning curves",
        "Mean over seeds (their number in each panel's title) of the deterministic evaluation return, 95% t-interval.",
        f"![Learning curves]({CURVES})",
        "## Throughput",
        f"Training env-steps per second of each algorithm at identical settings: [{THROUGHPUT_TABLE}]"
        f"({_link(REPO_ROOT / THROUGHPUT_TABLE, output_dir)}), measured by `python -m benchmarks.throughput`.",
    ]
    report = "\n\n".join(sections) + "\n"
    (output_dir / "results.md").write_text(report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=list(SUITES), default="quick")
    parser.add_argument("--log-root", type=Path, help="Zoo log folder (default: benchmarks/results/<suite>/logs)")
    parser.add_argument("--output-dir", type=Path, help="Default: benchmarks/results/<suite>/")
    parser.add_argument("--reps", type=int, default=10_000, help="Bootstrap replications")
    args = parser.parse_args(argv)
    log_root = args.log_root or default_log_root(args.suite)
    print(write_report(args.suite, log_root, args.output_dir or RESULTS_DIR / args.suite, reps=args.reps))


if __name__ == "__main__":
    main()
