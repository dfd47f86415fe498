"""
The Rao-Blackwellised estimate on real tasks: is the actor update closer to the true gradient when the denoiser is
conditioned on the TD target alone? The gradient-truth probe (``sb3_denoise_pg.diagnostics``) answers it, paired.

A run of DenoisePG with today's estimate trains in this process (the zoo's settings of the env from
``hyperparams/denoise_pg.yml``, so that its replay buffer is at hand) for the gradient-truth suite's 20k steps. At that
checkpoint the truth is measured once, at the probe's states, and the actor update of each form of the denoiser is
scored against it, so that every form meets the same states, actor, critic and truth:

- ``outcome``: today's estimate with the run's own denoiser, conditioned on ``(s', r, done)``;
- ``outcome-refit``: a fresh denoiser of today's form fitted after the run (the control: a denoiser fitted against the
  checkpoint's fixed target networks, as the two below are);
- ``td_target``: the library's option ``denoiser_condition="td_target"``, the standardised TD target in the same
  network;
- ``td_target-residual``: the TD target through a residual denoiser (``benchmarks.ablation_variants.ResidualDenoiser``,
  conditional = unconditional + a difference that starts at zero), the form that kept the mean best on the known
  world (``benchmarks.rao_blackwell``).

Each fitted denoiser gets as many updates, on minibatches of the run's replay buffer, as the run's own had (one per
step after ``learning_starts``). The critic's input-gradient (TD3's signal) and the truth's split-half are scored at
the same checkpoint. Pendulum's truth uses the probe's small-task settings; Hopper-v5's a 10-step horizon, where its
truth is precise (``benchmarks/results/gradient-truth-horizon``).

    python -m benchmarks.rao_blackwell_probe [--envs Pendulum-v1 ...] [--seeds 3] [--jobs 2]
    python -m benchmarks.rao_blackwell_probe --report-only

Writes ``benchmarks/results/rao-blackwell-probe/`` (a JSON per run, ``results.md``); finished runs are not redone.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import REPO_ROOT, RESULTS_DIR, markdown_table, started

OUTPUT = RESULTS_DIR / "rao-blackwell-probe"
ENVS = ("Pendulum-v1", "sb3_denoise_pg/NoisyPendulum-v1", "Hopper-v5")
STEPS = 20_000
# Hopper-v5's truth over 300 steps is too noisy to rank signals at 20k; over 10 steps it is precise
PROBE_OVERRIDES: dict[str, dict[str, Any]] = {"Hopper-v5": dict(horizon=10, max_pairs=64)}
FORMS = ("outcome", "outcome-refit", "td_target", "td_target-residual")
# The rows kept: the actor update (at the policy's action) of each form, and at the same checkpoint the critic's
# input-gradient and the truth's split-half, at DenoisePG's sigma, in the actor's parameter space
SCALE, LEVEL = 0.2, "parameter"


def zoo_kwargs(env_id: str, path: Path = REPO_ROOT / "hyperparams" / "denoise_pg.yml") -> dict[str, Any]:
    """DenoisePG's constructor arguments of the zoo entry of ``env_id`` (its exploration noise made an object)."""
    import yaml
    from stable_baselines3.common.noise import NormalActionNoise

    entries = yaml.safe_load(path.read_text())
    entry = dict(entries.get(env_id, entries["default"]))
    for key in ("n_timesteps", "policy"):
        entry.pop(key, None)
    noise_type, noise_std = entry.pop("noise_type", None), entry.pop("noise_std", None)
    if noise_type not in (None, "normal"):
        raise ValueError(f"{env_id}: only normal exploration noise is supported here, not {noise_type!r}")
    if isinstance(entry.get("policy_kwargs"), str):
        entry["policy_kwargs"] = eval(entry["policy_kwargs"], {"dict": dict})  # the zoo's own convention
    if noise_std is not None:
        entry["action_noise"] = lambda action_dim: NormalActionNoise(np.zeros(action_dim), noise_std * np.ones(action_dim))
    return entry


def train(env_id: str, seed: int, steps: int) -> Any:
    """Today's DenoisePG with the zoo's settings of ``env_id``, trained ``steps`` steps on one thread."""
    import gymnasium as gym

    import sb3_denoise_pg  # noqa: F401  (registers the noisy ids)
    from sb3_denoise_pg import DenoisePG

    kwargs = zoo_kwargs(env_id)
    env = gym.make(env_id)
    make_noise = kwargs.pop("action_noise", None)
    noise = make_noise(env.action_space.shape[0]) if make_noise is not None else None
    model = DenoisePG("MlpPolicy", env, action_noise=noise, seed=seed, device="cpu", **kwargs)
    return model.learn(steps)


