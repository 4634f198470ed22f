"""Two small experiments behind the classic questions of docs/walkthrough.md, deterministic and CPU-only.

    python -m {{ cookiecutter.package }}.demos gradients [--depth 20] [--width 64] [--seed 0] [--out PNG]
    python -m {{ cookiecutter.package }}.demos norms [--batch 8] [--features 16] [--seed 0]

`gradients` measures the gradient norm of every hidden layer of three equally deep MLPs on one fixed random
batch: a sigmoid MLP, whose gradient shrinks by a constant factor per layer going backwards (the sigmoid's
slope is at most 1/4: Hochreiter 1991; Glorot and Bengio 2010, "Understanding the difficulty of training
deep feedforward neural networks"); a plain ReLU MLP, which vanishes too at PyTorch's default init (its
weights are smaller than He et al. 2015's ReLU init); and a pre-norm residual ReLU MLP, where each block
adds to an identity path (He et al. 2016, "Deep Residual Learning") and LayerNorm (Ba et al. 2016) keeps
every block's input at unit scale, so the gradient reaches the first layer undiminished. This is why
pre-LN Transformer blocks (GPT-2, ViT) are `x + f(norm(x))`.

`norms` shows what separates BatchNorm (Ioffe and Szegedy 2015) from LayerNorm: BatchNorm normalises each
feature over the batch, so a sample's output depends on its batch-mates and differs between train and eval
mode (running statistics); LayerNorm normalises each sample over its features, identically in both modes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from rich.console import Console
from rich.table import Table
from torch import nn

# ---------------------------------------------------------------------------------------------------
# Vanishing gradients
# ---------------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """x + Linear(ReLU(LayerNorm(x))): the pre-norm residual block of GPT-2 and ViT, with an MLP of one layer."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) -> (B, C)."""
        return x + self.fc(F.relu(self.norm(x)))


def sigmoid_mlp(depth: int, width: int) -> nn.Sequential:
    """`depth` x (Linear -> sigmoid), then a linear head to one output."""
    layers = [module for _ in range(depth) for module in (nn.Linear(width, width), nn.Sigmoid())]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def relu_mlp(depth: int, width: int) -> nn.Sequential:
    """`depth` x (Linear -> ReLU), then a linear head to one output."""
    layers = [module for _ in range(depth) for module in (nn.Linear(width, width), nn.ReLU())]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def residual_mlp(depth: int, width: int) -> nn.Sequential:
    """`depth` residual blocks, a final LayerNorm (pre-norm leaves the stream unnormalised), a linear head."""
    return nn.Sequential(*(ResidualBlock(width) for _ in range(depth)), nn.LayerNorm(width), nn.Linear(width, 1))


NETWORKS: dict[str, Callable[[int, int], nn.Sequential]] = {
    "sigmoid MLP": sigmoid_mlp,
    "ReLU MLP": relu_mlp,
    "ReLU residual + LayerNorm": residual_mlp,
}


