"""The distributed primitives: exact no-ops in one process, the right collectives in two gloo processes; and
every model variant is fit for DDP as the loop configures it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from {{ cookiecutter.package }}.config import register_configs
from {{ cookiecutter.package }}.repro.rundir import RunDirError
from {{ cookiecutter.package }}.tasks import build_task
from {{ cookiecutter.package }}.train import distributed
from {{ cookiecutter.package }}.train.distributed import (
    DistInfo,
    all_reduce_mean,
    broadcast_object,
    gather_objects,
    init_distributed,
    run_on_main,
    shard,
    shutdown,
)

from helpers import PROJECT_ROOT


def refuse() -> None:
    raise RunDirError("runs/x already holds a finished run")


def test_shard_takes_every_world_size_th_row_of_every_tensor() -> None:
    x, y = torch.arange(16).view(8, 2), torch.arange(8)
    parts = [shard({"x": x, "pair": (y, [y])}, DistInfo(rank, 0, 2, "gloo")) for rank in range(2)]
    assert parts[1]["pair"][0].tolist() == [1, 3, 5, 7]
    assert torch.equal(parts[1]["x"], x[[1, 3, 5, 7]])
    assert isinstance(parts[0]["pair"], tuple) and isinstance(parts[0]["pair"][1], list)
    assert sorted(torch.cat([p["pair"][0] for p in parts]).tolist()) == y.tolist()  # together: the whole batch


@pytest.mark.parametrize("world", [2, 4])
def test_shard_keeps_both_views_of_an_image_on_one_rank(world: int) -> None:
    images = torch.arange(8.0)  # image ids; SimCLR stacks [first views; second views] -> (2B,)
    views = torch.cat([images, -images])
    for rank in range(world):
        first, second = shard(views, DistInfo(rank, 0, world, "gloo")).chunk(2)
        assert torch.equal(first, -second)  # the same images, in the same order
        assert torch.equal(first, images[rank::world])


def test_shard_rejects_what_it_cannot_split() -> None:
    with pytest.raises(TypeError, match="cannot split a batch of type str"):
        shard("tokens", DistInfo(0, 0, 2, "gloo"))


def test_single_process_primitives_are_no_ops() -> None:
    info = DistInfo()
    batch = (torch.ones(3),)
    assert not info.enabled and info.is_main
    assert shard(batch, info) is batch
    value = torch.tensor(2.0)
    assert all_reduce_mean(value, info) is value
    assert gather_objects("state", info) == ["state"]
    assert broadcast_object("x", info) == "x"
    assert run_on_main(lambda: 5, info) == 5
    with pytest.raises(RunDirError, match="finished run"):
        run_on_main(refuse, info)


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private copy of the environment: what the code under test exports does not outlive the test."""
    copy = {name: value for name, value in os.environ.items() if not name.startswith(("SLURM_", "SUBMITIT_"))}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        copy.pop(name, None)
    monkeypatch.setattr(os, "environ", copy)
    return copy


def test_outside_torchrun_and_slurm_it_is_one_process(environ: dict[str, str]) -> None:
    assert init_distributed("cpu") == DistInfo()


def test_a_multi_task_slurm_job_gets_torchrun_variables(environ: dict[str, str]) -> None:
    pytest.importorskip("submitit")
    slurm = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "4",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NODEID": "1",
        "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
    }
    environ.update(slurm)
    distributed.export_submitit_environment()
    assert (environ["RANK"], environ["LOCAL_RANK"], environ["WORLD_SIZE"]) == ("3", "1", "4")
    assert environ["MASTER_ADDR"] == "gpu07"
    assert 20000 <= int(environ["MASTER_PORT"]) <= 60000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: dict) -> None:
    torchrun = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": world, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    os.environ.update({name: str(value) for name, value in torchrun.items()})
    info = init_distributed("cpu")
    mean = all_reduce_mean(torch.tensor(float(rank)), info)
    gathered = gather_objects({"rank": rank}, info)
    shared = broadcast_object(f"from {rank}", info)
    result = run_on_main(lambda: rank * 10 + 7, info)
    try:
        run_on_main(refuse, info)
        error = None
    except RunDirError as err:  # every rank must raise rank 0's error, not wait for it
        error = str(err)
    out[rank] = (info, mean.item(), gathered, shared, result, error)
    shutdown(info)


@pytest.mark.slow
def test_two_gloo_processes_agree(tmp_path: Path) -> None:
    world = 2
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(world, _free_port(), out), nprocs=world)
        results = dict(out)
    for rank in range(world):
        info, mean, gathered, shared, result, error = results[rank]
        assert info == DistInfo(rank, rank, world, "gloo")
        assert mean == 0.5
        assert gathered == [{"rank": 0}, {"rank": 1}]
        assert shared == "from 0"
        assert result == 7  # rank 0's value
        assert error == "runs/x already holds a finished run"


def variants() -> list[tuple[str, str]]:
    """(experiment, ablation) for every ablation file, with the experiment of its model."""
    configs = PROJECT_ROOT / "configs"
    experiments = {path.stem.split("_")[0]: path.stem for path in (configs / "experiment").glob("*.yaml")}
    return [(experiments[path.stem.split("_")[0]], path.stem) for path in sorted((configs / "ablation").glob("*.yaml"))]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")  # the synthetic twins, made once for all variants


@pytest.mark.parametrize(("experiment", "ablation"), variants())
def test_every_parameter_of_every_variant_gets_a_gradient(data_root: Path, experiment: str, ablation: str) -> None:
    """The loop wraps models in DDP without `find_unused_parameters` (which costs a graph traversal per
    step): a parameter left out of the loss would stop DDP at the second step ("Expected to have finished
    reduction"). Switched-off parts must be removed (nn.Identity), not bypassed."""
    register_configs()
    overrides = [f"experiment={experiment}", "trainer=smoke", f"ablation={ablation}", f"data.root={data_root}"]
    with initialize_config_dir(version_base="1.3", config_dir=str(PROJECT_ROOT / "configs")):
        cfg = OmegaConf.to_object(compose("train", overrides=overrides))
    task, _ = build_task(cfg, torch.device("cpu"))
    batch = task.batch(torch.arange(cfg.trainer.batch_size), torch.Generator().manual_seed(0))
    loss, _ = task.loss(task.model, batch)
    loss.backward()
    unused = [name for name, param in task.model.named_parameters() if param.requires_grad and param.grad is None]
    assert not unused, f"{ablation}: parameters without a gradient: {unused}"
