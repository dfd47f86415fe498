"""
The critic control variate on the linear-Gaussian world, whose ``grad_a Q`` is known: one DenoisePG's critic and
denoiser fitted on one-step transitions of a Gaussian behaviour policy, then its estimate on fresh transitions with the
control variate off, at the batch's ``lambda*`` and at fixed ``lambda``, with independent or orthogonal draws, for
several numbers of draws. Per transition: the cosine with the true gradient, and the variance around the smoothed
truth ``k grad_a Q`` (``k`` fitted by least squares); per minibatch of 256: the cosine of the means.

    python -m benchmarks.control_variate [--dim 16] [--noise-std 0.02] [--tau 0.1] [--sigma 0.2] [--steps 4000]

Writes ``benchmarks/results/control-variate/results.{md,json}``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch as th

from benchmarks import RESULTS_DIR, markdown_table, started

OUTPUT = RESULTS_DIR / "control-variate"
SETTINGS = [(None, False), ("optimal", False), (0.2, False), (1.0, False), (None, True), ("optimal", True)]


def fit(dim: int, noise_std: float, tau: float, sigma: float, steps: int, n_transitions: int, seed: int):
    """
    A DenoisePG (defaults, ``[128, 128]``) whose critic, denoiser and actor trained on behaviour transitions; of the
    ablations' class, which also draws orthogonal noise (the same model as ``DenoisePG`` at the same seed).
    """
    from stable_baselines3.common.logger import configure

    from benchmarks.ablation_variants import AblationDenoisePG as DenoisePG
    from sb3_denoise_pg.envs import LinearGaussianWorld

    env = LinearGaussianWorld(action_dim=dim, noise_std=noise_std)
    model = DenoisePG("MlpPolicy", env, seed=seed, denoiser_sigma=sigma, policy_kwargs=dict(net_arch=[128, 128]))
    model.set_logger(configure(None, []))
    obs, actions, next_obs, rewards = env.behaviour_transitions(n_transitions, tau, np.random.default_rng(seed))
    model.replay_buffer.extend(obs, next_obs, actions, rewards[:, None], np.ones((n_transitions, 1)), [[{}]] * n_transitions)
    model.train(gradient_steps=steps, batch_size=256)
    return model, env


def agreement(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    scale = float((estimate * truth).sum() / (truth * truth).sum())
    norms = np.linalg.norm(estimate, axis=1) * np.linalg.norm(truth, axis=1) + 1e-12
    means = [(x.reshape(-1, 256, x.shape[1]).mean(1)) for x in (estimate, truth)]
    minibatch = (means[0] * means[1]).sum(1) / (np.linalg.norm(means[0], axis=1) * np.linalg.norm(means[1], axis=1))
    return {
        "cos_per_transition": float(((estimate * truth).sum(1) / norms).mean()),
        "cos_minibatch": float(minibatch.mean()),
        "variance_around_truth": float(((estimate - scale * truth) ** 2).sum(1).mean()),
        "smoothing_k": scale,
    }


def measure(model, env, n_eval: int, draws: list[int], seed: int) -> list[dict]:
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    obs, actions, next_obs, rewards = env.behaviour_transitions(n_eval, model.tau_behaviour, np.random.default_rng(seed))
    columns = (obs, actions, next_obs, np.ones((n_eval, 1)), rewards[:, None])
    batch = ReplayBufferSamples(*(th.as_tensor(column, dtype=th.float32) for column in columns))
    truth = env.true_action_gradient(obs, actions)
    rows = []
    for n_draws in draws:
        for control_variate, orthogonal in SETTINGS:
            model.n_noise_samples, model.critic_control_variate, model.orthogonal_noise = n_draws, control_variate, orthogonal
            th.manual_seed(seed)
            estimate = model.estimate(batch)
            rows.append(
                {
                    "n_draws": n_draws,
                    "critic_control_variate": control_variate,
                    "orthogonal_noise": orthogonal,
                    "lambda": estimate.cv_coefficient,
                    **agreement(estimate.gradient.double().numpy(), truth),
                }
            )
    critic = model.critic_action_gradient(batch.observations, batch.actions).double().numpy()
    rows.append({"n_draws": "critic gradient (TD3)", "critic_control_variate": None, "orthogonal_noise": False, "lambda": 0.0})
    rows[-1].update(agreement(critic, truth))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--noise-std", type=float, default=0.02, help="the world's outcome noise (nearly deterministic)")
    parser.add_argument("--tau", type=float, default=0.1, help="behaviour noise of the replay actions")
    parser.add_argument("--sigma", type=float, default=0.2, help="denoiser_sigma")
    parser.add_argument("--steps", type=int, default=4000, help="gradient steps of the fit (batch 256)")
    parser.add_argument("--transitions", type=int, default=10_000)
    parser.add_argument("--draws", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    made, start = started(), time.perf_counter()
    model, env = fit(args.dim, args.noise_std, args.tau, args.sigma, args.steps, args.transitions, args.seed)
    model.tau_behaviour = args.tau
    rows = measure(model, env, 4096, args.draws, args.seed + 1)
    headers = ["draws", "control variate", "orthogonal", "lambda", "cos per transition", "cos minibatch (256)"]
    headers += ["variance around k grad_a Q", "k"]
    table = markdown_table(
        headers,
        [
            [row["n_draws"], row["critic_control_variate"], row["orthogonal_noise"], f"{row['lambda']:.3f}"]
            + [f"{row[key]:.3f}" for key in ("cos_per_transition", "cos_minibatch", "variance_around_truth", "smoothing_k")]
            for row in rows
        ],
    )
    command = " ".join(["python -m benchmarks.control_variate", *argv])
    wall_time = time.perf_counter() - start
    args.output.mkdir(parents=True, exist_ok=True)
    header = f"`{command}` ({wall_time:.0f} s on one core; sb3-denoise-pg {made['version']}, commit {made['commit']}, "
    header += f"{made['date']})\n\nLinearGaussianWorld(action_dim={args.dim}, noise_std={args.noise_std}), behaviour "
    header += f"a ~ N(0.2, {args.tau}^2), denoiser_sigma={args.sigma}, {args.transitions} transitions, {args.steps} steps.\n\n"
    (args.output / "results.md").write_text(header + table + "\n")
    (args.output / "results.json").write_text(json.dumps({**made, "command": command, "rows": rows}, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
