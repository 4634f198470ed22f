"""A generated project on a real SLURM cluster, through Hydra's submitit launcher (`hydra/launcher=slurm`).

tests/slurm_cluster.py starts a one-node cluster on this machine (munged, slurmctld, slurmd) and stops it
afterwards. On it: an ablation sweep lands each run in its usual run directory, a job of two tasks trains
with DDP exactly like torchrun, and a job signalled the way SLURM warns of a time limit is requeued by
submitit and resumes from its last checkpoint to the same bytes as an uninterrupted run. About 2 minutes.

Needs root (skipped otherwise, with the reason; with REQUIRE_SLURM=1 in the environment, as in CI, that is a
failure instead); installs slurm-wlm and munge with apt-get when missing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PYTHON, Baker, run
from slurm_cluster import SlurmCluster, ensure_slurm, slurm_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PKG = "slurm_smoke"
EXPERIMENT = "transformer_shakespeare"
SMOKE = [f"experiment={EXPERIMENT}", "trainer=smoke", "tracker=none", "seed=0"]
# One CPU per task: the two runs of a sweep share a 2-CPU machine side by side.
JOB = ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]


def run_of(runs: Path, variant: str = "full") -> Path:
    """runs/<experiment>/<variant>-<config digest>/seed_0, the one run of `variant` under `runs` (a test's own)."""
    found = sorted((runs / EXPERIMENT).glob(f"{variant}-*/seed_0"))
    assert len(found) <= 1, found
    return found[0] if found else runs / EXPERIMENT / f"{variant}-(not yet)" / "seed_0"


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    reason = ensure_slurm()
    if reason and os.environ.get("REQUIRE_SLURM"):  # CI sets it: there, a skipped cluster test is a failure
        pytest.fail(f"REQUIRE_SLURM is set but no cluster can start: {reason}")
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="slurm-cluster-"))
    with slurm_cluster(root) as running:
        yield running
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def project(bake: Baker) -> Path:
    return bake(project_name="Slurm Smoke", tracker="none")


def train(cluster: SlurmCluster, project: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m slurm_smoke.train ...` in the project, with the cluster's SLURM_CONF (jobs inherit both)."""
    env = {"SLURM_CONF": cluster.env["SLURM_CONF"], "PYTHONPATH": str(project / "src")}
    return run([PYTHON, "-m", f"{PKG}.train", *args], cwd=project, env=env, timeout=240)


def test_sweep_lands_every_run_in_its_run_directory(cluster: SlurmCluster, project: Path, tmp_path: Path) -> None:
    ablations = "ablation=transformer_full,transformer_no_dropout"
    train(cluster, project, "-m", "hydra/launcher=slurm", *SMOKE, ablations, f"paths.runs_dir={tmp_path}", *JOB)
    job_ids = set()
    for variant in ("full", "no_dropout"):
        run_dir = run_of(tmp_path, variant)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert math.isfinite(metrics["val/loss"]) and metrics["val/acc"] > 2 / 65  # learned beyond chance
        env = json.loads((run_dir / "environment.json").read_text())["env"]
        assert env["SLURM_JOB_PARTITION"] == "debug"
        job_ids.add(env["SLURM_JOB_ID"])
    assert len(job_ids) == 2, "each run is its own job (one task of a job array)"
    assert len(list(tmp_path.glob(".sweeps/*/.submitit/*/*_log.out"))) == 2  # submitit's logs, beside the runs
    cluster.wait_until(lambda: not cluster.jobs(), "both jobs leaving the queue")  # nothing left behind


def test_job_of_two_tasks_trains_with_ddp_exactly_like_torchrun(
    cluster: SlurmCluster, project: Path, tmp_path: Path
) -> None:
    exact = [*SMOKE, "model.dropout=0"]  # dropout aside, 2 processes compute what 1 does (see test_ddp.py)
    slurm, torchrun = tmp_path / "slurm", tmp_path / "torchrun"
    two_tasks = [*JOB, "hydra.launcher.tasks_per_node=2"]
    train(cluster, project, "-m", "hydra/launcher=slurm", *exact, f"paths.runs_dir={slurm}", *two_tasks)
    command = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", f"{PKG}.train"]
    run([*command, *exact, f"paths.runs_dir={torchrun}"], cwd=project, env={"PYTHONPATH": str(project / "src")})
    environment = json.loads((run_of(slurm) / "environment.json").read_text())
    assert environment["distributed"]["world_size"] == 2
    assert environment["env"]["SLURM_NTASKS"] == "2"
    assert (run_of(slurm) / "metrics.json").read_bytes() == (run_of(torchrun) / "metrics.json").read_bytes()


def test_requeued_job_resumes_from_its_last_checkpoint(cluster: SlurmCluster, project: Path, tmp_path: Path) -> None:
    longer = [*SMOKE, "trainer.epochs=12"]  # about 10 s of training: time to interrupt it
    runs, reference = tmp_path / "runs", tmp_path / "reference"
    env = {**cluster.env, "PYTHONPATH": str(project / "src"), "PYTHONHASHSEED": "0"}
    command = [PYTHON, "-m", f"{PKG}.train", "-m", "hydra/launcher=slurm", *longer, f"paths.runs_dir={runs}", *JOB]
    sweep = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        checkpointed = lambda: (run_of(runs) / "checkpoints" / "last.pt").exists()  # noqa: E731
        cluster.wait_until(checkpointed, "the first checkpoint", timeout=120)
        (job,) = cluster.jobs()
        # USR2 is what SLURM sends signal_delay_s before a time limit (--signal=USR2@120 in the job script);
        # submitit then calls the launcher's checkpoint(), requeues the job and exits.
        cluster.command("scancel", "--signal=USR2", job)
        cluster.wait_until(lambda: cluster.jobs().get(job) == "PENDING", "the requeue of the job")
        # SLURM holds a requeued job for about two minutes before it may start again; don't wait for that.
        cluster.command("scontrol", "update", f"JobId={job}", "StartTime=now")
        output, _ = sweep.communicate(timeout=180)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, output
    run([PYTHON, "-m", f"{PKG}.train", *longer, f"paths.runs_dir={reference}"], cwd=project, env=env)
    run_dir, reference_dir = run_of(runs), run_of(reference)
    assert json.loads((run_dir / "timing.json").read_text())["resumes"] == 1
    assert (run_dir / "environment.resume_1.json").exists()
    assert (run_dir / "metrics.json").read_bytes() == (reference_dir / "metrics.json").read_bytes()
    assert (run_dir / "metrics.jsonl").read_bytes() == (reference_dir / "metrics.jsonl").read_bytes()
