"""
Claim 3 of the source post, its own demo redone on data that ships with scikit-learn (8x8 digits, no download):
walking an image towards a "canonical 9" along the score difference ``(D(x~ | 9) - D(x~)) / sigma^2`` of one
denoiser trained conditional and unconditional on the digit label (``grad_x log p(9 | x)`` by Bayes' rule, smoothed
at noise ``sigma``), beside the same walk along a trained classifier's input-gradient ``grad_x log p(9 | x)``.

Robustness is read off an *independent* judge, a second classifier of another family (logistic regression on the
pixels, never used by either walk): a walk that makes real 9-like images convinces it too; an adversarial walk
convinces only the network whose gradient it follows. Both walks take steps of the same L2 length.

    python -m benchmarks.claims.digits [--steps 40] [--step-size 0.5] [--sigma 0.5] [--seed 0]

Writes ``benchmarks/claims/results/digits.{md,png,json}``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch as th
from torch import nn

RESULTS = Path(__file__).resolve().parent / "results"
N_CLASSES, N_PIXELS, TARGET = 10, 64, 9


def load_digits() -> tuple[th.Tensor, th.Tensor]:
    """Images scaled to ``[-1, 1]``, shape ``(n, 64)``, and labels."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    return th.as_tensor(data.data / 8.0 - 1.0, dtype=th.float32), th.as_tensor(data.target)


