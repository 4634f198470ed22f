"""DDP end to end on CPU: `torchrun --standalone --nproc_per_node=2 -m {{ cookiecutter.package }}.train ...` with gloo.

Why two processes must reproduce one: both split nothing but the work. The epoch order comes from
(seed, epoch), every rank builds the same global batch with the same augmentation draws and trains on
half of its rows, and DDP averages the two half-batch gradients, which is the full-batch gradient. Without
dropout (each rank has its own dropout stream by design) and BatchNorm (per-process statistics on CPUs) the
two runs differ only in the order floats are summed, so their loss curves agree to about 1e-7 relative;
the tolerance, 1e-5, still catches a wrong gradient scale, a missed all-reduce or a wrong shard.

Each test launches real process groups (a few seconds each), hence `slow`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.config import run_dir_of

from helpers import run_cli

PKG = "{{ cookiecutter.package }}"
{%- if cookiecutter.__transformer %}
# No BatchNorm, no dropout: the computation is exactly the same on 1 and 2 processes.
EXPERIMENT = ["experiment=transformer_shakespeare", "model.dropout=0"]
EXACT = True
{%- elif cookiecutter.__vit %}
# The ViT smoke model has no BatchNorm and no dropout (CutMix / Mixup pair images within the global batch,
# which every rank builds whole): the same computation on 1 and 2 processes.
EXPERIMENT = ["experiment=vit_cifar10"]
EXACT = True
{%- else %}
# SimCLR's ResNet has BatchNorm: on CPUs each process normalises with the statistics of its half of the
# batch (SyncBatchNorm, which makes them global, needs CUDA), so 2 processes follow 1 closely, not exactly.
EXPERIMENT = ["experiment=simclr_cifar10"]
EXACT = False
{%- endif %}
LOSS_TOLERANCE = 1e-5 if EXACT else 0.05  # relative
ARGS = [*EXPERIMENT, "trainer=smoke", "tracker=none"]
RUN = run_dir_of(ARGS)  # runs/<experiment>/full-<digest>/seed_0, as repro/rundir.py names it
TORCHRUN = ["torch.distributed.run", "--standalone", "--nproc_per_node=2"]

pytestmark = pytest.mark.slow

# Runs training like `-m {{ cookiecutter.package }}.train`, but every process other than rank 0 reports each
# attempt to create, change or delete something under the working directory (Python's audit hooks see
# every open() for writing, mkdir, rename, remove, ... made by Python code, torch.save included).
AUDITED_TRAIN = """
import os, runpy, sys
ROOT = os.getcwd()
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "os.link", "os.symlink", "shutil.rmtree"}
def inside(path):
    if isinstance(path, int):
        return False  # an already open descriptor
    path = os.path.abspath(os.fsdecode(path))
    return path == ROOT or path.startswith(ROOT + os.sep)
def audit(event, args):
    if event == "open" and args[2] & WRITE and inside(args[0]):
        print(f"RANK {os.environ['RANK']} WROTE {args[0]}", file=sys.stderr)
    elif event in CHANGES and inside(args[0]) and not (event == "os.mkdir" and os.path.exists(args[0])):
        print(f"RANK {os.environ['RANK']} {event} {args[0]}", file=sys.stderr)
if os.environ["RANK"] != "0":
    sys.addaudithook(audit)
sys.argv = ["train", *sys.argv[1:]]
runpy.run_module("{pkg}.train", run_name="__main__", alter_sys=True)
"""


def records(cwd: Path) -> list[dict]:
    return [json.loads(line) for line in (cwd / RUN / "metrics.jsonl").read_text().splitlines()]


def tree(cwd: Path) -> set[str]:
    """Every file and folder under `cwd`, relative to it."""
    return {str(path.relative_to(cwd)) for path in cwd.rglob("*")}


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("single")
    run_cli([f"{PKG}.train", *ARGS], cwd)
    return cwd


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 2-process run from an empty folder (rank 0 also prepares the data), with rank 1's writes reported."""
    script = tmp_path_factory.mktemp("script") / "audited_train.py"
    script.write_text(AUDITED_TRAIN.replace("{pkg}", PKG))
    cwd = tmp_path_factory.mktemp("ddp")
    result = run_cli([*TORCHRUN, str(script), *ARGS], cwd)
    return cwd, result.stderr


def test_two_processes_reproduce_one_process_loss_curve(single: Path, audited: tuple[Path, str]) -> None:
    ddp, _ = audited
    one, two = records(single), records(ddp)
    assert [sorted(r) for r in one] == [sorted(r) for r in two]  # the same records at the same steps
    losses = [(a["train/loss"], b["train/loss"]) for a, b in zip(one, two, strict=True) if "train/loss" in a]
    assert len(losses) >= 5
    for a, b in losses:
        assert b == pytest.approx(a, rel=LOSS_TOLERANCE)
    if EXACT:  # then every logged number agrees, gradient norms and held-out metrics included
        for a, b in zip(one, two, strict=True):
            for key in a.keys() - {"step", "epoch", "lr"}:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
        final_one = json.loads((single / RUN / "metrics.json").read_text())
        final_two = json.loads((ddp / RUN / "metrics.json").read_text())
        assert final_two == pytest.approx(final_one, rel=1e-5)
    environment = json.loads((ddp / RUN / "environment.json").read_text())
    assert environment["distributed"] == {"world_size": 2, "backend": "gloo"}


