"""
The ablation-only variants of ``benchmarks.ablation_variants.AblationDenoisePG`` (options that left the library): the
recency window of the actor's batch, s'-only conditioning, the baseline's reduction of the critics and its clean-action
form, annealed sigma, several sigma levels, the anchored form, the regression head and orthogonal draws. Their bad
values keep their clear errors, and models saved with them load with this class.
"""

import copy
import json
from collections import defaultdict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.common.utils import LinearSchedule

from benchmarks.ablation_variants import AblationDenoisePG
from sb3_denoise_pg import DenoisePG
from sb3_denoise_pg.common.estimator import adaptive_anchor_coefficient, independent_units


def _recorded_indices(model: AblationDenoisePG, n_batches: int = 20) -> np.ndarray:
    captured = []
    get_samples = model.replay_buffer._get_samples

    def spy(batch_inds, env=None):
        captured.append(np.asarray(batch_inds).copy())
        return get_samples(batch_inds, env=env)

    model.replay_buffer._get_samples = spy
    for _ in range(n_batches):
        model._sample_recent(64)
    return np.concatenate(captured)


def test_actor_batch_window_samples_the_most_recent_transitions(small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, actor_batch_window=30, **small).learn(120)
    indices = _recorded_indices(model)
    assert set(indices) == set(range(120 - 30, 120))


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_actor_batch_window_wraps_around_a_full_buffer(optimize_memory_usage, small):
    model = AblationDenoisePG(
        "MlpPolicy",
        "Pendulum-v1",
        seed=0,
        buffer_size=100,
        actor_batch_window=500,
        optimize_memory_usage=optimize_memory_usage,
        replay_buffer_kwargs=dict(handle_timeout_termination=not optimize_memory_usage),
        **small,
    ).learn(230)
    buffer = model.replay_buffer
    assert buffer.full and buffer.pos == 30
    indices = _recorded_indices(model, n_batches=50)
    # Every slot but the one at pos (the oldest, and no valid transition with optimize_memory_usage)
    assert set(indices) == set(range(100)) - {30}


def test_actor_batch_window_trains(small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, actor_batch_window=40, **small).learn(150)
    assert model._n_updates > 0


