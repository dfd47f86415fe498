import gymnasium as gym

from sb3_denoise_pg.envs.linear_gaussian import LinearGaussianWorld
from sb3_denoise_pg.envs.noisy import ActuatorNoise, ForcePulses, make_noisy_env

LINEAR_GAUSSIAN_ID = "sb3_denoise_pg/LinearGaussian-v0"

# Noisy id -> (base id, default noise parameters); every parameter is a kwarg of the id
_NOISY_ENVS: dict[str, tuple[str, dict[str, float]]] = {
    "sb3_denoise_pg/NoisyPendulum-v1": ("Pendulum-v1", dict(actuator_noise_std=0.3)),
    "sb3_denoise_pg/StickyPendulum-v1": ("Pendulum-v1", dict(sticky_prob=0.25)),
    "sb3_denoise_pg/NoisyInvertedPendulum-v5": ("InvertedPendulum-v5", dict(actuator_noise_std=0.3)),
    # Pulses tuned to the control step: HalfCheetah steps 0.05 s, Hopper 0.008 s
    "sb3_denoise_pg/NoisyHalfCheetah-v5": (
        "HalfCheetah-v5",
        dict(actuator_noise_std=0.1, pulse_prob=0.02, pulse_magnitude=0.5, pulse_duration=2),
    ),
    "sb3_denoise_pg/NoisyHopper-v5": (
        "Hopper-v5",
        dict(actuator_noise_std=0.1, pulse_prob=0.005, pulse_magnitude=0.3, pulse_duration=10),
    ),
}
NOISY_ENV_IDS = tuple(_NOISY_ENVS)


def register_envs() -> None:
    """Register the project's gymnasium ids; idempotent (ids already registered are left alone)."""
    if LINEAR_GAUSSIAN_ID not in gym.registry:
        gym.register(LINEAR_GAUSSIAN_ID, entry_point="sb3_denoise_pg.envs.linear_gaussian:LinearGaussianWorld")
    for env_id, (base_id, noise_kwargs) in _NOISY_ENVS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="sb3_denoise_pg.envs.noisy:make_noisy_env",
                # The base env's episode length: SB3 and the RL Zoo rely on episodes ending
                max_episode_steps=gym.spec(base_id).max_episode_steps,
                kwargs=dict(base_id=base_id, **noise_kwargs),
            )


register_envs()

__all__ = [
    "LINEAR_GAUSSIAN_ID",
    "NOISY_ENV_IDS",
    "ActuatorNoise",
    "ForcePulses",
    "LinearGaussianWorld",
    "make_noisy_env",
    "register_envs",
]
