import json
from pathlib import Path

import pytest
from stable_baselines3.common.noise import NormalActionNoise

from benchmarks import rao_blackwell_probe


def test_zoo_settings_become_constructor_arguments():
    kwargs = rao_blackwell_probe.zoo_kwargs("Pendulum-v1")
    assert kwargs["gamma"] == 0.98 and kwargs["policy_kwargs"] == dict(net_arch=[400, 300])
    assert "n_timesteps" not in kwargs and "noise_type" not in kwargs
    noise = kwargs["action_noise"](1)
    assert isinstance(noise, NormalActionNoise) and noise._sigma.tolist() == [0.1]
    # An env the file does not list gets the zoo's default entry
    assert rao_blackwell_probe.zoo_kwargs("sb3_denoise_pg/LinearGaussian-v0")["gamma"] == 0.98
    assert "gamma" not in rao_blackwell_probe.zoo_kwargs("CartPole-NotListed-v0")


def _row(form: str, cosine: float) -> dict:
    return dict(form=form, cosine=cosine, low=cosine - 0.05, high=cosine + 0.05)


def test_report_pairs_the_residual_target_form_with_the_refitted_control(tmp_path: Path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, residual in enumerate([0.9, 0.52]):
        rows = [_row("truth_split_half", 0.99), _row("critic", 0.95), _row("outcome", 0.6), _row("outcome-refit", 0.5)]
        rows += [_row("td_target", 0.4), _row("td_target-residual", residual)]
        record = dict(env_id="Pendulum-v1", seed=seed, rows=rows)
        rao_blackwell_probe.run_path(tmp_path, "Pendulum-v1", seed).write_text(json.dumps(record))
    table = rao_blackwell_probe.report(tmp_path)
    assert "| Pendulum-v1 | 2 | +0.99 [+0.99, +0.99] | +0.95 [+0.95, +0.95] | +0.60 [+0.60, +0.60] |" in table
    assert table.endswith("| +0.71 [+0.52, +0.90] | +0.40 *, +0.02 |")


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        rao_blackwell_probe.main(["--seeds", "0", "--report-only"])
