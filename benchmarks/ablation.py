"""
Ablations of DenoisePG's estimator levers, with TD3 at the same settings in the same run. A study is an env, its
shared settings and its variants; each variant changes some settings of the study's base. Variants of options that
the library no longer has run through ``benchmarks.ablation_variants.AblationDenoisePG``.

- ``pendulum`` (the default): Pendulum-v1 with the zoo's TD3 settings (gamma 0.98, normal action noise 0.1, learning
  rate 1e-3, batch 256, buffer 200k), ``learning_starts=5000`` (uniformly random actions), 15k steps and ``[64, 64]``
  networks, so that 5 seeds of every variant (about 50 s a run) fit in minutes on 2 cores. Its base is version
  0.1.0's first defaults: ``denoiser_sigma=0.1`` (0.2 won the first panel and became the default), no pre-activation
  penalty and no critic control variate, so that the committed runs stay reproducible; each panel says which
  defaults its variants change.
- ``pendulum-cv``: the same protocol from version 0.2.0's defaults: the critic control variate, its coefficient,
  orthogonal draws and fewer draws.
- ``halfcheetah``: HalfCheetah-v5 with the zoo's TD3 MuJoCo settings (``learning_starts=10000``, normal action noise
  0.1, ``[400, 300]``), 30k steps (12-15 minutes a DenoisePG run on one core): the actor saturation of the standard
  suite's first run, and what changes it. Its base has no pre-activation penalty and no control variate: the
  penalty it found (``0.01``) is a default now. Later panels start from version 0.2.0's defaults: the control
  variate with fewer draws, and the anchored form (``AblationDenoisePG(anchor=...)``).
- ``hopper``: the same on Hopper-v5, whether the penalty carries over.

Deterministic evaluation on ``--eval-episodes`` episodes every ``--eval-freq`` steps, the same start states for every
variant of a seed. Each run is a process with one torch thread; finished runs (one JSON each) are not redone.

    python -m benchmarks.ablation [--study pendulum] [--variants base td3 ...] [--seeds 5] [--jobs 2]

Writes ``benchmarks/results/ablation/`` (pendulum) or ``benchmarks/results/ablation-<study>/`` (runs, ``results.md``,
``learning_curves.png``).
"""

import argparse
import dataclasses
import functools
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.utils import LinearSchedule

from benchmarks import RESULTS_DIR, markdown_table, started
from benchmarks.figures import first_in_row, grid, save_figure, steps_in_thousands, style
from benchmarks.variants import learn_with_evaluations, plot_mean_curve, run_plan

Variants = dict[str, dict[str, Any]]  # variant name -> DenoisePG constructor overrides of the base; "td3" is TD3


@dataclasses.dataclass(frozen=True)
class Study:
    """
    :param env_id: Gymnasium id
    :param settings: Constructor settings shared by TD3 and DenoisePG (action noise and net_arch apart)
    :param noise_std: Standard deviation of the normal exploration noise
    :param base: DenoisePG overrides every variant starts from
    :param panels: Panel title -> its variants (references included); together, every variant of the study
    :param variants: Every variant's overrides of ``base``
    :param steps: Training env-steps
    :param learning_starts: Uniformly random steps before learning
    :param eval_freq: Evaluate every this many steps
    :param eval_episodes: Episodes per evaluation
    :param net_arch: Hidden layers of every network
    """

    env_id: str
    settings: dict[str, Any]
    noise_std: float
    base: dict[str, Any]
    panels: dict[str, list[str]]
    variants: Variants
    steps: int
    learning_starts: int
    eval_freq: int
    eval_episodes: int
    net_arch: list[int]


# Version 0.2.0's defaults, from the MuJoCo studies' base (no penalty, no control variate)
DEFAULTS_0_2_0 = {"actor_preactivation_penalty": 0.01, "critic_control_variate": "optimal"}


def anchored(eta: float | str) -> dict[str, Any]:
    """The anchored form with ``eta`` (``AblationDenoisePG``); no kernel: its direction is taken at ``mu_theta(s)``."""
    return {"actor_kernel_width": None, "anchor": eta}


