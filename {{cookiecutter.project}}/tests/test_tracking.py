"""The local metrics log: JSONL that is byte-stable, JSON-safe and rewinds exactly to a checkpoint's offset."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from {{ cookiecutter.package }}.tracking import MetricsLog, Tracker


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_are_sorted_json_lines_with_plain_numbers(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "run" / "metrics.jsonl")  # creates the run directory
    log.write({"step": 1, "train/loss": torch.tensor(0.5), "lr": 1e-3})
    log.write({"step": 2, "val/loss": float("nan"), "grad_norm": float("inf")})
    log.close()
    text = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert text.splitlines()[0] == '{"lr": 0.001, "step": 1, "train/loss": 0.5}'  # keys sorted, tensor -> float
    assert lines(tmp_path / "run" / "metrics.jsonl")[1] == {"step": 2, "val/loss": "nan", "grad_norm": "inf"}


def test_equal_records_give_equal_bytes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        log = MetricsLog(tmp_path / name)
        log.write({"step": 1, "b": 2.0, "a": 1})
        log.write({"a": 1, "step": 1, "b": 2.0})  # same record, other key order
        log.close()
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    first, second = (tmp_path / "a").read_text().splitlines()
    assert first == second


def test_rewind_truncates_to_the_recorded_offset_and_appends_after_it(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.write({"step": 1, "loss": 1.0})
    checkpoint = log.offset
    assert checkpoint == path.stat().st_size
    log.write({"step": 2, "loss": 0.9})  # logged after the checkpoint, then the process is killed
    log.rewind(checkpoint)
    log.write({"step": 2, "loss": 0.8})  # the resumed run logs step 2 again
    log.close()
    assert lines(path) == [{"loss": 1.0, "step": 1}, {"loss": 0.8, "step": 2}]


def test_sync_returns_the_offset_on_disk_and_a_log_shorter_than_its_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.write({"step": 1})
    offset = log.sync()
    assert offset == path.stat().st_size == log.offset
    log.close()
    with open(path, "r+b") as f:  # the tail a crash of the machine took with it
        f.truncate(offset - 3)
    log = MetricsLog(path)
    with pytest.raises(ValueError, match=f"holds {offset - 3} bytes but its checkpoint was taken at {offset}"):
        log.rewind(offset)
    log.close()
    assert path.stat().st_size == offset - 3  # not padded with zero bytes


def test_a_reopened_log_appends(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    for step in (1, 2):
        log = MetricsLog(path)
        log.write({"step": step})
        log.close()
    assert [record["step"] for record in lines(path)] == [1, 2]


def test_tracker_without_a_remote_writes_the_local_log_only(tmp_path: Path) -> None:
    path = tmp_path / "run" / "metrics.jsonl"
    tracker = Tracker(SimpleNamespace(name="none"), path, name="e/full/seed_0", group="e", config={"seed": 0})
    tracker.log({"step": 5, "train/loss": 2.0})
    offset = tracker.offset
    tracker.log({"step": 10, "train/loss": 1.5})
    tracker.rewind(offset)
    tracker.summary({"test/acc": 0.5})
    tracker.close()
    assert lines(path) == [{"step": 5, "train/loss": 2.0}]
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.jsonl"]  # nothing else written
