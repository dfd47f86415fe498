"""
Pretraining the denoiser before any reward is seen: the model's ``pretrain_denoiser``, the random exploration that
collects its data, and the checks of user-given transitions.
"""

from collections import defaultdict
from typing import TypeVar

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


SelfPretraining = TypeVar("SelfPretraining", bound="DenoiserPretraining")


class DenoiserPretraining:
    """``pretrain_denoiser`` of :class:`~sb3_denoise_pg.DenoisePG` (it uses the model's denoiser update)."""

    def pretrain_denoiser(
        self: SelfPretraining,
        data: ReplayBuffer | None = None,
        gradient_steps: int = 1_000,
        collect_steps: int = 0,
        batch_size: int | None = None,
        use_rewards: bool = False,
    ) -> SelfPretraining:
        """
        Train the denoiser before any reward is seen (the seed post's second claim): by default the outcome's
        reward slot is masked, so that ``D(a~ | s, s', done)`` and ``D(a~ | s)`` learn how actions move the world.
        ``learn()`` then fine-tunes it with rewards. Neither the critic nor the actor is touched.

        :param data: Transitions to learn from, a replay buffer of the model's spaces with actions scaled to
            ``[-1, 1]`` (as SB3 stores them). ``None``: first collect ``collect_steps`` env-steps in the model's env
            with uniformly random actions; they are not counted in ``num_timesteps`` nor added to the model's replay
            buffer (their rewards were not seen).
        :param gradient_steps: Denoiser updates
        :param collect_steps: Random exploration steps when ``data`` is ``None``
        :param batch_size: Minibatch size (default: the model's)
        :param use_rewards: Condition on ``data``'s rewards instead of masking them
        :return: This model
        """
        if self.denoiser_condition != "outcome":
            raise ValueError(
                f"pretrain_denoiser conditions the denoiser on the outcome without its reward; with "
                f"denoiser_condition={self.denoiser_condition!r} there is no condition before rewards are seen"
            )
        if not (isinstance(gradient_steps, (int, np.integer)) and gradient_steps >= 1):
            raise ValueError(f"gradient_steps must be an integer >= 1, got {gradient_steps!r}")
        if data is None:
            data = self._collect_random(collect_steps)
        elif collect_steps:
            raise ValueError("collect_steps collects data in the model's env: give either data or collect_steps")
        data = check_pretraining_data(data, self.observation_space, self.action_space)
        self.policy.set_training_mode(True)
        stats: dict[str, list[float]] = defaultdict(list)
        for _ in range(gradient_steps):
            self._update_denoiser(data.sample(batch_size or self.batch_size), stats, reward_known=use_rewards)
        if self.verbose >= 1:
            print(f"Pretrained the denoiser: {gradient_steps} steps, final loss {np.mean(stats['denoiser_loss'][-100:]):.4f}")
        return self

    def _collect_random(self, collect_steps: int) -> ReplayBuffer:
        if self.env is None:
            raise ValueError("pretrain_denoiser without data needs an env: create the model with one, or call set_env")
        if not (isinstance(collect_steps, (int, np.integer)) and collect_steps >= 1):
            raise ValueError(f"collect_steps must be an integer >= 1 when no data is given, got {collect_steps!r}")
        buffer_class = DictReplayBuffer if isinstance(self.observation_space, spaces.Dict) else ReplayBuffer
        buffer = buffer_class(collect_steps, self.observation_space, self.action_space, self.device, n_envs=self.n_envs)
        collect_random_transitions(self.env, collect_steps, buffer, self.policy.scale_action)
        return buffer