def test_only_rank_0_writes(single: Path, audited: tuple[Path, str]) -> None:
    ddp, stderr = audited
    assert "RANK 1" not in stderr, stderr
    assert tree(ddp) == tree(single)  # no stray file anywhere: not from Hydra, not from rank 1


def test_finished_run_is_reported_or_refused_on_every_rank_without_hanging(audited: tuple[Path, str]) -> None:
    ddp, _ = audited
    before = (ddp / RUN / "metrics.json").stat().st_mtime_ns
    started = time.monotonic()
    again = run_cli([*TORCHRUN, "-m", f"{PKG}.train", *ARGS], ddp, timeout=120)  # the same command: done already
    assert "nothing to train" in " ".join((again.stdout + again.stderr).split())
    assert (ddp / RUN / "metrics.json").stat().st_mtime_ns == before
    # Another config pointed at the same folder (run.name): rank 0 refuses, and every rank stops with it.
    other = [*ARGS, f"run.name={RUN.parent.name}", "trainer.lr=0.5"]
    result = run_cli([*TORCHRUN, "-m", f"{PKG}.train", *other], ddp, check=False, timeout=120)
    assert result.returncode != 0
    assert "holds a finished run of a different config (trainer.lr:" in result.stderr, result.stderr
    assert time.monotonic() - started < 90  # no rank waits for rank 0 until a collective times out


def test_sweep_inside_torchrun_is_refused(tmp_path: Path) -> None:
    result = run_cli([*TORCHRUN, "-m", f"{PKG}.train", "-m", *ARGS, "seed=0,1"], tmp_path, check=False)
    assert result.returncode != 0
    assert "sweep outside it" in result.stderr
    assert not (tmp_path / "runs" / EXPERIMENT[0].split("=")[1]).exists()


def test_submitit_job_of_two_tasks_trains_exactly_like_torchrun(tmp_path: Path, audited: tuple[Path, str]) -> None:
    """hydra/launcher=submitit_local runs the code path of hydra/launcher=slurm on this machine: two tasks,
    whose SUBMITIT_* variables train/distributed.py turns into a process group."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the slurm extra")
    reference, _ = audited
    job = ["hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2", "hydra.launcher.timeout_min=10"]
    run_cli([f"{PKG}.train", "-m", *job, *ARGS], tmp_path)
    environment = json.loads((tmp_path / RUN / "environment.json").read_text())
    assert environment["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert (tmp_path / RUN / "metrics.json").read_bytes() == (reference / RUN / "metrics.json").read_bytes()


def descendants(pid: int) -> list[int]:
    """Process ids of every descendant of `pid` (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="finds torchrun's workers through /proc")
def test_sigkill_then_resume_under_ddp_matches_the_uninterrupted_run(tmp_path: Path, audited: tuple[Path, str]) -> None:
    reference, _ = audited
    log = tmp_path / RUN / "metrics.jsonl"
    total = len(records(reference))
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    torchrun = subprocess.Popen(
        [sys.executable, "-m", *TORCHRUN, "-m", f"{PKG}.train", *ARGS],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= total // 2):  # past a checkpoint
        assert torchrun.poll() is None, torchrun.stderr.read() if torchrun.stderr else ""
        assert time.monotonic() < deadline, "the kill point was not reached in time"
        time.sleep(0.02)
    # Like a node failure: every process of the job dies at once, workers first (they outlive torchrun).
    for pid in [*descendants(torchrun.pid), torchrun.pid]:
        os.kill(pid, signal.SIGKILL)
    torchrun.wait()
    assert not (tmp_path / RUN / "metrics.json").exists()
    assert (tmp_path / RUN / "checkpoints" / "last.pt").exists()

    single = run_cli([f"{PKG}.train", *ARGS], tmp_path, check=False)
    assert single.returncode == 2
    assert "written by 2 processes but this run has 1" in single.stderr
    assert len(single.stderr.strip().splitlines()) == 1

    run_cli([*TORCHRUN, "-m", f"{PKG}.train", *ARGS], tmp_path)
    assert (tmp_path / RUN / "metrics.json").read_bytes() == (reference / RUN / "metrics.json").read_bytes()
    assert log.read_bytes() == (reference / RUN / "metrics.jsonl").read_bytes()
    # Both later starts are on record: the refused single process and the resumed pair.
    assert len(list((tmp_path / RUN).glob("environment.resume_*.json"))) == 2
