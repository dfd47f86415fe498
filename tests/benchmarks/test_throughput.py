"""The throughput tool: its table, what it records, and its compiled variants."""

import json
from pathlib import Path

import pytest

from benchmarks import throughput


def test_throughput_table_gives_the_ratio_to_td3_and_what_produced_it():
    data = {
        "env_id": "Pendulum-v1",
        "steps": 10,
        "repeats": 2,
        "results": {"td3": {"steps_per_s": 80.0, "runs": [79.0, 81.0]}, "denoise_pg": {"steps_per_s": 40.0, "runs": [40.0]}},
        "cpu_count": 2,
        "version": "0.1.0",
        "commit": "abc123",
        "date": "2026-11-26T07:37:08+00:00",
    }
    markdown = throughput.throughput_markdown(data)
    assert "| denoise_pg | 40.0 | 40.0 | 0.50 |" in markdown
    assert "Measured 2026-11-26 on 2 CPU cores, sb3-denoise-pg 0.1.0, commit abc123." in markdown


def test_one_current_table_with_version_and_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert throughput.OUTPUT_DIR == throughput.RESULTS_DIR / "throughput"
    monkeypatch.setattr(throughput, "measure_in_subprocess", lambda algo, env_id, steps, warmup: 50.0)
    monkeypatch.setattr(throughput, "OUTPUT_DIR", tmp_path)
    monkeypatch.setattr(throughput, "provenance", lambda: {"version": "9.9.9", "commit": "abc123"})
    throughput.main(["--algos", "td3", "--repeats", "1", "--output-dir", str(tmp_path)])
    data = json.loads((tmp_path / "throughput.json").read_text())
    assert (data["version"], data["commit"]) == ("9.9.9", "abc123") and data["date"]
    assert "sb3-denoise-pg 9.9.9, commit abc123" in (tmp_path / "throughput.md").read_text()
    with pytest.raises(SystemExit):  # no writing into suite folders
        throughput.main(["--suite", "quick"])


def test_committed_throughput_tables_record_what_produced_them():
    for path in throughput.RESULTS_DIR.glob("**/throughput.json"):
        data = json.loads(path.read_text())
        assert data["version"] and data["date"] and (data["commit"] or data["committed_in"]), path


def test_removed_options_run_through_the_ablation_variant_class():
    from sb3_denoise_pg.denoise_pg.checks import REMOVED_OPTIONS

    ablation_only = {*REMOVED_OPTIONS, "anchor"}
    assert any(ablation_only & set(overrides) for _, overrides in throughput.ALGOS.values())
    for name, (class_path, overrides) in throughput.ALGOS.items():
        if ablation_only & set(overrides):
            assert class_path == "benchmarks.ablation_variants:AblationDenoisePG", name


def test_compiled_variant_compiles_critics_and_denoiser_but_not_the_actor():
    import torch as th

    from sb3_denoise_pg import DenoisePG

    model = DenoisePG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), device="cpu")
    throughput.compile_networks(model.policy)  # lazy: nothing is compiled before a forward pass
    compiled = th._dynamo.eval_frame.OptimizedModule
    assert all(isinstance(q_net, compiled) for q_net in model.critic.q_networks + model.critic_target.q_networks)
    assert isinstance(model.denoiser.noise_net, compiled)
    assert not isinstance(model.actor.mu, compiled)
