"""
Gradient quality over training: the gradient-truth probe (``sb3_denoise_pg.diagnostics``) on the checkpoints of the
``gradient-truth`` suite, TD3 and DenoisePG with their zoo settings, and the table and figure of its results.

The checkpoints come from ``benchmarks.run --suite gradient-truth`` (the zoo keeps ``rl_model_<steps>_steps.zip`` at
each budget's checkpoints). A probe has two stages, each resumable (a finished file is never redone), each
(algo, env, seed, checkpoint) in its own single-threaded process:

- ``measure``: the states and the truth there (``measurements/<name>.npz``), the expensive part, which needs the
  simulator and the model's actor only, so it can run on a machine with many cores from actor-only copies of the
  checkpoints (``--stage export``, then ``--checkpoints <that folder>``);
- ``score``: every signal of the full checkpoint at the measured states (``probes/<name>.json``, its rows).

Then ``results.md``, ``rows.csv`` (every row of every probe) and ``gradient_quality.png`` are written from all probes.

    python -m benchmarks.run --suite gradient-truth --envs Pendulum-v1 --seeds 3 --jobs 2     # train, keep checkpoints
    python -m benchmarks.gradient_truth --jobs 2 [--envs ...] [--algos ...] [--seeds 3] [--max-seconds S]
    python -m benchmarks.gradient_truth --stage export --checkpoints DIR      # actor-only copies, about 0.5 MB each
    python -m benchmarks.gradient_truth --stage measure --checkpoints DIR --jobs 16   # elsewhere, then copy measurements/
    python -m benchmarks.gradient_truth --report-only

Writes ``benchmarks/results/gradient-truth/``.
"""

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import RESULTS_DIR, markdown_table, relative_path, started
from benchmarks.figures import first_in_row, grid, save_figure, shared_legend, steps_in_thousands, style
from benchmarks.suites import get_suite, select
from benchmarks.variants import run_plan

SUITE = "gradient-truth"
OUTPUT_DIR = RESULTS_DIR / SUITE
MEASUREMENTS, PROBES, MANIFEST = "measurements", "probes", "checkpoints.json"
ALGO_CLASSES = {"denoise_pg": "DenoisePG", "td3": "TD3"}
FIGURE = "gradient_quality.png"
# The probe's settings. Pendulum's truth is cheap and precise: 3 scales, pairs until split-half 0.9. A MuJoCo
# rollout of 300 steps costs about 25 ms, so a MuJoCo probe gets 2 scales (the smallest and DenoisePG's sigma) and
# at most 32 pairs (16384 rollouts: about 7 minutes on an idle core); the same budget on every machine
SMALL_TASK = dict(n_states=64, scales=(0.05, 0.1, 0.2), pairs_per_round=8, max_pairs=64, target_split_half=0.9)
MUJOCO = dict(n_states=64, scales=(0.05, 0.2), pairs_per_round=8, max_pairs=32, target_split_half=0.9)
# The rows of the summary tables: which signal at which point, at the parameter level
POLICY_SIGNALS = ("critic", "critic_fd", "actor_update", "anchored")
BEHAVIOUR_SIGNALS = ("critic", "critic_fd", "estimate", "estimate_no_cv", "estimate_many", "estimate_many_no_cv")


def probe_config(env_id: str, run_seed: int, **overrides: Any) -> Any:
    """
    The probe's settings for ``env_id`` (``SMALL_TASK`` or ``MUJOCO``), seeded by the run's seed, with the
    ``overrides`` that are not ``None``.
    """
    import gymnasium as gym

    import sb3_denoise_pg  # noqa: F401  (registers the noisy ids)
    from sb3_denoise_pg.diagnostics import ProbeConfig

    settings = MUJOCO if hasattr(gym.make(env_id).unwrapped, "model") else SMALL_TASK
    return ProbeConfig(**{**settings, "seed": run_seed, **{k: v for k, v in overrides.items() if v is not None}})


def checkpoint_name(algo: str, env_id: str, seed: int, steps: int) -> str:
    return f"{algo}-{env_id.replace('/', '-')}-seed{seed}-{steps}"


