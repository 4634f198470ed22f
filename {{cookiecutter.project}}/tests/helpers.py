"""Shared test helpers: a tiny real task for the loop's mechanics, CPU configs, and helpers to run the CLI.

The end-to-end tests run `python -m {{ cookiecutter.package }}.train ... trainer=smoke` in a subprocess whose
working directory is a temporary folder, so data/ and runs/ are fresh while configs/ is the project's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from {{ cookiecutter.package }}.config import RunConfig, TrainConfig, TrainerConfig
from {{ cookiecutter.package }}.tasks.base import Task

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class RegressionTask(Task):
    """Noisy linear regression with an MLP: small enough for milliseconds, yet it has dropout (global
    RNG), augmentation noise (the batch generator) and held-out data, i.e. everything resume must get right.
    """

    unit = "examples"

    def __init__(self, n: int = 320, dim: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, dim, generator=g)
        y = x @ torch.randn(dim, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
        self.train_x, self.train_y = x[:256], y[:256]
        self.val_x, self.val_y = x[256:], y[256:]
        self.num_train = 256
        self.model = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))

    def to(self, device: torch.device) -> None:
        self.model.to(device)

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.train_x[indices]
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        return x + 0.01 * noise, self.train_y[indices]

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        return nn.functional.mse_loss(model(x), y), {}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return {"val/mse": nn.functional.mse_loss(model(self.val_x), self.val_y).item()}

    def example_batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_x[:batch_size], self.train_y[:batch_size]


def tiny_config(tmp_path: Path, **trainer: Any) -> TrainConfig:
    """A TrainConfig for RegressionTask: 3 epochs of 8 steps, checkpoints every 3 steps."""
    settings = {
        "epochs": 3,
        "batch_size": 32,
        "lr": 1e-2,
        "warmup_steps": 2,
        "log_every": 2,
        "grad_norm_every": 4,
        "checkpoint_every": 3,
        "device": "cpu",
        "num_threads": 1,
        "progress": False,
        **trainer,
    }
    return TrainConfig(
        experiment="tiny",
        model={"name": "mlp"},
        data={"name": "regression"},
        trainer=TrainerConfig(**settings),
        run=RunConfig(dir=str(tmp_path / "run")),
    )


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess:
    """Run `python -m <args>` the way a user does (own process, own cwd); fail with its output."""
    full_env = {**os.environ, "PYTHONHASHSEED": "0", "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"`{' '.join(args)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def find_run(runs_dir: Path, experiment: str, variant: str = "full", seed: int = 0) -> Path:
    """The one run directory `<runs_dir>/<experiment>/<variant>-<digest>/seed_<seed>` (repro/rundir.py).

    Tests that train a single setting of a variant find its folder here instead of computing the digest.
    """
    found = sorted((Path(runs_dir) / experiment).glob(f"{variant}-*/seed_{seed}"))
    assert len(found) == 1, f"expected one run of {experiment}/{variant}/seed_{seed}, found {found}"
    return found[0]
