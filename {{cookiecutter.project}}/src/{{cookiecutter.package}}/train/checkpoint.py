"""Save and restore the complete training state, so a killed run resumes to the same numbers.

"Complete" means everything the next step's result depends on: model, optimizer (Adam moments),
LR scheduler, AMP grad scaler, the RNG state of Python, NumPy, torch CPU and every CUDA device on
every rank, and the position in the data (epoch, batch inside the epoch, global step). The config it
was trained with travels along: resuming under a different config is an error that names the keys.

Files: `checkpoints/last.pt` is the newest; before it is replaced the previous one becomes `prev.pt`.
Both are written atomically, so a crash mid-write cannot corrupt them. A new checkpoint is first
written whole as `last.pt.next`, then installed by two renames; a run killed between them resumes from
`last.pt.next`, the newest. Atomic writes do not protect against what happens to a file afterwards (a
disk error, a bad copy, a byte flipped in storage): torch.load reads damaged tensor bytes without a
word, so every checkpoint carries `state_sha256`, a digest of everything it holds (each tensor's bytes,
dtype and shape, every other value), checked after loading, and the SHA-256 of the metrics log up to the
point it records. A checkpoint that is unreadable or fails either check is skipped, with a warning naming
it and the one used instead (the next older one); resuming from an older checkpoint replays the same
steps, so the run still ends with the same bytes. Files stay plain `torch.save` archives (torch.load
reads them); loading uses `weights_only=True`: a checkpoint is data, not code.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.files import atomic_write_bytes, fsync_dir
from ..repro.rundir import diff_configs, format_diff, relevant_config

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: state_sha256 and the metrics log's digest


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that belongs to another config."""


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the config keys that change results (rundir.relevant_config says which)."""
    return hashlib.sha256(json.dumps(relevant_config(config), sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Progress:
    """Where training stands: the next step to run is batch `batch` of epoch `epoch`."""

    epoch: int = 0
    batch: int = 0
    step: int = 0  # optimizer steps taken so far
    metrics_offset: int = 0  # bytes of metrics.jsonl written up to this point (truncated back on resume)
    metrics_sha256: str = ""  # of those bytes: a log damaged before this point is not resumed silently


def rng_state() -> dict[str, Any]:
    """Every generator's state as plain tensors/lists, loadable with weights_only=True."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def state_digest(value: Any) -> str:
    """SHA-256 of a checkpoint's content: tensors by dtype, shape and bytes, other values by their repr.

    Computed on the state in memory, so the digest taken before `torch.save` equals the one taken after
    `torch.load` exactly when every value came back unchanged.
    """
    digest = hashlib.sha256()

    def feed(item: Any) -> None:
        if isinstance(item, torch.Tensor):
            data = item.detach().cpu().contiguous()
            digest.update(f"T{data.dtype}{tuple(data.shape)}".encode())
            digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
        elif isinstance(item, dict):
            digest.update(f"D{len(item)}".encode())
            for key, child in item.items():
                digest.update(repr(key).encode())
                feed(child)
        elif isinstance(item, list | tuple):
            digest.update(f"L{len(item)}".encode())
            for child in item:
                feed(child)
        else:
            digest.update(f"V{item!r}".encode())

    feed(value)
    return digest.hexdigest()


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    """Serialise to memory, then atomically replace last.pt, keeping the previous one as prev.pt."""
    buffer = io.BytesIO()
    content = {"format_version": FORMAT_VERSION, **state}
    torch.save({**content, "state_sha256": state_digest(content)}, buffer)
    last, prev = directory / "last.pt", directory / "prev.pt"
    tmp = directory / "last.pt.next"
    atomic_write_bytes(tmp, buffer.getvalue())
    # Killed between these two renames, last.pt.next is the newest: load_checkpoint takes it first.
    if last.exists():
        os.replace(last, prev)
    os.replace(tmp, last)
    fsync_dir(directory)
    return last


def load_checkpoint(
    directory: Path, config: dict[str, Any], map_location: str | torch.device = "cpu", metrics_log: Path | None = None
) -> dict | None:
    """The newest intact checkpoint for `config`, or None when the directory holds none.

    Intact: readable, its content equal to its `state_sha256`, and (given `metrics_log`) that log's first
    `progress.metrics_offset` bytes equal to what the checkpoint recorded of them.

    Raises:
        CheckpointError: no checkpoint present is intact, or one was written for another config.
    """
    # last.pt.next exists only whole (atomic write) and only if a save died before installing it: the newest.
    names = ("last.pt.next", "last.pt", "prev.pt")
    candidates = [directory / name for name in names if (directory / name).exists()]
    if not candidates:
        return None
    failures = []
    for path in candidates:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # truncated zip, bad pickle, ... -> try the older one
            failures.append(f"{path.name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            log.warning("checkpoint %s is unreadable (%s); trying the previous one", path, failures[-1])
            continue
        check_compatible(path, state, config)
        damage = damaged(state, metrics_log)
        if damage:
            failures.append(f"{path.name}: {damage}")
            log.warning("checkpoint %s is damaged (%s); trying the previous one", path, damage)
            continue
        if failures:
            log.warning("resuming from %s after %s", path, "; ".join(failures))
        return state
    raise CheckpointError(
        f"no intact checkpoint in {directory} ({'; '.join(failures)}); refusing to restart silently: "
        "pass run.resume=false to train this run from the start, or run.overwrite=true"
    )


def damaged(state: dict[str, Any], metrics_log: Path | None) -> str | None:
    """Why a loaded checkpoint cannot be trusted (its content or the log it vouches for changed), or None."""
    recorded = state.pop("state_sha256", None)
    if recorded != state_digest(state):
        return "its content does not match its state_sha256"
    progress = state.get("progress", {})
    offset = progress.get("metrics_offset", 0)
    if metrics_log is not None and offset and prefix_sha256(metrics_log, offset) != progress.get("metrics_sha256"):
        return f"{metrics_log.name} is not what it recorded of its first {offset} bytes"
    return None


def prefix_sha256(path: Path, size: int) -> str | None:
    """SHA-256 of the first `size` bytes of `path`; None when it is shorter (or missing)."""
    prefix = path.read_bytes()[:size] if path.exists() else b""
    return hashlib.sha256(prefix).hexdigest() if len(prefix) == size else None


def check_compatible(path: Path, state: dict[str, Any], config: dict[str, Any]) -> None:
    """Refuse a checkpoint from another config (or not from this code at all), naming the differences."""
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a checkpoint of this project (format_version={found!r}, expected {FORMAT_VERSION})"
        )
    if state.get("config_hash") != config_hash(config):
        differences = diff_configs(state.get("config", {}), config)
        raise CheckpointError(
            f"{path} was written by a different config ({format_diff(differences) or 'hash mismatch'}); "
            "run with the original config, or pass run.overwrite=true to start this one from scratch"
        )