def test_actor_batch_window_refuses_her():
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    with pytest.raises(ValueError, match="HerReplayBuffer"):
        AblationDenoisePG("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, actor_batch_window=100)


@pytest.mark.parametrize("condition_on_reward", [True, False])
def test_outcome_without_reward(condition_on_reward, small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, condition_on_reward=condition_on_reward, **small).learn(100)
    batch = model.replay_buffer.sample(32)
    other = batch._replace(rewards=batch.rewards + 10.0)
    outputs = []
    for data in (batch, other):
        th.manual_seed(0)
        outputs.append(model.estimate(data).denoised_cond)
    assert th.equal(outputs[0], outputs[1]) != condition_on_reward


@pytest.mark.parametrize("reduction", ["mean", "min", "first"])
def test_baseline_reductions(reduction, small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, baseline_reduction=reduction, **small)
    obs = th.randn(5, 3)
    actions = th.rand(2, 5, 1) * 2 - 1
    with th.no_grad():
        q_values = th.stack([th.cat(model.critic(obs, draw), dim=1) for draw in actions]).reshape(10, 2)
        expected = {"mean": q_values.mean(1), "min": q_values.min(1).values, "first": q_values[:, 0]}[reduction]
        baselines = model._critic_values(model.policy.critic_features(obs), actions)
    th.testing.assert_close(baselines, expected.unsqueeze(1))


def test_annealed_sigma_follows_its_schedule_and_survives_save_load(tmp_path, small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, denoiser_sigma=LinearSchedule(0.4, 0.1, 1.0), **small)
    assert model.current_sigma == pytest.approx(0.4)
    model.learn(200)
    # The last train() ran at progress remaining ~1/200: sigma ~0.1
    assert model.logger.name_to_value["train/denoiser_sigma"] == pytest.approx(0.1, abs=0.01)
    model.save(tmp_path / "model.zip")
    loaded = AblationDenoisePG.load(tmp_path / "model.zip")
    assert loaded.denoiser_sigma(0.5) == pytest.approx(0.25)


def test_several_sigma_levels_are_drawn_per_transition_and_survive_save_load(tmp_path, small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, denoiser_sigma=[0.1, 0.4], **small)
    assert model.denoiser_sigma == (0.1, 0.4) and model.current_sigma == pytest.approx(0.25)
    sigmas = model.noise_scale(1000)
    assert sigmas.shape == (1000, 1) and sorted(sigmas.unique().tolist()) == pytest.approx([0.1, 0.4])
    model.learn(200)
    assert np.isfinite(model.logger.name_to_value["train/denoiser_loss"])
    batch = model.replay_buffer.sample(16)
    estimate = model.estimate(batch)
    assert estimate.per_draw.shape == (4, 16, 1)
    # Each transition's draws share one level, so antithetic pairs stay pairs around its action
    offsets = estimate.noisy_actions - batch.actions
    th.testing.assert_close(offsets[:2], -offsets[2:])
    model.save(tmp_path / "model.zip")
    loaded = AblationDenoisePG.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert loaded.denoiser_sigma == (0.1, 0.4)
    loaded.learn(60, reset_num_timesteps=False)


def test_a_schedule_that_leaves_the_positive_numbers_fails_clearly(small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, denoiser_sigma=LinearSchedule(0.2, -0.2, 1.0), **small)
    with pytest.raises(ValueError, match="denoiser_sigma must be a finite number > 0"):
        model.learn(200)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(denoiser_sigma=[]), "denoiser_sigma levels must be a non-empty list"),
        (dict(denoiser_sigma=[0.1, 0.0]), "denoiser_sigma levels must be finite numbers > 0"),
        (dict(denoiser_sigma=(0.1, float("nan"))), "denoiser_sigma levels must be finite numbers > 0"),
        (dict(denoiser_sigma=-0.1), "denoiser_sigma must be a finite number > 0"),
        (dict(baseline_reduction="max"), "baseline_reduction must be 'mean', 'min' or 'first'"),
        (dict(baseline_action="a"), "baseline_action must be 'noised' or 'clean'"),
        (dict(actor_batch_window=0), r"actor_batch_window must be None or an integer >= 1"),
        (dict(actor_batch_window=10.5), r"actor_batch_window must be None or an integer >= 1"),
        (dict(n_noise_samples=0), r"n_noise_samples must be an integer >= 1"),
        (dict(anchor=1.5, actor_kernel_width=None), r"anchor must be None, 'adaptive' or a number in \[0, 1\]"),
        (dict(anchor="auto", actor_kernel_width=None), r"anchor must be None, 'adaptive' or a number in \[0, 1\]"),
        (dict(anchor=0.5), r"anchor takes its direction at mu_theta\(s\): it needs actor_kernel_width=None"),
        (dict(anchor="adaptive", actor_kernel_width=None, n_noise_samples=2), r"n_noise_samples >= 4 with antithetic"),
        (dict(actor_gradient="critic"), "actor_gradient must be 'direct' or 'regression'"),
        (dict(actor_gradient="regression"), r"critic_control_variate needs actor_gradient='direct'"),
        (dict(orthogonal_noise="no"), "orthogonal_noise must be True or False"),
    ],
)
def test_bad_ablation_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AblationDenoisePG("MlpPolicy", "Pendulum-v1", **kwargs)


def test_the_library_refuses_the_ablation_options_with_a_pointer_to_this_class():
    for kwargs in (
        dict(baseline_action="clean"),
        dict(actor_batch_window=10),
        dict(condition_on_reward=False),
        dict(actor_gradient="regression"),
        dict(orthogonal_noise=True),
    ):
        with pytest.raises(TypeError):
            DenoisePG("MlpPolicy", "Pendulum-v1", **kwargs)
    with pytest.raises(ValueError, match=r"denoiser_sigma must be a finite number > 0 .*AblationDenoisePG"):
        DenoisePG("MlpPolicy", "Pendulum-v1", denoiser_sigma=[0.1, 0.2])


def test_a_model_saved_with_an_ablation_option_loads_with_this_class_and_not_with_the_library(tmp_path, small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, baseline_action="clean", **small).learn(80)
    model.save(tmp_path / "model.zip")
    with pytest.raises(ValueError, match=r"saved with baseline_action='clean'.*AblationDenoisePG"):
        DenoisePG.load(tmp_path / "model.zip")
    loaded = AblationDenoisePG.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert loaded.baseline_action == "clean"
    loaded.learn(40, reset_num_timesteps=False)


def test_ablation_defaults_reproduce_the_library(small):
    """With every ablation option at its library value, the same seed gives the same estimate."""
    batches = []
    for algo_class in (DenoisePG, AblationDenoisePG):
        model = algo_class("MlpPolicy", "Pendulum-v1", seed=0, **small).learn(100)
        batch = model.replay_buffer.sample(16)
        th.manual_seed(0)
        batches.append((batch, model.estimate(batch).gradient))
    th.testing.assert_close(batches[0][0].observations, batches[1][0].observations)
    th.testing.assert_close(batches[0][1], batches[1][1])


