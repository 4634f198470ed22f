"""Character-level language modelling with the Transformer (nanoGPT's shakespeare-char task, Karpathy 2022).

The model reads `block_size` characters and predicts each next one; the loss is the mean cross-entropy
over all T positions of a window. Metrics: "val/loss" (nats per character), "val/bpc" (bits per character,
loss / ln 2) and "val/acc" (next-character accuracy).

What an epoch is: the training split of N tokens is cut into `num_train = (N - T) // T` windows of
T = block_size tokens, and an epoch visits each window once, in the loop's random order: one pass over the
training text. So that training still sees every start position (as nanoGPT's random windows do), window
i starts at i * T plus a random shift in [0, T) drawn from the loop's generator. For tiny-shakespeare
(1.0M training characters, T = 256) an epoch is 3,920 windows, 61 steps of batch 64; nanoGPT's 5,000
iterations are 82 epochs (configs/experiment/transformer_shakespeare.yaml).

Evaluation is deterministic: up to `eval_windows` windows at evenly spaced, fixed start positions in the
validation split (for tiny-shakespeare's 111k characters the default covers all of it once).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.types import TextData
from ..models.transformer import Transformer, TransformerConfig
from .base import Task


class LanguageModelTask(Task):
    """Next-character prediction on a `TextData` corpus.

    Args:
        cfg: The model config; `vocab_size` is replaced by the data's vocabulary size and `causal` must be
            True (a bidirectional model would see the character it has to predict).
        data: Token ids of the train and validation splits.
        eval_windows: Cap on the validation windows `evaluate()` reads (it reads all if fewer fit).
        eval_batch_size: Windows per forward pass in `evaluate()`.

    Batches are `(x, y)`: x (B, T) int64 input ids and y (B, T) the same windows shifted by one.
    """

    unit = "tokens"

    def __init__(
        self, cfg: TransformerConfig, data: TextData, eval_windows: int = 512, eval_batch_size: int = 64
    ) -> None:
        if not cfg.causal:
            raise ValueError(
                "model.causal=false: a language model must be causal, or each position sees the character it predicts."
            )
        if eval_windows < 1 or eval_batch_size < 1:
            raise ValueError(f"eval_windows={eval_windows} and eval_batch_size={eval_batch_size} must be positive.")
        T = cfg.block_size
        if len(data.train) < 2 * T:
            raise ValueError(f"the training split has {len(data.train)} tokens; need 2 * block_size = {2 * T}.")
        if len(data.val) < T + 1:
            raise ValueError(f"the validation split has {len(data.val)} tokens; need block_size + 1 = {T + 1}.")
        self.cfg = dataclasses.replace(cfg, vocab_size=data.vocab_size)
        self.data = data
        self.block_size = T
        self.num_train = (len(data.train) - T) // T  # window i starts in [i T, (i + 1) T): all starts <= N - T - 1
        self.eval_batch_size = eval_batch_size
        num_val = min(eval_windows, (len(data.val) - 1) // T)
        self.val_starts = torch.linspace(0, len(data.val) - T - 1, num_val).long()  # (num_val,) fixed
        self.model = Transformer(self.cfg)

    def to(self, device: torch.device) -> None:
        self.model.to(device)
        self.data = self.data.to(device)
        self.val_starts = self.val_starts.to(device)

    def _windows(self, tokens: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (B, T) from window starts (B,): targets are the inputs shifted by one token."""
        offsets = torch.arange(self.block_size + 1, device=starts.device)  # (T + 1,)
        window = tokens[starts[:, None] + offsets]  # (B, 1) + (T + 1,) -> (B, T + 1) gather
        return window[:, :-1], window[:, 1:]

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows `indices` (B,) of this epoch, each shifted by a random offset in [0, T) -> (x, y), (B, T) each."""
        T = self.block_size
        shift = torch.randint(0, T, indices.shape, generator=generator, device=indices.device)  # (B,)
        return self._windows(self.data.train, indices * T + shift)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        x, y = batch
        logits = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())  # mean over all B * T positions
        return loss, {"train/acc": (logits.argmax(-1) == y).float().mean().detach()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Mean loss, bits per character and accuracy over the fixed validation windows (eval mode)."""
        was_training = model.training
        model.eval()
        total_loss = torch.zeros((), device=self.val_starts.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.val_starts.device, dtype=torch.long)
        for starts in self.val_starts.split(self.eval_batch_size):
            x, y = self._windows(self.data.val, starts)
            logits = model(x).float()  # (b, T, V)
            total_loss += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")
            correct += (logits.argmax(-1) == y).sum()
        model.train(was_training)
        count = self.val_starts.numel() * self.block_size
        val_loss = total_loss.item() / count
        return {"val/loss": val_loss, "val/bpc": val_loss / math.log(2), "val/acc": correct.item() / count}

    def example_batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `batch_size` training windows, unshifted."""
        starts = torch.arange(min(batch_size, self.num_train), device=self.data.train.device) * self.block_size
        return self._windows(self.data.train, starts)

    def count(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        """Tokens in a batch: B * T."""
        return batch[0].numel()
