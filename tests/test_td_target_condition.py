"""The denoiser conditioned on the TD target (denoiser_condition="td_target"): what it is given, its statistics, errors."""

import numpy as np
import pytest
import torch as th

from sb3_denoise_pg import DenoisePG

# One worker makes the module's trained model under `pytest -n 2 --dist loadgroup`, not both
pytestmark = pytest.mark.xdist_group("td-target-model")

SMALL = dict(learning_starts=50, batch_size=32, policy_kwargs=dict(net_arch=[16]), seed=0)


@pytest.fixture(scope="module")
def model():
    return DenoisePG("MlpPolicy", "Pendulum-v1", denoiser_condition="td_target", **SMALL).learn(200)


def test_the_condition_is_the_standardised_target_alone(model):
    batch = model.replay_buffer.sample(8)
    targets = model.td_target(batch)
    _, condition = model._encode(batch, td_targets=targets)
    mean, std = model.td_target_stats.mean, np.sqrt(model.td_target_stats.var + 1e-8)
    dim = model.denoiser.features_dim
    assert th.equal(condition[:, :dim], th.zeros(8, dim))
    assert th.allclose(condition[:, dim : dim + 1], (targets - float(mean)) / float(std))
    assert th.equal(condition[:, dim + 1 :], th.tensor([[0.0, 1.0]]).repeat(8, 1))
    # The next state and the reward do not enter: another outcome with the same target is the same condition
    changed = batch._replace(next_observations=batch.next_observations + 1, rewards=batch.rewards + 1)
    assert th.equal(model._encode(changed, td_targets=targets)[1], condition)


def test_running_statistics_follow_the_targets_trained_on_and_survive_save_load(model, tmp_path):
    # 150 updates of 32 transitions (learning from step 50 to 200)
    assert model.td_target_stats.count == pytest.approx(150 * 32, abs=1)
    assert model.td_target_stats.mean < 0  # Pendulum's rewards are negative
    model.save(tmp_path / "model.zip")
    loaded = DenoisePG.load(tmp_path / "model.zip")
    assert loaded.denoiser_condition == "td_target"
    assert loaded.td_target_stats.mean == model.td_target_stats.mean
    assert th.isfinite(
        loaded.action_gradient(
            loaded.replay_buffer.sample(8) if loaded.replay_buffer.size() else model.replay_buffer.sample(8)
        )
    ).all()


def test_bad_values_and_reward_free_pretraining_are_refused(model):
    with pytest.raises(ValueError, match="denoiser_condition must be 'outcome' or 'td_target'"):
        DenoisePG("MlpPolicy", "Pendulum-v1", denoiser_condition="next_state")
    with pytest.raises(ValueError, match="no condition before rewards"):
        model.pretrain_denoiser(collect_steps=10)
