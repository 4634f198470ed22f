"""Train one run (`train/__main__.py` makes this `python -m {{ cookiecutter.package }}.train`):

    python -m {{ cookiecutter.package }}.train experiment=<name> [trainer=smoke] [seed=N] [key=value ...]

Composes the Hydra config, finds the run's directory from what the run is (repro/rundir.py: the same
command always lands in the same folder, two configs never share one), claims it (resuming an unfinished
run of the same config; a finished one is reported and left as it is), seeds everything, records the
environment, builds the baseline's task and hands it to the training loop. Sweeps are Hydra multirun: add
`-m` and comma-separated values, e.g. `-m ablation=vit_full,vit_gap seed=0,1,2` or `-m trainer.lr=1e-3,3e-4`
(one folder per value). Under `torchrun` every process runs this same file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from logging.handlers import MemoryHandler
from pathlib import Path
from typing import Any

import hydra
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.logging import RichHandler

from ..config import CONFIG_DIR, TrainConfig, check_trainer, register_configs
from ..data.files import WriteError, atomic_write_bytes, atomic_write_json
from ..repro.environment import collect_environment
from ..repro.rundir import BOOKKEEPING, RunDir, RunDirError, RunLock, RunState, covered, flatten
from ..repro.seeding import seed_everything
from ..tasks import build_task
from ..tracking import Tracker
from .checkpoint import CheckpointError
from .distributed import DistInfo, init_distributed, run_on_main, shutdown
from .loop import fit, resolve_device, steps_per_epoch

log = logging.getLogger("{{ cookiecutter.package }}")

register_configs()


def ablation_keys(config_dir: Path) -> list[str]:
    """Dotted keys set by the chosen ablation file: the only keys its variant may change (stats check this)."""
    choice = HydraConfig.get().runtime.choices.get("ablation") if HydraConfig.initialized() else None
    if not choice:
        return []
    path = config_dir / "ablation" / f"{choice}.yaml"
    content = yaml.safe_load(path.read_text()) if path.exists() else {}
    return sorted(key for key in flatten(content or {}) if key not in ("variant", "defaults"))


def command_line_keys(overrides: list[str], config_dir: Path) -> list[str]:
    """Dotted keys that `key=value` overrides set (not config groups, the seed or bookkeeping).

    A sweep over such a key (`-m trainer.lr=1e-3,3e-4`) is a comparison in its own right: `compare` lets
    two settings differ in a key that both set on the command line (stats/load.py).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups = {path.name for path in config_dir.iterdir() if path.is_dir()}
    keys = (override.key_or_group for override in OverridesParser.create().parse_overrides(overrides))
    return sorted(
        {
            key
            for key in keys
            if "/" not in key and key not in groups and key != "seed" and not key.startswith("hydra")
            if not covered(key, BOOKKEEPING)
        }
    )


def setup_logging(log_file: Path | None, is_main: bool) -> None:
    """Console through rich; the whole log also into the run directory's train.log (rank 0 only).

    Called first without a file, as the run directory is claimed only once the run has passed every
    check, then with it: what was logged in between (data preparation, say) is held in memory and goes
    to train.log first.
    """
    root = logging.getLogger()
    # Records held since this run's first call; a previous multirun job's (refused before its claim) go.
    held = [h for h in root.handlers if isinstance(h, MemoryHandler)] if is_main and log_file is not None else []
    for handler in list(root.handlers):  # Hydra's console handler, or the previous multirun job's file
        root.removeHandler(handler)
        if handler not in held:
            handler.close()
    root.addHandler(RichHandler(show_path=False, rich_tracebacks=False))
    if is_main and log_file is None:
        # flushLevel above CRITICAL: the records wait for train.log whatever their level
        root.addHandler(MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1))
    elif is_main:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for memory in held:
            memory.setTarget(file_handler)
            memory.close()  # flushes what it holds into train.log
        root.addHandler(file_handler)
    root.setLevel(logging.INFO if is_main else logging.WARNING)


def run_training(cfg: DictConfig) -> dict[str, Any]:
    """Everything `main` does, callable from tests and from `reproduce` without Hydra's CLI.

    Every check comes before the run directory is claimed (config values, the directory's state, the
    data, the task's own checks, the batch plan), so a run refused for bad input leaves nothing behind.
    """
    config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    typed: TrainConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    tc = typed.trainer
    check_trainer(tc)
    device = resolve_device(tc.device)
    dist = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)  # float sums depend on the thread count: pin it

    run = RunDir.for_config(config)
    lock = RunLock(run.path)  # rank 0 holds it for the whole job: one holder per run, however many ranks
    try:
        return _train_in(run, lock, typed, config, device, dist)
    finally:
        lock.release()
        shutdown(dist)