# Version 0.1.0's estimator levers, from its first defaults (sigma 0.1, no penalty)
PENDULUM_ESTIMATOR: Variants = {
    "base": {},
    "td3": {},
    "2 noise draws": {"n_noise_samples": 2},
    "no antithetic pairs": {"antithetic": False},
    "sigma 0.05": {"denoiser_sigma": 0.05},
    "sigma 0.2": {"denoiser_sigma": 0.2},
    "baseline at clean a": {"baseline_action": "clean"},
    "baseline min of twin critics": {"baseline_reduction": "min"},
    "no per-batch normalisation": {"normalize_action_gradient": False},
    "no kernel localisation": {"actor_kernel_width": None},
    "no advantage centring": {"center_advantages": False},
}
# From sigma 0.2, no penalty: cost and actor-update levers
PENDULUM_COST_AND_ACTOR: Variants = {
    "sigma 0.4": {"denoiser_sigma": 0.4},
    "sigma 0.2, 4 noise draws": {"denoiser_sigma": 0.2, "n_noise_samples": 4},
    "sigma 0.2, regression head": {"denoiser_sigma": 0.2, "actor_gradient": "regression"},
    "sigma 0.2, actor batch from last 2500": {"denoiser_sigma": 0.2, "actor_batch_window": 2500},
    "sigma 0.2, outcome without reward": {"denoiser_sigma": 0.2, "condition_on_reward": False},
    "sigma 0.2, baseline from one critic": {"denoiser_sigma": 0.2, "baseline_reduction": "first"},
}
# From sigma 0.2, no penalty: the levers of the MuJoCo study
PENDULUM_SCHEDULE_AND_PENALTY: Variants = {
    "sigma annealed 0.4 to 0.1": {"denoiser_sigma": LinearSchedule(0.4, 0.1, 1.0)},
    "sigma 0.2, pre-activation penalty 0.01": {"denoiser_sigma": 0.2, "actor_preactivation_penalty": 0.01},
    "sigma 0.2, kernel width 0.5": {"denoiser_sigma": 0.2, "actor_kernel_width": 0.5},
    "sigma 0.2, no kernel localisation": {"denoiser_sigma": 0.2, "actor_kernel_width": None},
}
# From sigma 0.2 and the penalty 0.01: several sigma levels averaged
PENDULUM_SIGMA_LEVELS: Variants = {
    f"penalty 0.01, sigma levels {'/'.join(map(str, levels))}{suffix}": {
        "denoiser_sigma": list(levels),
        "actor_preactivation_penalty": 0.01,
        **extra,
    }
    for levels, suffix, extra in (
        ((0.1, 0.2, 0.4), "", {}),
        ((0.2, 0.4), "", {}),
        ((0.05, 0.2), "", {}),
        ((0.1, 0.2, 0.4), ", 16 draws", {"n_noise_samples": 16}),
    )
}
# From version 0.2.0's defaults (sigma 0.2, penalty 0.01, the control variate with the batch's lambda*, 8 draws)
PENDULUM_CV: Variants = {
    "defaults": {},
    "td3": {},
    "control variate off": {"critic_control_variate": None},
    "lambda 1": {"critic_control_variate": 1.0},
    "lambda 0.2": {"critic_control_variate": 0.2},
    "orthogonal draws": {"orthogonal_noise": True},
    "control variate off, orthogonal draws": {"critic_control_variate": None, "orthogonal_noise": True},
    "2 draws": {"n_noise_samples": 2},
    "4 draws": {"n_noise_samples": 4},
    "control variate off, 2 draws": {"critic_control_variate": None, "n_noise_samples": 2},
    "control variate off, 4 draws": {"critic_control_variate": None, "n_noise_samples": 4},
    **{f"anchored, eta {eta}": anchored(eta) for eta in ("adaptive", 0.0)},
}
HALFCHEETAH: Variants = {
    "base": {},
    "td3": {},
    "no kernel localisation": {"actor_kernel_width": None},
    "no kernel, sigma 0.1": {"actor_kernel_width": None, "denoiser_sigma": 0.1},
    "pre-activation penalty 0.01": {"actor_preactivation_penalty": 0.01},
    "pre-activation penalty 0.001": {"actor_preactivation_penalty": 0.001},
    # Version 0.2.0's defaults: the penalty and the critic control variate
    "penalty 0.01, control variate": DEFAULTS_0_2_0,
    # Fewer draws, with and without the control variate: where the throughput comes from; and the control
    # variate's other levers, from the defaults
    **{
        f"penalty 0.01, control variate, {name}": {**DEFAULTS_0_2_0, **change}
        for name, change in (
            ("2 draws", {"n_noise_samples": 2}),
            ("lambda 1", {"critic_control_variate": 1.0}),
            ("orthogonal draws", {"orthogonal_noise": True}),
            ("4 draws", {"n_noise_samples": 4}),
        )
    },
    "penalty 0.01, 2 draws": {"actor_preactivation_penalty": 0.01, "n_noise_samples": 2},
    # The anchored form from the defaults; eta 0 is TD3's direction from the mean of the twin critics, with
    # everything else of DenoisePG's actor step
    **{f"anchored, eta {eta}": {**DEFAULTS_0_2_0, **anchored(eta)} for eta in ("adaptive", 0.0)},
}
HALFCHEETAH_PANELS = {
    "actor saturation": [
        "base",
        "td3",
        "no kernel localisation",
        "no kernel, sigma 0.1",
        "pre-activation penalty 0.01",
        "pre-activation penalty 0.001",
    ],
    "control variate and draws": ["td3", *[v for v in HALFCHEETAH if v.startswith("penalty 0.01")]],
    "anchored form": ["td3", "penalty 0.01, control variate", *[v for v in HALFCHEETAH if v.startswith("anchored")]],
}
# Whether the penalty found on HalfCheetah-v5 carries over
HOPPER: Variants = {
    "base": {},
    "td3": {},
    "pre-activation penalty 0.01": {"actor_preactivation_penalty": 0.01},
    "penalty 0.01, control variate": DEFAULTS_0_2_0,
    "anchored, eta adaptive": {**DEFAULTS_0_2_0, **anchored("adaptive")},
}
HOPPER_PANELS = {
    "actor saturation": ["base", "td3", "pre-activation penalty 0.01"],
    "anchored form": ["td3", "penalty 0.01, control variate", "anchored, eta adaptive"],
}
# Version 0.1.0 had no control variate: the committed runs of these studies were made without it
WITHOUT_CV = {"critic_control_variate": None}