def find_checkpoints(algos: tuple[str, ...], env_ids: tuple[str, ...], n_seeds: int, source: Path | None) -> list[dict]:
    """
    The checkpoints to probe, seed-major: from an exported folder's manifest (``--checkpoints``), or the suite's zoo
    logs (the checkpoints the suite keeps that exist).

    :return: Dicts of ``path``, ``algo``, ``env_id``, ``seed``, ``steps``
    """
    if source is not None:
        entries = json.loads((source / MANIFEST).read_text())
        entries = [{**entry, "path": str(source / entry["path"])} for entry in entries]
    else:
        from benchmarks.training import RunSpec, checkpoint_path, default_log_root

        suite = get_suite(SUITE)
        entries = []
        for seed in range(n_seeds):
            for env in suite.envs:
                for algo in suite.algos:
                    for steps in env.checkpoints:
                        path = checkpoint_path(RunSpec(algo, env, seed).run_dir(default_log_root(SUITE)), steps)
                        if path.is_file():
                            entries.append(dict(path=str(path), algo=algo, env_id=env.env_id, seed=seed, steps=steps))
    wanted = [e for e in entries if e["algo"] in algos and e["env_id"] in env_ids and e["seed"] < n_seeds]
    return sorted(wanted, key=lambda e: (e["seed"], env_ids.index(e["env_id"]), e["algo"], e["steps"]))


def load_checkpoint(algo: str, path: str) -> Any:
    """
    A checkpoint as a model, on the CPU, with a one-transition replay buffer; actor-only copies (``--stage export``)
    load their actor and leave the other networks as initialised.
    """
    from stable_baselines3 import TD3
    from stable_baselines3.common.save_util import load_from_zip_file

    from sb3_denoise_pg import DenoisePG

    model_class = DenoisePG if algo == "denoise_pg" else TD3
    data, params, _ = load_from_zip_file(path, device="cpu")
    if any(key.endswith(".optimizer") for key in params):
        return model_class.load(path, device="cpu", buffer_size=1, optimize_memory_usage=False)
    model = model_class(policy=data["policy_class"], env=None, device="cpu", _init_setup_model=False)
    model.__dict__.update(data)
    model.__dict__.update(buffer_size=1, optimize_memory_usage=False)
    model._setup_model()
    missing, _ = model.policy.load_state_dict(params["policy"], strict=False)
    if any(key.startswith("actor.") for key in missing):
        raise ValueError(f"{path} holds no actor")
    return model


def export_actor(path: str, target: Path) -> None:
    """An actor-only copy of a zoo checkpoint (its hyperparameters and the actor's weights): what measuring needs."""
    from stable_baselines3.common.save_util import load_from_zip_file, save_to_zip_file

    data, params, pytorch_variables = load_from_zip_file(path, device="cpu")
    actor = {key: value for key, value in params["policy"].items() if key.startswith("actor.")}
    save_to_zip_file(target, data=data, params={"policy": actor}, pytorch_variables=pytorch_variables)


def export_actors(checkpoints: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for entry in checkpoints:
        name = checkpoint_name(entry["algo"], entry["env_id"], entry["seed"], entry["steps"]) + ".zip"
        export_actor(entry["path"], folder / name)
        manifest.append({**{k: v for k, v in entry.items() if k != "path"}, "path": name})
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"Exported {len(manifest)} actors to {folder}")


def measure_checkpoint(path: str, algo: str, env_id: str, seed: int, steps: int, overrides: dict, out: str) -> dict:
    """In a worker process: the states and the truth of one checkpoint, saved to ``out``; returns its info."""
    from sb3_denoise_pg.diagnostics import GradientTruthProbe

    provenance = started()
    probe = GradientTruthProbe(env_id, probe_config(env_id, seed, **overrides))
    measurement = probe.measure(load_checkpoint(algo, path))
    probe.close()
    measurement.info.update(algo=algo, env_id=env_id, seed=seed, steps=steps, measured=provenance)
    measurement.save(out)
    return _json_ready(measurement.info)


def score_checkpoint(path: str, algo: str, env_id: str, seed: int, steps: int, measurement_path: str) -> dict:
    """In a worker process: score a full checkpoint's signals against its measurement; the probe as a JSON-ready dict."""
    from sb3_denoise_pg.diagnostics import GradientTruthProbe, ProbeConfig
    from sb3_denoise_pg.diagnostics.gradient_truth import Measurement

    provenance = started()
    measurement = Measurement.load(measurement_path)
    probe = GradientTruthProbe(env_id, ProbeConfig.from_dict(measurement.info["config"]))
    result = probe.score(load_checkpoint(algo, path), measurement)
    info = {key: value for key, value in result.info.items() if key != "measured"}
    return _json_ready(
        {
            "algo": algo,
            "env_id": env_id,
            "seed": seed,
            "steps": steps,
            **measurement.info["measured"],
            "scored": provenance,
            "info": info,
            "rows": result.rows,
        }
    )


