"""
The estimate's budget: what each part of the cost of DenoisePG's score-difference estimate buys.

Most of a DenoisePG step beyond TD3's is the estimate: ``n_noise_samples`` draws of the conditional and the
unconditional denoiser, and the baseline (the critics) at every noised action. A *cell* of this sweep is one choice of
the three sizes that set that cost:

- the denoiser's hidden layers (``policy_kwargs["denoiser_net_arch"]``);
- the draws per transition (``n_noise_samples``);
- how many critics the baseline averages (``policy_kwargs["baseline_critics"]``: the first one, or both twins).

Each cell is judged on throughput and gradient quality, each with its own uncertainty:

- ``throughput``: training env-steps per second as a ratio to TD3 measured in the same run (``benchmarks.throughput``:
  one process after another, one torch thread, ``[400, 300]`` critics), with the range of the per-repeat ratios;
- ``probe``: the gradient-truth probe (``sb3_denoise_pg.diagnostics``) at the end of a 20k-step run of the gradient-truth
  suite: one run per (denoiser size, env, seed), since the denoiser's size shapes its training; at that checkpoint the
  truth is measured once and the actor update of every (draws, baseline) choice is scored against it, as the cosine in
  the actor's parameter space at the policy's action with its bootstrap interval over states. The run itself trains
  with 0.3.0's draws and baseline, so the scores compare what each choice makes of the same networks at the same states.

Learning (100k steps on HalfCheetah-v5 and Hopper-v5) is ``benchmarks.run --suite standard`` with a cell's options as
zoo ``--hyperparams`` (``Cell.zoo_hyperparams``), one log root per cell (``learning/<cell>/logs``); the report pairs
each cell's runs with 0.3.0's runs of the same seeds.

    python -m benchmarks.estimate_budget throughput --env Pendulum-v1 [--steps 500] [--repeats 2]
    python -m benchmarks.estimate_budget probe --env Pendulum-v1 --denoiser 64x64 [--seeds 3] [--jobs 2]
    python -m benchmarks.estimate_budget report

Writes ``benchmarks/results/estimate-budget/``.
"""

import argparse
import itertools
import json
import re
import shlex
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import RESULTS_DIR, markdown_table, relative_path
from benchmarks.training import MARKER

OUTPUT_DIR = RESULTS_DIR / "estimate-budget"
# The sweep's axes; (400, 300) is the critics' size in every benchmark, so it is 0.3.0's denoiser there
DENOISERS: tuple[tuple[int, ...], ...] = ((64, 64), (256, 256), (400, 300))
DRAWS: tuple[int, ...] = (2, 4, 8)
BASELINE_CRITICS: tuple[int, ...] = (1, 2)
# The probe's checkpoint and the suite that trains it
PROBE_SUITE, PROBE_STEPS = "gradient-truth", 20_000
PROBE_ENVS = ("Pendulum-v1", "sb3_denoise_pg/NoisyPendulum-v1")
# The scale of the truth the actor update is scored against: DenoisePG's sigma
PROBE_SCALE = 0.2
# What is kept of each score: the actor update (at the policy's action), the draw-averaged estimate (at the replay
# action), the critic's input-gradient (TD3's signal, the same for every choice), and the truth's own precision
SCORED = (("actor_update", "policy"), ("estimate", "behaviour"), ("critic", "policy"), ("truth_split_half", "policy"))
_NAME = re.compile(r"^denoise_pg-den(\d+(?:x\d+)*)-draws(\d+)-critics(\d+)$")