def _train_in(
    run: RunDir, lock: RunLock, typed: TrainConfig, config: dict[str, Any], device: torch.device, dist: DistInfo
) -> dict[str, Any]:
    """run_training once the run directory is known: check, prepare the data, claim, record, fit."""
    tc = typed.trainer

    def check() -> RunState:
        state = run.check(config, overwrite=typed.run.overwrite)
        if state is RunState.RESUMABLE or (state is RunState.FINISHED and typed.run.overwrite):
            lock.acquire()  # a run in progress elsewhere is refused at once, before any data is prepared
        return state  # NEW: locked at the claim (an empty runs/ stays empty); FINISHED: nothing will be written

    # Another config in the directory is refused before any data is prepared; this config, finished, is done.
    found = run_on_main(check, dist)
    setup_logging(None, dist.is_main)
    if found is RunState.FINISHED and not typed.run.overwrite:
        log.info("%s already holds this run, finished: nothing to train (run.overwrite=true trains it again)", run.path)
        return json.loads(run.metrics.read_text())
    seeds = seed_everything(typed.seed, tc.deterministic, rank=dist.rank)
    torch.backends.cuda.matmul.allow_tf32 = tc.tf32
    torch.backends.cudnn.allow_tf32 = tc.tf32
    # Rank 0 builds first, preparing missing data alone (two processes extracting one archive would
    # collide); the others then load what it wrote. An error on rank 0 stops every rank with its message.
    built: list[Any] = []
    run_on_main(lambda: built.append(build_task(typed, device)), dist)
    task, inputs = built[0] if built else build_task(typed, device)
    steps_per_epoch(task.num_train, tc.batch_size, dist.world_size, tc.limit_train_batches)  # the batch fits

    def claim() -> RunState:
        lock.acquire()
        return run.prepare(config, overwrite=typed.run.overwrite, resume=typed.run.resume)

    # Rank 0 claims (or clears) the directory; the others wait for it and share its verdict, error included.
    state = run_on_main(claim, dist)
    setup_logging(run.log_file, dist.is_main)
    log.info("run directory %s (%s)", run.path, state.value)

    tracker = record_start(run, typed, config, vars(seeds), inputs, dist) if dist.is_main else None
    try:
        metrics = fit(typed, config, task, run, tracker, dist)
        if tracker is not None:
            tracker.summary(metrics)
    finally:
        if tracker is not None:
            tracker.close()
    log.info("finished: %s", run.metrics)
    return metrics


def record_start(
    run: RunDir, typed: TrainConfig, config: dict[str, Any], seeds: dict[str, Any], inputs: Any, dist: DistInfo
) -> Tracker:
    """Write the environment record (and git.diff) of this start; open the metrics log and the tracker.

    The first start writes environment.json, every resume environment.resume_<n>.json. A run killed
    between writing config.yaml and environment.json has none yet: its next start writes environment.json,
    so a finished run always has the record the README lists.
    """
    environment, diff = collect_environment(seed=seeds, inputs=inputs)
    environment["distributed"] = {"world_size": dist.world_size, "backend": dist.backend}
    resumes = len(list(run.path.glob("environment*.json")))
    name = f"environment.resume_{resumes}.json" if run.environment.exists() else "environment.json"
    if diff:
        atomic_write_bytes(run.path / "git.diff", diff)
    atomic_write_json(run.path / name, environment)
    return Tracker(
        typed.tracker,
        run.metrics_log,
        name=f"{typed.experiment}/{run.path.parent.name}/{run.path.name}",  # the folder names the setting
        group=typed.experiment,
        config=config,
        environment=environment,
    )


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    cfg.variant_keys = ablation_keys(CONFIG_DIR)
    cfg.override_keys = command_line_keys(list(HydraConfig.get().overrides.task), CONFIG_DIR)
    if HydraConfig.get().mode is RunMode.MULTIRUN and "TORCHELASTIC_RUN_ID" in os.environ:
        # Every torchrun process would run the whole sweep, each in its own timestamped sweep folder.
        print(
            "error: -m (a sweep) inside torchrun runs the sweep once per process; sweep outside it: one torchrun "
            "per run, or -m hydra/launcher=slurm hydra.launcher.tasks_per_node=N",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        metrics = run_training(cfg)
    except (RunDirError, CheckpointError, ValueError, FloatingPointError, WriteError) as err:
        # A user-facing problem: one clear line, not a traceback.
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    # Hydra sweepers (e.g. Optuna) optimise the returned value: the first metric, by default.
    return next((v for v in metrics.values() if isinstance(v, float)), None)
