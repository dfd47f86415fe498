"""Save/load, set_env, replay buffers, seeding and train/eval mode (adapted from SB3's test_save_load and
test_train_eval_mode, with the optimizer comparison that SB3's tests skip); models saved by earlier versions load."""

import copy
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.td3.policies import Actor
from torch import nn

from sb3_denoise_pg import DenoisePG
from sb3_denoise_pg.denoise_pg import DenoisePGPolicy

# One worker makes the module's trained model under `pytest -n 2 --dist loadgroup`, not both
pytestmark = pytest.mark.xdist_group("save-load")


def _assert_same_tensors(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same_tensors(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same_tensors(x, y)
    elif th.is_tensor(a):
        th.testing.assert_close(a, b, rtol=0, atol=0)
    else:
        assert a == b


def _optimizers(model: DenoisePG) -> dict[str, th.optim.Optimizer]:
    return {"actor": model.actor.optimizer, "critic": model.critic.optimizer, "denoiser": model.denoiser.optimizer}


@pytest.fixture(scope="module")
def trained_once() -> DenoisePG:
    """Trained once per module: its few hundred steps cost more than any test that reads it."""
    small = dict(policy_kwargs=dict(net_arch=[32, 32]), learning_starts=50, batch_size=32, n_noise_samples=4)
    model = DenoisePG(
        "MlpPolicy",
        "Pendulum-v1",
        seed=0,
        denoiser_sigma=0.3,
        cond_dropout=0.3,
        critic_control_variate=0.5,
        **small,
    )
    return model.learn(300)


@pytest.fixture
def trained(trained_once: DenoisePG) -> DenoisePG:
    """A trained model of its own: tests save it with options set on it, or train it on."""
    return copy.deepcopy(trained_once)


def test_every_optimizer_is_saved(trained):
    saved, _ = trained._get_torch_save_params()
    assert {"actor.optimizer", "critic.optimizer", "denoiser.optimizer"} <= set(saved)
    assert all(optimizer.state for optimizer in _optimizers(trained).values()), "optimizers were never stepped"


def test_save_load_round_trip(trained, tmp_path):
    obs = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    actions_before, _ = trained.predict(obs, deterministic=True)
    trained.save(tmp_path / "model.zip")
    loaded = DenoisePG.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))

    _assert_same_tensors(trained.policy.state_dict(), loaded.policy.state_dict())
    for name, optimizer in _optimizers(trained).items():
        _assert_same_tensors(optimizer.state_dict(), _optimizers(loaded)[name].state_dict())
    # Aliases point into the loaded policy, not at stale copies
    assert loaded.denoiser is loaded.policy.denoiser and loaded.critic is loaded.policy.critic
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions_before)
    for attr in (
        "denoiser_sigma",
        "cond_dropout",
        "n_noise_samples",
        "policy_delay",
        "critic_control_variate",
    ):
        assert getattr(loaded, attr) == getattr(trained, attr)
    # Training goes on after loading
    loaded.learn(100, reset_num_timesteps=False)


def test_policy_and_actor_only_save_load(trained, tmp_path):
    obs = np.zeros((4, 3), dtype=np.float32)
    actions, _ = trained.predict(obs, deterministic=True)
    trained.policy.save(tmp_path / "policy.pkl")
    trained.actor.save(tmp_path / "actor.pkl")
    policy = DenoisePGPolicy.load(tmp_path / "policy.pkl")
    np.testing.assert_array_equal(policy.predict(obs, deterministic=True)[0], actions)
    _assert_same_tensors(trained.denoiser.state_dict(), policy.denoiser.state_dict())
    actor = Actor.load(tmp_path / "actor.pkl")
    with th.no_grad():
        scaled = actor(th.as_tensor(obs)).numpy()
    np.testing.assert_allclose(trained.policy.unscale_action(scaled), actions, rtol=1e-6)


def test_set_env(tmp_path, small):
    model = DenoisePG("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1), seed=0, **small)
    model.learn(100)
    model.set_env(make_vec_env("Pendulum-v1", n_envs=1, seed=5))
    model.learn(100, reset_num_timesteps=False)
    assert model.num_timesteps == 200
    with pytest.raises(ValueError, match="Observation spaces do not match"):
        model.set_env(make_vec_env("MountainCarContinuous-v0", n_envs=1))
    model.save(tmp_path / "m.zip")
    # A different number of envs goes through load(), as in SB3
    loaded = DenoisePG.load(tmp_path / "m.zip", env=make_vec_env("Pendulum-v1", n_envs=2))
    assert loaded.n_envs == 2
    loaded.learn(60)


def test_replay_buffer_save_load(trained, tmp_path, small):
    trained.save_replay_buffer(tmp_path / "buffer.pkl")
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=1, **small)
    model.load_replay_buffer(tmp_path / "buffer.pkl")
    assert model.replay_buffer.size() == trained.replay_buffer.size()
    np.testing.assert_array_equal(model.replay_buffer.actions, trained.replay_buffer.actions)
    model.learn(60, reset_num_timesteps=False)


