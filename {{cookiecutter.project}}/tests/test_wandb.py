"""The wandb side of tracking, always offline or disabled (never online): what the offline run holds, how
the mode is chosen, and that no wandb failure can stop a training run.

Offline runs do not write config.yaml or wandb-summary.json (wandb #9646), so the tests read the run's
own log, `offline-run-*/run-<id>.wandb`, with wandb's protobuf schema: a 7-byte header, then LevelDB-log
style 32 KiB blocks of records (4-byte checksum, 2-byte length, 1-byte type: full, first, middle, last).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from {{ cookiecutter.package }}.tracking import Tracker, wandb_mode, wandb_run_id

from helpers import find_run, run_cli

pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What an offline run file holds, decoded."""

    name: str = ""
    group: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


def records(path: Path) -> Iterator[Any]:
    """Every `Record` of a .wandb file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} does not start with the .wandb header"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:  # a block never starts a record in its last 6 bytes: they are padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding to the end of the block
            pos += room
            continue
        if pos + 7 + length > len(data):  # a record still being written
            return
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def read_offline_run(run_dir: Path, timeout: float = 30.0) -> OfflineRun:
    """Decode the one offline run under `run_dir`/wandb/, once it is complete.

    `run.finish()` can return before wandb's service has flushed the offline file (seen on a loaded
    2-core CI machine: a file holding only its header), so wait for the exit record, which comes last.
    """
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + timeout
    run = decode_offline_run(path)
    while run.exit_code is None and time.monotonic() < deadline:
        time.sleep(0.1)
        run = decode_offline_run(path)
    return run


def decode_offline_run(path: Path) -> OfflineRun:
    """What one .wandb file holds now."""

    def items(updates: Any) -> dict[str, Any]:
        return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in updates}

    run = OfflineRun()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group = record.run.display_name, record.run.run_group
            run.config.update(items(record.run.config.update))
        elif kind == "config":
            run.config.update(items(record.config.update))
        elif kind == "history":
            run.history.append(items(record.history.item))
        elif kind == "summary":
            run.summary.update(items(record.summary.update))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No API key, no WANDB_MODE, nothing in the real home directory: wandb must choose offline itself."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/.netrc with a key
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")


def tracker_cfg(**overrides: Any) -> SimpleNamespace:
    settings = {"name": "wandb", "project": "test", "entity": None, "mode": None, "tags": []}
    return SimpleNamespace(**{**settings, **overrides})


def make_tracker(run_dir: Path, **cfg: Any) -> Tracker:
    config = {"experiment": "exp", "variant": "full", "seed": 3, "trainer": {"lr": 0.01}}
    environment = {"git": {"commit": "abc"}, "seed": {"seed": 3}}
    return Tracker(tracker_cfg(**cfg), run_dir / "metrics.jsonl", "exp/full/seed_3", "exp", config, environment)


def test_offline_without_an_api_key_records_name_config_history_and_summary(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "exp" / "full" / "seed_3"
    tracker = make_tracker(run_dir)
    assert tracker.remote is not None and tracker.remote.settings.mode == "offline"
    for step in (5, 10):
        tracker.log({"step": step, "epoch": 0, "train/loss": 1.0 / step, "lr": 0.01})
    tracker.log({"step": 10, "epoch": 1, "val/loss": 0.25})  # an evaluation at the same step
    tracker.summary({"val/loss": 0.25, "model/params": 1234})
    tracker.close()

    run = read_offline_run(run_dir)
    assert (run.name, run.group, run.exit_code) == ("exp/full/seed_3", "exp", 0)
    assert run.config["trainer"] == {"lr": 0.01} and run.config["seed"] == 3
    assert run.config["environment"] == {"git": {"commit": "abc"}, "seed": {"seed": 3}}
    rows = {row["_step"]: row for row in run.history}
    assert rows[5]["train/loss"] == 0.2
    assert rows[10]["train/loss"] == 0.1 and rows[10]["val/loss"] == 0.25  # one row per step
    assert run.summary["val/loss"] == 0.25 and run.summary["model/params"] == 1234
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3  # the local log is complete too


def test_the_mode_is_config_then_wandb_mode_then_offline_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wandb_mode(None) == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(None) == "disabled"
    assert wandb_mode("offline") == "offline"  # tracker.mode wins over the environment
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode(None) == "online"


def test_online_without_a_reachable_server_falls_back_to_offline_in_seconds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An API key and no network: wandb.init alone would wait about 90 s; the run goes offline at once."""
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # loopback, a port nothing listens on
    assert wandb_mode(None) == "online"
    start = time.monotonic()
    tracker = make_tracker(tmp_path / "run")
    assert tracker.remote is not None and tracker.remote.settings.mode == "offline"
    tracker.close()
    assert time.monotonic() - start < 30, "the fallback must take seconds, not wandb's 90 s init timeout"
    assert "cannot be reached; logging offline" in caplog.text


