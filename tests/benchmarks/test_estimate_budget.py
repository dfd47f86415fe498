"""The estimate's budget sweep: its cells, what they set in DenoisePG, and its table."""

import json
from pathlib import Path

import pytest

from benchmarks import estimate_budget, throughput
from benchmarks.estimate_budget import GRID, Cell


def test_cell_names_round_trip_and_bad_names_are_refused():
    assert len(GRID) == 18 and estimate_budget.CELL_0_3_0 in GRID
    for cell in GRID:
        assert Cell.parse(cell.name) == cell
    for bad in ("denoise_pg-den64x64-draws0-critics1", "denoise_pg-den64-draws4-critics3", "den64x64-draws4", "td3"):
        with pytest.raises(ValueError, match=r"cell name|must be"):
            Cell.parse(bad)


def test_a_cell_sets_the_denoiser_the_draws_and_the_baseline():
    from sb3_denoise_pg import DenoisePG

    cell = Cell((16, 16), 4, 1)
    class_path, overrides = throughput.algo_spec(cell.name)
    assert class_path == "sb3_denoise_pg:DenoisePG"
    model = DenoisePG(
        "MlpPolicy", "Pendulum-v1", **{**overrides, "policy_kwargs": {"net_arch": [8], **overrides["policy_kwargs"]}}
    )
    assert model.n_noise_samples == 4 and model.policy.baseline_critics == 1
    assert [layer.out_features for layer in model.denoiser.noise_net if hasattr(layer, "out_features")] == [16, 16, 1]
    assert cell.zoo_hyperparams() == [
        "n_noise_samples:4",
        "policy_kwargs:dict(net_arch=[400, 300], denoiser_net_arch=[16, 16], baseline_critics=1)",
    ]


def test_one_critic_baseline_reads_the_first_critic_only():
    import torch as th

    from sb3_denoise_pg import DenoisePG

    model = DenoisePG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8], baseline_critics=1))
    features = model.policy.critic_features(th.zeros(3, 3))
    actions = th.zeros(2, 3, 1)
    first = model.policy.q_values_at(features, actions, n_critics=1)
    assert th.equal(model.policy.baseline_values(features, actions), first)
    model.policy.baseline_critics = None
    assert th.allclose(
        model.policy.baseline_values(features, actions), model.policy.q_values_at(features, actions).mean(1, keepdim=True)
    )


def test_ratios_pair_each_repeat_with_td3s_and_the_report_marks_0_3_0(tmp_path: Path):
    cell = estimate_budget.CELL_0_3_0.name
    data = {
        "results": {"td3": {"steps_per_s": 80.0, "runs": [80.0, 100.0]}, cell: {"steps_per_s": 30.0, "runs": [20.0, 40.0]}}
    }
    ratio, low, high = estimate_budget.throughput_ratios(data)[cell]
    assert (ratio, low, high) == pytest.approx((30 / 80, 0.25, 0.4))
    folder = tmp_path / "throughput-Pendulum-v1"
    folder.mkdir()
    (folder / "throughput.json").write_text(json.dumps(data))
    scores = [
        dict(draws=8, baseline_critics=2, signal=signal, cosine=cosine)
        for signal, cosine in (("actor_update", 0.5), ("critic", 0.7), ("truth_split_half", 0.95))
    ]
    record = dict(env_id="Pendulum-v1", seed=0, checkpoint="x/logs/den400x300/denoise_pg/Pendulum-v1_1/m.zip", scores=scores)
    (tmp_path / "probe" / "scores").mkdir(parents=True)
    (tmp_path / "probe" / "scores" / "one.json").write_text(json.dumps(record))
    table = estimate_budget.report(tmp_path)
    assert "| den400x300-draws8-critics2 (0.3.0) | 0.38 [0.25, 0.40] | +0.50 (1 seed) | not run |" in table
    assert "| den64x64-draws2-critics1 | not run | not run | not run |" in table
    # Beside the cells, what their checkpoints give: the truth's own precision and the critic's cosine
    assert "| 400x300 | +0.95 (1 seed) | +0.70 (1 seed) | not run | not run |" in table


def _run(log_root: Path, algo: str, env_id: str, seed: int, final: float) -> None:
    import numpy as np

    run_dir = log_root / algo / f"{env_id}_{seed + 1}"
    run_dir.mkdir(parents=True)
    (run_dir / "benchmark_run.json").write_text(json.dumps({"algo": algo, "env_id": env_id, "seed": seed}))
    np.savez(run_dir / "evaluations.npz", timesteps=[100], results=[[final, final]], ep_lengths=[[10, 10]])


def test_learning_is_paired_with_the_same_seeds_and_judged_by_the_rule_set_beforehand(tmp_path: Path):
    cell = estimate_budget.Cell((64, 64), 4, 1)
    cell_logs, baseline = estimate_budget.learning_folder(cell, tmp_path), tmp_path / "baseline"
    for seed, (new, old, td3) in enumerate([(96.0, 100.0, 120.0), (90.0, 100.0, 110.0), (300.0, 100.0, 100.0)]):
        _run(cell_logs, "denoise_pg", "HalfCheetah-v5", seed, new)
        _run(baseline, "denoise_pg", "HalfCheetah-v5", seed, old)
        _run(baseline, "td3", "HalfCheetah-v5", seed, td3)
    _run(cell_logs, "denoise_pg", "Hopper-v5", 0, 90.0)
    _run(baseline, "denoise_pg", "Hopper-v5", 0, 100.0)
    _run(baseline, "td3", "Hopper-v5", 0, 100.0)
    assert estimate_budget.learned_cells(tmp_path) == [cell]
    table = estimate_budget.learning_table(cell, tmp_path, baseline)
    assert "| HalfCheetah-v5 | 0, 1, 2 |" in table and "| 1.62 | 1.47x (0.3.0: 0.91x) | yes |" in table
    partial = "| no so far (1 of 3 seeds; the test is on all three) |"
    assert "| Hopper-v5 | 0 | 0: 90.0 / 100.0 / 100.0 | 0.90 | 0.90x (0.3.0: 1.00x) " + partial in table
