"""The GPU speed path on CUDA: bf16 autocast, TF32, torch.compile, fused AdamW, channels_last, NCCL.

Skipped without a CUDA device (tests/conftest.py). Each test runs the real command in a subprocess, so the
global switches a run sets (deterministic algorithms, TF32, compile caches) never leak between tests.
- Every baseline trains at smoke scale with every speed switch on, and still learns.
- Every full-size recipe (`trainer=gpu`, the model the paper trains) builds, compiles and takes steps;
  its data is the synthetic twin (same shapes), so nothing is downloaded.
- `torchrun --nproc_per_node=1` runs the DDP code path (NCCL process group, DDP wrapper, gathered
  checkpoint state) on one GPU and computes what a plain process computes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import find_run, run_cli

PKG = "{{ cookiecutter.package }}"
EXPERIMENTS = [
{%- if cookiecutter.__transformer %}
    ("transformer_shakespeare", "val/loss", ["data.synthetic=true", "data.synthetic_chars=50000"]),
{%- endif %}
{%- if cookiecutter.__vit %}
    ("vit_cifar10", "test/loss", ["data.synthetic=true", "data.num_train=1024", "data.num_test=256"]),
{%- endif %}
{%- if cookiecutter.__simclr %}
    ("simclr_cifar10", "knn/acc", ["data.synthetic=true", "data.num_train=1024", "data.num_test=256"]),
{%- endif %}
]
IDS = [e[0] for e in EXPERIMENTS]
# trainer=smoke keeps the tiny models and synthetic data of preset/<model>_smoke.yaml; these switch on
# what trainer=gpu switches on.
SPEED = [
    "trainer.device=cuda",
    "trainer.precision=bf16",
    "trainer.compile=true",
    "trainer.tf32=true",
    "trainer.channels_last=true",
]

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def run_dir(cwd: Path, experiment: str) -> Path:
    return find_run(cwd / "runs", experiment)


def train_losses(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in lines if "train/loss" in r]


@pytest.mark.parametrize("experiment", IDS)
def test_speed_path_trains_every_baseline(tmp_path: Path, experiment: str) -> None:
    args = [f"{PKG}.train", f"experiment={experiment}", "trainer=smoke", "tracker=none", *SPEED]
    run_cli(args, tmp_path, timeout=900)
    run = run_dir(tmp_path, experiment)
    losses = train_losses(run)
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0], losses
    timing = json.loads((run / "timing.json").read_text())
    assert timing["device"] == "cuda:0" and timing["peak_memory_bytes"] > 0
    environment = json.loads((run / "environment.json").read_text())
    assert environment["accelerators"]["count"] >= 1, "the GPU is on record"


@pytest.mark.parametrize(("experiment", "metric", "data"), EXPERIMENTS, ids=IDS)
def test_full_size_recipe_builds_compiles_and_steps(tmp_path: Path, experiment: str, metric: str, data: list) -> None:
    steps = ["trainer.epochs=1", "trainer.limit_train_batches=3", "trainer.progress=false"]
    args = [f"{PKG}.train", f"experiment={experiment}", "trainer=gpu", "tracker=none", *data, *steps]
    run_cli(args, tmp_path, timeout=900)
    metrics = json.loads((run_dir(tmp_path, experiment) / "metrics.json").read_text())
    assert math.isfinite(metrics[metric])
    assert metrics["model/params"] > 1_000_000  # the paper-size model, not the smoke one


def test_ddp_code_path_with_one_process_matches_a_plain_process(tmp_path: Path) -> None:
    # fp32 without compile: a one-process all-reduce returns the gradient unchanged, so the runs agree to
    # float precision and a tight tolerance still sees a wrong scale or a skipped step.
    experiment = EXPERIMENTS[0][0]
    args = [f"{PKG}.train", f"experiment={experiment}", "trainer=smoke", "tracker=none", "trainer.device=cuda"]
    for name in ("plain", "ddp"):
        (tmp_path / name).mkdir()
    run_cli(args, tmp_path / "plain")
    run_cli(["torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", *args], tmp_path / "ddp")
    plain, ddp = run_dir(tmp_path / "plain", experiment), run_dir(tmp_path / "ddp", experiment)
    environment = json.loads((ddp / "environment.json").read_text())
    assert environment["distributed"] == {"world_size": 1, "backend": "nccl"}
    assert train_losses(ddp) == pytest.approx(train_losses(plain), rel=1e-5)
    assert (ddp / "checkpoints" / "last.pt").exists()
