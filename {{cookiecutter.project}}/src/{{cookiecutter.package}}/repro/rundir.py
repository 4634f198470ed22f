"""The run directory: one folder per run, named by what the run is, written so that nothing is ever lost.

    runs/<experiment>/<variant>-<digest>/seed_<seed>/
      config.yaml        the fully resolved config
      environment.json   who/what/where ran it (repro/environment.py); git.diff beside it when dirty
      metrics.jsonl      one JSON object per logged step/epoch (append-only, truncated back on resume)
      metrics.json       final metrics; deterministic values only; its presence marks a finished run
      timing.json        wall time, throughput, peak memory (kept apart so metrics.json compares exactly)
      checkpoints/last.pt (and prev.pt, the one before)
      train.log

A run's folder is its identity. `<digest>` is eight hex digits of the SHA-256 of the resolved config
without the seed, the experiment (both already in the path) and the bookkeeping keys (BOOKKEEPING: where
files go, trackers, progress bars): two runs that could give different numbers never share a folder, and
the same command maps to the same folder on every machine and in every process, so it resumes there.
`run.name=<name>` replaces `<variant>-<digest>` with a name of your choosing (a different config under
that name is then refused, not mixed in); `run.dir=<path>` sets the whole path (the DVC pipeline does).
The seeds of one setting sit side by side, so `compare` finds them, and a sweep over a learning rate
lands in one folder per value.

Every file is written atomically (data/files.py: temp file in the same directory, fsync, rename, fsync
the directory): a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from ..data.files import atomic_write_text

MAX_NAME_BYTES = 200


class RunState(Enum):
    NEW = "new"  # nothing there yet
    RESUMABLE = "resumable"  # started before (config.yaml present), not finished
    FINISHED = "finished"  # metrics.json present


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (finished run, foreign config)."""


@dataclass(frozen=True)
class RunDir:
    """Paths of one run and the rules for (re)using it."""

    path: Path

    @classmethod
    def for_run(cls, runs_dir: Path | str, experiment: str, setting: str, seed: int) -> RunDir:
        """`<runs_dir>/<experiment>/<setting>/seed_<seed>`; `setting` is `<variant>-<digest>` or run.name."""
        for name, value in (("experiment", experiment), ("variant or run.name", setting)):
            if not value or "/" in value or value.startswith("."):
                raise ValueError(f"{name}={value!r} cannot name a run directory; expected a plain folder name")
            if len(value.encode()) > MAX_NAME_BYTES:  # file systems stop at 255 bytes, temp files add a suffix
                raise ValueError(
                    f"{name}={value[:24]!r}... has {len(value.encode())} bytes, too long for a folder name; "
                    f"expected at most {MAX_NAME_BYTES} (a shorter variant: name, or run.name=<name>)"
                )
        return cls(Path(runs_dir) / experiment / setting / f"seed_{seed}")

    @classmethod
    def for_config(cls, config: dict[str, Any]) -> RunDir:
        """The directory of the run `config` describes (resolved, as config.yaml holds it)."""
        run = config.get("run") or {}
        if run.get("dir"):
            return cls(Path(run["dir"]))
        return cls.for_run(config["paths"]["runs_dir"], config["experiment"], setting_name(config), config["seed"])

    config = property(lambda self: self.path / "config.yaml")
    environment = property(lambda self: self.path / "environment.json")
    metrics_log = property(lambda self: self.path / "metrics.jsonl")
    metrics = property(lambda self: self.path / "metrics.json")
    timing = property(lambda self: self.path / "timing.json")
    log_file = property(lambda self: self.path / "train.log")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")

    def state(self) -> RunState:
        if self.metrics.exists():
            return RunState.FINISHED
        if self.config.exists():
            return RunState.RESUMABLE
        return RunState.NEW

    def check(self, config: dict[str, Any], *, overwrite: bool) -> RunState:
        """What `prepare` would find, refusing what it would refuse; writes nothing.

        A directory holding a different config is refused, with the differing keys, unless `overwrite`:
        resuming it would mix two experiments in one set of files. A finished run of this very config is
        FINISHED: the caller has nothing to train (or trains it again with `overwrite`).
        """
        state = self.state()
        if state is not RunState.NEW and not overwrite:
            previous = read_config(self.config) if self.config.exists() else {}
            differences = diff_configs(previous, config)
            if differences:
                how = "a finished" if state is RunState.FINISHED else "an unfinished"
                raise RunDirError(
                    f"{self.path} holds {how} run of a different config ({format_diff(differences)}); "
                    "pass run.overwrite=true to replace it, or choose another run.name or run.dir"
                )
        return state

    def prepare(self, config: dict[str, Any], *, overwrite: bool, resume: bool) -> RunState:
        """Claim the directory for a run with `config`; returns the state it was found in.

        Refuses what `check` refuses; an unfinished run of the same config is resumed (or restarted when
        `resume` is False); a finished one is only replaced with `overwrite`.
        """
        state = self.check(config, overwrite=overwrite)
        if state is RunState.FINISHED and not overwrite:
            raise RunDirError(f"{self.path} already holds this finished run; pass run.overwrite=true to train it again")
        if state is RunState.FINISHED or (state is RunState.RESUMABLE and (overwrite or not resume)):
            self.clear()
            state = RunState.NEW
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        # Half-written files of a run killed mid-write (atomic writes leave them only then); the files
        # they were replacing are intact. A whole last.pt.next stays: it is the newest checkpoint.
        for stale in (*self.path.glob(".*.tmp"), *self.checkpoints.glob(".*.tmp")):
            stale.unlink()
        if state is RunState.NEW:
            atomic_write_text(self.config, yaml.safe_dump(config, sort_keys=False))
        return state

    def clear(self) -> None:
        """Remove a previous run's files (only the files a run writes, never unknown user files)."""
        for path in (self.config, self.environment, self.metrics_log, self.metrics, self.timing, self.log_file):
            path.unlink(missing_ok=True)
        for path in (*self.path.glob("environment.*.json"), *self.path.glob(".*.tmp")):
            path.unlink()
        (self.path / "git.diff").unlink(missing_ok=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)