def _mujoco_study(env_id: str, variants: Variants, panels: dict[str, list[str]] | None = None) -> Study:
    """The zoo's TD3 MuJoCo settings, 30k steps; the base has no penalty (the lever these studies found)."""
    return Study(
        env_id=env_id,
        settings=dict(buffer_size=1_000_000),
        noise_std=0.1,
        base={"actor_preactivation_penalty": 0.0, **WITHOUT_CV},
        panels=panels or {"actor saturation": list(variants)},
        variants=variants,
        steps=30_000,
        learning_starts=10_000,
        eval_freq=5_000,
        eval_episodes=5,
        net_arch=[400, 300],
    )


def _pendulum_study(base: dict[str, Any], panels: dict[str, list[str]], variants: Variants) -> Study:
    return Study(
        env_id="Pendulum-v1",
        settings=dict(gamma=0.98, buffer_size=200_000),
        noise_std=0.1,
        base=base,
        panels=panels,
        variants=variants,
        steps=15_000,
        learning_starts=5_000,
        eval_freq=2_500,
        eval_episodes=10,
        net_arch=[64, 64],
    )


STUDIES = {
    "pendulum": _pendulum_study(
        {"denoiser_sigma": 0.1, "actor_preactivation_penalty": 0.0, **WITHOUT_CV},
        {
            "estimator levers (sigma 0.1)": list(PENDULUM_ESTIMATOR),
            "cost and actor levers (sigma 0.2)": ["td3", "sigma 0.2", *PENDULUM_COST_AND_ACTOR],
            "sigma schedule, penalty, kernel (sigma 0.2)": ["td3", "sigma 0.2", *PENDULUM_SCHEDULE_AND_PENALTY],
            "sigma levels (sigma 0.2, penalty 0.01)": [
                "td3",
                "sigma 0.2, pre-activation penalty 0.01",
                *PENDULUM_SIGMA_LEVELS,
            ],
        },
        {**PENDULUM_ESTIMATOR, **PENDULUM_COST_AND_ACTOR, **PENDULUM_SCHEDULE_AND_PENALTY, **PENDULUM_SIGMA_LEVELS},
    ),
    "pendulum-cv": _pendulum_study(
        {},
        {
            "control variate and its coefficient": ["td3", "defaults", "control variate off", "lambda 1", "lambda 0.2"],
            "orthogonal draws": [
                "td3",
                "defaults",
                "control variate off",
                *[v for v in PENDULUM_CV if "orth" in v],
            ],
            "fewer draws": [
                "td3",
                "defaults",
                "control variate off",
                *[v for v in PENDULUM_CV if " draws" in v and "orth" not in v],
            ],
            "anchored form": ["td3", "defaults", *[v for v in PENDULUM_CV if v.startswith("anchored")]],
        },
        PENDULUM_CV,
    ),
    "halfcheetah": _mujoco_study("HalfCheetah-v5", HALFCHEETAH, HALFCHEETAH_PANELS),
    "hopper": _mujoco_study("Hopper-v5", HOPPER, HOPPER_PANELS),
}