def _json_ready(value: Any) -> Any:
    """NaN (an interval of one sample) as ``null``, tuples as lists."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return value


# ---- the report ------------------------------------------------------------------------------------------------------


def load_probes(output_dir: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((output_dir / PROBES).glob("*.json"))]


def _cell(values: list[float]) -> str:
    """Mean over seeds, with the seeds' range when there are several."""
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:+.2f}"
    return f"{np.mean(values):+.2f} [{min(values):+.2f}, {max(values):+.2f}]"


def _diff_cell(rows: list[dict]) -> str:
    """Mean paired difference with the critic over seeds, and in how many seeds its interval lies above / below zero."""
    diffs = [row["diff"] for row in rows if row.get("diff") is not None]
    if not diffs:
        return ""
    above = sum(1 for row in rows if row.get("diff_low") is not None and row["diff_low"] > 0)
    below = sum(1 for row in rows if row.get("diff_high") is not None and row["diff_high"] < 0)
    return f"{np.mean(diffs):+.2f} ({above}+/{below}-/{len(diffs)})"


def _group(probes: list[dict]) -> dict[tuple, list[dict]]:
    """(env, algo, steps, point, scale, signal, level) -> the rows of every seed."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for probe in probes:
        for row in probe["rows"]:
            key = (probe["env_id"], probe["algo"], probe["steps"], row["point"], row["scale"], row["signal"], row["level"])
            groups[key].append(row)
    return groups


def precision_table(probes: list[dict]) -> str:
    """The truth's split-half cosine at each level (mean over seeds [range]), its pairs and the probe's time."""
    groups = _group(probes)
    runs = sorted({(p["env_id"], p["algo"], p["steps"]) for p in probes})
    rows = []
    for env_id, algo, steps in runs:
        these = [p for p in probes if (p["env_id"], p["algo"], p["steps"]) == (env_id, algo, steps)]
        scales = sorted({row["scale"] for row in these[0]["rows"]})
        for scale in scales:
            cells = []
            for level in ("state", "batch", "parameter"):
                key = (env_id, algo, steps, "policy", scale, "truth_split_half", level)
                cells.append(_cell([row["cosine"] for row in groups.get(key, [])]))
            pairs = sorted({p["info"]["pairs"] for p in these})
            seconds = np.mean([p["info"]["truth_s"] for p in these])
            rows.append([env_id, algo, steps, scale, *cells, "/".join(map(str, pairs)), f"{seconds:.0f}", len(these)])
    headers = ["env", "algo", "steps", "scale", "state (median)", "batch", "parameter", "pairs", "truth s", "seeds"]
    return markdown_table(headers, rows)


def signal_table(probes: list[dict], point: str, signals: tuple[str, ...], level: str, scale: float) -> str:
    """Each signal's cosine with the truth at ``point``, ``level`` and ``scale`` (mean over seeds [range]), and its
    paired difference with the same algorithm's critic."""
    groups = _group(probes)
    runs = sorted({(p["env_id"], p["steps"], p["algo"]) for p in probes})
    rows = []
    for env_id, steps, algo in runs:
        split = groups.get((env_id, algo, steps, point, scale, "truth_split_half", level), [])
        cells = []
        for signal in signals:
            these = groups.get((env_id, algo, steps, point, scale, signal, level), [])
            cosine = _cell([row["cosine"] for row in these])
            diff = _diff_cell(these)
            cells.append(f"{cosine}; {diff}" if diff else cosine)
        if any(cells):
            rows.append([env_id, steps, algo, _cell([row["cosine"] for row in split]), *cells])
    return markdown_table(["env", "steps", "algo", "truth split-half", *signals], rows)


def write_rows_csv(probes: list[dict], path: Path) -> None:
    columns = ["env_id", "algo", "seed", "steps", "point", "scale", "signal", "level", "cosine", "low", "high"]
    columns += ["median", "diff", "diff_low", "diff_high", "ceiling"]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for probe in probes:
            for row in probe["rows"]:
                writer.writerow({key: probe[key] for key in ("env_id", "algo", "seed", "steps")} | row)