def hidden_layers(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers of the hidden blocks, input side first (every Linear but the head)."""
    return [module for module in model.modules() if isinstance(module, nn.Linear)][:-1]


def gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """L2 norm of dLoss/dW of each hidden layer after one backward pass of the MSE loss.

    Args:
        model: A network from `NETWORKS`.
        x: Inputs (B, C).
        y: Regression targets (B, 1).

    Returns:
        One norm per hidden layer, input side first.
    """
    model.zero_grad(set_to_none=True)
    F.mse_loss(model(x), y).backward()
    return [layer.weight.grad.norm().item() for layer in hidden_layers(model)]


def gradient_report(depth: int = 20, width: int = 64, batch: int = 256, seed: int = 0) -> dict[str, list[float]]:
    """Per-layer gradient norms of every network in `NETWORKS`, each built and fed from `seed`.

    The global RNG is left as it was: weights are drawn inside `torch.random.fork_rng`, data from a
    generator of its own, so the numbers depend on the arguments only.

    Returns:
        {network name: `depth` gradient norms, input side first}.
    """
    for name, value, low in (("depth", depth, 2), ("width", width, 1), ("batch", batch, 1)):
        if value < low:
            raise ValueError(f"{name}={value} is too small; expected an integer >= {low}")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, width, generator=generator)  # (B, C)
    y = torch.randn(batch, 1, generator=generator)  # (B, 1)
    report = {}
    for name, build in NETWORKS.items():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build(depth, width)
        report[name] = gradient_norms(model, x, y)
    return report


def gradients_table(report: dict[str, list[float]]) -> Table:
    """One row per layer, one column per network, and the first/last ratio that sums it up."""
    table = Table(title="Gradient norm |dL/dW| per layer (layer 1 = input side)")
    table.add_column("layer", justify="right")
    for name in report:
        table.add_column(name, justify="right")
    depth = len(next(iter(report.values())))
    for layer in range(depth):
        table.add_row(str(layer + 1), *(f"{norms[layer]:.2e}" for norms in report.values()))
    table.add_section()
    table.add_row("first / last", *(f"{norms[0] / norms[-1]:.1e}" for norms in report.values()), style="bold")
    return table


def plot_gradients(report: dict[str, list[float]]) -> Figure:
    """Gradient norm against layer on a log scale, one line per network."""
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, norms in report.items():
        positive = [(layer + 1, norm) for layer, norm in enumerate(norms) if norm > 0]  # 0 has no logarithm
        ax.plot(*zip(*positive, strict=True), marker="o", markersize=3, label=name)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (1 = input side)")
    ax.set_ylabel("gradient norm |dL/dW|")
    ax.set_title(f"Vanishing gradients in {len(next(iter(report.values())))} layers")
    ax.legend()
    return fig


# ---------------------------------------------------------------------------------------------------
# BatchNorm vs LayerNorm
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NormBehaviour:
    """How one normalisation layer treats sample 0 of a batch (all in training mode unless stated)."""

    batch_dependence: float  # max |change| of sample 0's output when the other samples are replaced
    train_eval_gap: float  # max |train-mode output - eval-mode output| for sample 0
    feature_mean: float  # max |mean over the batch| of an output feature (0 = normalised per feature)
    sample_mean: float  # max |mean over the features| of an output sample (0 = normalised per sample)
    batch_of_one: bool  # can it train on a batch of one sample?


def norm_behaviour(norm: nn.Module, x: torch.Tensor, other: torch.Tensor) -> NormBehaviour:
    """Measure `norm` on batch `x` (B, C) and on `x` with samples 1.. replaced by `other` (B - 1, C)."""
    mixed = torch.cat([x[:1], other])  # (B, C): the same sample 0 among different batch-mates
    norm.train()
    out = norm(x)  # (B, C)
    out_mixed = norm(mixed)
    norm.eval()
    out_eval = norm(x)
    norm.train()
    try:
        norm(x[:1])
        batch_of_one = True
    except ValueError:  # BatchNorm: "Expected more than 1 value per channel when training"
        batch_of_one = False
    with torch.no_grad():
        return NormBehaviour(
            batch_dependence=(out[0] - out_mixed[0]).abs().max().item(),
            train_eval_gap=(out[0] - out_eval[0]).abs().max().item(),
            feature_mean=out.mean(dim=0).abs().max().item(),
            sample_mean=out.mean(dim=1).abs().max().item(),
            batch_of_one=batch_of_one,
        )


def norms_report(batch: int = 8, features: int = 16, seed: int = 0) -> dict[str, NormBehaviour]:
    """BatchNorm1d and LayerNorm on the same batch, whose features have different scales and offsets."""
    if batch < 2 or features < 2:
        raise ValueError(f"batch={batch}, features={features} are too small; expected both >= 2")
    generator = torch.Generator().manual_seed(seed)
    scale = torch.logspace(-1, 1, features)  # (C,) features from 0.1 to 10 in size, as raw inputs are
    x = torch.randn(batch, features, generator=generator) * scale + 3.0  # (B, C)
    other = torch.randn(batch - 1, features, generator=generator) * scale - 3.0  # (B - 1, C)
    return {
        "BatchNorm1d": norm_behaviour(nn.BatchNorm1d(features), x, other),
        "LayerNorm": norm_behaviour(nn.LayerNorm(features), x, other),
    }


def norms_table(report: dict[str, NormBehaviour]) -> Table:
    """One row per property, one column per normalisation layer."""
    table = Table(title="BatchNorm vs LayerNorm on one batch (training mode unless stated)")
    table.add_column("property")
    for name in report:
        table.add_column(name, justify="right")
    rows = (
        ("sample 0 changes when its batch-mates change", lambda b: f"{b.batch_dependence:.3f}"),
        ("train vs eval output of sample 0", lambda b: f"{b.train_eval_gap:.3f}"),
        ("|mean| of each feature over the batch", lambda b: f"{b.feature_mean:.1e}"),
        ("|mean| of each sample over its features", lambda b: f"{b.sample_mean:.1e}"),
        ("trains on a batch of one", lambda b: "yes" if b.batch_of_one else "no"),
    )
    for label, show in rows:
        table.add_row(label, *(show(behaviour) for behaviour in report.values()))
    return table


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m {{ cookiecutter.package }}.demos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    demos = parser.add_subparsers(dest="demo", required=True)
    grad = demos.add_parser("gradients", help="gradient norm per layer: sigmoid vs ReLU vs residual + LayerNorm")
    grad.add_argument("--depth", type=int, default=20, help="hidden layers per network (default 20)")
    grad.add_argument("--width", type=int, default=64, help="features per layer (default 64)")
    grad.add_argument("--batch", type=int, default=256, help="examples in the fixed batch (default 256)")
    grad.add_argument("--seed", type=int, default=0)
    grad.add_argument("--out", type=Path, default=None, help="also save the plot here (a .png path)")
    norms = demos.add_parser("norms", help="BatchNorm vs LayerNorm: batch dependence, train vs eval")
    norms.add_argument("--batch", type=int, default=8)
    norms.add_argument("--features", type=int, default=16)
    norms.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    try:
        if args.demo == "gradients":
            report = gradient_report(args.depth, args.width, args.batch, args.seed)
            console.print(gradients_table(report))
            if args.out is not None:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                plot_gradients(report).savefig(args.out, dpi=150)
                console.print(f"plot written to {args.out}")
        else:
            console.print(norms_table(norms_report(args.batch, args.features, args.seed)))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
