"""DenoisePG learns: SB3's identity task to its reward threshold, and a short Pendulum run improves."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.envs import IdentityEnvBox
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import NormalActionNoise

from sb3_denoise_pg import DenoisePG

pytestmark = pytest.mark.slow  # learning runs, judged by their returns: 10 s to a few minutes each


@pytest.mark.parametrize("seed", [0, 1])
def test_identity_env_box_reaches_threshold(seed):
    # SB3's test_identity settings for TD3 (eps=0.5, gamma 0.95, [64, 64], normal noise 0.1, threshold 90);
    # DenoisePG gets 1000 steps where TD3 needs 400: its gradient only exists within ~sigma of the reward band
    env = IdentityEnvBox(eps=0.5)
    noise = NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))
    model = DenoisePG("MlpPolicy", env, gamma=0.95, policy_kwargs=dict(net_arch=[64, 64]), action_noise=noise, seed=seed)
    model.learn(1000)
    evaluate_policy(model, env, n_eval_episodes=20, reward_threshold=90, warn=False)


def _mean_return(model: DenoisePG, n_episodes: int = 10) -> float:
    """Deterministic return on fixed starting states, the same before and after training."""
    env = gym.make("Pendulum-v1")
    returns = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=100 + episode)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True)[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def test_pendulum_return_improves():
    # The zoo's TD3 settings for Pendulum-v1 with [64, 64] networks; 3000 random steps first give the denoiser and the
    # critic a broad view of the action space before the actor moves (with learning_starts=1000 and 10k steps, most
    # seeds had not learned yet)
    noise = NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))
    model = DenoisePG(
        "MlpPolicy",
        "Pendulum-v1",
        gamma=0.98,
        learning_starts=3000,
        policy_kwargs=dict(net_arch=[64, 64]),
        action_noise=noise,
        seed=0,
    )
    before = _mean_return(model)
    model.learn(9000)
    after = _mean_return(model)
    # Measured with these settings (10 fixed episodes, before -> after, 2026-12-07): seed 0 -1357 -> -346; seeds 1, 2,
    # 3: -1296 -> -284, -1446 -> -262, -1308 -> -333. At 15k steps (5000 random) they end near -170; the ablation's
    # evaluation (benchmarks/results/ablation, 15k steps) ends at -138, -111, -142, -159, -130 for seeds 0-4
    assert after > before + 150, (before, after)
