"""benchmarks/time_to_target.py: the first evaluation meeting a target, its training time, the budget verdict,
on hand-made run directories and on a real smoke run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import PROJECT_ROOT, find_run, run_cli

SCRIPT = PROJECT_ROOT / "benchmarks" / "time_to_target.py"
spec = importlib.util.spec_from_file_location("time_to_target", SCRIPT)
assert spec is not None and spec.loader is not None
ttt = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = ttt  # dataclasses look their module up there
spec.loader.exec_module(ttt)

EXPERIMENT = next(iter(ttt.TARGETS))
TARGET = ttt.TARGETS[EXPERIMENT]


def make_run(path: Path, scores: list[float], metric: str = TARGET.metric, device: str = "cuda:0") -> Path:
    """A finished run as train leaves it: config.yaml, environment.json, timing.json with its evaluations."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(f"experiment: {EXPERIMENT}\ndata:\n  synthetic: false\n")
    gpu = {"count": 1, "devices": [{"name": "NVIDIA H100 80GB HBM3"}]}
    (path / "environment.json").write_text(json.dumps({"accelerators": gpu, "platform": {"cpu": "AMD EPYC"}}))
    evaluations = [
        {"step": 100 * (i + 1), "epoch": i + 1, "train_seconds": 30.0 * (i + 1), metric: score}
        for i, score in enumerate(scores)
    ]
    timing = {"train_seconds": 30.0 * len(scores), "device": device, "images_per_second": 5000.0}
    (path / "timing.json").write_text(json.dumps({**timing, "evaluations": evaluations}))
    return path


def towards(target: Any, steps: int) -> list[float]:
    """Scores that improve towards the target and meet it exactly at evaluation `steps` (1-based)."""
    sign = 1 if target.mode == "min" else -1
    return [target.value + sign * 0.1 * (steps - i) for i in range(1, steps + 1)] + [target.value + sign * 0.05]


def test_the_first_evaluation_meeting_the_target_gives_the_time(tmp_path: Path) -> None:
    row = ttt.time_to_target(make_run(tmp_path / "run", towards(TARGET, 3)))
    assert (row["reached"], row["epoch"], row["step"], row["train_seconds"]) == (True, 3, 300, 90.0)
    assert row["within_budget"] is (TARGET.budget_seconds >= 90.0)
    assert row["device"] == "NVIDIA H100 80GB HBM3" and row["synthetic"] is False
    assert row["best"] == TARGET.value and row["final"] != TARGET.value  # met exactly counts; later ones ignored


def test_a_run_that_never_reaches_the_target_has_no_time(tmp_path: Path) -> None:
    sign = 1 if TARGET.mode == "min" else -1
    scores = [TARGET.value + sign * d for d in (0.3, 0.2, 0.01)]
    row = ttt.time_to_target(make_run(tmp_path / "run", scores))
    assert (row["reached"], row["train_seconds"], row["within_budget"]) == (False, None, None)
    assert row["best"] == pytest.approx(TARGET.value + sign * 0.01)
    assert "not reached" in ttt.markdown([row])


def test_over_budget_is_reported_and_a_cpu_run_names_the_cpu(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", towards(TARGET, 2), device="cpu")
    row = ttt.time_to_target(run, budget=59.0)
    assert (row["train_seconds"], row["within_budget"], row["device"]) == (60.0, False, "AMD EPYC")


def test_a_custom_target_and_the_written_report(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [0.5, 0.7, 0.9], metric="val/acc")
    target = ["--metric", "val/acc", "--target", "0.7", "--mode", "max", "--budget", "100"]
    ttt.main([str(run), *target, "--out", str(tmp_path)])
    (row,) = json.loads((tmp_path / "time_to_target_nvidia_h100_80gb_hbm3.json").read_text())
    assert (row["step"], row["train_seconds"], row["within_budget"]) == (200, 60.0, True)
    report = (tmp_path / "time_to_target_nvidia_h100_80gb_hbm3.md").read_text()
    assert "| val/acc >= 0.7 | epoch 2, step 200 | 60.0 | 100 | yes | 0.9 | 5,000 images/s |" in report


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "timing.json").unlink(), "timing.json is missing"),
        (lambda run: (run / "timing.json").write_text("{"), "timing.json is not valid JSON"),
        (lambda run: (run / "timing.json").write_text('{"evaluations": []}'), "lists no evaluations"),
        (lambda run: (run / "config.yaml").write_text("experiment: other\n"), "no default target for experiment='oth"),
    ],
)
def test_bad_run_directories_are_one_line_errors(tmp_path: Path, damage: Any, message: str) -> None:
    run = make_run(tmp_path / "run", [1.0])
    damage(run)
    with pytest.raises(SystemExit, match=message):
        ttt.time_to_target(run)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--metric", "val/acc", "--target", "0.7"], "--metric, --target and --mode go together"),
        (["--metric", "val/acc", "--target", "nan", "--mode", "max"], "--target nan: expected a finite score"),
        (["--budget", "-5"], "--budget -5.0: expected a positive number of seconds"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    run = make_run(tmp_path / "run", [1.0])
    with pytest.raises(SystemExit) as exit_:
        ttt.main([str(run), *arguments, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written


def test_an_unknown_metric_names_the_evaluated_ones(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [1.0])
    expected = rf"metric 'val/nope' is not evaluated .* expected one of \['{TARGET.metric}'\]"
    with pytest.raises(SystemExit, match=expected):
        ttt.time_to_target(run, ttt.Target("val/nope", 1.0, "min"))


@pytest.mark.slow
def test_a_real_smoke_run(tmp_path: Path) -> None:
    overrides = [f"experiment={EXPERIMENT}", "trainer=smoke", "tracker=none", f"paths.runs_dir={tmp_path / 'runs'}"]
    run_cli(["{{ cookiecutter.package }}.train", *overrides, f"paths.data_dir={tmp_path / 'data'}"], tmp_path)
    run = find_run(tmp_path / "runs", EXPERIMENT)
    first = json.loads((run / "timing.json").read_text())["evaluations"][0][TARGET.metric]
    command = [sys.executable, str(SCRIPT), str(run), "--out", str(tmp_path / "out")]
    result = subprocess.run(
        [*command, "--metric", TARGET.metric, "--target", str(first), "--mode", TARGET.mode],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| epoch 1, step " in result.stdout and "synthetic twin" in result.stdout
    default = subprocess.run(command, capture_output=True, text=True, check=True)  # the H100 target: far off
    assert "not reached" in default.stdout