@dataclass(frozen=True)
class Cell:
    """
    One setting of the estimate's budget.

    :param denoiser: The denoiser's hidden layers
    :param draws: Noise draws per transition (``n_noise_samples``)
    :param baseline_critics: Critics averaged in the baseline
    """

    denoiser: tuple[int, ...]
    draws: int
    baseline_critics: int

    @property
    def name(self) -> str:
        """``denoise_pg-den64x64-draws4-critics1``: a variant name of ``benchmarks.throughput``."""
        return f"denoise_pg-den{'x'.join(map(str, self.denoiser))}-draws{self.draws}-critics{self.baseline_critics}"

    @classmethod
    def parse(cls, name: str) -> "Cell":
        """The cell of a :attr:`name`; a ``ValueError`` for anything else."""
        match = _NAME.match(name)
        if match is None:
            raise ValueError(f"{name!r} is not a cell name such as 'denoise_pg-den64x64-draws4-critics1'")
        layers, draws, critics = match.groups()
        cell = cls(tuple(int(size) for size in layers.split("x")), int(draws), int(critics))
        if min(cell.denoiser) < 1 or cell.draws < 1 or cell.baseline_critics not in (1, 2):
            raise ValueError(f"{name!r}: layer sizes and draws must be >= 1, critics 1 or 2")
        return cell

    def overrides(self) -> dict[str, Any]:
        """DenoisePG's constructor arguments of this cell."""
        policy_kwargs = dict(denoiser_net_arch=list(self.denoiser), baseline_critics=self.baseline_critics)
        return dict(n_noise_samples=self.draws, policy_kwargs=policy_kwargs)

    def zoo_hyperparams(self, net_arch: tuple[int, ...] = (400, 300)) -> list[str]:
        """The zoo's ``--hyperparams`` of this cell, with the critics' and actor's ``net_arch`` of the zoo settings."""
        policy_kwargs = (
            f"dict(net_arch={list(net_arch)}, denoiser_net_arch={list(self.denoiser)}, "
            f"baseline_critics={self.baseline_critics})"
        )
        return [f"n_noise_samples:{self.draws}", f"policy_kwargs:{policy_kwargs}"]


GRID: tuple[Cell, ...] = tuple(Cell(*values) for values in itertools.product(DENOISERS, DRAWS, BASELINE_CRITICS))
# 0.3.0's defaults at the benchmarks' [400, 300] critics
CELL_0_3_0 = Cell((400, 300), 8, 2)


def _slug(env_id: str) -> str:
    return env_id.replace("/", "-")


# ---- throughput --------------------------------------------------------------------------------------------------


def throughput_folder(env_id: str, output_dir: Path = OUTPUT_DIR) -> Path:
    return output_dir / f"throughput-{_slug(env_id)}"


def run_throughput(env_id: str, steps: int, warmup: int, repeats: int, output_dir: Path) -> Path:
    """Every cell and TD3 through ``benchmarks.throughput`` into ``throughput-<env>/``; returns that folder."""
    folder = throughput_folder(env_id, output_dir)
    command = [sys.executable, "-m", "benchmarks.throughput", "--env", env_id, "--steps", str(steps)]
    command += ["--warmup", str(warmup), "--repeats", str(repeats), "--output-dir", str(folder)]
    command += ["--algos", "td3", *(cell.name for cell in GRID)]
    print(shlex.join(command), flush=True)
    subprocess.run(command, check=True)
    return folder


