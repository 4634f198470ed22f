"""The run directory: one folder per (experiment, variant, seed), written so that nothing is ever lost.

    runs/<experiment>/<variant>/seed_<seed>/
      config.yaml        the fully resolved config
      environment.json   who/what/where ran it (repro/environment.py); git.diff beside it when dirty
      metrics.jsonl      one JSON object per logged step/epoch (append-only, truncated back on resume)
      metrics.json       final metrics; deterministic values only; its presence marks a finished run
      timing.json        wall time, throughput, peak memory (kept apart so metrics.json compares exactly)
      checkpoints/last.pt (and prev.pt, the one before)
      train.log

Every file is written atomically (data/files.py: temp file in the same directory, fsync, rename, fsync
the directory): a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from ..data.files import atomic_write_text


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
    def for_run(cls, runs_dir: Path | str, experiment: str, variant: str, seed: int) -> RunDir:
        for name, value in (("experiment", experiment), ("variant", variant)):
            if not value or "/" in value or value.startswith("."):
                raise ValueError(f"{name}={value!r} cannot name a run directory; expected a plain folder name")
        return cls(Path(runs_dir) / experiment / variant / f"seed_{seed}")

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

        A finished run is refused unless `overwrite`; a directory holding a different config is refused,
        with the differing keys, because resuming it would mix two experiments in one set of files.
        """
        state = self.state()
        if state is RunState.FINISHED and not overwrite:
            raise RunDirError(
                f"{self.path} already holds a finished run (metrics.json exists); "
                "pass run.overwrite=true to replace it, or choose another seed/variant"
            )
        if state is RunState.RESUMABLE and not overwrite:
            previous = yaml.safe_load(self.config.read_text())
            differences = diff_configs(previous, config)
            if differences:
                raise RunDirError(
                    f"{self.path} holds an unfinished run of a different config ({format_diff(differences)}); "
                    "pass run.overwrite=true to discard it, or use another run.dir"
                )
        return state

    def prepare(self, config: dict[str, Any], *, overwrite: bool, resume: bool) -> RunState:
        """Claim the directory for a run with `config`; returns the state it was found in.

        Refuses what `check` refuses; an unfinished run of the same config is resumed (or restarted when
        `resume` is False).
        """
        state = self.check(config, overwrite=overwrite)
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


# How a run is driven and reported, not what it computes: changing these never invalidates a run.
IGNORED_PREFIXES = ("run.", "tracker.", "trainer.progress")


def relevant_config(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened config without the keys in IGNORED_PREFIXES."""
    return {key: value for key, value in flatten(config).items() if not key.startswith(IGNORED_PREFIXES)}


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
