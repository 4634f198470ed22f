"""End to end, as a user runs it: `python -m {{ cookiecutter.package }}.train experiment=... trainer=smoke`.

Every baseline learns on its synthetic twin in seconds; a rerun is byte-identical; a run killed with
SIGKILL at any moment (also in the middle of writing a checkpoint) and started again ends with the
same bytes in metrics.json; bad input stops with one clear line.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.ablate import METRICS, model_of
from {{ cookiecutter.package }}.config import run_dir_of

from helpers import run_cli

PKG = "{{ cookiecutter.package }}"
# experiment, a held-out accuracy and its chance level, and the most the final training loss may be as a
# fraction of the first logged one (NT-Xent falls slowly from log(2B-1): its bound is looser)
EXPERIMENTS = [
{%- if cookiecutter.__transformer %}
    ("transformer_shakespeare", "val/acc", 1 / 65, 0.75),
{%- endif %}
{%- if cookiecutter.__vit %}
    ("vit_cifar10", "test/acc", 0.1, 0.92),
{%- endif %}
{%- if cookiecutter.__simclr %}
    ("simclr_cifar10", "knn/acc", 0.1, 0.95),
{%- endif %}
]
IDS = [e[0] for e in EXPERIMENTS]
FIRST = EXPERIMENTS[0][0]
SECRETS = {
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",  # pragma: allowlist secret
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # pragma: allowlist secret
    "HF_TOKEN": "hf_SecretTokenValue1234567890",  # pragma: allowlist secret
    "GITHUB_TOKEN": "ghp_SecretTokenValue1234567890abcdef",  # pragma: allowlist secret
}

pytestmark = pytest.mark.slow


def train(
    cwd: Path, *overrides: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return run_cli([f"{PKG}.train", "trainer=smoke", "tracker=none", *overrides], cwd, env=env, check=check)


def run_dir(cwd: Path, experiment: str, seed: int = 0, *overrides: str) -> Path:
    """Where `train(cwd, experiment=..., seed=..., *overrides)` writes: the run-identity rule of repro/rundir.py."""
    command = [f"experiment={experiment}", "trainer=smoke", "tracker=none", f"seed={seed}", *overrides]
    return cwd / run_dir_of(command)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted smoke run of every baseline, seed 0, shared by the tests below."""
    cwd = tmp_path_factory.mktemp("reference")
    for experiment, *_ in EXPERIMENTS:
        train(cwd, f"experiment={experiment}")
    return cwd


@pytest.mark.parametrize(("experiment", "metric", "chance", "loss_ratio"), EXPERIMENTS, ids=IDS)
def test_smoke_run_learns_and_writes_the_run_directory(
    reference: Path, experiment: str, metric: str, chance: float, loss_ratio: float
) -> None:
    run = run_dir(reference, experiment)
    names = {p.name for p in run.iterdir()}
    assert {
        "config.yaml",
        "environment.json",
        "metrics.jsonl",
        "metrics.json",
        "timing.json",
        "train.log",
        "checkpoints",
    } <= names
    losses = [r["train/loss"] for r in lines(run / "metrics.jsonl") if "train/loss" in r]
    assert losses[-1] < loss_ratio * losses[0], f"loss did not fall enough: {losses}"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == set(METRICS[model_of(experiment)])  # what `ablate --metric` accepts
    assert metrics[metric] > 2 * chance, f"{metric}={metrics[metric]} is not clearly above chance {chance}"
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in metrics.values())
    timing = json.loads((run / "timing.json").read_text())
    assert timing["train_seconds"] < 30, "smoke runs take seconds"


@pytest.mark.parametrize("experiment", IDS)
def test_same_seed_is_byte_identical_other_seed_differs(reference: Path, tmp_path: Path, experiment: str) -> None:
    train(tmp_path, f"experiment={experiment}")
    train(tmp_path, f"experiment={experiment}", "seed=1")
    original = (run_dir(reference, experiment) / "metrics.json").read_bytes()
    assert (run_dir(tmp_path, experiment) / "metrics.json").read_bytes() == original
    assert (run_dir(tmp_path, experiment, 1) / "metrics.json").read_bytes() != original


