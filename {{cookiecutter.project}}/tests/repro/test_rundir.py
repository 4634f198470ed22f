import json
import os
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.repro.rundir import (
    RunDir,
    RunDirError,
    RunState,
    atomic_write_json,
    atomic_write_text,
    diff_configs,
)

CONFIG = {"experiment": "e", "seed": 0, "trainer": {"lr": 0.1}, "run": {"overwrite": False}}


def test_layout_follows_the_contract(tmp_path: Path) -> None:
    run = RunDir.for_run(tmp_path / "runs", "vit_cifar10", "gap", 3)
    assert run.path == tmp_path / "runs" / "vit_cifar10" / "gap" / "seed_3"
    names = [p.name for p in (run.config, run.environment, run.metrics_log, run.metrics, run.timing, run.log_file)]
    assert names == ["config.yaml", "environment.json", "metrics.jsonl", "metrics.json", "timing.json", "train.log"]
    assert run.last_checkpoint == run.path / "checkpoints" / "last.pt"


@pytest.mark.parametrize("bad", ["", "a/b", ".hidden"])
def test_bad_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="cannot name a run directory"):
        RunDir.for_run(tmp_path, bad, "full", 0)


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "m.json"
    atomic_write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'  # sorted keys: equal content, equal bytes
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    atomic_write_json(target, {"ok": True})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})  # fails while serialising: nothing is replaced
    assert json.loads(target.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_states_new_resumable_finished(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert run.state() is RunState.NEW
    assert run.prepare(CONFIG, overwrite=False, resume=True) is RunState.NEW
    assert run.config.exists() and run.checkpoints.is_dir()
    assert run.prepare(CONFIG, overwrite=False, resume=True) is RunState.RESUMABLE
    atomic_write_json(run.metrics, {"x": 1})
    assert run.state() is RunState.FINISHED


def test_finished_run_is_never_overwritten_silently(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.prepare(CONFIG, overwrite=False, resume=True)
    atomic_write_json(run.metrics, {"x": 1})
    with pytest.raises(RunDirError, match=r"already holds a finished run .*run.overwrite=true"):
        run.prepare(CONFIG, overwrite=False, resume=True)
    assert json.loads(run.metrics.read_text()) == {"x": 1}
    (run.path / "notes.txt").write_text("mine")  # a user's own file survives an overwrite
    assert run.prepare(CONFIG, overwrite=True, resume=True) is RunState.NEW
    assert not run.metrics.exists() and (run.path / "notes.txt").read_text() == "mine"


def test_unfinished_run_of_another_config_is_refused_with_the_keys(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.prepare(CONFIG, overwrite=False, resume=True)
    other = {**CONFIG, "trainer": {"lr": 0.2}}
    with pytest.raises(RunDirError, match=r"trainer.lr: 0.1 -> 0.2"):
        run.prepare(other, overwrite=False, resume=True)
    # Keys that only drive the run (run.*, tracker.*) don't make it a different experiment.
    assert run.prepare({**CONFIG, "run": {"overwrite": True}}, overwrite=False, resume=True) is RunState.RESUMABLE


def test_resume_false_restarts(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.prepare(CONFIG, overwrite=False, resume=True)
    run.last_checkpoint.write_bytes(b"x")
    assert run.prepare(CONFIG, overwrite=False, resume=False) is RunState.NEW
    assert not run.last_checkpoint.exists()


def test_diff_configs_reports_added_and_changed_keys() -> None:
    old = {"a": {"b": 1, "c": 2}, "run": {"dir": "x"}}
    new = {"a": {"b": 1, "c": 3, "d": 4}, "run": {"dir": "y"}}
    assert diff_configs(old, new) == {"a.c": (2, 3), "a.d": ("<absent>", 4)}


def test_atomic_write_is_durable_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    atomic_write_text(tmp_path / "f", "x")
    assert len(synced) == 2  # the file's data, then the directory entry
