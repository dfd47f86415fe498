"""The RL Zoo entry point (``python -m sb3_denoise_pg.zoo``) and the project's hyperparameter files."""

import argparse
import inspect
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import optuna
import pytest
import yaml
from rl_zoo3.exp_manager import ExperimentManager

import sb3_denoise_pg  # noqa: F401  (registers the noisy worlds)
from sb3_denoise_pg import DenoisePG, zoo
from sb3_denoise_pg.envs import LINEAR_GAUSSIAN_ID, NOISY_ENV_IDS

HYPERPARAMS = Path(zoo.__file__).resolve().parents[1] / "hyperparams"
ZOO_HYPERPARAMS = Path(inspect.getfile(ExperimentManager)).parent / "hyperparams"
ESTIMATOR_KEYS = (
    "denoiser_sigma",
    "n_noise_samples",
    "antithetic",
    "cond_dropout",
    "normalize_action_gradient",
    "critic_control_variate",
    "actor_preactivation_penalty",
)
REQUIRED_DENOISE_PG_ENVS = (
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "LunarLanderContinuous-v3",
    "BipedalWalker-v3",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Ant-v5",
    "Humanoid-v5",
    "InvertedPendulum-v5",
    "Reacher-v5",
    LINEAR_GAUSSIAN_ID,
    *NOISY_ENV_IDS,
)
NAMESPACED_ENV = "sb3_denoise_pg/NoisyPendulum-v1"
# Tiny runs: learning starts early, small networks and batches
TINY = ("--num-threads", "1", "--hyperparams", "learning_starts:100", "batch_size:32", "policy_kwargs:dict(net_arch=[32])")
# Runs a zoo script with DenoisePG registered and reports the replay buffer size of every model loaded for inference
ENJOY_SCRIPT = """
import sys
from sb3_denoise_pg import zoo
load = zoo.InferenceLoader.load
def recording_load(self, path, **kwargs):
    model = load(self, path, **kwargs)
    print("REPLAY_BUFFER_SIZE", model.replay_buffer.buffer_size)
    return model
zoo.InferenceLoader.load = recording_load
zoo.main(sys.argv[1:])
"""