def _train(seed: int, settings: dict) -> DenoisePG:
    noise = NormalActionNoise(np.zeros(1), 0.2 * np.ones(1))
    return DenoisePG("MlpPolicy", "Pendulum-v1", seed=seed, action_noise=noise, **settings).learn(250)


def test_same_seed_same_results(small):
    a, b, c = _train(3, small), _train(3, small), _train(4, small)
    _assert_same_tensors(a.policy.state_dict(), b.policy.state_dict())
    np.testing.assert_array_equal(a.replay_buffer.actions, b.replay_buffer.actions)
    assert not np.array_equal(a.replay_buffer.actions, c.replay_buffer.actions)


class _BatchNormExtractor(BaseFeaturesExtractor):
    def __init__(self, observation_space: gym.spaces.Box):
        super().__init__(observation_space, features_dim=8)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(observation_space.shape[0], 8), nn.BatchNorm1d(8), nn.Dropout(0.5))

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.net(observations)


def test_train_eval_mode_with_batch_norm():
    model = DenoisePG(
        "MlpPolicy",
        "Pendulum-v1",
        seed=0,
        learning_starts=50,
        batch_size=32,
        n_noise_samples=2,
        policy_kwargs=dict(net_arch=[16], features_extractor_class=_BatchNormExtractor),
    )
    running_mean = model.actor.features_extractor.net[2].running_mean.clone()
    denoiser_mean = model.denoiser.features_extractor.net[2].running_mean.clone()
    model.learn(120)
    # Training updated the statistics, targets got them copied, and acting did not change them
    assert not th.allclose(running_mean, model.actor.features_extractor.net[2].running_mean)
    assert not th.allclose(denoiser_mean, model.denoiser.features_extractor.net[2].running_mean)
    # Targets get the statistics copied (tau=1), not averaged; the critic's keep moving between policy steps
    model._update_targets()
    for net, target in ((model.critic, model.critic_target), (model.actor, model.actor_target)):
        _assert_same_tensors(net.features_extractor.net[2].running_mean, target.features_extractor.net[2].running_mean)
    stats = model.actor.features_extractor.net[2].running_mean.clone()
    obs = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    first, _ = model.predict(obs, deterministic=True)
    # predict() puts every network in eval mode (target networks always are)
    assert not model.actor.training and not model.denoiser.training and not model.critic.training
    assert not model.actor_target.training and not model.critic_target.training
    second, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(first, second)  # eval mode: no dropout, frozen statistics
    _assert_same_tensors(stats, model.actor.features_extractor.net[2].running_mean)


def _saved_by_an_older_version(model: DenoisePG, path, **removed_options) -> None:
    """Save ``model`` as version 0.1.0 did: its options that left the library were attributes, saved with it."""
    for name, value in removed_options.items():
        setattr(model, name, value)
    model.save(path)


def test_a_model_saved_with_removed_options_at_their_old_defaults_keeps_working(trained, tmp_path):
    old_defaults = dict(baseline_action="noised", baseline_reduction="mean", actor_batch_window=None, condition_on_reward=True)
    _saved_by_an_older_version(trained, tmp_path / "old.zip", **old_defaults)
    loaded = DenoisePG.load(tmp_path / "old.zip", env=gym.make("Pendulum-v1"))
    assert not any(hasattr(loaded, name) for name in old_defaults)
    _assert_same_tensors(trained.policy.state_dict(), loaded.policy.state_dict())
    loaded.learn(60, reset_num_timesteps=False)


@pytest.mark.parametrize(
    "removed",
    [
        dict(baseline_action="clean"),
        dict(baseline_reduction="min"),
        dict(actor_batch_window=2500),
        dict(condition_on_reward=False),
    ],
)
def test_a_model_saved_with_a_removed_option_in_use_refuses_to_load_naming_it(trained, tmp_path, removed):
    _saved_by_an_older_version(trained, tmp_path / "old.zip", **removed)
    ((name, value),) = removed.items()
    with pytest.raises(
        ValueError, match=rf"saved with {name}={value!r}, an option DenoisePG no longer has.*AblationDenoisePG"
    ):
        DenoisePG.load(tmp_path / "old.zip")


