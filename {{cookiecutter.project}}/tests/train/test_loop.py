"""The loop's mechanics on a tiny real task: logging, determinism, exact resume, bad input."""

import json
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from {{ cookiecutter.package }}.config import TrainConfig
from {{ cookiecutter.package }}.repro.rundir import RunDir
from {{ cookiecutter.package }}.repro.seeding import seed_everything
from {{ cookiecutter.package }}.tracking import Tracker
from {{ cookiecutter.package }}.train.distributed import DistInfo
from {{ cookiecutter.package }}.train.loop import epoch_order, fit, layer_of, steps_per_epoch

from helpers import RegressionTask, tiny_config


class Crash(Exception):
    """Stands in for a kill: raised from inside the step, after some checkpoints were written."""


def train(cfg: TrainConfig, crash_at_step: int | None = None, step_seconds: float = 0.0) -> RunDir:
    torch.set_num_threads(1)
    config = OmegaConf.to_container(OmegaConf.structured(cfg))
    run = RunDir(Path(cfg.run.dir))
    run.prepare(config, overwrite=False, resume=True)
    seed_everything(cfg.seed, deterministic=True, rank=0)
    task = RegressionTask()
    task.to(torch.device("cpu"))
    if crash_at_step is not None:
        calls = {"n": 0}
        original = task.loss

        def loss(model, batch):
            calls["n"] += 1
            if calls["n"] == crash_at_step:
                raise Crash
            return original(model, batch)

        task.loss = loss  # type: ignore[method-assign]
    if step_seconds:
        make_batch = task.batch

        def slow_batch(indices, generator):
            time.sleep(step_seconds)  # a step that takes at least this long, on any machine
            return make_batch(indices, generator)

        task.batch = slow_batch  # type: ignore[method-assign]
    tracker = Tracker(cfg.tracker, run.metrics_log, name="t", group="t", config=config)
    try:
        fit(cfg, config, task, run, tracker, DistInfo())
    finally:
        tracker.close()
        torch.use_deterministic_algorithms(False)
    return run


def records(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in run.metrics_log.read_text().splitlines()]


def test_writes_every_run_file_and_learns(tmp_path: Path) -> None:
    run = train(tiny_config(tmp_path))
    metrics = json.loads(run.metrics.read_text())
    assert set(metrics) == {"val/mse", "model/params", "model/gflops"}
    assert metrics["model/params"] == 8 * 32 + 32 + 32 + 1
    lines = records(run)
    losses = [r["train/loss"] for r in lines if "train/loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert [r["epoch"] for r in lines if "val/mse" in r] == [1, 2, 3]
    assert any(key.startswith("grad_norm/") for r in lines for key in r)
    timing = json.loads(run.timing.read_text())
    assert timing["steps"] == 24 and timing["train_seconds"] > 0 and timing["examples_per_second"] > 0
    # each evaluation with the training time it took to reach it: what time-to-target reads
    evaluations = timing["evaluations"]
    assert [(e["epoch"], e["step"]) for e in evaluations] == [(1, 8), (2, 16), (3, 24)]
    assert [e["val/mse"] for e in evaluations] == [r["val/mse"] for r in lines if "val/mse" in r]
    seconds = [e["train_seconds"] for e in evaluations]
    assert 0 < seconds[0] < seconds[1] < seconds[2] == timing["train_seconds"]
    assert run.last_checkpoint.exists()


def test_same_seed_is_byte_identical_different_seed_is_not(tmp_path: Path) -> None:
    a = train(tiny_config(tmp_path / "a"))
    b = train(tiny_config(tmp_path / "b"))
    assert a.metrics.read_bytes() == b.metrics.read_bytes()
    assert a.metrics_log.read_bytes() == b.metrics_log.read_bytes()
    other = tiny_config(tmp_path / "c")
    other.seed = 1
    assert train(other).metrics.read_bytes() != a.metrics.read_bytes()


@pytest.mark.parametrize("crash_at_step", [2, 4, 8, 9, 17, 24])
def test_crash_and_resume_matches_uninterrupted_run(tmp_path: Path, crash_at_step: int) -> None:
    reference = train(tiny_config(tmp_path / "ref"))
    cfg = tiny_config(tmp_path / "crashed")
    with pytest.raises(Crash):
        train(cfg, crash_at_step=crash_at_step)
    resumed = train(cfg)
    assert resumed.metrics.read_bytes() == reference.metrics.read_bytes()
    assert resumed.metrics_log.read_bytes() == reference.metrics_log.read_bytes()
    timing = json.loads(resumed.timing.read_text())
    assert timing["resumes"] == (1 if crash_at_step > 4 else 0)  # call 1 counts FLOPs; step 3 checkpoints
    assert [e["epoch"] for e in timing["evaluations"]] == [1, 2, 3]  # none lost or repeated by the resume


def test_layer_gradient_norms_are_taken_before_clipping(tmp_path: Path) -> None:
    """With clipping on, the layers' norms add up to the logged (pre-clip) grad_norm, not to the clip value."""
    lines = records(train(tiny_config(tmp_path, grad_clip=1e-3)))
    steps = {r["step"] for r in lines if any(k.startswith("grad_norm/") for k in r)}
    assert steps == {4, 8, 12, 16, 20, 24}
    for step in steps:
        layers = [v for r in lines if r["step"] == step for k, v in r.items() if k.startswith("grad_norm/")]
        total = next(r["grad_norm"] for r in lines if r["step"] == step and "grad_norm" in r)
        assert total > 10 * 1e-3  # clipping acted on this step
        assert sum(v * v for v in layers) ** 0.5 == pytest.approx(total, rel=1e-5)


def test_training_time_goes_on_across_a_crash(tmp_path: Path) -> None:
    """The resumed run's clock starts from the killed run's time at its last checkpoint, mid-epoch too."""
    cfg = tiny_config(tmp_path, checkpoint_every=1)
    with pytest.raises(Crash):
        train(cfg, crash_at_step=8, step_seconds=0.02)  # loss call 1 counts FLOPs: steps 1-6 done, 6 saved
    timing = json.loads(train(cfg, step_seconds=0.02).timing.read_text())
    assert timing["resumes"] == 1
    assert timing["evaluations"][0]["train_seconds"] >= 8 * 0.02  # the 6 steps before the crash count
    assert timing["train_seconds"] >= 24 * 0.02


def test_batch_not_divisible_by_world_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="batch_size=30 is not divisible by the 4 processes"):
        steps_per_epoch(100, 30, 4, None)
    with pytest.raises(ValueError, match="batch_size=128 exceeds the 100 training examples"):
        steps_per_epoch(100, 128, 1, None)
    assert steps_per_epoch(100, 32, 1, 2) == 2


def test_epoch_order_depends_only_on_seed_and_epoch() -> None:
    assert torch.equal(epoch_order(0, 3, 50), epoch_order(0, 3, 50))
    assert not torch.equal(epoch_order(0, 3, 50), epoch_order(0, 4, 50))
    assert sorted(epoch_order(1, 0, 50).tolist()) == list(range(50))


def test_layer_grouping() -> None:
    assert layer_of("blocks.3.attn.qkv.weight") == "blocks.3"
    assert layer_of("encoder.layer1.0.conv1.weight") == "encoder.layer1.0"
    assert layer_of("head.weight") == "head"
