"""The claims' scripts run end to end on tiny settings and write their tables and figures."""

import json
from pathlib import Path

import pytest

from benchmarks.claims import digits, high_dim, pretraining, wrong_critic


def test_high_dim(tmp_path: Path):
    high_dim.main(["--dims", "1", "3", "--samples", "300", "--seeds", "1", "--steps", "20", "--output", str(tmp_path)])
    rows = json.loads((tmp_path / "high_dim.json").read_text())["rows"]
    assert [row["dim"] for row in rows] == [1, 3]
    for row in rows:
        assert -1 <= row["denoise_pg"]["batch_cosine"] <= 1 and -1 <= row["critic"]["sample_cosine"] <= 1
    assert (tmp_path / "high_dim.png").is_file() and "| dim |" in (tmp_path / "high_dim.md").read_text()


def test_wrong_critic(tmp_path: Path):
    wrong_critic.main(["--amplitudes", "0", "1", "--seeds", "1", "--steps", "20", "--dim", "2", "--output", str(tmp_path)])
    rows = json.loads((tmp_path / "wrong_critic.json").read_text())["rows"]
    assert [row["amplitude"] for row in rows] == [0.0, 1.0]
    assert (tmp_path / "wrong_critic.png").is_file()


def test_digits(tmp_path: Path):
    pytest.importorskip("sklearn")
    digits.main(["--epochs", "2", "--steps", "3", "--n-start", "5", "--output", str(tmp_path)])
    curves = json.loads((tmp_path / "digits.json").read_text())["curves"]
    assert set(curves) == {"denoiser score difference", "classifier input-gradient"}
    assert all(len(curve["classifier p(9)"]) == 4 for curve in curves.values())
    assert (tmp_path / "digits.png").is_file()


def test_pretraining_comparison(tmp_path: Path):

    args = ["--envs", "Pendulum-v1", "--seeds", "1", "--steps", "400", "--collect", "200", "--pretrain-steps", "5"]
    pretraining.main([*args, "--eval-freq", "100", "--eval-episodes", "1", "--jobs", "1", "--output", str(tmp_path)])
    scratch = json.loads((tmp_path / "pretraining" / "Pendulum-v1_scratch_0.json").read_text())
    pretrained = json.loads((tmp_path / "pretraining" / "Pendulum-v1_pretrained_0.json").read_text())
    # Equal env-steps: the pretrained run's exploration counts on its x-axis
    assert scratch["timesteps"] == [100, 200, 300, 400]
    assert pretrained["timesteps"] == [300, 400]
    assert (tmp_path / "pretraining.png").is_file()