def test_a_model_saved_with_sigma_levels_refuses_to_load(trained, tmp_path):
    trained.denoiser_sigma = [0.1, 0.2]
    trained.save(tmp_path / "old.zip")
    with pytest.raises(ValueError, match=r"denoiser_sigma must be a finite number > 0 \(sigma levels and schedules"):
        DenoisePG.load(tmp_path / "old.zip")


SAVED_MODELS = Path(__file__).parent / "fixtures" / "saved_models"


def _recorded(version: str, name: str) -> dict:
    return json.loads((SAVED_MODELS / f"denoise_pg-{version}.json").read_text())[f"denoise_pg-{version}-{name}"]


@pytest.mark.parametrize("version", ["0.2.0", "0.3.0"])
def test_a_model_saved_by_an_earlier_version_loads_acts_the_same_and_learns_on(version):
    recorded = _recorded(version, "defaults")
    loaded = DenoisePG.load(SAVED_MODELS / f"denoise_pg-{version}-defaults.zip", env=gym.make("Pendulum-v1"))
    observations = np.array(recorded["observations"], dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(observations, deterministic=True)[0], recorded["actions"], rtol=1e-6)
    assert not any(hasattr(loaded, name) for name in ("orthogonal_noise", "actor_gradient", "gradient_head"))
    assert all(optimizer.state for optimizer in _optimizers(loaded).values()), "optimizer state was not restored"
    loaded.learn(60, reset_num_timesteps=False)


def _hidden_layers(denoiser) -> list[int]:
    return [layer.out_features for layer in denoiser.noise_net if isinstance(layer, nn.Linear)][:-1]


@pytest.mark.parametrize("version", ["0.2.0", "0.3.0"])
def test_new_models_get_the_small_denoiser_and_models_saved_before_it_keep_the_critic_sized_one(version):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]))
    assert _hidden_layers(model.denoiser) == [64, 64] and model.n_noise_samples == 4
    # None still means "the critic's net_arch", the default before 0.4.0
    critic_sized = DenoisePG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8], denoiser_net_arch=None))
    assert _hidden_layers(critic_sized.denoiser) == [8]
    loaded = DenoisePG.load(SAVED_MODELS / f"denoise_pg-{version}-defaults.zip")
    assert _hidden_layers(loaded.denoiser) == [8] and loaded.n_noise_samples == 8
    # The policy_kwargs it was saved with are still accepted by load(), with no denoiser size added to them
    saved = DenoisePG._saved_policy_kwargs(SAVED_MODELS / f"denoise_pg-{version}-defaults.zip", None)
    assert "denoiser_net_arch" not in saved
    loaded = DenoisePG.load(SAVED_MODELS / f"denoise_pg-{version}-defaults.zip", policy_kwargs=saved)
    assert _hidden_layers(loaded.denoiser) == [8]


@pytest.mark.parametrize("version", ["0.2.0", "0.3.0"])
def test_a_policy_saved_by_an_earlier_version_loads(version):
    recorded = _recorded(version, "defaults")
    policy = DenoisePGPolicy.load(SAVED_MODELS / f"denoise_pg_policy-{version}.pkl")
    observations = np.array(recorded["observations"], dtype=np.float32)
    np.testing.assert_allclose(policy.predict(observations, deterministic=True)[0], recorded["actions"], rtol=1e-6)


@pytest.mark.parametrize("version", ["0.2.0", "0.3.0"])
def test_a_model_saved_with_the_options_that_left_in_0_3_0_refuses_to_load_naming_them(version):
    with pytest.raises(ValueError, match=r"saved with orthogonal_noise=True.*since version 0\.3\.0.*AblationDenoisePG"):
        DenoisePG.load(SAVED_MODELS / f"denoise_pg-{version}-regression-orthogonal.zip")


def test_a_removed_option_passed_to_load_is_refused_as_an_argument_and_its_no_op_value_accepted():
    path = SAVED_MODELS / "denoise_pg-0.3.0-defaults.zip"
    with pytest.raises(ValueError, match=r"load\(\) was given orthogonal_noise=True.*since version 0\.3\.0"):
        DenoisePG.load(path, orthogonal_noise=True)
    loaded = DenoisePG.load(path, actor_gradient="direct")
    assert not hasattr(loaded, "actor_gradient")


def test_the_regression_head_is_not_a_policy_option_any_more():
    with pytest.raises(ValueError, match="regression head left the library"):
        DenoisePG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(gradient_head=True))
