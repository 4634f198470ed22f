"""Structurally real run directories (config.yaml, metrics.json, timing.json) for the comparison tests."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

# The resolved config a run writes, trimmed to the keys the comparison looks at.
BASE_CONFIG: dict[str, Any] = {
    "experiment": "vit_cifar10",
    "variant": "full",
    "variant_keys": [],
    "seed": 0,
    "model": {"name": "vit", "pool": "cls", "depth": 6, "pos_embed": {"kind": "learned", "dim": 64}},
    "data": {"name": "cifar10", "root": "data/cifar10"},
    "trainer": {"lr": 0.001, "epochs": 10, "betas": [0.9, 0.95], "progress": True},
    "tracker": {"name": "none", "tags": []},
    "paths": {"data_dir": "data", "runs_dir": "runs"},
    "run": {"dir": None, "overwrite": False, "resume": True},
}

WriteRun = Callable[..., Path]


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


@pytest.fixture
def write_run() -> WriteRun:
    """`write_run(root, variant, seed, metrics, overrides={...}, variant_keys=[...], setting=...)` -> the run."""

    def write(
        root: Path,
        variant: str,
        seed: int,
        metrics: Mapping[str, Any],
        *,
        overrides: Mapping[str, Any] | None = None,
        variant_keys: list[str] | None = None,
        train_seconds: float | None = 10.0,
        override_keys: list[str] | None = None,
        setting: str | None = None,
    ) -> Path:
        config = copy.deepcopy(BASE_CONFIG)
        config.update(variant=variant, seed=seed, variant_keys=list(variant_keys or []))
        config.update(override_keys=list(override_keys or []))
        for key, value in (overrides or {}).items():
            _set(config, key, value)
        run_dir = root / (setting or variant) / f"seed_{seed}"  # setting: <variant>-<digest>, as training names it
        run_dir.mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(config), run_dir / "config.yaml")
        (run_dir / "metrics.json").write_text(json.dumps(dict(metrics)))
        if train_seconds is not None:
            (run_dir / "timing.json").write_text(json.dumps({"train_seconds": train_seconds, "wall_seconds": 12.0}))
        return run_dir

    return write


# Per-variant ablation settings used by the end-to-end tests: what configs/ablation/vit_<variant>.yaml sets.
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "gap": {"model.pool": "gap"},
    "nopos": {"model.pos_embed": {"kind": "none", "dim": 64}},
}


@pytest.fixture
def write_sweep(write_run: WriteRun) -> Callable[..., Path]:
    """`write_sweep(root, {variant: {seed: value}}, metric="test/acc")`: one run per cell, ablations as above."""

    def write(root: Path, table: Mapping[str, Mapping[int, float]], metric: str = "test/acc") -> Path:
        for variant, per_seed in table.items():
            overrides = ABLATIONS.get(variant, {})
            for seed, value in per_seed.items():
                metrics = {metric: value, "test/loss": 1.0 - value, "model/params": 1_234_567, "model/gflops": 0.42}
                write_run(root, variant, seed, metrics, overrides=overrides, variant_keys=list(overrides))
        return root

    return write