@pytest.mark.slow
def test_several_sigma_levels_match_true_gradient_in_noisy_world(known_world):
    world = known_world(
        action_dim=2, noise_std=0.3, algo_class=AblationDenoisePG, sigma=[0.05, 0.2], critic_control_variate=None
    )
    batch_cos, _, ratio = world.agreement(world.batch(4096, seed=2))
    assert batch_cos >= 0.95
    # Smoothed targets of norm 0.97 and 0.69 of the true gradient's, averaged
    assert 0.55 < ratio < 1.2


@pytest.mark.slow
def test_baseline_must_be_evaluated_at_the_noised_action(known_world):
    """In a nearly deterministic world, a baseline at the clean action cancels the signal with y ~ b(s, a)."""
    world = known_world(action_dim=4, noise_std=0.02, algo_class=AblationDenoisePG, critic_control_variate=None)
    batch = world.batch(4096, seed=4)
    noised = world.agreement(batch)
    clean_model = copy.deepcopy(world.model)
    clean_model.baseline_action = "clean"
    clean = world.agreement(batch, clean_model)
    assert noised[0] >= 0.95
    assert noised[1] > clean[1] + 0.3, (noised, clean)  # per-sample agreement
    assert clean[2] < 0.5 * noised[2], (noised, clean)  # the clean variant's estimate collapses: biased


ANCHORED = dict(actor_kernel_width=None)


def test_independent_units_are_the_means_of_antithetic_pairs():
    half = th.randn(3, 5, 2)
    even, odd = th.randn(5, 2), th.randn(3, 5, 2)
    # An estimate even in z (shared by a pair) plus one odd in z (cancelled by it)
    per_draw = th.cat([even + odd, even - odd])
    units = independent_units(per_draw, antithetic=True)
    assert units.shape == (3, 5, 2)
    th.testing.assert_close(units, even.expand(3, 5, 2))
    # An odd number of draws: the last is unpaired and stands alone
    units = independent_units(th.cat([half, -half])[:5], antithetic=True)
    assert units.shape == (3, 5, 2)
    th.testing.assert_close(units[:2], th.zeros(2, 5, 2))
    th.testing.assert_close(units[2], half[2])
    assert independent_units(per_draw, antithetic=False) is per_draw


def test_adaptive_anchor_shrinks_noise_to_zero_and_keeps_a_clear_signal():
    generator = th.Generator().manual_seed(0)
    noise = th.randn(4, 256, 6, generator=generator)
    assert adaptive_anchor_coefficient(noise).item() < 0.1
    signal = th.randn(256, 6, generator=generator)
    assert adaptive_anchor_coefficient(signal + 0.1 * noise).item() > 0.95
    # Signal and noise of equal power per transition's mean: about half is kept
    assert 0.3 < adaptive_anchor_coefficient(signal + 2 * noise).item() < 0.7
    with pytest.raises(ValueError, match="at least 2 independent units"):
        adaptive_anchor_coefficient(noise[:1])


def test_anchor_zero_follows_the_critic_at_the_policy_action(small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, anchor=0.0, **ANCHORED, **small).learn(100)
    batch = model.replay_buffer.sample(32)
    actions = model.actor(batch.observations)
    gradient, row_actions, weights = model._actor_gradient(batch, model.estimate(batch), actions, defaultdict(list))
    assert weights is None and row_actions is actions
    th.testing.assert_close(gradient, model.critic_action_gradient(batch.observations, actions))


def test_anchor_one_adds_the_data_correction_at_the_replay_action(small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, anchor=1.0, **ANCHORED, **small).learn(100)
    batch = model.replay_buffer.sample(32)
    actions = model.actor(batch.observations)
    th.manual_seed(1)
    estimate = model.estimate(batch)
    gradient, _, _ = model._actor_gradient(batch, estimate, actions, defaultdict(list))
    expected = (
        model.critic_action_gradient(batch.observations, actions)
        + estimate.gradient
        - model.critic_action_gradient(batch.observations, batch.actions)
    )
    th.testing.assert_close(gradient, expected)


def test_adaptive_anchor_trains_logs_eta_and_survives_save_load(tmp_path, small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, anchor="adaptive", **ANCHORED, **small).learn(200)
    assert 0.0 <= model.logger.name_to_value["train/anchor_eta"] <= 1.0
    model.save(tmp_path / "model.zip")
    loaded = AblationDenoisePG.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert loaded.anchor == "adaptive"
    loaded.learn(60, reset_num_timesteps=False)


# The regression head fits E[G | s, a~], where the control variate has no zero mean: it runs without it
REGRESSION = dict(actor_gradient="regression", critic_control_variate=None)