def read_config(path: Path, fix: str = "restore it, or pass run.overwrite=true") -> dict[str, Any]:
    """A run's config.yaml as a dict; one line naming the file, and `fix`, when it is empty, not YAML or not a mapping.

    Raises:
        RunDirError: the file cannot be the config of a run.
    """
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path} is not valid YAML ({' '.join(str(err).split())}); {fix}") from None
    if not isinstance(config, dict):
        found = "empty" if config is None else f"a {type(config).__name__}, not a mapping"
        raise RunDirError(f"{path} is {found}; expected the run's resolved config: {fix}")
    return config


class RunLock:
    """An advisory lock on one run directory (`.lock` in it), held while a process trains the run.

    `fcntl.flock` locks belong to the open file: the operating system releases them when the process
    ends, however it ends, so a SIGKILL never leaves a stale lock behind. The holder writes its host and
    PID into the file for the message a second process gets; releasing empties the file again.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock now or refuse: two processes appending to one metrics.jsonl would interleave.

        Raises:
            RunDirError: another process holds it; the message names that process.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 512).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirError(
                f"{self.path.parent} is being trained by {holder} right now; wait for it to end or stop it "
                "(two processes on one run would write every record twice)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: configs compared key by key."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# How a run is driven and recorded, not what it computes: these keys never make two runs different
# experiments (the folder digest, resume and `compare` leave them out). variant_keys and override_keys
# record which command produced a config; the same config reached by two commands is one experiment.
BOOKKEEPING = ("run", "paths", "tracker", "trainer.progress", "data.root", "variant_keys", "override_keys")


def covered(key: str, prefixes: Iterable[str]) -> bool:
    """Whether dotted `key` is one of `prefixes` or lies below one (`model.pool` covers `model.pool.size`)."""
    return any(key == prefix or key.startswith(prefix + ".") for prefix in prefixes)


def relevant_config(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened config without the BOOKKEEPING keys."""
    return {key: value for key, value in flatten(config).items() if not covered(key, BOOKKEEPING)}


def config_digest(config: dict[str, Any]) -> str:
    """Eight hex digits naming what `config` computes: the same on every machine for the same config.

    The seed and the experiment are left out (they are folders of their own), so the seeds of one setting
    share a digest. Values are hashed as JSON (floats by their shortest repr, 3e-4 == 0.0003).
    """
    relevant = {k: v for k, v in relevant_config(config).items() if k not in ("seed", "experiment")}
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def setting_name(config: dict[str, Any]) -> str:
    """The folder of a setting under runs/<experiment>/: run.name, else `<variant>-<config digest>`."""
    name = (config.get("run") or {}).get("name")
    return str(name) if name else f"{config['variant']}-{config_digest(config)}"


def diff_configs(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between two configs, ignoring keys that don't change the result."""
    a, b = relevant_config(old), relevant_config(new)
    return {
        key: (a.get(key, "<absent>"), b.get(key, "<absent>"))
        for key in sorted(a.keys() | b.keys())
        if a.get(key, "<absent>") != b.get(key, "<absent>")
    }


def format_diff(differences: dict[str, tuple[Any, Any]], limit: int = 6) -> str:
    shown = [f"{key}: {old!r} -> {new!r}" for key, (old, new) in list(differences.items())[:limit]]
    more = len(differences) - limit
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