def _series(
    probes: list[dict], groups: dict[tuple, list[dict]], env_id: str, algo: str, key: tuple, column: str = "cosine"
) -> tuple[list[int], list[list[float]]]:
    """The checkpoints of (env, algo) where ``key`` = (point, scale, signal, level) has rows, and each one's values."""
    steps = sorted({p["steps"] for p in probes if p["env_id"] == env_id and p["algo"] == algo})
    values = [[row[column] for row in groups.get((env_id, algo, s, *key), [])] for s in steps]
    kept = [(s, v) for s, v in zip(steps, values, strict=True) if v]
    return [s for s, _ in kept], [v for _, v in kept]


def plot(probes: list[dict], path: Path, scale: float = 0.2, level: str = "parameter") -> None:
    """One panel per env, in rows of three: the cosine at the policy's action over training, mean over seeds and their
    range, with the truth's ceiling (from its split-half cosine); one legend for the figure."""
    groups = _group(probes)
    order = get_suite(SUITE).env_ids
    envs = sorted({p["env_id"] for p in probes}, key=lambda env: (order.index(env) if env in order else len(order), env))
    lines = [("td3", "critic", "TD3 critic"), ("denoise_pg", "critic", "DenoisePG critic")]
    lines += [("denoise_pg", "actor_update", "DenoisePG actor update"), ("denoise_pg", "anchored", "anchored form")]
    with style():
        fig, panels = grid(len(envs))
        for ax, env_id in zip(panels, envs, strict=True):
            for index, (algo, signal, label) in enumerate(lines):
                xs, values = _series(probes, groups, env_id, algo, ("policy", scale, signal, level))
                if xs:
                    color = f"C{index}"
                    ax.plot(xs, [np.mean(v) for v in values], marker="o", color=color, label=label)
                    ax.fill_between(xs, [min(v) for v in values], [max(v) for v in values], color=color, alpha=0.15)
            for algo, style_ in (("td3", ":"), ("denoise_pg", "--")):
                xs, values = _series(probes, groups, env_id, algo, ("policy", scale, "truth_split_half", level), "ceiling")
                if xs:
                    label = f"truth's ceiling ({ALGO_CLASSES[algo]})"
                    ax.plot(xs, [np.mean(v) for v in values], "k" + style_, lw=1, label=label)
            ax.axhline(0, color="grey", lw=0.5)
            ax.set(title=env_id.split("/")[-1], xlabel="env steps", ylim=(-1, 1))
            steps_in_thousands(ax)
        for ax in first_in_row(panels):
            ax.set_ylabel(f"cosine ({level}, scale {scale:g})")
        shared_legend(fig, panels)
        save_figure(fig, path)


def _provenance(probes: list[dict], stage: str) -> str:
    """The versions, commits and dates of a stage (``measured`` or ``scored``) of the probes, each once."""
    made = [probe[stage] if stage in probe else probe for probe in probes]
    versions = sorted({f"{m['version']} at {str(m['commit'])[:7]}" for m in made})
    dates = sorted(m["date"][:10] for m in made)
    return f"{', '.join(versions)}, {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")


def _settings(probes: list[dict]) -> str:
    """The probe settings of each env, once."""
    settings = {}
    for probe in probes:
        info, config = probe["info"], probe["info"]["config"]
        budget = f"at most {config['max_pairs']} pairs" + (f" or {config['max_seconds']:g} s" if config["max_seconds"] else "")
        scales = ", ".join(f"{scale:g}" for scale in config["scales"])
        settings[probe["env_id"]] = f"{config['n_states']} states, scales {scales}, {budget}, horizon {info['horizon']}"
    return "; ".join(f"{env}: {text}" for env, text in sorted(settings.items()))


def write_report(output_dir: Path, command: str, figure: bool = True) -> None:
    probes = load_probes(output_dir)
    if not probes:
        print(f"No probe results in {output_dir / PROBES}")
        return
    write_rows_csv(probes, output_dir / "rows.csv")
    if figure:
        plot(probes, output_dir / FIGURE)
    sections = [
        "# Gradient quality against the truth",
        "",
        f"Probes of {len(probes)} checkpoints of `python -m benchmarks.run --suite gradient-truth`, measured with "
        f"sb3-denoise-pg {_provenance(probes, 'measured')} and scored with {_provenance(probes, 'scored')} "
        f"(`python -m benchmarks.gradient_truth`: measure and score stages; this report: `{command}`). Settings: "
        f"{_settings(probes)}. Every row of every probe is in `rows.csv`; how to read it: docs/gradient_truth.rst.",
        "",
        "Each cell: mean over seeds [min, max over seeds]. A signal's cell adds its paired difference with the same "
        "model's critic (mean over seeds), and in how many seeds that difference's 95% bootstrap interval over states "
        "lies above zero (+) or below it (-), out of the seeds probed.",
        "",
        "## The truth's precision (split-half cosine, at the policy's action)",
        "",
        precision_table(probes),
    ]
    scales = sorted({row["scale"] for p in probes for row in p["rows"]})
    for scale in scales:
        for level in ("parameter", "batch", "state"):
            sections += [
                "",
                f"## At the policy's action, scale {scale:g}, {level} level",
                "",
                signal_table(probes, "policy", POLICY_SIGNALS, level, scale),
                "",
                f"## At the behaviour action, scale {scale:g}, {level} level",
                "",
                signal_table(probes, "behaviour", BEHAVIOUR_SIGNALS, level, scale),
            ]
    sections += ["", f"![gradient quality over training]({FIGURE})", ""] if figure else [""]
    (output_dir / "results.md").write_text("\n".join(sections))
    print(f"Wrote {output_dir / 'results.md'}")