def test_regression_head_trains_saves_and_loads(tmp_path, small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **REGRESSION, **small)
    model.learn(200)
    assert model.gradient_head is model.policy.gradient_head is not None
    assert model.gradient_head.optimizer.state, "the regression head was never stepped"
    assert "gradient_head.optimizer" in model._get_torch_save_params()[0]
    assert "train/gradient_head_loss" in model.logger.name_to_value

    model.save(tmp_path / "model.zip")
    loaded = AblationDenoisePG.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert loaded.actor_gradient == "regression" and loaded.gradient_head is loaded.policy.gradient_head
    for key, value in model.gradient_head.state_dict().items():
        th.testing.assert_close(loaded.gradient_head.state_dict()[key], value, rtol=0, atol=0)
    saved_state = model.gradient_head.optimizer.state_dict()["state"]
    for index, state in loaded.gradient_head.optimizer.state_dict()["state"].items():
        th.testing.assert_close(state["exp_avg"], saved_state[index]["exp_avg"], rtol=0, atol=0)
    loaded.learn(60, reset_num_timesteps=False)


def test_direct_form_has_no_regression_head(small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **small)
    assert model.gradient_head is None
    assert not any(name.startswith("gradient_head") for name in model._get_torch_save_params()[0])
    assert not hasattr(DenoisePG("MlpPolicy", "Pendulum-v1", **small), "gradient_head")


def test_loading_with_an_option_that_adds_a_network_is_refused_with_a_message(tmp_path, small):
    AblationDenoisePG("MlpPolicy", "Pendulum-v1", **small).save(tmp_path / "direct")
    with pytest.raises(ValueError, match="an option that shapes them"):
        AblationDenoisePG.load(tmp_path / "direct", actor_gradient="regression", critic_control_variate=None)


@pytest.mark.parametrize("orthogonal_noise", [False, True])
def test_same_seed_same_results_with_either_draws(small, orthogonal_noise):
    def run(seed: int) -> AblationDenoisePG:
        model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=seed, orthogonal_noise=orthogonal_noise, **small)
        return model.learn(200)

    a, b, c = run(3), run(3), run(4)
    for key, value in a.policy.state_dict().items():
        th.testing.assert_close(b.policy.state_dict()[key], value, rtol=0, atol=0)
    assert not np.array_equal(a.replay_buffer.actions, c.replay_buffer.actions)


def test_orthogonal_draws_are_orthogonal_per_transition(small):
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", orthogonal_noise=True, antithetic=False, **small)
    model.n_noise_samples = 3
    z = model.draw_noise(th.zeros(5, 3))  # (3, 5, 3): per transition, 3 orthogonal directions in 3 dimensions
    gram = th.einsum("kib,lib->ikl", z, z)
    off_diagonal = gram - th.diag_embed(th.diagonal(gram, dim1=1, dim2=2))
    assert off_diagonal.abs().max() < 1e-5


def test_actor_follows_the_regression_head_at_the_policy_action(small):
    """One regression step on the batch's estimates, then G_omega evaluated at mu(s) is the actor's gradient."""
    model = AblationDenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **REGRESSION, **small).learn(100)
    batch = model.replay_buffer.sample(32)
    estimate = model.estimate(batch)
    actions = model.actor(batch.observations)
    stats = {"gradient_head_loss": []}
    for _ in range(30):
        gradient = model._regression_gradient(batch, estimate, actions, stats)
    with th.no_grad():
        expected = model.gradient_head(batch.observations, actions.unsqueeze(0))[0]
    th.testing.assert_close(gradient, expected)
    assert not gradient.requires_grad
    # The head fits the estimates it is given
    assert stats["gradient_head_loss"][-1] < 0.8 * stats["gradient_head_loss"][0]


@pytest.mark.parametrize("version", ["0.2.0", "0.3.0"])
def test_a_model_saved_with_the_regression_head_and_orthogonal_draws_loads_with_this_class(version):
    saved = Path(__file__).parents[1] / "fixtures" / "saved_models"
    recorded = json.loads((saved / f"denoise_pg-{version}.json").read_text())[f"denoise_pg-{version}-regression-orthogonal"]
    loaded = AblationDenoisePG.load(saved / f"denoise_pg-{version}-regression-orthogonal.zip", env=gym.make("Pendulum-v1"))
    assert loaded.actor_gradient == "regression" and loaded.orthogonal_noise is True
    assert loaded.gradient_head is loaded.policy.gradient_head is not None
    assert loaded.gradient_head.optimizer.state, "the regression head's optimizer state was not restored"
    observations = np.array(recorded["observations"], dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(observations, deterministic=True)[0], recorded["actions"], rtol=1e-6)
    loaded.learn(60, reset_num_timesteps=False)
