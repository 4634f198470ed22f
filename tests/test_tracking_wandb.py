"""Tracking in baked projects: wandb only where chosen, offline by itself without an API key, WANDB_MODE
respected, and a wandb failure only a warning. Never online: no test has a key, and HOME is a temp folder.

The slow tests train real smoke runs (about 8 s each) and run the project's own tracking tests, whose
reader decodes the offline run file (`run-<id>.wandb`, since offline runs write no summary file: wandb #9646).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, Baker, run

SECRET_FREE = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT")


def train(project: Path, tmp_path: Path, *overrides: str, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    """A smoke run of the first baseline in a clean environment: no wandb variables unless given in `env`."""
    run_dir = tmp_path / "run"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if k not in SECRET_FREE}
    clean.update(
        HOME=str(home),  # no ~/.netrc: no key
        PYTHONPATH=str(project / "src"),
        PYTHONHASHSEED="0",
        WANDB_SILENT="true",
        WANDB_ERROR_REPORTING="false",
        WANDB_DIR=str(tmp_path / "wandb-home"),
        **env,
    )
    command = [PYTHON, "-m", "my_paper.train", "experiment=transformer_shakespeare", "trainer=smoke"]
    command += [f"run.dir={run_dir}", f"paths.data_dir={tmp_path / 'data'}", *overrides]
    result = subprocess.run(
        command, cwd=project, env=clean, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"training failed:\n{result.stdout}\n{result.stderr}"
    return result, run_dir


def test_tracker_none_has_no_trace_of_wandb(bake: Baker) -> None:
    project = bake(tracker="none")
    assert not (project / "tests" / "test_wandb.py").exists()
    assert (project / "tests" / "test_tracking.py").exists()
    assert "wandb" not in (project / ".dvcignore").read_text()
    for path in (project / "src").rglob("*.py"):
        assert "import wandb" not in path.read_text(), path


def test_tracker_wandb_ships_its_tests_and_config(bake: Baker) -> None:
    project = bake(tracker="wandb")
    assert (project / "tests" / "test_wandb.py").exists()
    assert "tracker: wandb" in (project / "configs" / "train.yaml").read_text()


@pytest.mark.slow
def test_the_projects_own_tracking_tests_pass(bake: Baker) -> None:
    project = bake(tracker="wandb")
    env = {"PYTHONPATH": str(project / "src")}
    result = run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_tracking.py", "tests/test_wandb.py"],
        cwd=project,
        env=env,
    )
    assert " passed" in result.stdout and "skipped" not in result.stdout


@pytest.mark.slow
def test_without_an_api_key_a_run_goes_offline_by_itself(bake: Baker, tmp_path: Path) -> None:
    _, run_dir = train(bake(tracker="wandb"), tmp_path)
    (offline,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    assert offline.stat().st_size > 0
    assert json.loads((run_dir / "metrics.json").read_text())  # the run itself is complete


@pytest.mark.slow
def test_wandb_mode_disabled_is_respected(bake: Baker, tmp_path: Path) -> None:
    _, run_dir = train(bake(tracker="wandb"), tmp_path, WANDB_MODE="disabled")
    assert not (run_dir / "wandb").exists()
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.slow
def test_a_wandb_failure_is_a_warning_and_the_run_finishes(bake: Baker, tmp_path: Path) -> None:
    # Online without a key: wandb.init refuses at once (no login prompt without a terminal).
    result, run_dir = train(bake(tracker="wandb"), tmp_path, "tracker.mode=online")
    assert "wandb could not start" in result.stdout + result.stderr
    assert (run_dir / "metrics.json").is_file() and not (run_dir / "wandb").exists()
