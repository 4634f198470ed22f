import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.data.files import atomic_write_json
from {{ cookiecutter.package }}.repro.rundir import (
    RunDir,
    RunDirError,
    RunLock,
    RunState,
    config_digest,
    diff_configs,
)

CONFIG = {"experiment": "e", "seed": 0, "trainer": {"lr": 0.1}, "run": {"overwrite": False}}
FULL = {
    "experiment": "vit_cifar10",
    "variant": "full",
    "variant_keys": [],
    "override_keys": [],
    "seed": 0,
    "model": {"name": "vit", "depth": 6},
    "data": {"name": "cifar10", "root": "data", "synthetic": True},
    "trainer": {"lr": 0.001, "progress": True},
    "tracker": {"name": "none"},
    "paths": {"data_dir": "data", "runs_dir": "runs"},
    "run": {"dir": None, "name": None, "overwrite": False, "resume": True},
}


def changed(config: dict, dotted: str, value: object) -> dict:
    out = json.loads(json.dumps(config))
    *parents, leaf = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[leaf] = value
    return out


def test_the_folder_is_the_variant_and_a_digest_of_what_the_run_computes(tmp_path: Path) -> None:
    run = RunDir.for_config(FULL)
    assert run.path == Path("runs") / "vit_cifar10" / f"full-{config_digest(FULL)}" / "seed_0"
    assert len(config_digest(FULL)) == 8 and int(config_digest(FULL), 16) >= 0
    # The seeds of one setting share the folder; every key that changes the computation moves it.
    assert RunDir.for_config(changed(FULL, "seed", 3)).path.parent == run.path.parent
    for key, value in (("trainer.lr", 0.0003), ("model.depth", 12), ("data.synthetic", False)):
        assert RunDir.for_config(changed(FULL, key, value)).path.parent != run.path.parent, key
    # Bookkeeping (where files go, trackers, progress, which command set what) never does.
    for key, value in (
        ("paths.runs_dir", "runs"),
        ("data.root", "/elsewhere/data"),
        ("tracker.name", "wandb"),
        ("trainer.progress", False),
        ("run.overwrite", True),
        ("override_keys", ["trainer.lr"]),
        ("variant_keys", ["model.pool"]),
    ):
        assert config_digest(changed(FULL, key, value)) == config_digest(FULL), key
    # Stable across processes and machines: a fixed config has a fixed name (a change here moves every run):
    # SHA-256 of the flattened keys as compact, sorted JSON, no time, host or process in it.
    assert config_digest({"trainer": {"lr": 0.001}, "seed": 5}) == config_digest({"trainer": {"lr": 1e-3}})
    assert config_digest({"trainer": {"lr": 0.001}}) == hashlib.sha256(b'{"trainer.lr":0.001}').hexdigest()[:8]
    assert config_digest({"trainer": {"lr": 0.001}}) == "36f4d49c"
    # Explicit names: run.name replaces <variant>-<digest>, run.dir the whole path.
    assert RunDir.for_config(changed(FULL, "run.name", "mine")).path == Path("runs/vit_cifar10/mine/seed_0")
    assert RunDir.for_config(changed(FULL, "run.dir", str(tmp_path / "x"))).path == tmp_path / "x"


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
    assert run.check(CONFIG, overwrite=False) is RunState.FINISHED  # this config: done, nothing to train
    with pytest.raises(RunDirError, match=r"already holds this finished run; pass run.overwrite=true"):
        run.prepare(CONFIG, overwrite=False, resume=True)
    with pytest.raises(RunDirError, match=r"holds a finished run of a different config \(trainer.lr: 0.1 -> 0.2\)"):
        run.check({**CONFIG, "trainer": {"lr": 0.2}}, overwrite=False)
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


def test_check_refuses_like_prepare_and_writes_nothing(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert run.check(CONFIG, overwrite=False) is RunState.NEW and not run.path.exists()
    run.prepare(CONFIG, overwrite=False, resume=True)
    with pytest.raises(RunDirError, match=r"trainer.lr: 0.1 -> 0.2"):
        run.check({**CONFIG, "trainer": {"lr": 0.2}}, overwrite=False)
    atomic_write_json(run.metrics, {"x": 1})
    assert run.check(CONFIG, overwrite=False) is RunState.FINISHED  # the same config: found finished
    with pytest.raises(RunDirError, match="holds a finished run of a different config"):
        run.check({**CONFIG, "trainer": {"lr": 0.2}}, overwrite=False)
    assert run.check(CONFIG, overwrite=True) is RunState.FINISHED and run.metrics.exists()  # not cleared


def test_half_written_files_go_and_a_whole_next_checkpoint_stays(tmp_path: Path) -> None:
    """What a SIGKILL mid-write leaves: atomic writers' temp files (removed) and last.pt.next (the newest)."""
    run = RunDir(tmp_path / "r")
    run.prepare(CONFIG, overwrite=False, resume=True)
    stale = [run.path / ".timing.json.123.abc.tmp", run.checkpoints / ".last.pt.next.123.abc.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    (run.checkpoints / "last.pt.next").write_bytes(b"whole")
    assert run.prepare(CONFIG, overwrite=False, resume=True) is RunState.RESUMABLE
    assert not any(path.exists() for path in stale)
    assert (run.checkpoints / "last.pt.next").read_bytes() == b"whole"
    (run.path / ".metrics.json.9.x.tmp").write_bytes(b"half")
    run.clear()
    assert sorted(p.name for p in run.path.iterdir()) == []


def test_diff_configs_reports_added_and_changed_keys() -> None:
    old = {"a": {"b": 1, "c": 2}, "run": {"dir": "x"}}
    new = {"a": {"b": 1, "c": 3, "d": 4}, "run": {"dir": "y"}}
    assert diff_configs(old, new) == {"a.c": (2, 3), "a.d": ("<absent>", 4)}


def test_one_process_at_a_time_holds_a_run_and_a_killed_holder_holds_nothing(tmp_path: Path) -> None:
    first, second = RunLock(tmp_path / "r"), RunLock(tmp_path / "r")
    first.acquire()
    with pytest.raises(RunDirError, match=rf"is being trained by {socket.gethostname()} pid {os.getpid()} right now"):
        second.acquire()
    first.release()
    second.acquire()  # released: free again
    second.release()
    assert (tmp_path / "r" / ".lock").read_text() == ""  # no stale holder named after a release
    # SIGKILL leaves no lock behind: the operating system drops it with the process.
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "r")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirError, match=f"pid {holder.pid}"):
        RunLock(tmp_path / "r").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    RunLock(tmp_path / "r").acquire()


HOLD = """
import sys, time
from pathlib import Path
from {{ cookiecutter.package }}.repro.rundir import RunLock
RunLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(60)
"""