def zoo_command(*args: str, script: str | None = None) -> list[str]:
    entry = ["-c", script] if script is not None else ["-m", "sb3_denoise_pg.zoo"]
    return [sys.executable, *entry, *args]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_zoo(*args: str, cwd: Path, script: str | None = None, timeout: float = 180) -> str:
    result = subprocess.run(
        zoo_command(*args, script=script), cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def is_number_string(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def load_yaml(path: Path) -> dict:
    with open(path) as file:
        return yaml.safe_load(file)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny DenoisePG training through the entry point, on a namespaced env id; returns the zoo's log folder."""
    cwd = tmp_path_factory.mktemp("train")
    args = ("--algo", "denoise_pg", "--env", NAMESPACED_ENV, "-n", "300", "--eval-freq", "150", "--eval-episodes", "1")
    run_zoo("train", *args, "--seed", "0", "-f", "logs", *TINY, cwd=cwd)
    return cwd / "logs"


@pytest.mark.xdist_group("zoo-trained")  # one worker makes the module fixture, not both
def test_train_log_layout(trained):
    # The zoo names the folder after the env id with "/" replaced by "-": no nested folder for the namespace
    assert [path.name for path in (trained / "denoise_pg").iterdir()] == ["sb3_denoise_pg-NoisyPendulum-v1_1"]
    run_dir = trained / "denoise_pg" / "sb3_denoise_pg-NoisyPendulum-v1_1"
    assert (run_dir / "sb3_denoise_pg-NoisyPendulum-v1.zip").is_file()
    assert (run_dir / "best_model.zip").is_file()
    evaluations = np.load(run_dir / "evaluations.npz")
    assert list(evaluations["timesteps"]) == [150, 300]
    config = dict(yaml.unsafe_load((run_dir / "sb3_denoise_pg-NoisyPendulum-v1" / "config.yml").read_text()))
    # The project's denoise_pg.yml was used, with the command line's overrides
    assert config["denoiser_sigma"] == 0.2 and config["gamma"] == 0.98 and config["learning_starts"] == 100


@pytest.mark.xdist_group("zoo-trained")  # one worker makes the module fixture, not both
def test_enjoy_loads_without_replay_buffer(trained):
    args = ("--algo", "denoise_pg", "--env", NAMESPACED_ENV, "-f", str(trained), "-n", "50", "--no-render")
    stdout = run_zoo("enjoy", *args, "--num-threads", "1", cwd=trained.parent, script=ENJOY_SCRIPT)
    assert "REPLAY_BUFFER_SIZE 1" in stdout.splitlines()


@pytest.fixture(scope="module")
def shared_study(tmp_path_factory) -> tuple[Path, str]:
    """Two workers optimising DenoisePG concurrently on one study in a journal file (the multi-machine set-up)."""
    cwd = tmp_path_factory.mktemp("optimize")
    storage, study_name = cwd / "shared" / "study.log", "denoise_pg_pendulum"
    args = ("train", "--algo", "denoise_pg", "--env", "Pendulum-v1", "-n", "150", "-optimize", "--n-trials", "2")
    args += ("--n-jobs", "1", "--sampler", "random", "--pruner", "none", "--eval-episodes", "1", "--n-evaluations", "1")
    args += ("--no-optim-plots", "--storage", str(storage), "--study-name", study_name, *TINY)
    workers = [
        subprocess.Popen(
            zoo_command(*args, "-f", f"logs_{worker}", "--seed", str(worker)),
            cwd=cwd,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for worker in range(2)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, output[-4000:]
    return storage, study_name


@pytest.mark.xdist_group("zoo-study")  # one worker makes the module fixture, not both
def test_optimize_shared_study(shared_study):
    storage, study_name = shared_study
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage)))
    study = optuna.load_study(study_name=study_name, storage=journal)
    # Two trials from each worker (a trial whose random hyperparameters give NaNs is pruned by the zoo)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert len(study.trials) == 4 and all(trial.state in finished for trial in study.trials)
    for trial in study.trials:
        assert set(trial.params) >= {"denoiser_sigma", "n_noise_samples", "cond_dropout", "normalize_action_gradient"}
        assert set(trial.params) >= {"learning_rate", "tau", "net_arch", "noise_type"}


@pytest.mark.xdist_group("zoo-study")  # one worker makes the module fixture, not both
def test_trial_id(shared_study, tmp_path):
    storage, study_name = shared_study
    # --trial-id 0 is ignored by the zoo (falsy), hence trial 1
    args = ("--algo", "denoise_pg", "--env", "Pendulum-v1", "-n", "200", "--eval-freq", "-1", "-f", "logs")
    run_zoo("train", *args, "--storage", str(storage), "--study-name", study_name, "--trial-id", "1", *TINY, cwd=tmp_path)
    config = dict(yaml.unsafe_load((tmp_path / "logs/denoise_pg/Pendulum-v1_1/Pendulum-v1/config.yml").read_text()))
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage)))
    params = optuna.load_study(study_name=study_name, storage=journal).trials[1].params
    assert config["denoiser_sigma"] == params["denoiser_sigma"]
    assert config["gamma"] == pytest.approx(1 - params["one_minus_gamma"])
    # A trial without exploration noise comes back as zero-std noise
    expected_noise = ("normal", 0.0) if params["noise_type"] is None else (params["noise_type"], params["noise_std"])
    assert (config["noise_type"], config["noise_std"]) == expected_noise


def test_convert_trial_without_noise():
    params = dict(one_minus_gamma=0.01, batch_size_pow=6, learning_rate=1e-3, train_freq=2, tau=0.01, net_arch="small")
    params.update(noise_type=None, noise_std=0.3, denoiser_sigma=0.2, n_noise_samples=4, cond_dropout=0.5)
    hyperparams = zoo.convert_denoise_pg_params({**params, "normalize_action_gradient": False})
    assert hyperparams["noise_type"] == "normal" and hyperparams["noise_std"] == 0.0
    assert hyperparams["batch_size"] == 64 and hyperparams["gradient_steps"] == 2
    assert hyperparams["denoiser_sigma"] == 0.2 and hyperparams["normalize_action_gradient"] is False


def test_sampler():
    zoo.register()
    trial = optuna.create_study().ask()
    additional_args = dict(using_her_replay_buffer=False, her_kwargs={})
    hyperparams = zoo.HYPERPARAMS_SAMPLER["denoise_pg"](trial, 2, 1, additional_args)
    assert {"denoiser_sigma", "n_noise_samples", "cond_dropout", "normalize_action_gradient"} <= set(hyperparams)
    assert {"gamma", "learning_rate", "batch_size", "tau", "policy_kwargs"} <= set(hyperparams)
    # What the sampler returns is what --trial-id rebuilds from the stored trial
    converted = zoo.HYPERPARAMS_CONVERTER["denoise_pg"](trial.params)
    assert {key: converted[key] for key in ("gamma", "denoiser_sigma", "n_noise_samples")} == {
        key: hyperparams[key] for key in ("gamma", "denoiser_sigma", "n_noise_samples")
    }


