"""The one training loop every baseline uses: plain PyTorch, no framework between you and the step.

Per step: batch from the task -> forward under one autocast context -> backward -> clip -> AdamW ->
LR schedule. Around it: evaluation each epoch, JSONL metrics, per-layer gradient norms (to see
vanishing gradients), checkpoints that make a kill-and-resume end with the same bytes in
metrics.json, a rich progress bar, and DDP when launched by torchrun.

Why the data order is exact on resume: an epoch's order is a permutation drawn from a generator seeded
with (seed, epoch), and augmentation draws from a generator seeded with (seed, epoch, batch); neither
depends on how many steps ran before, so resuming at (epoch, batch) replays the same batches. Dropout
uses the global torch RNG, whose state the checkpoint restores.

Why DDP computes what one process computes: every rank builds the same global batch (same indices, same
augmentation draws; cheap, because augmentation is batched on the device) and keeps every world_size-th
row, so the gradient all-reduce averages exactly the single-process gradient, split in parts. What still
differs with the number of processes is the float summation order, dropout masks (each rank has its own
stream, seeded with seed + rank) and BatchNorm statistics on CPU (on GPUs SimCLR syncs them).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.flop_counter import FlopCounterMode

from ..config import check_trainer
from ..data.files import atomic_write_json
from ..repro.rundir import RunDir
from ..repro.seeding import derive_seed
from ..tasks.base import Task
from ..tracking import Tracker
from . import checkpoint as ckpt
from .distributed import DistInfo, all_reduce_mean, barrier, gather_objects, shard
from .optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The permutation of range(n) for this epoch: a pure function of (seed, epoch), drawn on the CPU
    so it is the same on every device and every rank."""
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch))
    return torch.randperm(n, generator=generator)


def steps_per_epoch(num_train: int, batch_size: int, world_size: int, limit: int | None) -> int:
    """Full global batches per epoch (the ragged last batch is dropped so every step has equal weight)."""
    if batch_size % world_size:
        raise ValueError(
            f"trainer.batch_size={batch_size} is not divisible by the {world_size} processes; "
            "expected a multiple of the world size (it is the global batch)"
        )
    steps = num_train // batch_size
    if steps == 0:
        raise ValueError(
            f"trainer.batch_size={batch_size} exceeds the {num_train} training examples; expected at most {num_train}"
        )
    return min(steps, limit) if limit else steps


def layer_of(name: str) -> str:
    """Group a parameter name into its layer: 'blocks.3.attn.qkv.weight' -> 'blocks.3'."""
    match = re.match(r"^(.*?\.\d+)(?:\.|$)", name)
    return match.group(1) if match else name.rsplit(".", 1)[0]


def layer_grad_norms(model: nn.Module) -> dict[str, torch.Tensor]:
    """L2 norm of the gradient of each layer (all its parameters together)."""
    squares: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if param.grad is not None:
            key = f"grad_norm/{layer_of(name)}"
            squares[key] = squares.get(key, 0) + param.grad.detach().float().pow(2).sum()
    return {key: value.sqrt() for key, value in squares.items()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def forward_gflops(task: Task, batch_size: int = 2) -> float:
    """Forward GFLOPs per training example, counted by torch.utils.flop_counter (matmuls and convs).

    Counted in eval mode so dropout draws no random numbers and BatchNorm statistics stay untouched.
    """
    model = task.model
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            task.loss(model, task.example_batch(batch_size))
    finally:
        model.train(was_training)
    return counter.get_total_flops() / batch_size / 1e9


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"trainer.device={name!r} but no CUDA device is available; expected trainer.device=cpu or auto"
        )
    return device


class Timer:
    """Training time without evaluation; on GPU it syncs only at the edges of an epoch, not per step."""

    def __init__(self, device: torch.device, seconds: float = 0.0) -> None:
        self.device = device
        self.seconds = seconds
        self._start: float | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        self._sync()
        self._start = time.perf_counter()
        yield
        self._sync()
        self.seconds += time.perf_counter() - self._start
        self._start = None

    def elapsed(self) -> float:
        """Seconds so far, the running measurement included; no sync (save() has just synced, reading the loss)."""
        return self.seconds + (time.perf_counter() - self._start if self._start is not None else 0.0)


