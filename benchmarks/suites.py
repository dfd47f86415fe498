"""Benchmark suites as data: which envs (with their budgets and evaluation protocol), algorithms and seeds."""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class EnvBudget:
    """
    One environment of a suite and its training and evaluation protocol.

    :param env_id: Gymnasium id, possibly namespaced (``sb3_denoise_pg/NoisyPendulum-v1``)
    :param n_timesteps: Training env-steps of one run
    :param eval_freq: Evaluate the deterministic policy every ``eval_freq`` training steps
    :param eval_episodes: Number of evaluation episodes
    :param hyperparams: Zoo ``--hyperparams`` overrides of this env, the same for every algorithm (e.g. a
        ``learning_starts`` that fits a budget shorter than the one the zoo's settings were made for)
    :param checkpoints: Env-steps at which the model is kept (the zoo's ``rl_model_<steps>_steps.zip`` in the run
        folder), for measurements on the trained models such as ``benchmarks.gradient_truth``; none by default
    """

    env_id: str
    n_timesteps: int
    eval_freq: int = 2_000
    eval_episodes: int = 5
    hyperparams: tuple[str, ...] = ()
    checkpoints: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if any(not 0 < steps <= self.n_timesteps for steps in self.checkpoints):
            raise ValueError(f"checkpoints must lie in (0, {self.n_timesteps}], got {self.checkpoints}")


@dataclass(frozen=True)
class Suite:
    """
    A benchmark suite.

    :param name: Name, also the folder of its results (``benchmarks/results/<name>/``)
    :param envs: Environments with their budgets
    :param algos: Algorithms, as zoo names (``denoise_pg``, ``td3``, ...)
    :param n_seeds: Number of seeds per (env, algo): seeds ``0 .. n_seeds - 1``
    :param zoo_args: Extra arguments passed to every zoo training command of the suite
    """

    name: str
    envs: tuple[EnvBudget, ...]
    algos: tuple[str, ...]
    n_seeds: int
    zoo_args: tuple[str, ...] = ()

    @property
    def env_ids(self) -> tuple[str, ...]:
        return tuple(env.env_id for env in self.envs)

    def budget(self, env_id: str) -> EnvBudget:
        """The budget of ``env_id`` in this suite."""
        for env in self.envs:
            if env.env_id == env_id:
                return env
        raise KeyError(f"{env_id} is not in suite {self.name!r} (envs: {', '.join(self.env_ids)})")


_QUICK_ENVS = (
    EnvBudget("Pendulum-v1", 20_000),
    EnvBudget("sb3_denoise_pg/NoisyPendulum-v1", 20_000),
    # Its episodes last up to 999 steps: 5 of them every 2000 steps are 2.5 evaluation steps per training step, but an
    # evaluation step is a forward pass (0.17 ms measured, [400, 300] net, 1 thread) while a training step with its
    # gradient update takes 13 ms (TD3) to 40 ms (DenoisePG): evaluation stays under 4% of the run, so the same
    # protocol as the other envs is kept
    EnvBudget("MountainCarContinuous-v0", 20_000),
    # The zoo's settings (of InvertedPendulumBulletEnv) start learning after 10k steps, the whole budget here
    EnvBudget("InvertedPendulum-v5", 10_000, hyperparams=("learning_starts:1000",)),
    # The noisy worlds' MuJoCo task that fits the quick suite's budget
    EnvBudget("sb3_denoise_pg/NoisyInvertedPendulum-v5", 10_000, hyperparams=("learning_starts:1000",)),
)

_STANDARD_MUJOCO = tuple(
    EnvBudget(env_id, 100_000, eval_freq=5_000, eval_episodes=10)
    for env_id in ("HalfCheetah-v5", "Hopper-v5", "sb3_denoise_pg/NoisyHalfCheetah-v5", "sb3_denoise_pg/NoisyHopper-v5")
)

# The zoo's budgets of the MuJoCo tasks (1M steps, 2M for Humanoid); 100 evaluation points of 10 episodes
_FULL_ENVS = tuple(
    EnvBudget(env_id, n_timesteps, eval_freq=n_timesteps // 100, eval_episodes=10)
    for env_id, n_timesteps in (
        ("HalfCheetah-v5", 1_000_000),
        ("Hopper-v5", 1_000_000),
        ("Walker2d-v5", 1_000_000),
        ("Ant-v5", 1_000_000),
        ("Humanoid-v5", 2_000_000),
    )
)

_PEERS = ("denoise_pg", "td3", "sac")

# Models kept along training for the gradient-truth probe: the quick and standard budgets, three checkpoints each
_GRADIENT_TRUTH_ENVS = (
    EnvBudget("Pendulum-v1", 20_000, checkpoints=(5_000, 10_000, 20_000)),
    EnvBudget("sb3_denoise_pg/NoisyPendulum-v1", 20_000, checkpoints=(5_000, 10_000, 20_000)),
    *(
        EnvBudget(env_id, 100_000, eval_freq=10_000, eval_episodes=5, checkpoints=(20_000, 50_000, 100_000))
        for env_id in ("HalfCheetah-v5", "sb3_denoise_pg/NoisyHalfCheetah-v5", "Hopper-v5")
    ),
)

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        # For tests: the whole pipeline in seconds; learning_starts below the budget so that gradient steps run
        Suite(
            "smoke",
            (EnvBudget("Pendulum-v1", 600, eval_freq=200, eval_episodes=2),),
            ("denoise_pg", "td3"),
            1,
            zoo_args=("--hyperparams", "learning_starts:200"),
        ),
        Suite("quick", _QUICK_ENVS, ("denoise_pg", "td3", "sac"), 3),
        # Whether DenoisePG solves MountainCar within SAC's zoo budget (50k steps)
        Suite("mountaincar", (EnvBudget("MountainCarContinuous-v0", 50_000, eval_freq=5_000),), _PEERS, 3),
        Suite("standard", _QUICK_ENVS + _STANDARD_MUJOCO, ("denoise_pg", "td3", "sac"), 5),
        Suite("full", _FULL_ENVS, ("denoise_pg", "td3", "sac", "tqc", "crossq"), 10),
        # Trained models for benchmarks.gradient_truth (3 seeds; the MuJoCo tasks are run with --seeds 2 on 2 cores)
        Suite("gradient-truth", _GRADIENT_TRUTH_ENVS, ("denoise_pg", "td3"), 3),
    )
}


def get_suite(name: str) -> Suite:
    """
    :param name: Name of a suite of ``SUITES``
    :return: The suite
    """
    if name not in SUITES:
        raise ValueError(f"Unknown suite {name!r}, choose one of {', '.join(SUITES)}")
    return SUITES[name]


def select(suite: Suite, algos: list[str] | None = None, envs: list[str] | None = None, n_seeds: int | None = None) -> Suite:
    """
    A copy of ``suite`` restricted (or extended, for algos and seeds) by command line choices.

    :param suite: The suite
    :param algos: Algorithms to use instead of the suite's
    :param envs: Subset of the suite's env ids
    :param n_seeds: Number of seeds to use instead of the suite's
    :return: The selected suite, with the same name (its results go to the same folder)
    """
    return replace(
        suite,
        algos=tuple(algos) if algos else suite.algos,
        envs=tuple(suite.budget(env_id) for env_id in envs) if envs else suite.envs,
        n_seeds=suite.n_seeds if n_seeds is None else n_seeds,
    )