def test_default_conf_file():
    conf = ("--conf-file", str(HYPERPARAMS / "denoise_pg.yml"))
    # denoise_pg: always the project's file (the zoo has none), also for envs without an entry ("default")
    assert zoo.with_default_conf_file(["--algo", "denoise_pg", "--env", "Pendulum-v1"])[-2:] == list(conf)
    assert zoo.with_default_conf_file(["--algo=denoise_pg", "--env=CartPole-v1"])[-2:] == list(conf)
    # td3/sac: the project's file for the envs it has, the zoo's otherwise
    td3_args = ["--algo", "td3", "--env", "HalfCheetah-v5"]
    assert zoo.with_default_conf_file(td3_args) == [*td3_args, "--conf-file", str(HYPERPARAMS / "td3.yml")]
    sac_args = ["--env", NAMESPACED_ENV, "--algo", "sac"]
    assert zoo.with_default_conf_file(sac_args) == [*sac_args, "--conf-file", str(HYPERPARAMS / "sac.yml")]
    for args in (["--algo", "td3", "--env", "Pendulum-v1"], ["--algo", "ppo", "--env", "HalfCheetah-v5"], []):
        assert zoo.with_default_conf_file(args) == args
    # A conf file given by the user is kept
    for args in (["--algo", "denoise_pg", "-conf", "mine.yml"], ["--algo", "denoise_pg", "--conf-file", "mine.yml"]):
        assert zoo.with_default_conf_file(args) == args


def test_missing_hyperparams_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(zoo, "__file__", str(tmp_path / "sb3_denoise_pg" / "zoo.py"))
    with pytest.raises(FileNotFoundError, match="hyperparameter folder"):
        zoo.default_conf_file("denoise_pg", "Pendulum-v1")


def test_unknown_command():
    with pytest.raises(SystemExit) as error:
        zoo.main(["fly"])
    assert error.value.code == 2


@pytest.mark.parametrize("algo", ["denoise_pg", "td3", "sac"])
def test_hyperparams_file(algo):
    hyperparams = load_yaml(HYPERPARAMS / f"{algo}.yml")
    zoo_hyperparams = load_yaml(ZOO_HYPERPARAMS / f"{algo if algo != 'denoise_pg' else 'td3'}.yml")
    assert set(hyperparams) >= {LINEAR_GAUSSIAN_ID, *NOISY_ENV_IDS}
    for env_id, entry in hyperparams.items():
        assert env_id == "default" or env_id in gym.registry, env_id
        assert isinstance(entry["n_timesteps"], (int, float)) and entry["policy"] == "MlpPolicy", env_id
        # A number left as a string (1e6 without !!float) would reach the constructor as a str
        assert not [key for key, value in entry.items() if is_number_string(value)], env_id
        if algo == "denoise_pg":
            # The zoo's TD3 entry of the nearest env plus the estimator's settings
            entry = {key: value for key, value in entry.items() if key not in ESTIMATOR_KEYS}
        else:
            # Only envs the zoo lacks, each with the zoo's own settings of the nearest env
            assert env_id not in zoo_hyperparams, env_id
        assert entry in zoo_hyperparams.values(), env_id
    if algo == "denoise_pg":
        assert set(hyperparams) >= set(REQUIRED_DENOISE_PG_ENVS)
        defaults = inspect.signature(DenoisePG).parameters
        for entry in hyperparams.values():
            assert {key: entry[key] for key in ESTIMATOR_KEYS} == {key: defaults[key].default for key in ESTIMATOR_KEYS}


@pytest.mark.parametrize(
    "env_id",
    ["Pendulum-v1", "MountainCarContinuous-v0", "HalfCheetah-v5", "sb3_denoise_pg/NoisyHopper-v5", LINEAR_GAUSSIAN_ID],
)
def test_entry_constructs_model(env_id, tmp_path):
    """The zoo's own pre-processing of an entry gives a DenoisePG (constructed, not trained)."""
    zoo.register()
    manager = ExperimentManager(
        argparse.Namespace(),
        "denoise_pg",
        env_id,
        str(tmp_path),
        eval_freq=-1,
        hyperparams=dict(buffer_size=1000),
        config=zoo.default_conf_file("denoise_pg", env_id),
        seed=0,
        verbose=0,
        device="cpu",
    )
    model, _ = manager.setup_experiment()
    entry = load_yaml(HYPERPARAMS / "denoise_pg.yml")[env_id]
    assert isinstance(model, DenoisePG) and model.replay_buffer.buffer_size == 1000
    assert model.denoiser_sigma == entry["denoiser_sigma"] and model.action_noise is not None
    assert model.actor.mu[0].out_features == 400