def make_progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def fit(
    cfg: Any, config: dict[str, Any], task: Task, run: RunDir, tracker: Tracker | None, dist: DistInfo
) -> dict[str, Any]:
    """Train `task` as `cfg.trainer` says, resuming from `run`'s checkpoint; returns the final metrics.

    Args:
        cfg: the TrainConfig (dataclass) of this run.
        config: the same config as a plain dict: what checkpoints are checked against.
        task: the baseline, already on its device.
        run: the run directory (only rank 0 writes to it).
        tracker: metrics sink on rank 0, None on other ranks.
        dist: this process's place in the process group.
    """
    tc = cfg.trainer
    check_trainer(tc)
    device = next(task.model.parameters()).device
    model = task.model
    if tc.channels_last:
        model.to(memory_format=torch.channels_last)
    params, gflops = count_parameters(model), forward_gflops(task)

    n_steps = steps_per_epoch(task.num_train, tc.batch_size, dist.world_size, tc.limit_train_batches)
    total_steps = n_steps * tc.epochs
    optimizer = build_optimizer(model, tc.lr, tc.weight_decay, tuple(tc.betas), device)
    scheduler = build_scheduler(optimizer, tc.warmup_steps, total_steps, tc.min_lr_ratio)
    scaler = torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16")
    dtype = AUTOCAST_DTYPES[tc.precision]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    progress = ckpt.Progress()
    # State beside the model that a resumed run must continue exactly: the partly filled loss-logging
    # window (sum, steps), the latest evaluation (for metrics.json), time spent, times resumed, and each
    # evaluation with the training time it took to get there (timing.json: time to a target metric).
    extra: dict[str, Any] = {
        "window": [0.0, 0],
        "last_eval": {},
        "train_seconds": 0.0,
        "eval_seconds": 0.0,
        "resumes": 0,
        "evaluations": [],
        "epoch_train_seconds": 0.0,  # of the epoch in progress, at the checkpoint
    }
    state = ckpt.load_checkpoint(run.checkpoints, config, map_location=device, metrics_log=run.metrics_log)
    if state is not None:
        if state["world_size"] != dist.world_size:
            raise ckpt.CheckpointError(
                f"{run.last_checkpoint} was written by {state['world_size']} processes but this run has "
                f"{dist.world_size}; resume with the same number of processes (torchrun --nproc_per_node, or "
                "hydra.launcher.tasks_per_node on SLURM)"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        progress = ckpt.Progress(**state["progress"])
        extra = {**extra, **state["extra"]}  # keys newer than the checkpoint keep their defaults
        extra["resumes"] += 1
        ckpt.set_rng_state(state["rng"][dist.rank])
        log.info(
            "resumed from %s at epoch %d, batch %d (step %d)",
            run.checkpoints,
            progress.epoch,
            progress.batch,
            progress.step,
        )
    if tracker is not None:
        tracker.rewind(progress.metrics_offset)  # drop what a killed run logged after its last checkpoint

    train_model: nn.Module = model
    if dist.enabled:
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if tc.compile:
        torch.use_deterministic_algorithms(tc.deterministic)  # also sets the compiler's flag (see seeding.py)
        train_model = torch.compile(train_model)

    def save() -> None:
        extra["window"] = [window_loss.item(), window_steps]
        extra["epoch_train_seconds"] = timer.elapsed()  # a resumed run's clock goes on from here
        rng = gather_objects(ckpt.rng_state(), dist)  # every rank's generators, collected on all ranks
        if dist.is_main:
            progress.metrics_offset = tracker.sync() if tracker else 0  # the log on disk up to what we record
            progress.metrics_sha256 = ckpt.prefix_sha256(run.metrics_log, progress.metrics_offset) or ""
            ckpt.save_checkpoint(
                run.checkpoints,
                {
                    "config": config,
                    "config_hash": ckpt.config_hash(config),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rng,
                    "progress": asdict(progress),
                    "extra": extra,
                    "world_size": dist.world_size,
                },
            )
        barrier(dist)

    def record(entry: dict[str, Any]) -> None:
        if tracker is not None:
            tracker.log({"step": progress.step, "epoch": progress.epoch, **entry})

    timer = Timer(device, seconds=extra["epoch_train_seconds"])
    wall_start = time.perf_counter()
    bar = make_progress(tc.progress and dist.is_main)
    with bar:
        bar_task = bar.add_task("train", total=total_steps, completed=progress.step, status="")
        for epoch in range(progress.epoch, tc.epochs):
            order = epoch_order(cfg.seed, epoch, task.num_train).to(device)  # one copy per epoch, none per step
            model.train()
            window_loss = torch.tensor(extra["window"][0], device=device)
            window_steps = extra["window"][1]
            with timer.measure():
                for b in range(progress.batch, n_steps):
                    # The global batch, identical on every rank; this rank trains on its rows [rank::world_size].
                    generator = torch.Generator(device).manual_seed(derive_seed(cfg.seed, epoch, b))
                    batch = shard(task.batch(order[b * tc.batch_size : (b + 1) * tc.batch_size], generator), dist)
                    with autocast:
                        loss, metrics = task.loss(train_model, batch)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    progress.step += 1
                    progress.batch = b + 1
                    # Before clipping, like grad_norm: the gradients as the loss made them, not as clipped.
                    layer_norms = (
                        layer_grad_norms(model)
                        if tc.grad_norm_every and progress.step % tc.grad_norm_every == 0
                        else {}
                    )
                    # max_norm=inf measures the norm without clipping
                    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip or math.inf)
                    lr = scheduler.get_last_lr()[0]
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()

                    window_loss += loss.detach().float()
                    window_steps += 1
                    if progress.step % tc.log_every == 0 or b == n_steps - 1:
                        mean_loss = all_reduce_mean(window_loss / window_steps, dist).item()  # one sync per log
                        if not math.isfinite(mean_loss):
                            raise FloatingPointError(
                                f"train/loss={mean_loss} at step {progress.step}; lower trainer.lr or enable "
                                "trainer.grad_clip (the last checkpoint is kept)"
                            )
                        metrics = {k: all_reduce_mean(v.detach().float(), dist) for k, v in metrics.items()}
                        record({"train/loss": mean_loss, "lr": lr, "grad_norm": grad_norm, **metrics})
                        bar.update(bar_task, status=f"loss {mean_loss:.4f}")
                        window_loss.zero_()
                        window_steps = 0
                        extra["window"] = [0.0, 0]
                    if layer_norms:
                        record(layer_norms)
                    bar.update(bar_task, completed=progress.step)
                    if progress.step % tc.checkpoint_every == 0 and b < n_steps - 1:
                        save()
            extra["train_seconds"] += timer.seconds
            timer.seconds = 0.0

            progress.epoch, progress.batch = epoch + 1, 0
            if progress.epoch % tc.eval_every == 0 or progress.epoch == tc.epochs:
                eval_start = time.perf_counter()
                model.eval()
                with torch.no_grad(), autocast:
                    extra["last_eval"] = task.evaluate(model)
                model.train()
                extra["eval_seconds"] += time.perf_counter() - eval_start
                scores = {k: float(v) for k, v in extra["last_eval"].items()}
                extra["evaluations"].append(
                    {"step": progress.step, "epoch": progress.epoch, "train_seconds": extra["train_seconds"], **scores}
                )
                record(extra["last_eval"])
                summary = ", ".join(f"{k} {v:.4f}" for k, v in extra["last_eval"].items())
                log.info("epoch %d/%d step %d: %s", progress.epoch, tc.epochs, progress.step, summary)
            save()

    model.eval()
    with autocast:
        final = task.finish(model)
    metrics = {**extra["last_eval"], **final, "model/params": params, "model/gflops": round(gflops, 6)}
    metrics = {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in sorted(metrics.items())}
    if dist.is_main:
        units = progress.step * tc.batch_size * task.count(task.example_batch(1))
        atomic_write_json(
            run.timing,
            {
                "train_seconds": extra["train_seconds"],
                "eval_seconds": extra["eval_seconds"],
                "wall_seconds_this_process": time.perf_counter() - wall_start,
                "steps": progress.step,
                "resumes": extra["resumes"],
                f"{task.unit}_per_second": units / extra["train_seconds"] if extra["train_seconds"] else None,
                "device": str(device),
                "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
                "evaluations": extra["evaluations"],
            },
        )
        atomic_write_json(run.metrics, metrics)  # last: its presence marks the run finished
    return metrics