def mlp(n_in: int, n_out: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


class LabelDenoiser(nn.Module):
    """``D(x~ | y)`` and, with the null label (index 10), ``D(x~)``: predicts the noise, as the policy's denoiser."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma
        self.net = mlp(N_PIXELS + N_CLASSES + 1, N_PIXELS)

    def forward(self, noisy: th.Tensor, labels: th.Tensor) -> th.Tensor:
        one_hot = nn.functional.one_hot(labels, N_CLASSES + 1).float()  # the last class is "no label"
        return noisy - self.sigma * self.net(th.cat([noisy, one_hot], dim=1))

    def score_difference(self, x: th.Tensor, label: int, n_draws: int = 32) -> th.Tensor:
        """``mean_z (D(x + sigma z | label) - D(x + sigma z)) / sigma^2``: docs/estimator.rst, eq. (5), without the return."""
        with th.no_grad():
            noisy = x.repeat(n_draws, 1) + self.sigma * th.randn(n_draws * len(x), x.shape[1])
            labels = th.full((len(noisy),), label)
            diff = self(noisy, labels) - self(noisy, th.full_like(labels, N_CLASSES))
            return (diff / self.sigma**2).reshape(n_draws, len(x), -1).mean(0)


def train_denoiser(images: th.Tensor, labels: th.Tensor, sigma: float, epochs: int, cond_dropout: float = 0.2):
    model = LabelDenoiser(sigma)
    optimizer = th.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for index in th.randperm(len(images)).split(128):
            x, y = images[index], labels[index].clone()
            y[th.rand(len(y)) < cond_dropout] = N_CLASSES
            loss = (model(x + sigma * th.randn_like(x), y) - x).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def train_classifier(images: th.Tensor, labels: th.Tensor, epochs: int) -> nn.Module:
    model = mlp(N_PIXELS, N_CLASSES)
    optimizer = th.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for index in th.randperm(len(images)).split(128):
            loss = nn.functional.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def classifier_gradient(classifier: nn.Module, x: th.Tensor) -> th.Tensor:
    """``grad_x log p(9 | x)`` of the classifier."""
    x = x.detach().requires_grad_(True)
    (gradient,) = th.autograd.grad(classifier(x).log_softmax(1)[:, TARGET].sum(), x)
    return gradient


def walk(start: th.Tensor, direction, n_steps: int, step_size: float) -> list[th.Tensor]:
    """Normalised-gradient ascent from ``start``: every step has L2 length ``step_size``, pixels stay in [-1, 1]."""
    path = [start]
    for _ in range(n_steps):
        g = direction(path[-1])
        path.append((path[-1] + step_size * g / (g.norm(dim=1, keepdim=True) + 1e-12)).clamp(-1, 1))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--step-size", type=float, default=0.5, help="L2 length of a step (an image has norm ~6)")
    parser.add_argument("--sigma", type=float, default=0.5, help="noise level of the denoiser")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--n-start", type=int, default=50, help="test images (not 9s) walked from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    th.manual_seed(args.seed)
    th.set_num_threads(1)
    from sklearn.linear_model import LogisticRegression

    images, labels = load_digits()
    permutation = th.randperm(len(images))
    train, test = permutation[: len(images) * 4 // 5], permutation[len(images) * 4 // 5 :]
    denoiser = train_denoiser(images[train], labels[train], args.sigma, args.epochs)
    classifier = train_classifier(images[train], labels[train], args.epochs // 4)
    judge = LogisticRegression(max_iter=2000).fit(images[train].numpy(), labels[train].numpy())
    with th.no_grad():
        accuracy = (classifier(images[test]).argmax(1) == labels[test]).float().mean().item()
    judge_accuracy = judge.score(images[test].numpy(), labels[test].numpy())

    starts = test[labels[test] != TARGET][: args.n_start]
    walks = {
        "denoiser score difference": walk(
            images[starts], lambda x: denoiser.score_difference(x, TARGET), args.steps, args.step_size
        ),
        "classifier input-gradient": walk(
            images[starts], lambda x: classifier_gradient(classifier, x), args.steps, args.step_size
        ),
    }
    curves = {}
    for name, path in walks.items():
        with th.no_grad():
            own = [classifier(x).softmax(1)[:, TARGET].mean().item() for x in path]
        independent = [judge.predict_proba(x.numpy())[:, TARGET].mean() for x in path]
        curves[name] = {"classifier p(9)": own, "independent judge p(9)": [float(p) for p in independent]}

    nines = images[train][labels[train] == TARGET]
    held_out_nines = images[test][labels[test] == TARGET]

    def nearest_nine(x: th.Tensor) -> float:
        """Mean L2 distance to the closest training 9: how far from real 9s the walk ends."""
        return th.cdist(x, nines).min(dim=1).values.mean().item()

    rows = [
        f"| {name} | {c['classifier p(9)'][-1]:.2f} | {c['independent judge p(9)'][-1]:.2f} | "
        f"{(walks[name][-1] - walks[name][0]).norm(dim=1).mean():.2f} | {nearest_nine(walks[name][-1]):.2f} |"
        for name, c in curves.items()
    ]
    command = " ".join(["python -m benchmarks.claims.digits", *argv])
    table = "\n".join(
        [
            f"`{command}`: {len(starts)} test images that are not 9s, {args.steps} steps of L2 length {args.step_size}.",
            f"Held-out accuracy: classifier {accuracy:.3f}, independent judge (logistic regression) {judge_accuracy:.3f}.",
            "",
            f"A held-out 9 lies {nearest_nine(held_out_nines):.2f} (mean L2) from its nearest training 9.",
            "",
            "| walk along | classifier p(9) at the end | independent judge p(9) at the end | mean L2 distance moved "
            "| mean L2 distance to the closest training 9 |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "digits.md").write_text(table + "\n")
    (args.output / "digits.json").write_text(json.dumps({"command": command, "curves": curves}, indent=1) + "\n")
    plot(walks, curves, args.output / "digits.png")
    print(table)


def plot(walks: dict[str, list[th.Tensor]], curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib.pyplot as plt

    from benchmarks.figures import save_figure, style

    n_shown, n_frames = 3, 9
    with style():
        fig = plt.figure(figsize=(10.5, 6.2))
        grid = fig.add_gridspec(2 * n_shown + 1, n_frames + 3)
        for row_block, (name, path_) in enumerate(walks.items()):
            frames = np.linspace(0, len(path_) - 1, n_frames).round().astype(int)
            for i in range(n_shown):
                for j, frame in enumerate(frames):
                    ax = fig.add_subplot(grid[row_block * n_shown + i + (1 if row_block else 0), j])
                    ax.imshow(path_[frame][i].reshape(8, 8).numpy(), cmap="gray_r", vmin=-1, vmax=1)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if i == 0 and j == 0:
                        ax.set_title(name, fontsize=10, loc="left")
        ax = fig.add_subplot(grid[:, n_frames:])
        for name, curve in curves.items():
            for judge, line_style in zip(curve, ("-", "--"), strict=True):
                ax.plot(curve[judge], line_style, label=f"{name}: {judge}")
        ax.set_xlabel("step")
        ax.set_ylabel("mean p(9)")
        ax.legend(fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, path, dpi=100)


if __name__ == "__main__":
    main()