def output_dir(study: str) -> Path:
    return RESULTS_DIR / ("ablation" if study == "pendulum" else f"ablation-{study}")


def make_model(study: Study, variant: str, seed: int, learning_starts: int, net_arch: list[int]) -> Any:
    """The model of one run: the study's shared settings, plus the variant's overrides."""
    import gymnasium as gym
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    from benchmarks.ablation_variants import AblationDenoisePG

    action_dim = gym.make(study.env_id).action_space.shape[0]
    settings = dict(
        **study.settings,
        learning_starts=learning_starts,
        action_noise=NormalActionNoise(np.zeros(action_dim), study.noise_std * np.ones(action_dim)),
        policy_kwargs=dict(net_arch=net_arch),
        seed=seed,
        device="cpu",
    )
    if variant == "td3":
        return TD3("MlpPolicy", study.env_id, **settings)
    return AblationDenoisePG("MlpPolicy", study.env_id, **settings, **{**study.base, **study.variants[variant]})


def run_one(args: argparse.Namespace, variant: str, seed: int) -> dict:
    made = started()
    study = STUDIES[args.study]
    model = make_model(study, variant, seed, args.learning_starts, args.net_arch)
    curves = learn_with_evaluations(model, study.env_id, args.steps, args.eval_freq, args.eval_episodes, seed + 1000)
    return {
        "variant": variant,
        # Schedules as their repr: the run is a JSON file
        "overrides": json.loads(json.dumps(study.variants[variant], default=repr)),
        "seed": seed,
        **curves,
        "final_saturation": final_saturation(model),
        **made,
    }


def final_saturation(model: Any, states: int = 1000) -> float:
    """Fraction of the actor's action dimensions beyond |0.99| on the last ``states`` observations of its buffer."""
    import torch as th

    from sb3_denoise_pg.common.estimator import saturation

    buffer = model.replay_buffer
    observations = buffer.observations[max(buffer.pos - states, 0) : buffer.pos].reshape(-1, *buffer.obs_shape)
    with th.no_grad():
        actions = model.actor(th.as_tensor(observations, dtype=th.float32))
    return round(saturation(actions), 3)


def run_path(output: Path, variant: str, seed: int) -> Path:
    return output / "runs" / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', variant)}_{seed}.json"


def plot_study(study: Study, by_variant: dict[str, list[dict]], path: Path) -> None:
    """The learning curves of every variant, one panel per set of variants (each with its own legend)."""
    import matplotlib.pyplot as plt

    # Each panel has its own variants, so its own legend: two wide panels a row leave it room
    with style():
        fig, panels = grid(len(study.panels), max_columns=2, panel_size=(5.8, 4.4))
        for ax, (panel, variants) in zip(panels, study.panels.items(), strict=True):
            ax.set_prop_cycle(color=plt.cm.tab20.colors[::2] + plt.cm.tab20.colors[1::2])
            for variant in variants:
                if variant in by_variant:
                    plot_mean_curve(ax, by_variant[variant], variant)
            ax.set_title(f"{study.env_id}: {panel}")
            ax.set_xlabel("env steps")
            steps_in_thousands(ax)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=9)
        for ax in first_in_row(panels):
            ax.set_ylabel("evaluation return")
        fig.tight_layout()
        save_figure(fig, path)