def test_a_wandb_login_in_netrc_counts_as_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = Path(os.environ["HOME"]) / ".netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {'x' * 40}\n")
    netrc.chmod(0o600)  # what `wandb login` writes; Python refuses a password file others can read
    assert wandb_mode(None) == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.my-lab.org")  # a login for another host is no key here
    assert wandb_mode(None) == "offline"


def test_disabled_mode_writes_no_wandb_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    tracker = make_tracker(tmp_path / "run")
    tracker.log({"step": 1, "train/loss": 1.0})
    tracker.close()
    assert not (tmp_path / "run" / "wandb").exists()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1


def test_wandb_failing_to_start_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import wandb

    def broken_init(**kwargs: Any) -> None:
        raise RuntimeError("no network")

    monkeypatch.setattr(wandb, "init", broken_init)
    with caplog.at_level(logging.WARNING):
        tracker = make_tracker(tmp_path / "run")
    assert tracker.remote is None
    assert "wandb could not start (RuntimeError: no network)" in caplog.text
    tracker.log({"step": 1, "train/loss": 1.0})
    tracker.close()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1


def test_wandb_failing_mid_run_is_a_warning_and_the_local_log_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(tmp_path / "run")
    real = tracker.remote
    calls = []

    class Broken:
        def log(self, *args: Any, **kwargs: Any) -> None:
            calls.append(args)
            raise ConnectionError("upload failed")

    tracker.remote = Broken()
    with caplog.at_level(logging.WARNING):
        tracker.log({"step": 1, "train/loss": 1.0})
        tracker.log({"step": 2, "train/loss": 0.9})  # wandb is no longer called
    assert len(calls) == 1 and tracker.remote is None
    assert caplog.text.count("wandb failed (ConnectionError: upload failed)") == 1
    tracker.close()
    real.finish()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 2


def test_a_run_that_raises_is_finished_as_failed(tmp_path: Path) -> None:
    tracker = make_tracker(tmp_path / "run")
    with pytest.raises(FloatingPointError):
        try:
            tracker.log({"step": 1, "train/loss": float("nan")})
            raise FloatingPointError("loss is nan")
        finally:
            tracker.close()  # as train/run.py does
    assert read_offline_run(tmp_path / "run").exit_code == 1


def test_the_run_id_survives_a_resume_and_changes_with_a_new_run(tmp_path: Path) -> None:
    (tmp_path / "environment.json").write_text(json.dumps({"started_at": "2025-01-01T00:00:00+00:00"}))
    first = wandb_run_id("exp/full/seed_0", tmp_path)
    (tmp_path / "environment.resume_1.json").write_text(json.dumps({"started_at": "2025-01-02T00:00:00+00:00"}))
    assert wandb_run_id("exp/full/seed_0", tmp_path) == first  # a resume keeps environment.json
    assert wandb_run_id("exp/full/seed_1", tmp_path) != first
    (tmp_path / "environment.json").write_text(json.dumps({"started_at": "2025-02-01T00:00:00+00:00"}))
    assert wandb_run_id("exp/full/seed_0", tmp_path) != first  # run.overwrite started it afresh
    assert wandb_run_id("exp/full/seed_0", tmp_path / "elsewhere") is None  # no record: wandb picks an id


@pytest.mark.slow
def test_a_smoke_training_run_logs_everything_to_its_offline_run(tmp_path: Path) -> None:
{%- if cookiecutter.__transformer %}
    experiment, variant = "transformer_shakespeare", "full"
{%- elif cookiecutter.__vit %}
    experiment, variant = "vit_cifar10", "full"
{%- else %}
    experiment, variant = "simclr_cifar10", "full"
{%- endif %}
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb-home")}
    overrides = [f"experiment={experiment}", "trainer=smoke", "tracker=wandb", f"paths.runs_dir={tmp_path / 'runs'}"]
    run_cli(["{{ cookiecutter.package }}.train", *overrides, f"paths.data_dir={tmp_path / 'data'}"], tmp_path, env)
    run_dir = find_run(tmp_path / "runs", experiment, variant)
    run = read_offline_run(run_dir)

    assert (run.name, run.group, run.exit_code) == (f"{experiment}/{run_dir.parent.name}/seed_0", experiment, 0)
    assert run.config["experiment"] == experiment and run.config["environment"]["seed"]["seed"] == 0
    logged = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        logged.setdefault(record["step"], {}).update(record)
    history = {row["_step"]: row for row in run.history}
    assert history.keys() == logged.keys()
    for step, record in logged.items():
        assert {key: history[step][key] for key in record} == record
    final = json.loads((run_dir / "metrics.json").read_text())
    assert {key: run.summary[key] for key in final} == final