def _recorded_argument(argument: str) -> str:
    """A command-line argument as the report records it: paths relative to the checkout, a folder outside it as DIR."""
    if not Path(argument).exists():
        return argument
    relative = relative_path(argument)
    return "DIR" if Path(relative).is_absolute() else relative


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["all", "measure", "score", "export"], default="all")
    parser.add_argument("--envs", nargs="+", help="Subset of the suite's env ids (default: all)")
    parser.add_argument("--algos", nargs="+", help="Subset of the suite's algorithms (default: both)")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds 0 .. n-1 whose checkpoints exist")
    parser.add_argument("--jobs", type=int, default=1, help="Checkpoints in parallel, one core each")
    parser.add_argument("--max-seconds", type=float, help="Rollout time budget of a probe (default: none)")
    parser.add_argument("--max-pairs", type=int, help="Pair budget of a probe (default: 64 small tasks, 32 MuJoCo)")
    parser.add_argument("--horizon", type=int, help="Rollout steps (default: the fewest with gamma^H <= 0.05)")
    parser.add_argument("--probe-seed", type=int, help="Seed of the probe's states and directions (default: the run's)")
    parser.add_argument("--checkpoints", type=Path, help="A folder of exported actor-only checkpoints (with --stage)")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument("--report-only", action="store_true", help="Only rewrite the report from the probes found")
    parser.add_argument("--no-figure", action="store_true", help="The report without its figure (side studies)")
    args = parser.parse_args(argv)
    suite = select(get_suite(SUITE), args.algos, args.envs)
    output = args.output_dir
    if not args.report_only:
        checkpoints = find_checkpoints(
            suite.algos, suite.env_ids, args.seeds, None if args.stage == "export" else args.checkpoints
        )
        if args.stage == "export":
            export_actors(checkpoints, args.checkpoints)
            return 0
        specs = [(e["path"], e["algo"], e["env_id"], e["seed"], e["steps"]) for e in checkpoints]
        measured = lambda spec: output / MEASUREMENTS / f"{checkpoint_name(*spec[1:5])}.npz"  # noqa: E731
        overrides = dict(max_seconds=args.max_seconds, max_pairs=args.max_pairs, horizon=args.horizon, seed=args.probe_seed)
        if args.stage in ("all", "measure"):
            (output / MEASUREMENTS).mkdir(parents=True, exist_ok=True)
            run_plan(
                [(*spec, overrides, str(measured(spec))) for spec in specs],
                measure_checkpoint,
                lambda *spec: output / MEASUREMENTS / f"{checkpoint_name(*spec[1:5])}.json",
                args.jobs,
                lambda info: (
                    f"measured {info['algo']} {info['env_id']} seed {info['seed']} at {info['steps']}: "
                    f"{info['pairs']} pairs, {info['truth_s']:.0f} s of rollouts"
                ),
            )
        if args.stage in ("all", "score"):
            (output / PROBES).mkdir(parents=True, exist_ok=True)
            run_plan(
                [(*spec, str(measured(spec))) for spec in specs if measured(spec).is_file()],
                score_checkpoint,
                lambda *spec: output / PROBES / f"{checkpoint_name(*spec[1:5])}.json",
                args.jobs,
                lambda probe: f"scored {probe['algo']} {probe['env_id']} seed {probe['seed']} at {probe['steps']}",
            )
    arguments = [_recorded_argument(a) for a in (argv if argv is not None else sys.argv[1:])]
    write_report(output, "python -m benchmarks.gradient_truth " + " ".join(arguments), figure=not args.no_figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