def _by_variant(study: Study, results: list[dict]) -> dict[str, list[dict]]:
    by_variant = {variant: [r for r in results if r["variant"] == variant] for variant in study.variants}
    return {variant: runs for variant, runs in by_variant.items() if runs}


def report(study: Study, results: list[dict], output: Path, command: str) -> str:
    """Write the table (final and mean return per variant) and the learning curves; return the table."""
    by_variant = _by_variant(study, results)
    plot_study(study, by_variant, output / "learning_curves.png")
    rows = []
    for variant, runs in by_variant.items():
        length = min(len(run["returns"]) for run in runs)
        returns = np.array([run["returns"][:length] for run in runs])
        final = returns[:, -1]
        overrides = "TD3" if variant == "td3" else ", ".join(f"{k}={v}" for k, v in runs[0]["overrides"].items())
        rows.append(
            [
                variant,
                overrides or (f"(base: the defaults with {study.base})" if study.base else "(base: the defaults)"),
                ", ".join(f"{value:.0f}" for value in final),
                f"{final.mean():.1f}",
                # The mean evaluation return over the run: sensitive to the speed of learning
                f"{returns.mean():.1f}",
                f"{np.mean([r['wall_time_s'] for r in runs]):.0f}",
                # Added after the first Pendulum panels were run: their runs have none
                _mean_or_blank([r.get("final_saturation") for r in runs]),
            ]
        )
    headers = ["variant", "change", "final return per seed", "final mean", "mean over run", "wall time (s)"]
    headers.append("actor saturation at the end")
    table = markdown_table(headers, rows)
    (output / "results.md").write_text(f"`{command}`\n\n{table}\n")
    return table


def _mean_or_blank(values: list[float | None]) -> str:
    return "" if None in values else f"{np.mean(values):.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", choices=list(STUDIES), default="pendulum")
    parser.add_argument("--variants", nargs="+", help="default: all of the study's")
    parser.add_argument("--seeds", type=int, default=5)
    # Left out: the study's
    parser.add_argument("--steps", type=int)
    parser.add_argument("--learning-starts", type=int)
    parser.add_argument("--eval-freq", type=int)
    parser.add_argument("--eval-episodes", type=int)
    parser.add_argument("--net-arch", type=int, nargs="+")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/ablation[-<study>]")
    parser.add_argument("--figure-only", action="store_true", help="Redraw the figure from the runs found; no training")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    study = STUDIES[args.study]
    unknown = set(args.variants or []) - set(study.variants)
    if unknown:
        parser.error(f"unknown variants of study {args.study}: {sorted(unknown)}; choose from {list(study.variants)}")
    for name in ("steps", "learning_starts", "eval_freq", "eval_episodes", "net_arch"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(study, name))
    args.output = args.output or output_dir(args.study)
    if args.figure_only:
        plot_study(study, _by_variant(study, load_runs(study, args.output)), args.output / "learning_curves.png")
        return
    (args.output / "runs").mkdir(parents=True, exist_ok=True)
    plan = [(variant, seed) for seed in range(args.seeds) for variant in args.variants or study.variants]
    run_plan(
        plan,
        functools.partial(run_one, args),
        functools.partial(run_path, args.output),
        args.jobs,
        lambda r: f"{r['variant']} seed {r['seed']}: {r['returns'][-1]:.1f} ({r['wall_time_s']:.0f} s)",
    )
    print(report(study, load_runs(study, args.output), args.output, " ".join(["python -m benchmarks.ablation", *argv])))


def load_runs(study: Study, output: Path) -> list[dict]:
    """Every finished run of the study's variants in ``output``, not only this command's: the table shows all."""
    runs = [json.loads(path.read_text()) for path in (output / "runs").glob("*.json")]
    order = list(study.variants)
    runs = [run for run in runs if run["variant"] in order]
    return sorted(runs, key=lambda run: (order.index(run["variant"]), run["seed"]))


if __name__ == "__main__":
    main()
