"""What the one training loop needs from a baseline: a model, its data, a loss and its metrics.

A task owns everything specific to one baseline; `train/loop.py` owns everything shared (optimizer,
schedule, precision, checkpoints, logging, DDP). Keeping the split strict is what lets one loop train
SimCLR, a ViT and a Transformer, and lets exact resume work the same way for all three.

Contract that makes runs reproducible and resumable:
- An epoch is a permutation of `range(num_train)` that the loop derives from (seed, epoch) and cuts
  into global batches of `indices`.
- `batch()` draws randomness (augmentation) only from the `generator` it is given, which the loop seeds
  from (seed, epoch, step): the same step always sees the same batch, also after a resume. Under DDP
  every rank builds the same global batch and keeps its rows, so every tensor in a batch must have the
  batch dimension first (train/distributed.py:shard).
- `evaluate()` and `finish()` are deterministic (no randomness, or a fixed local generator).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


class Task(ABC):
    model: nn.Module
    num_train: int  # examples in one epoch
    unit: str = "examples"  # what `count()` counts, for throughput: "images", "tokens", ...

    @abstractmethod
    def to(self, device: torch.device) -> None:
        """Move the model and the resident dataset to `device`."""

    @abstractmethod
    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> Any:
        """Build one training batch from example indices (B,) on the device, augmenting with `generator`."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar training loss and extra detached metrics, e.g. {"train/acc": ...}; runs under autocast.

        `model` is the module to call: the task's own model, or its DDP / compiled wrapper.
        """

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Held-out metrics after each epoch, e.g. {"val/loss": ..., "val/acc": ...}; deterministic."""

    def finish(self, model: nn.Module) -> dict[str, float]:
        """Metrics computed once after training (e.g. a linear probe); defaults to none."""
        return {}

    @abstractmethod
    def example_batch(self, batch_size: int) -> Any:
        """A fixed batch for FLOP counting and compile warm-up (no randomness)."""

    def count(self, batch: Any) -> int:
        """How many `unit`s a batch holds (images, tokens), for throughput in timing.json."""
        first = batch[0] if isinstance(batch, tuple | list) else batch
        return int(first.shape[0])