def wait_for(predicate, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"training ended before the kill point:\n{process.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("kill point not reached in time")
        time.sleep(0.02)


def start(cwd: Path, argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("experiment", IDS)
def test_sigkill_at_several_points_then_resume_is_byte_identical(
    reference: Path, tmp_path: Path, experiment: str
) -> None:
    argv = ["-m", f"{PKG}.train", f"experiment={experiment}", "trainer=smoke", "tracker=none"]
    run = run_dir(tmp_path, experiment)
    log = run / "metrics.jsonl"
    # Kill points: before the first checkpoint, then at 20 %, 50 % and 85 % of the reference run's log.
    total = len(lines(run_dir(reference, experiment) / "metrics.jsonl"))
    marks = sorted({max(1, round(total * fraction)) for fraction in (0.2, 0.5, 0.85)})
    points = [lambda: (run / "config.yaml").exists()] + [lambda n=n: len(lines(log)) >= n for n in marks]
    for reached in points:
        process = start(tmp_path, argv)
        wait_for(reached, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not (run / "metrics.json").exists()
    train(tmp_path, f"experiment={experiment}")
    assert (run / "metrics.json").read_bytes() == (run_dir(reference, experiment) / "metrics.json").read_bytes()
    assert log.read_bytes() == (run_dir(reference, experiment) / "metrics.jsonl").read_bytes()
    # One record per start that got as far as writing it (the first kill may come before), environment.json first.
    records = len(list(run.glob("environment*.json")))
    assert (run / "environment.json").is_file() and records in (len(points), len(points) + 1)


# Runs training with the checkpoint writer sabotaged: at its N-th call it dies by SIGKILL, either
# half-way through writing the new checkpoint's bytes or between the two renames that install it.
DYING_SAVE = """
import os, runpy, signal, sys
from pathlib import Path
import {pkg}.train.checkpoint as ckpt
mode, n = sys.argv[1], int(sys.argv[2])
calls = []
real_write, real_replace = ckpt.atomic_write_bytes, os.replace
def write(path, data):
    calls.append(path)
    if mode == "write" and len(calls) == n:
        tmp = Path(path).with_name("." + Path(path).name + ".1234.dead.tmp")
        with open(tmp, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    real_write(path, data)
def replace(src, dst):
    real_replace(src, dst)
    if mode == "rename" and len(calls) == n and str(dst).endswith("prev.pt"):
        os.kill(os.getpid(), signal.SIGKILL)
ckpt.atomic_write_bytes = write
ckpt.os.replace = replace
sys.argv = ["train", *sys.argv[3:]]
runpy.run_module("{pkg}.train", run_name="__main__")
"""


@pytest.mark.parametrize("mode", ["write", "rename"])
def test_kill_during_checkpoint_write_resumes_byte_identical(reference: Path, tmp_path: Path, mode: str) -> None:
    script = DYING_SAVE.replace("{pkg}", PKG)
    args = [f"experiment={FIRST}", "trainer=smoke", "tracker=none"]
    for n in (2, 2):  # die in the 2nd save; after resuming, die again in the 2nd save of that process
        process = subprocess.run(
            [sys.executable, "-c", script, mode, str(n), *args],
            cwd=tmp_path,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
        )
        assert process.returncode == -signal.SIGKILL, process.stderr
    train(tmp_path, f"experiment={FIRST}")
    run = run_dir(tmp_path, FIRST)
    assert (run / "metrics.json").read_bytes() == (run_dir(reference, FIRST) / "metrics.json").read_bytes()
    assert not list((run / "checkpoints").glob("*.tmp")), "the half-written file is cleaned up"


def test_a_finished_run_is_kept_and_another_config_gets_its_own_folder(reference: Path, tmp_path: Path) -> None:
    run = run_dir(reference, FIRST)
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in run.rglob("*") if path.is_file()}
    again = train(reference, f"experiment={FIRST}")  # the same command: the same folder, nothing to train
    assert "already holds this run, finished: nothing to train" in " ".join((again.stdout + again.stderr).split())
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in run.rglob("*") if path.is_file()} == before

    other = run_dir(tmp_path, FIRST, 0, "trainer.lr=0.0005")
    assert other.parent.name != run.parent.name and other.parent.name.split("-")[0] == "full"
    train(tmp_path, f"experiment={FIRST}", "trainer.lr=5e-4")  # 5e-4 == 0.0005: one config, one folder
    assert (other / "metrics.json").is_file()
    assert (other / "metrics.json").read_bytes() != (run / "metrics.json").read_bytes()

    # A name of your own: a different config under it is refused, naming the key; overwrite replaces it.
    train(tmp_path, f"experiment={FIRST}", "run.name=mine")
    clash = train(tmp_path, f"experiment={FIRST}", "run.name=mine", "trainer.lr=5e-4", check=False)
    assert clash.returncode == 2 and len(clash.stderr.strip().splitlines()) == 1
    assert "holds a finished run of a different config (trainer.lr:" in clash.stderr
    train(tmp_path, f"experiment={FIRST}", "run.name=mine", "trainer.lr=5e-4", "run.overwrite=true")
    named = tmp_path / "runs" / FIRST / "mine" / "seed_0"
    assert (named / "metrics.json").read_bytes() == (other / "metrics.json").read_bytes()


def test_config_typo_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    result = train(tmp_path, f"experiment={FIRST}", "trainer.learning_rate=0.1", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: trainer.learning_rate=0.1: trainer.learning_rate is not a config key (did you mean trainer.lr? every "
        "key is declared in a schema, so + and ++ cannot add one either; `--cfg job` prints them all)"
    ]
    assert not (tmp_path / "runs").exists()
    result = train(tmp_path, f"experiment={FIRST}", "trainer.epochs=three", check=False)
    assert "Value 'three' of type 'str' could not be converted to Integer" in result.stderr


def test_bad_values_are_refused_before_the_run_directory_is_made(tmp_path: Path) -> None:
    """Refused with one line and nothing in runs/, so the corrected command just runs (no stale run to clear)."""
    refusals = {
        "trainer.batch_size=100000": "error: trainer.batch_size=100000 exceeds the ",
        "trainer.checkpoint_every=0": "error: trainer.checkpoint_every=0 is not valid; expected an integer >= 1",
        "trainer.precision=fp8": "error: trainer.precision='fp8' is not valid; expected one of fp32, bf16, fp16",
    }
    for override, message in refusals.items():
        result = train(tmp_path, f"experiment={FIRST}", "paths.data_dir=data", override, check=False)
        assert result.returncode == 2, override
        assert result.stderr.strip().splitlines()[-1].startswith(message)
        assert not (tmp_path / "runs").exists(), override
    fresh_data = tmp_path / "fresh"  # data prepared before the directory is claimed still reaches train.log
    train(tmp_path, f"experiment={FIRST}", f"paths.data_dir={fresh_data}")
    log = (run_dir(tmp_path, FIRST) / "train.log").read_text()
    assert str(fresh_data) in log.splitlines()[0] and "run directory" in log


def test_unfinished_run_of_another_config_is_refused(tmp_path: Path) -> None:
    """Only a name you choose can point two configs at one folder (a digest never does): refused, naming the key."""
    named = ["-m", f"{PKG}.train", f"experiment={FIRST}", "trainer=smoke", "tracker=none", "run.name=mine"]
    process = start(tmp_path, named)
    checkpoint = tmp_path / "runs" / FIRST / "mine" / "seed_0" / "checkpoints" / "last.pt"
    wait_for(checkpoint.exists, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = train(tmp_path, f"experiment={FIRST}", "run.name=mine", "trainer.lr=0.5", check=False)
    assert result.returncode == 2
    assert "holds an unfinished run of a different config (trainer.lr:" in result.stderr


def test_secrets_never_reach_the_run_directory(tmp_path: Path) -> None:
    train(tmp_path, f"experiment={FIRST}", env=SECRETS)
    for path in run_dir(tmp_path, FIRST).rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for name, value in SECRETS.items():
                assert value.encode() not in content, f"{name} leaked into {path}"


def test_corrupted_data_is_refused_with_a_clear_message(reference: Path, tmp_path: Path) -> None:
    train(tmp_path, f"experiment={FIRST}", "seed=5")
    manifest = next((tmp_path / "data").rglob("manifest.json"))
    victim = next(p for p in manifest.parent.iterdir() if p.name not in ("manifest.json", "meta.json"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = train(tmp_path, f"experiment={FIRST}", "seed=6", check=False)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert victim.name in message and "sha256" in message
    assert not run_dir(tmp_path, FIRST, 6).exists()  # refused before the run directory was claimed


def test_reproduce_reports_match_then_mismatch_after_tampering(reference: Path, tmp_path: Path) -> None:
    original = run_dir(reference, FIRST)
    # The run named by the overrides that trained it, as the README does: the same folder as its directory.
    by_command = [f"experiment={FIRST}", "trainer=smoke", "tracker=none"]
    result = run_cli([f"{PKG}.reproduce", *by_command, "--out", str(tmp_path / "again")], reference, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "match" in result.stdout
    tampered = tmp_path / "tampered"
    subprocess.run(["cp", "-r", str(original), str(tampered)], check=True)
    metrics = json.loads((tampered / "metrics.json").read_text())
    key = next(k for k in metrics if not k.startswith("model/"))
    metrics[key] += 0.01
    (tampered / "metrics.json").write_text(json.dumps(metrics))
    result = run_cli([f"{PKG}.reproduce", str(tampered), "--out", str(tmp_path / "again2")], reference, check=False)
    assert result.returncode == 1
    assert "mismatch" in result.stdout and key in result.stdout


def test_reproduce_never_writes_into_the_run_it_checks(reference: Path, tmp_path: Path) -> None:
    original = run_dir(reference, FIRST)
    before = {path: path.read_bytes() for path in original.rglob("*") if path.is_file()}
    for out in (original, original / "again", original.parent):
        result = run_cli([f"{PKG}.reproduce", str(original), "--out", str(out)], reference, check=False)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"error: --out {out} overlaps the run being checked ({original}); expected a folder outside it (pass --out)"
        ]
    assert {path: path.read_bytes() for path in original.rglob("*") if path.is_file()} == before


def test_env_command_prints_the_record(reference: Path) -> None:
    result = run_cli([f"{PKG}.env", str(run_dir(reference, FIRST))], reference)
    assert "torch.version" in result.stdout and "git" in result.stdout
    by_command = run_cli([f"{PKG}.env", f"experiment={FIRST}", "trainer=smoke", "--json"], reference)
    assert json.loads(by_command.stdout) == json.loads((run_dir(reference, FIRST) / "environment.json").read_text())
    machine = run_cli([f"{PKG}.env", "--json"], reference)
    assert json.loads(machine.stdout)["packages"]["torch"]
