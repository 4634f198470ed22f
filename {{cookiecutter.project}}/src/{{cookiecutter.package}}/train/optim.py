"""AdamW with decoupled weight decay on the right parameters, and a warmup + cosine schedule.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (2019); cosine annealing from
"SGDR" (2017); linear warmup as in Goyal et al., "Accurate, Large Minibatch SGD" (2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters into decayed (>= 2-D weights) and not decayed (biases, norm gains, tokens).

    Decaying a LayerNorm gain or a bias pulls it towards 0, which only hurts; nanoGPT and timm decay
    matrices and convolution kernels only. A model can exempt more by name with `no_weight_decay()`
    (timm's convention, e.g. position embeddings and the class token).
    """
    exempt = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 and name not in exempt else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], device: torch.device
) -> torch.optim.AdamW:
    # The fused CUDA kernel updates all parameters in one launch; it is deterministic, CPU has none.
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, fused=device.type == "cuda" or None)


@dataclass
class WarmupCosine:
    """LR multiplier: linear warmup to 1, then cosine decay to `min_ratio` at `total_steps`.

    A callable object rather than a lambda so that LambdaLR can save it in `state_dict()`.
    """

    warmup_steps: int
    total_steps: int
    min_ratio: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    if total_steps < 1:
        raise ValueError(f"total_steps={total_steps} is not positive; expected at least one training step")
    warmup = min(warmup_steps, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, total_steps, min_ratio))