def fit_form(model: Any, form: str, updates: int, seed: int) -> None:
    """Give ``model`` a fresh denoiser of ``form`` and fit it on its replay buffer; the rest of the model unchanged."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.utils import set_random_seed

    from benchmarks.ablation_variants import ResidualDenoiser, replace_denoiser
    from sb3_denoise_pg.denoise_pg.policies import Denoiser

    set_random_seed(seed)  # the new denoiser's weights and the replay buffer's minibatches (numpy's generator)
    replace_denoiser(model, ResidualDenoiser if form == "td_target-residual" else Denoiser)
    model.denoiser_condition = "outcome" if form == "outcome-refit" else "td_target"
    model.td_target_stats = RunningMeanStd(shape=())
    model.policy.set_training_mode(True)
    stats: dict[str, list[float]] = {"denoiser_loss": []}
    for _ in range(updates):
        model._update_denoiser(model.replay_buffer.sample(model.batch_size), stats)
    model.policy.set_training_mode(False)


def measure(env_id: str, seed: int, steps: int) -> dict[str, Any]:
    """In a worker process: train, measure the truth once, score every form's actor update."""
    import copy

    import torch as th

    from benchmarks.gradient_truth import _json_ready, probe_config
    from sb3_denoise_pg.diagnostics import GradientTruthProbe

    th.set_num_threads(1)
    provenance, seconds = started(), {}
    start = time.perf_counter()
    model = train(env_id, seed, steps)
    updates = max(0, steps - model.learning_starts) * model.gradient_steps // model.train_freq.frequency
    probe = GradientTruthProbe(env_id, probe_config(env_id, seed, **PROBE_OVERRIDES.get(env_id, {})))
    seconds["train"], start = round(time.perf_counter() - start, 1), time.perf_counter()
    measurement = probe.measure(model)
    probe.close()
    seconds["truth"], start = round(time.perf_counter() - start, 1), time.perf_counter()
    rows = []
    for form in FORMS:
        scored = model if form == "outcome" else copy.deepcopy(model)
        if form != "outcome":
            fit_form(scored, form, updates, seed)
            seconds[f"fit {form}"], start = round(time.perf_counter() - start, 1), time.perf_counter()
        signals = ("actor_update", "critic", "truth_split_half") if form == "outcome" else ("actor_update",)
        result = probe.score(scored, measurement)
        for signal in signals:
            (row,) = result.select(signal=signal, point="policy", scale=SCALE, level=LEVEL)
            rows.append(dict(form=form if signal == "actor_update" else signal, **row))
    record = dict(env_id=env_id, seed=seed, steps=steps, fit_updates=updates, pairs=measurement.truth.pairs)
    record.update(config=measurement.info["config"], measured=provenance, seconds=seconds, rows=rows)
    return _json_ready(record)


def run_path(output: Path, env_id: str, seed: int) -> Path:
    return output / "runs" / f"{env_id.replace('/', '-')}-seed{seed}.json"


def _cell(rows: list[dict[str, Any]]) -> str:
    """Mean over seeds of the cosine and the seeds' range."""
    if not rows:
        return "not run"
    cosines = [row["cosine"] for row in rows]
    text = f"{np.mean(cosines):+.2f}"
    return text + (f" [{min(cosines):+.2f}, {max(cosines):+.2f}]" if len(rows) > 1 else "")


def report(output: Path) -> str:
    """``results.md``: per env, the mean over seeds of each form's cosine beside the critic's and the truth's own."""
    records = [json.loads(path.read_text()) for path in sorted((output / "runs").glob("*.json"))]
    columns = ("truth_split_half", "critic", *FORMS)
    table_rows = []
    for env_id in ENVS:
        these = [record for record in records if record["env_id"] == env_id]
        if not these:
            continue
        cells = [_cell([row for record in these for row in record["rows"] if row["form"] == column]) for column in columns]
        paired = [_paired(record) for record in these]
        table_rows.append([env_id, len(these), *cells, ", ".join(paired)])
    headers = ["env", "seeds", "truth split-half", "critic (TD3's signal)", *(f"actor update: {f}" for f in FORMS)]
    headers.append("td_target-residual - outcome-refit, per seed (* intervals apart)")
    return markdown_table(headers, table_rows)


def _paired(record: dict[str, Any]) -> str:
    """
    The residual TD-target form's cosine minus the refitted outcome form's on one seed, marked ``*`` where their 95%
    intervals over states do not overlap.
    """
    by_form = {row["form"]: row for row in record["rows"]}
    new, old = by_form["td_target-residual"], by_form["outcome-refit"]
    bounds = (new["low"], new["high"], old["low"], old["high"])
    apart = None not in bounds and (new["low"] > old["high"] or new["high"] < old["low"])
    return f"{new['cosine'] - old['cosine']:+.2f}" + (" *" if apart else "")


def main(argv: list[str] | None = None) -> None:
    from benchmarks.variants import run_plan

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", choices=ENVS, default=list(ENVS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.seeds < 1 or args.jobs < 1 or args.steps < 1:
        parser.error("--seeds, --jobs and --steps must be at least 1")
    if not args.report_only:
        (args.output / "runs").mkdir(parents=True, exist_ok=True)
        plan = [(env_id, seed, args.steps) for env_id in args.envs for seed in range(args.seeds)]
        path_of = lambda env_id, seed, steps: run_path(args.output, env_id, seed)  # noqa: E731
        run_plan(plan, measure, path_of, args.jobs, lambda r: f"{r['env_id']} seed {r['seed']}: {r['wall_time_s']} s")
    text = report(args.output)
    (args.output / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