def throughput_ratios(data: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """
    Per variant of a ``throughput.json``: the ratio of medians to TD3's, and the lowest and highest ratio of one
    repeat's measurement to TD3's in the same repeat (the runs were interleaved, so a repeat shares the machine's load).
    """
    results = data["results"]
    td3 = results["td3"]
    ratios = {}
    for algo, result in results.items():
        per_repeat = [run / base for run, base in zip(result["runs"], td3["runs"], strict=True)]
        ratios[algo] = (result["steps_per_s"] / td3["steps_per_s"], min(per_repeat), max(per_repeat))
    return ratios


# ---- gradient quality ----------------------------------------------------------------------------------------------


def probe_log_root(denoiser: tuple[int, ...], output_dir: Path = OUTPUT_DIR) -> Path:
    return output_dir / "probe" / "logs" / f"den{'x'.join(map(str, denoiser))}"


def probe_path(denoiser: tuple[int, ...], env_id: str, seed: int, output_dir: Path = OUTPUT_DIR) -> Path:
    return output_dir / "probe" / "scores" / f"den{'x'.join(map(str, denoiser))}-{_slug(env_id)}-seed{seed}.json"


def train_for_probe(denoiser: tuple[int, ...], env_id: str, n_seeds: int, jobs: int, output_dir: Path) -> None:
    """The gradient-truth suite's DenoisePG runs of ``env_id`` with this denoiser (0.3.0's draws and baseline)."""
    cell = Cell(denoiser, CELL_0_3_0.draws, CELL_0_3_0.baseline_critics)
    command = [sys.executable, "-m", "benchmarks.run", "--suite", PROBE_SUITE, "--algos", "denoise_pg", "--envs", env_id]
    command += ["--seeds", str(n_seeds), "--jobs", str(jobs), "--log-root", str(probe_log_root(denoiser, output_dir))]
    command += ["--", "--hyperparams", *cell.zoo_hyperparams()]
    print(shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def score_variants(checkpoint: str, env_id: str, seed: int, out: str) -> dict[str, Any]:
    """
    In a worker process: measure the truth at one checkpoint, then score the actor update of every (draws, baseline
    critics) of the sweep against it; written to ``out``.
    """
    import torch as th

    from benchmarks import started
    from benchmarks.gradient_truth import _json_ready, load_checkpoint, probe_config
    from sb3_denoise_pg.diagnostics import GradientTruthProbe

    th.set_num_threads(1)
    provenance = started()
    model = load_checkpoint("denoise_pg", checkpoint)
    probe = GradientTruthProbe(env_id, probe_config(env_id, seed))
    measurement = probe.measure(model)
    probe.close()
    scores = []
    for draws, critics in itertools.product(DRAWS, BASELINE_CRITICS):
        model.n_noise_samples, model.policy.baseline_critics = draws, critics
        result = probe.score(model, measurement)
        for signal, point in SCORED:
            (row,) = result.select(signal=signal, point=point, scale=PROBE_SCALE, level="parameter")
            scores.append(dict(draws=draws, baseline_critics=critics, **row))
    record = dict(env_id=env_id, seed=seed, steps=PROBE_STEPS, checkpoint=relative_path(checkpoint))
    record.update(pairs=measurement.truth.pairs, measured=provenance, scores=scores)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(_json_ready(record), indent=1) + "\n")
    return record


def run_probe(denoiser: tuple[int, ...], env_id: str, n_seeds: int, jobs: int, output_dir: Path) -> None:
    """Train (resumable), then measure and score every seed whose scores are not written yet."""
    from benchmarks.suites import get_suite
    from benchmarks.training import RunSpec, checkpoint_path

    train_for_probe(denoiser, env_id, n_seeds, jobs, output_dir)
    budget = get_suite(PROBE_SUITE).budget(env_id)
    todo = []
    for seed in range(n_seeds):
        out = probe_path(denoiser, env_id, seed, output_dir)
        if not out.is_file():
            run_dir = RunSpec("denoise_pg", budget, seed).run_dir(probe_log_root(denoiser, output_dir))
            todo.append((str(checkpoint_path(run_dir, PROBE_STEPS)), env_id, seed, str(out)))
    with ProcessPoolExecutor(max_workers=jobs) as executor:
        for record in executor.map(score_variants, *zip(*todo, strict=True)) if todo else ():
            print(f"scored {env_id} seed {record['seed']}", flush=True)


# ---- the report ------------------------------------------------------------------------------------------------------


def _ratio_cell(ratios: dict[str, tuple[float, float, float]] | None, cell: Cell) -> str:
    if ratios is None or cell.name not in ratios:
        return "not run"
    ratio, low, high = ratios[cell.name]
    return f"{ratio:.2f} [{low:.2f}, {high:.2f}]"


def _probe_cell(records: list[dict[str, Any]], cell: Cell, signal: str = "actor_update") -> str:
    """Mean over seeds of the parameter-level cosine, with the seeds' range and each seed's interval count."""
    values = [
        score
        for record in records
        for score in record["scores"]
        if (score["draws"], score["baseline_critics"], score["signal"]) == (cell.draws, cell.baseline_critics, signal)
    ]
    if not values:
        return "not run"
    cosines = [score["cosine"] for score in values]
    text = f"{np.mean(cosines):+.2f}"
    return text + (f" [{min(cosines):+.2f}, {max(cosines):+.2f}] ({len(cosines)} seeds)" if len(cosines) > 1 else " (1 seed)")


def load_probe_records(output_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((output_dir / "probe" / "scores").glob("*.json"))]


def report(output_dir: Path = OUTPUT_DIR) -> str:
    """The sweep's table (``results.md``): every cell's throughput ratios and probe scores, 0.3.0's cell marked."""
    envs = sorted(path.name.removeprefix("throughput-") for path in output_dir.glob("throughput-*") if path.is_dir())
    ratios = {}
    for env in envs:
        data_path = output_dir / f"throughput-{env}" / "throughput.json"
        ratios[env] = throughput_ratios(json.loads(data_path.read_text())) if data_path.is_file() else None
    records = load_probe_records(output_dir)
    by_env = {env: [r for r in records if _slug(r["env_id"]) == env] for env in map(_slug, PROBE_ENVS)}
    headers = ["cell", *(f"throughput {env} / TD3" for env in envs)]
    headers += [f"actor update cos {env}" for env in by_env]
    rows = []
    for cell in GRID:
        label = cell.name.removeprefix("denoise_pg-") + (" (0.3.0)" if cell == CELL_0_3_0 else "")
        row = [label, *(_ratio_cell(ratios[env], cell) for env in envs)]
        for env_records in by_env.values():
            row.append(_probe_cell([r for r in env_records if _denoiser_of(r) == cell.denoiser], cell))
        rows.append(row)
    text = markdown_table(headers, rows)
    return text + "\n\n" + checkpoint_table(by_env) + "\n"


def checkpoint_table(by_env: dict[str, list[dict[str, Any]]]) -> str:
    """
    What each denoiser size's checkpoints give every cell's score to be read against: the truth's own precision (the
    cosine between its two halves) and the critic's input-gradient (TD3's signal), neither of which depends on the
    estimate's options.
    """
    headers = ["denoiser (its checkpoints)"]
    headers += [f"{label} {env}" for env in by_env for label in ("truth split-half", "critic cos")]
    rows = []
    for denoiser in DENOISERS:
        cell = Cell(denoiser, CELL_0_3_0.draws, CELL_0_3_0.baseline_critics)
        row = ["x".join(map(str, denoiser))]
        for env_records in by_env.values():
            mine = [record for record in env_records if _denoiser_of(record) == denoiser]
            row += [_probe_cell(mine, cell, "truth_split_half"), _probe_cell(mine, cell, "critic")]
        rows.append(row)
    return markdown_table(headers, rows)


def _denoiser_of(record: dict[str, Any]) -> tuple[int, ...]:
    """The denoiser size of a probe record, from its checkpoint's folder (``.../logs/den64x64/...``)."""
    folder = next(part for part in Path(record["checkpoint"]).parts if re.fullmatch(r"den\d+(x\d+)*", part))
    return tuple(int(size) for size in folder.removeprefix("den").split("x"))


# The learning runs of a cell, against 0.3.0's runs of the same seeds and the standard suite's TD3 runs
LEARNING_ENVS = ("HalfCheetah-v5", "Hopper-v5")
BASELINE_LOGS = RESULTS_DIR / "standard-0.3.0" / "logs"
# "Not worse than 0.3.0": the mean final return over the seeds at least this share of 0.3.0's on the same seeds
NOT_WORSE = 0.95


def _final_returns(log_root: Path, algo: str, env_id: str) -> dict[int, float]:
    """Seed -> final return (the mean of the last evaluation's episodes) of every finished run."""
    from benchmarks.training import UnreadableRun, read_run

    finals = {}
    for run_dir in sorted((log_root / algo).glob(f"{env_id}_*")):
        try:
            marker, evaluations = read_run(run_dir)
        except UnreadableRun:
            continue
        finals[int(marker["seed"])] = float(evaluations["results"][-1].mean())
    return finals


def learning_folder(cell: Cell, output_dir: Path = OUTPUT_DIR) -> Path:
    """Where a cell's learning runs live: ``learning/den64x64-draws4-critics1/logs`` (a ``benchmarks.run`` log root)."""
    return output_dir / "learning" / cell.name.removeprefix("denoise_pg-") / "logs"


def learned_cells(output_dir: Path = OUTPUT_DIR) -> list[Cell]:
    """The cells with a learning folder, cheapest denoiser first."""
    cells = [Cell.parse(f"denoise_pg-{path.parent.name}") for path in (output_dir / "learning").glob("*/logs")]
    return sorted(cells, key=lambda cell: (np.prod(cell.denoiser), cell.draws, cell.baseline_critics))


def learning_table(cell: Cell, output_dir: Path = OUTPUT_DIR, baseline_logs: Path = BASELINE_LOGS) -> str:
    """
    One cell's learning runs against 0.3.0's and TD3's runs of the same seeds: every seed's final return, the means'
    ratios over the seeds the cell finished, and the pre-registered "not worse" test.
    """
    log_root = learning_folder(cell, output_dir)
    rows = []
    for env_id in LEARNING_ENVS:
        new = _final_returns(log_root, "denoise_pg", env_id)
        old = _final_returns(baseline_logs, "denoise_pg", env_id)
        td3 = _final_returns(baseline_logs, "td3", env_id)
        seeds = sorted(set(new) & set(old) & set(td3))
        if not seeds:
            rows.append([env_id, "none finished", "", "", "", ""])
            continue
        mean = {name: np.mean([runs[seed] for seed in seeds]) for name, runs in (("cell", new), ("old", old), ("td3", td3))}
        per_seed = "; ".join(f"{seed}: {new[seed]:.1f} / {old[seed]:.1f} / {td3[seed]:.1f}" for seed in seeds)
        verdict = "yes" if mean["cell"] >= NOT_WORSE * mean["old"] else "no"
        rows.append(
            [
                env_id,
                ", ".join(map(str, seeds)),
                per_seed,
                f"{mean['cell'] / mean['old']:.2f}",
                f"{mean['cell'] / mean['td3']:.2f}x (0.3.0: {mean['old'] / mean['td3']:.2f}x)",
                verdict if len(seeds) == 3 else f"{verdict} so far ({len(seeds)} of 3 seeds; the test is on all three)",
            ]
        )
    headers = ["env", "seeds", "final return per seed: cell / 0.3.0 / TD3", "cell / 0.3.0", "cell / TD3"]
    headers.append(f"not worse (>= {NOT_WORSE:g} x 0.3.0)")
    return f"The runs' settings: {_learning_settings(log_root)}.\n\n" + markdown_table(headers, rows)


def _learning_settings(log_root: Path) -> str:
    """The estimate's settings of the cell's runs, as their markers record them (the zoo's config)."""
    settings = set()
    for marker in sorted(log_root.glob(f"denoise_pg/*/{MARKER}")):
        config = json.loads(marker.read_text()).get("config") or {}
        settings.add(f"n_noise_samples={config.get('n_noise_samples')}, policy_kwargs={config.get('policy_kwargs')}")
    return "; ".join(sorted(settings)) or "none finished"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    throughput = commands.add_parser("throughput", help="Every cell's and TD3's training throughput on one env")
    throughput.add_argument("--env", default="Pendulum-v1")
    throughput.add_argument("--steps", type=int, default=500, help="Timed training steps per run")
    throughput.add_argument("--warmup", type=int, default=200)
    throughput.add_argument("--repeats", type=int, default=2)
    probe = commands.add_parser("probe", help="Train with one denoiser size, then score every (draws, baseline) cell")
    probe.add_argument("--env", choices=PROBE_ENVS, default=PROBE_ENVS[0])
    probe.add_argument("--denoiser", required=True, help="Hidden layers, e.g. 64x64")
    probe.add_argument("--seeds", type=int, default=3)
    probe.add_argument("--jobs", type=int, default=2)
    commands.add_parser("report", help="Write results.md from what has been measured")
    for sub in (throughput, probe, commands.choices["report"]):
        sub.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    if args.command == "throughput":
        run_throughput(args.env, args.steps, args.warmup, args.repeats, args.output_dir)
    elif args.command == "probe":
        denoiser = Cell.parse(f"denoise_pg-den{args.denoiser}-draws1-critics1").denoiser
        run_probe(denoiser, args.env, args.seeds, args.jobs, args.output_dir)
    table = report(args.output_dir)
    for cell in learned_cells(args.output_dir):
        name = cell.name.removeprefix("denoise_pg-")
        table += f"\n## Learning at 100k steps: {name}\n\n" + learning_table(cell, args.output_dir) + "\n"
    (args.output_dir / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
