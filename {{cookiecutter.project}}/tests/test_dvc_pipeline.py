"""dvc.yaml, params.yaml and configs/ agree: checked with DVC's own parser and Hydra, without running a stage.

The pipeline's one hand-kept duplication is the compare stages' deps (DVC cannot loop over a params list
there); these tests catch a variant added to params.yaml but not to its compare stage, a params file or
key that does not exist, an ablation file that does not match its variant, and a prepared dataset that a
training run would have to rewrite (DVC would then see its output change and rerun everything after it).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf

from {{ cookiecutter.package }} import pipeline
from {{ cookiecutter.package }}.data.prepare import dataset_module

from helpers import PROJECT_ROOT

pytest.importorskip("dvc")
networkx = pytest.importorskip("networkx")  # a DVC dependency
from dvc.repo import Repo  # noqa: E402 -- only once DVC is known to be installed

PACKAGE = "{{ cookiecutter.package }}"
PARAMS = pipeline.Params.read(PROJECT_ROOT / "params.yaml")


@pytest.fixture(scope="module")
def dvc_index() -> Iterator[Any]:
    """DVC's view of dvc.yaml, resolved against params.yaml (no_scm: the checkout need not be a git repository)."""
    with Repo(str(PROJECT_ROOT), config={"core": {"no_scm": True}}) as repo:
        yield repo.index


def stages_running(index: Any, *command: str) -> list[Any]:
    """The stages whose cmd is `python -m <package>.pipeline <command> ...`."""
    prefix = ["python", "-m", f"{PACKAGE}.pipeline", *command]
    return [stage for stage in index.stages if stage.cmd.split()[: len(prefix)] == prefix]


@pytest.mark.parametrize("experiment", sorted(PARAMS.experiments))
def test_the_training_matrix_is_params_yaml(dvc_index: Any, experiment: str) -> None:
    items = set()
    for stage in stages_running(dvc_index, "train", experiment):
        (out,) = stage.outs
        match = re.fullmatch(rf"pipeline/{experiment}/(.+)/seed_(\d+)", out.def_path)
        assert match, f"{stage.addressing} writes {out.def_path}, not pipeline/{experiment}/<variant>/seed_<n>"
        items.add((match.group(1), int(match.group(2))))
    plan = PARAMS.experiments[experiment]
    assert items == set(itertools.product(plan.variants, PARAMS.seeds))


@pytest.mark.parametrize("experiment", sorted(PARAMS.experiments))
def test_each_comparison_runs_after_every_training_run_of_its_experiment(dvc_index: Any, experiment: str) -> None:
    (compare,) = stages_running(dvc_index, "compare", experiment)
    upstream = networkx.descendants(dvc_index.graph, compare)  # DVC's edges point from a stage to what it needs
    runs = set(stages_running(dvc_index, "train", experiment))
    missing = sorted({Path(stage.outs[0].def_path).parent.as_posix() for stage in runs - upstream})
    assert not missing, f"add {', '.join(missing)} to the deps of {compare.addressing} in dvc.yaml"


def test_every_params_file_and_key_that_a_stage_reads_exists(dvc_index: Any) -> None:
    for stage in dvc_index.stages:
        for dependency in stage.params:
            path = PROJECT_ROOT / dependency.def_path
            assert path.is_file(), f"{stage.addressing} reads params from {dependency.def_path}, which does not exist"
            content = OmegaConf.create(yaml.safe_load(path.read_text()) or {})
            for key in dependency.params:
                assert OmegaConf.select(content, key, default=None) is not None, f"{dependency.def_path} lacks {key}"


@pytest.mark.parametrize(
    ("experiment", "variant"), [(e, v) for e, plan in sorted(PARAMS.experiments.items()) for v in plan.variants]
)
def test_every_variant_has_its_ablation_file_and_keeps_the_data(experiment: str, variant: str) -> None:
    # train_overrides refuses a missing or mismatched ablation file and an ablation that changes data.*
    overrides = pipeline.train_overrides(PARAMS, experiment, variant, PARAMS.seeds[0])
    cfg = pipeline.compose(overrides)
    assert (cfg.experiment, cfg.variant, cfg.seed) == (experiment, variant, PARAMS.seeds[0])  # the DVC output


def test_prepared_data_serves_every_experiment_unchanged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """After the prepare stages, no training run may rewrite data/ (DVC would see its outputs change)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    for dataset in PARAMS.data:
        pipeline.prepare(PARAMS, dataset)
    before = {path: path.stat().st_mtime_ns for path in sorted(Path("data").rglob("*")) if path.is_file()}
    for experiment in PARAMS.experiments:
        _, dataset, _, data = pipeline.experiment_data(PARAMS, experiment)
        module = dataset_module(dataset)
        module.load(OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(module.Config), data)))
        after = {path: path.stat().st_mtime_ns for path in sorted(Path("data").rglob("*")) if path.is_file()}
        assert after == before, f"{experiment} rewrote its prepared data; `dvc repro` would rerun every stage"
