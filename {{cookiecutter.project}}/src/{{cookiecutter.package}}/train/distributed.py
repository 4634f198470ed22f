"""The few distributed primitives the loop uses (PyTorch DDP); each is a no-op in a single process.

Who sets the process's place in the group:
- `torchrun --nproc_per_node=N -m ...` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
- A job with several tasks submitted by Hydra's submitit launcher (`hydra/launcher=slurm
  hydra.launcher.tasks_per_node=N`) runs one process per task and sets only SLURM_PROCID, SLURM_NTASKS, ...;
  submitit translates those into the torchrun variables (`TorchDistributedEnvironment`).
So the same command works under `python -m`, `torchrun` and SLURM. Backend: NCCL on CUDA, gloo on CPU
(which is how the DDP tests run on a laptop or a CI machine).

Rule for files: only rank 0 writes. Anything rank 0 decides alone (claiming the run directory, preparing
data) reaches the other ranks through `run_on_main` or a barrier, never through a file they would race on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the process group; the defaults describe a plain single process."""

    rank: int = 0
    local_rank: int = 0  # index of the GPU on this node
    world_size: int = 1
    backend: str | None = None  # "nccl" or "gloo" inside a process group (also one of a single process), else None

    @property
    def is_main(self) -> bool:
        """Only the main process writes files, logs metrics and shows progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """In a process group: DDP wraps the model and the collectives run (`torchrun --nproc_per_node=1` too)."""
        return self.backend is not None


def export_submitit_environment() -> None:
    """In a job of several tasks started by submitit (SLURM, or its local executor), set torchrun's variables.

    MASTER_ADDR is the job's first node; MASTER_PORT is drawn from the job id, so two jobs sharing a node
    don't collide and a requeued job (same id) meets at the same port.
    """
    if "WORLD_SIZE" in os.environ or "SUBMITIT_EXECUTOR" not in os.environ:
        return  # torchrun (also `srun torchrun ...`) has set them, or this is not a submitit job
    from submitit import JobEnvironment  # the `slurm` extra, present whenever submitit started us
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # we pick cuda:LOCAL_RANK ourselves


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun (or as tasks of a submitit job); else a single process.

    `torchrun --nproc_per_node=1` also forms a (one-process) group: the DDP code path on one GPU, for debugging.

    Args:
        device_type: "cuda" (NCCL backend, one GPU per process) or "cpu" (gloo backend).
    """
    export_submitit_environment()
    if "WORLD_SIZE" not in os.environ:
        return DistInfo()
    backend = "nccl" if device_type == "cuda" else "gloo"
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]), backend)
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)  # before NCCL starts: its communicator binds the current GPU
        dist.init_process_group(backend=backend)
    return info


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of `tensor` over ranks (a copy; the input is left alone)."""
    if not info.enabled:
        return tensor
    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / info.world_size


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank (used for per-rank RNG states)."""
    if not info.enabled:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_on_main(fn: Callable[[], Any], info: DistInfo) -> Any:
    """Call `fn` on rank 0 only; every rank returns its result, or raises the exception it raised.

    Passing the exception along matters: if rank 0 refused a finished run and the others waited for it at
    a barrier, they would hang until the collective timeout instead of stopping with the same message.
    """
    if not info.enabled:
        return fn()
    outcome: tuple[bool, Any] | None = None
    if info.is_main:
        try:
            outcome = (True, fn())
        except Exception as err:  # handed to every rank below, raised there
            outcome = (False, err)
    ok, value = broadcast_object(outcome, info)
    if not ok:
        raise value
    return value


def shard(batch: Any, info: DistInfo) -> Any:
    """This rank's rows `[rank::world_size]` of every tensor in a batch (a tensor, or tuples/lists/dicts of them).

    Every tensor must have the batch dimension first. Strided rows, not a contiguous block, keep a batch that
    stacks two views of B images along dimension 0 (SimCLR's (2B, ...)) consistent: with B a multiple of
    world_size, each rank gets both views of the same images, first views first.
    """
    if not info.enabled:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch[info.rank :: info.world_size]
    if isinstance(batch, tuple | list):
        return type(batch)(shard(item, info) for item in batch)
    if isinstance(batch, dict):
        return {key: shard(value, info) for key, value in batch.items()}
    raise TypeError(f"cannot split a batch of type {type(batch).__name__} across ranks; expected tensors")


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
