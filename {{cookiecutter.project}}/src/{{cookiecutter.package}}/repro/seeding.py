"""Seed every random number generator a run touches, and make the kernels deterministic.

What has to be covered, and why each line is here:
- Python `random`, NumPy and torch (CPU and every CUDA device) each keep their own state.
- Under DDP every rank gets `seed + rank`, so ranks draw different dropout masks yet the run as a
  whole is still a function of one seed.
- DataLoader workers re-seed themselves from the main generator (pytorch#7209); `worker_init_fn` and a
  seeded `generator` make their NumPy/random streams a function of (seed, worker id).
- Deterministic mode: `torch.use_deterministic_algorithms(True)` raises on ops without a deterministic
  kernel instead of silently varying; cuDNN benchmarking picks kernels by timing, so it is off; cuBLAS
  needs `CUBLAS_WORKSPACE_CONFIG` set before its first call for reproducible matmuls.
- `PYTHONHASHSEED` only takes effect at interpreter start: setting it here would be too late, so we
  report when it is missing (set iteration order of str keys then varies between processes).

References: PyTorch notes on reproducibility (https://pytorch.org/docs/stable/notes/randomness.html).
"""

from __future__ import annotations

import logging
import os
import random
import sys
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

CUBLAS_WORKSPACE = ":4096:8"  # one of the two values the cuBLAS docs list for deterministic results
MAX_SEED = 2**32 - 1  # NumPy's legacy seeding accepts [0, 2**32)


@dataclass(frozen=True)
class SeedReport:
    """What `seed_everything` did, recorded in environment.json."""

    seed: int  # the run's seed (before the rank offset)
    rank_seed: int  # seed + rank: what this process's generators were seeded with
    deterministic: bool
    pythonhashseed_set: bool
    cublas_workspace_config: str | None


def seed_everything(seed: int, deterministic: bool = True, rank: int | None = None) -> SeedReport:
    """Seed Python, NumPy and torch (CPU + CUDA) and optionally force deterministic kernels.

    Args:
        seed: The run's seed, in [0, 2**32 - 1 - world_size).
        deterministic: Also select deterministic algorithms (cuDNN, cuBLAS, torch ops).
        rank: Distributed rank; defaults to $RANK (0 when not under torchrun).

    Returns:
        A SeedReport for the environment record.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed={seed!r} is not valid; expected an integer in [0, {MAX_SEED}]")
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    rank_seed = (seed + rank) % (MAX_SEED + 1)

    random.seed(rank_seed)
    np.random.seed(rank_seed)
    torch.manual_seed(rank_seed)  # also seeds every CUDA device
    if deterministic:
        # Must precede the first cuBLAS call; harmless on CPU-only machines.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.deterministic = False
    set_deterministic_algorithms(deterministic)

    hashseed_set = "PYTHONHASHSEED" in os.environ
    if not hashseed_set:
        log.warning(
            "PYTHONHASHSEED is not set: hash-based ordering (sets of strings) can differ between processes; "
            "start Python with PYTHONHASHSEED=0 for bit-exact reruns of code that depends on it"
        )
    return SeedReport(seed, rank_seed, deterministic, hashseed_set, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))


def set_deterministic_algorithms(mode: bool) -> None:
    """`torch.use_deterministic_algorithms(mode)`, without importing the compiler when nothing compiles.

    The public function also sets `torch._inductor.config.deterministic`, and importing that config
    imports the whole compiler stack (about a second on a CPU) in runs that never call torch.compile.
    So the kernel-level flag is set directly here, and the compiler's flag with it only once the
    compiler is loaded; train/loop.py calls the public function right before it compiles.
    """
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode)
    else:
        torch._C._set_deterministic_algorithms(mode)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader hook: seed NumPy and `random` in each worker from torch's per-worker seed.

    torch already gives every worker `base_seed + worker_id` (base_seed drawn from the loader's
    generator); NumPy and `random` are not covered by that, so without this hook all workers would
    share one NumPy stream and repeat "random" augmentations.
    """
    worker_seed = torch.initial_seed() % (MAX_SEED + 1)
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def dataloader_generator(seed: int, rank: int = 0) -> torch.Generator:
    """The `generator=` for a DataLoader: shuffling and worker base seeds become a function of the seed."""
    return torch.Generator().manual_seed(seed + rank)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part, e.g. (seed, epoch, step, rank).

    Mixing with a fixed multiplier (splitmix64 constants) keeps nearby tuples such as (0, 1) and
    (1, 0) far apart, so per-step augmentation generators don't share streams.
    """
    mask = (1 << 64) - 1
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (int(part) & mask)) * 0xBF58476D1CE4E5B9 & mask
        x ^= x >> 31
    return x >> 1  # torch.Generator.manual_seed accepts values < 2**63 without wrapping
