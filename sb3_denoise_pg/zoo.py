"""
RL Baselines3 Zoo integration of DenoisePG.

The zoo has no plugin hook: its ``--algo`` choices are the keys of ``rl_zoo3.ALGOS``, read when a script builds
its parser. This entry point registers ``denoise_pg`` (the algorithm, an Optuna sampler and its converter),
fills in a default ``--conf-file`` from the project's ``hyperparams/`` folder and then runs the zoo's own
script, so the command line is the zoo's::

    python -m sb3_denoise_pg.zoo train --algo denoise_pg --env Pendulum-v1 --eval-freq 2000
    python -m sb3_denoise_pg.zoo enjoy --algo denoise_pg --env Pendulum-v1 -f logs/ --no-render
    python -m sb3_denoise_pg.zoo train --algo denoise_pg --env Pendulum-v1 -optimize --n-trials 50 \\
        --storage logs/denoise_pg_pendulum.log --study-name denoise_pg_pendulum

Several machines share one Optuna study by running the same ``-optimize`` command with the same
``--storage`` and ``--study-name``: the storage is either a journal file on a shared filesystem (a path ending
in ``.log``, opened by the zoo as an Optuna ``JournalStorage`` with a ``JournalFileBackend``, whose lock works
over NFS) or a database URL (``postgresql://user:password@host/db``, ``mysql+pymysql://...``). ``--n-trials``
counts the trials of each worker, ``--max-total-trials`` those of the whole study. Give each worker its own
``--seed`` or none (the sampler is seeded with it: equal seeds sample equal trials), and its own ``-f`` log
folder or ``-uuid`` (run folders are numbered without a lock). The best trial can then be retrained with
``--storage ... --study-name ... --trial-id N`` (``N >= 1``: the zoo ignores ``--trial-id 0``).
"""

import argparse
import runpy
import sys
from pathlib import Path
from typing import Any

import optuna
import yaml
from rl_zoo3 import ALGOS
from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER, convert_offpolicy_params, sample_td3_params

from sb3_denoise_pg import DenoisePG

ALGO_NAME = "denoise_pg"

# Zoo scripts reachable through this entry point (``record_training`` is left out: it runs ``rl_zoo3.record_video``
# in subprocesses, where denoise_pg is not registered)
COMMANDS: dict[str, str] = {
    "train": "rl_zoo3.train",
    "enjoy": "rl_zoo3.enjoy",
    "record_video": "rl_zoo3.record_video",
    "plot_train": "rl_zoo3.plots.plot_train",
    "plot_from_file": "rl_zoo3.plots.plot_from_file",
    "all_plots": "rl_zoo3.plots.all_plots",
}
# Scripts that only load a trained agent
INFERENCE_COMMANDS = ("enjoy", "record_video")
# Algorithms for which the project keeps settings of its own (``hyperparams/<algo>.yml``)
PROJECT_CONFIG_ALGOS = (ALGO_NAME, "td3", "sac")


class InferenceLoader:
    """
    Stands in for an off-policy algorithm class in ``rl_zoo3.ALGOS`` for scripts that only load a trained agent:
    ``enjoy`` and ``record_video`` give a one-transition replay buffer only to the algorithms of a hard-coded list,
    so without this a loaded DenoisePG would allocate its full replay buffer (gigabytes for Humanoid).

    :param algo_class: The algorithm class to load with
    """

    def __init__(self, algo_class: type[DenoisePG]):
        self.algo_class = algo_class

    def __getattr__(self, name: str) -> Any:
        return getattr(self.algo_class, name)

    def load(self, path: str | Path, **kwargs: Any) -> DenoisePG:
        """
        Load a model as ``algo_class.load`` does, with a dummy buffer unless the caller chose one.

        :param path: Path to the saved model
        :param kwargs: Keyword arguments of ``algo_class.load``
        :return: The loaded model
        """
        kwargs.setdefault("buffer_size", 1)
        # As the zoo does: SB3 refuses optimize_memory_usage together with handle_timeout_termination
        kwargs.setdefault("optimize_memory_usage", False)
        return self.algo_class.load(path, **kwargs)


def sample_denoise_pg_params(
    trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict[str, Any]
) -> dict[str, Any]:
    """
    Sampler for DenoisePG hyperparams: the zoo's TD3 search space plus the estimator's parameters.

    :param trial: Optuna trial
    :param n_actions: Action dimension (for the exploration noise)
    :param n_envs: Number of training environments
    :param additional_args: The zoo's extra sampler arguments (HER settings)
    :return: Hyperparameters, ready for the model's constructor
    """
    hyperparams = sample_td3_params(trial, n_actions, n_envs, additional_args)
    hyperparams.update(
        denoiser_sigma=trial.suggest_float("denoiser_sigma", 0.02, 0.5, log=True),
        n_noise_samples=trial.suggest_categorical("n_noise_samples", [1, 2, 4, 8, 16, 32]),
        cond_dropout=trial.suggest_float("cond_dropout", 0.1, 0.8),
        normalize_action_gradient=trial.suggest_categorical("normalize_action_gradient", [True, False]),
    )
    return hyperparams


