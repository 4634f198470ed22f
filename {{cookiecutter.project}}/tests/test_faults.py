"""Faults injected on purpose: each one ends with the numbers of an undisturbed run, or with one clear line.

- Damaged bytes inside `checkpoints/last.pt` (several offsets): the previous checkpoint is used, with a
  warning naming both files, and the run ends with the reference metrics.json and metrics.jsonl.
- Two identical commands at once, and one started while the other trains: exactly one trains; the other
  is refused at once, naming the holder; the log holds every record once.
- A kill right after each write of a run's life (config.yaml, environment.json, the first checkpoint,
  timing.json): the next start completes the run with every file the README lists and the same numbers.
- Hostile input: `+key=`, `++key=`, a typo, a path as a group choice, a device that does not exist, a
  300-character name, damaged config/record files, `reproduce --out` onto another run, a file-size limit
  while checkpointing, a file where the data folder should be: one line naming the key or file, exit 2,
  nothing half-made.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.config import OverrideError, check_overrides, run_dir_of

from helpers import PROJECT_ROOT, run_cli

pytestmark = pytest.mark.slow

PKG = "{{ cookiecutter.package }}"
# The cheapest baseline this project has (a fault is about the machinery, not the model).
EXPERIMENT = next(
    name
    for name in ("transformer_shakespeare", "vit_cifar10", "simclr_cifar10")
    if (PROJECT_ROOT / "configs" / "experiment" / f"{name}.yaml").is_file()
)
ARGS = [f"experiment={EXPERIMENT}", "trainer=smoke", "tracker=none"]
RUN = run_dir_of(ARGS)  # runs/<experiment>/full-<digest>/seed_0, relative to each test's folder
README_FILES = ("config.yaml", "environment.json", "metrics.jsonl", "metrics.json", "timing.json", "train.log")


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", f"{PKG}.train", *ARGS, *extra]


def start(cwd: Path, argv: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(predicate, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"training ended before the kill point:\n{process.stderr.read()}"
        assert time.monotonic() < deadline, "kill point not reached in time"
        time.sleep(0.01)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate()


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The undisturbed run every faulted one must end up equal to."""
    cwd = tmp_path_factory.mktemp("reference")
    run_cli([f"{PKG}.train", *ARGS], cwd)
    return cwd / RUN


def same_as(run: Path, reference: Path) -> None:
    for name in ("metrics.json", "metrics.jsonl"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.mark.parametrize(("kind", "where"), [("flip", 0.2), ("flip", 0.5), ("flip", 0.8), ("truncate", 0.5)])
def test_damaged_checkpoint_bytes_resume_from_the_previous_checkpoint(
    reference: Path, tmp_path: Path, kind: str, where: float
) -> None:
    """flip: 4 KiB XORed at a fraction of the file (torch.load reads that silently); truncate: a copy cut short."""
    process = start(tmp_path, command())
    checkpoints = tmp_path / RUN / "checkpoints"
    wait_for(lambda: (checkpoints / "prev.pt").exists() and (checkpoints / "last.pt").exists(), process)
    kill(process)
    last = checkpoints / "last.pt.next" if (checkpoints / "last.pt.next").exists() else checkpoints / "last.pt"
    data = bytearray(last.read_bytes())
    begin = int(len(data) * where)
    if kind == "flip":
        data[begin : begin + 4096] = bytes(byte ^ 0xFF for byte in data[begin : begin + 4096])
    else:
        del data[begin:]
    last.write_bytes(bytes(data))
    result = run_cli([f"{PKG}.train", *ARGS], tmp_path)
    said = " ".join((result.stdout + result.stderr).split())
    assert "last.pt" in said and "prev.pt" in said and ("damaged" in said or "unreadable" in said)
    same_as(tmp_path / RUN, reference)


def test_two_identical_commands_at_once_train_the_run_once(reference: Path, tmp_path: Path) -> None:
    first, second = start(tmp_path, command()), start(tmp_path, command())
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in (first, second)]
    assert 0 in [code for code, _ in results]
    for code, stderr in results:
        if code != 0:  # refused at the lock, or it found the other's run finished: never a second writer
            assert code == 2 and ("is being trained by" in stderr or "already holds this finished run" in stderr)
    lines = (tmp_path / RUN / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)), "every record once"
    same_as(tmp_path / RUN, reference)


