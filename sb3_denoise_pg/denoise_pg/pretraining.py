"""Reward-free data for pretraining the denoiser: random exploration and checks of user-given transitions."""

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecEnv


def check_pretraining_data(data: object, observation_space: spaces.Space, action_space: spaces.Box) -> ReplayBuffer:
    """
    :param data: Transitions given for pretraining
    :return: ``data``, once it is known to be a non-empty replay buffer of the model's spaces
    :raises ValueError: On anything else, saying what does not match
    """
    if not isinstance(data, ReplayBuffer | DictReplayBuffer):
        raise ValueError(f"data must be a ReplayBuffer (or DictReplayBuffer) or None, got {type(data).__name__}")
    if data.action_space.shape != action_space.shape:
        raise ValueError(
            f"data has actions of shape {data.action_space.shape}, the model's action space has shape {action_space.shape}"
        )
    if data.observation_space != observation_space:
        raise ValueError(f"data's observation space {data.observation_space} is not the model's {observation_space}")
    if data.size() == 0:
        raise ValueError("data holds no transitions")
    return data


def collect_random_transitions(env: VecEnv, n_steps: int, buffer: ReplayBuffer, scale_action) -> None:
    """
    Step ``env`` with uniformly random actions for ``n_steps`` env-steps (all envs together) and store the
    transitions in ``buffer``, actions scaled to ``[-1, 1]`` as SB3's off-policy algorithms store them.

    :param scale_action: The policy's ``scale_action``
    """
    obs = env.reset()
    for _ in range(-(-n_steps // env.num_envs)):
        actions = np.array([env.action_space.sample() for _ in range(env.num_envs)])
        next_obs, rewards, dones, infos = env.step(actions)
        # The transition of a finished episode ends in its last observation, not in the reset one
        real_next_obs = next_obs.copy() if not isinstance(next_obs, dict) else {k: v.copy() for k, v in next_obs.items()}
        for i, done in enumerate(dones):
            if done and infos[i].get("terminal_observation") is not None:
                if isinstance(real_next_obs, dict):
                    for key in real_next_obs:
                        real_next_obs[key][i] = infos[i]["terminal_observation"][key]
                else:
                    real_next_obs[i] = infos[i]["terminal_observation"]
        buffer.add(obs, real_next_obs, scale_action(actions), rewards, dones, infos)
        obs = next_obs