def convert_denoise_pg_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the raw parameters of a stored trial back into hyperparameters (``--trial-id``). The estimator's
    parameters are stored as they are used; the TD3 ones go through the zoo's off-policy converter.

    :param sampled_params: ``trial.params`` of a trial of :func:`sample_denoise_pg_params`
    :return: Hyperparameters for the zoo's config (exploration noise still as ``noise_type``/``noise_std``)
    """
    hyperparams = convert_offpolicy_params(sampled_params)
    if "noise_type" in hyperparams and hyperparams["noise_type"] is None:
        # A trial without exploration noise: zero-std noise, as the zoo cannot express "no noise" over the
        # config's own noise_type and would pass the leftover noise_std to the constructor
        hyperparams.update(noise_type="normal", noise_std=0.0)
    return hyperparams


def register(inference: bool = False) -> None:
    """
    Make ``denoise_pg`` known to the zoo. Must run before a zoo script builds its parser.

    :param inference: Whether the script only loads trained agents (``enjoy``, ``record_video``):
        then ``denoise_pg`` loads with a one-transition replay buffer
    """
    ALGOS[ALGO_NAME] = InferenceLoader(DenoisePG) if inference else DenoisePG  # type: ignore[assignment]
    HYPERPARAMS_SAMPLER[ALGO_NAME] = sample_denoise_pg_params
    HYPERPARAMS_CONVERTER[ALGO_NAME] = convert_denoise_pg_params


def hyperparams_dir() -> Path:
    """
    :return: The project's ``hyperparams/`` folder, at the root of the repository
    """
    path = Path(__file__).resolve().parents[1] / "hyperparams"
    if not path.is_dir():
        raise FileNotFoundError(
            f"The project's hyperparameter folder {path} was not found: the zoo entry point needs a source checkout "
            "of sb3-denoise-pg (pip install -e .), or pass --conf-file explicitly."
        )
    return path


def default_conf_file(algo: str, env_id: str) -> str | None:
    """
    The ``--conf-file`` to use when the user gives none: ``hyperparams/<algo>.yml`` of the project, always for
    ``denoise_pg`` (the zoo has no file for it) and for ``td3``/``sac`` when the file has an entry for the env.

    :param algo: Zoo algorithm name
    :param env_id: Gymnasium env id
    :return: Path of the project's file, or ``None`` to let the zoo use its own
    """
    if algo not in PROJECT_CONFIG_ALGOS:
        return None
    path = hyperparams_dir() / f"{algo}.yml"
    if algo == ALGO_NAME:
        return str(path)
    if path.is_file():
        with open(path) as file:
            if env_id in (yaml.safe_load(file) or {}):
                return str(path)
    return None


def with_default_conf_file(args: list[str]) -> list[str]:
    """
    :param args: Arguments of the zoo's ``train`` script
    :return: The same, plus ``--conf-file`` when the user gave none and the project has one (:func:`default_conf_file`)
    """
    # The zoo's own names and defaults for the options involved
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("-conf", "--conf-file", default=None)
    known, _ = parser.parse_known_args(args)
    if known.conf_file is not None:
        return args
    conf_file = default_conf_file(known.algo, known.env)
    return args if conf_file is None else [*args, "--conf-file", conf_file]


def main(argv: list[str] | None = None) -> None:
    """
    Run a zoo script with DenoisePG registered: ``sb3-denoise-pg-zoo <command> [zoo arguments]``.

    :param argv: Command and its arguments (``sys.argv[1:]`` when ``None``)
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 0 or argv[0] not in COMMANDS:
        print(f"usage: sb3-denoise-pg-zoo {{{','.join(COMMANDS)}}} [zoo arguments]", file=sys.stderr)
        sys.exit(0 if argv[:1] in (["-h"], ["--help"]) else 2)
    command, args = argv[0], argv[1:]
    register(inference=command in INFERENCE_COMMANDS)
    if command == "train":
        args = with_default_conf_file(args)
    # The zoo's scripts parse sys.argv, and some of them run only as __main__
    sys.argv = [f"{Path(sys.argv[0]).name} {command}", *args]
    runpy.run_module(COMMANDS[command], run_name="__main__")


if __name__ == "__main__":
    main()