def test_a_second_command_while_the_first_trains_is_refused_at_once(reference: Path, tmp_path: Path) -> None:
    first = start(tmp_path, command())
    wait_for(lambda: (tmp_path / RUN / "checkpoints" / "last.pt").exists(), first)
    began = time.monotonic()
    second = subprocess.run(command(), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    line = error_line(second)
    assert "is being trained by" in line and f"pid {first.pid}" in line
    assert time.monotonic() - began < 30  # at once: before any data is prepared
    assert first.wait(timeout=300) == 0
    same_as(tmp_path / RUN, reference)


# Train, but die by SIGKILL right after the first time `argv[1]` is installed by an atomic write.
DIE_AFTER = """
import os, runpy, signal, sys
name, real_replace = sys.argv[1], os.replace
def replace(src, dst):
    real_replace(src, dst)
    if os.path.basename(dst) == name:
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
sys.argv = ["train", *sys.argv[2:]]
runpy.run_module("{pkg}.train", run_name="__main__")
"""


@pytest.mark.parametrize("written", ["config.yaml", "environment.json", "last.pt", "timing.json"])
def test_a_kill_after_each_write_resumes_to_a_complete_run(reference: Path, tmp_path: Path, written: str) -> None:
    script = DIE_AFTER.replace("{pkg}", PKG)
    died = subprocess.run(
        [sys.executable, "-c", script, written, *ARGS],
        cwd=tmp_path,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert not (tmp_path / RUN / "metrics.json").exists()
    run_cli([f"{PKG}.train", *ARGS], tmp_path)
    for name in README_FILES:
        assert (tmp_path / RUN / name).is_file(), name
    assert (tmp_path / RUN / "checkpoints" / "last.pt").is_file()
    same_as(tmp_path / RUN, reference)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+trainer.learning_rate=1e-3", "trainer.learning_rate is not a config key (did you mean trainer.lr?"),
        ("++foo=bar", "foo is not a config key"),
        ("trainer.max_epochs=1", "did you mean trainer.epochs?"),
        ("ablation=../experiment/vit_cifar10", "is not a config of ablation/; expected a name among:"),
        ("model=nope,../x", "'nope' is not a config of model/"),
    ],
)
def test_hostile_overrides_are_refused_before_hydra_composes(override: str, message: str) -> None:
    with pytest.raises(OverrideError, match=re.escape(message)):
        check_overrides([*ARGS, override])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["+trainer.learning_rate=1e-3"], "trainer.learning_rate is not a config key"),
        (["trainer.device=tpu"], "trainer.device='tpu' is not valid; expected auto, cpu, cuda, cuda:N or mps"),
        (["run.name=" + "x" * 300], "has 300 bytes, too long for a folder name"),
    ],
)
def test_bad_commands_are_one_line_and_leave_nothing(tmp_path: Path, extra: list[str], message: str) -> None:
    line = error_line(subprocess.run(command(*extra), cwd=tmp_path, capture_output=True, text=True, timeout=120))
    assert message in line
    assert not (tmp_path / "runs").exists()


def test_a_file_where_the_data_folder_should_be_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    name = "shakespeare_synthetic" if EXPERIMENT.startswith("transformer") else "cifar10_synthetic"
    (data / name).write_text("not a folder")
    line = error_line(subprocess.run(command(), cwd=tmp_path, capture_output=True, text=True, timeout=120))
    assert f"data/{name} is a file, expected a directory" in line
    assert not (tmp_path / "runs").exists()


def test_a_file_size_limit_while_checkpointing_names_the_file(reference: Path, tmp_path: Path) -> None:
    subprocess.run(["cp", "-r", str(reference.parents[3] / "data"), str(tmp_path / "data")], check=True)  # prepared
    limit = (reference / "checkpoints" / "last.pt").stat().st_size // 2

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(command(), cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=limited)
    line = error_line(result)
    assert "cannot write" in line and "last.pt" in line and "File too large" in line
    assert not list((tmp_path / RUN / "checkpoints").glob("*.tmp")), "no half-written file is left"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("config.yaml", "", "config.yaml is empty"),
        ("config.yaml", "a: [1,\n", "config.yaml is not valid YAML"),
        ("config.yaml", "- 1\n- 2\n", "config.yaml is a list, not a mapping"),
        ("environment.json", "{nope", "environment.json is not valid JSON"),
        ("metrics.json", "[1, 2]", "metrics.json holds a list; expected a JSON object"),
    ],
)
def test_damaged_records_stop_reproduce_with_a_line_naming_the_file(
    reference: Path, tmp_path: Path, name: str, content: str, message: str
) -> None:
    damaged = tmp_path / "run"
    subprocess.run(["cp", "-r", str(reference), str(damaged)], check=True)
    (damaged / name).write_text(content)
    out = tmp_path / "again"
    result = run_cli([f"{PKG}.reproduce", str(damaged), "--out", str(out)], tmp_path, check=False)
    assert message in error_line(result) and str(damaged) in error_line(result)
    assert not out.exists()


def test_a_damaged_config_of_an_unfinished_run_is_one_line_on_resume(tmp_path: Path) -> None:
    process = start(tmp_path, command())
    wait_for(lambda: (tmp_path / RUN / "checkpoints" / "last.pt").exists(), process)
    kill(process)
    (tmp_path / RUN / "config.yaml").write_text("")
    line = error_line(subprocess.run(command(), cwd=tmp_path, capture_output=True, text=True, timeout=120))
    assert f"{RUN / 'config.yaml'} is empty" in line and "run.overwrite=true" in line


def test_reproduce_never_overwrites_another_finished_run(reference: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["cp", "-r", str(reference), str(other)], check=True)
    before = {path: path.read_bytes() for path in other.rglob("*") if path.is_file()}
    result = run_cli([f"{PKG}.reproduce", str(reference), "--out", str(other)], tmp_path, check=False)
    assert f"--out {other} holds a finished run (metrics.json)" in error_line(result)
    assert {path: path.read_bytes() for path in other.rglob("*") if path.is_file()} == before


def test_a_run_of_the_old_junk_key_kind_is_one_line_in_reproduce(reference: Path, tmp_path: Path) -> None:
    """Runs made with `+trainer.learning_rate=...` before such keys were refused carry them in config.yaml."""
    junk = tmp_path / "junk"
    subprocess.run(["cp", "-r", str(reference), str(junk)], check=True)
    config = (junk / "config.yaml").read_text().replace("trainer:\n", "trainer:\n  learning_rate: 0.001\n", 1)
    (junk / "config.yaml").write_text(config)
    result = run_cli([f"{PKG}.reproduce", str(junk), "--out", str(tmp_path / "again")], tmp_path, check=False)
    assert "trainer.learning_rate, which the schemas do not declare" in error_line(result)
    assert json.loads((reference / "metrics.json").read_text())  # the reference itself is untouched
