"""pipeline.py without DVC: reading params.yaml, merging data configs, the run-set checks, curves and summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.pipeline import (
    MAX_CURVE_POINTS,
    Params,
    PipelineError,
    check_runs,
    covering,
    curves,
    summary,
)

PARAMS = """
trainer: smoke
data: {cifar10: cifar10_synthetic, shakespeare: shakespeare}
seeds: [0, 1]
experiments:
  exp: {variants: [full, small], metric: test/acc}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_params_are_read_and_data_directories_say_real_or_synthetic(tmp_path: Path) -> None:
    params = Params.read(write(tmp_path / "params.yaml", PARAMS))
    assert params.seeds == (0, 1) and params.experiments["exp"].variants == ("full", "small")
    assert params.data_dir("cifar10") == (Path("data/cifar10_synthetic"), True)
    assert params.data_dir("shakespeare") == (Path("data/shakespeare"), False)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("seeds: [0, 1]", "seeds: 3"), "seeds=3; expected a list of integers"),
        (("seeds: [0, 1]", "seeds: [1, 1]"), "repeats a seed"),
        (("variants: [full, small]", "variants: []"), r"experiments\.exp\.variants=\[\]"),
        ((", metric: test/acc", ""), "experiments.exp.metric is missing"),
        (("trainer: smoke\n", ""), "lacks trainer"),
        (("trainer: smoke\n", "trainer: smok\n"), r"trainer='smok'; expected one of \[.*'smoke'.*\] \(configs/"),
    ],
)
def test_bad_params_are_one_clear_error(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        Params.read(write(tmp_path / "params.yaml", PARAMS.replace(*edit)))


def test_a_data_directory_must_name_its_dataset(tmp_path: Path) -> None:
    params = Params.read(write(tmp_path / "params.yaml", PARAMS.replace("cifar10_synthetic", "cifar100")))
    with pytest.raises(PipelineError, match=r"data.cifar10='cifar100'; expected 'cifar10' \(the real data\)"):
        params.data_dir("cifar10")
    with pytest.raises(PipelineError, match=r"experiment 'nope' is not in params\.yaml"):
        params.plan("nope")


def test_one_twin_covers_every_size_and_nothing_else_may_differ() -> None:
    small = {"name": "cifar10", "seed": 0, "num_train": 384, "num_test": 256}
    large = {**small, "num_train": 1280, "num_test": 500}
    assert covering({"a": small, "b": large}) == large
    assert covering({"a": small, "b": {**small, "num_test": None}})["num_test"] is None  # None: the whole split
    assert covering({"a": small}) == small
    with pytest.raises(PipelineError, match=r"disagree on data.seed \(\{'a': 0, 'b': 1\}\)"):
        covering({"a": small, "b": {**small, "seed": 1}})


def make_run(root: Path, variant: str, seed: int, finished: bool = True) -> Path:
    run = root / variant / f"seed_{seed}"
    run.mkdir(parents=True)
    if finished:
        write(run / "metrics.json", "{}")
    return run


def test_the_runs_to_compare_are_exactly_those_of_params_yaml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    params = Params.read(write(tmp_path / "params.yaml", PARAMS))
    root = Path("pipeline/exp")
    for variant in ("full", "small"):
        for seed in (0, 1):
            make_run(root, variant, seed)
    assert check_runs(params, "exp") == root
    make_run(root, "old", 0)  # a variant an earlier params.yaml listed: named in the log, not compared
    make_run(root, "full", 7, finished=False)
    with caplog.at_level(logging.INFO):
        assert check_runs(params, "exp") == root
    assert "not compared" in caplog.text and "pipeline/exp/full/seed_7, pipeline/exp/old/seed_0" in caplog.text


def test_a_missing_run_names_the_dvc_yaml_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    params = Params.read(write(tmp_path / "params.yaml", PARAMS))
    for seed in (0, 1):
        make_run(Path("pipeline/exp"), "full", seed)
    make_run(Path("pipeline/exp"), "small", 0)
    with pytest.raises(PipelineError, match=r"pipeline/exp/small/seed_1 has no metrics.json; .* deps of this"):
        check_runs(params, "exp")


def test_curves_are_long_form_thinned_and_keep_the_last_step(tmp_path: Path) -> None:
    run = tmp_path / "exp" / "full" / "seed_3"
    steps = range(1, 2 * MAX_CURVE_POINTS + 2)  # 1001 steps: every 3rd kept, plus the last
    records = [{"step": s, "epoch": 0, "train/loss": 1 / s, "grad_norm/head": 0.1, "note": "x"} for s in steps]
    records.append({"step": steps[-1], "val/loss": "nan"})  # non-finite values are logged as strings
    write(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    rows = curves([run])
    assert {row["metric"] for row in rows} == {"train/loss"}  # no epoch, per-layer norm or string
    kept = [row["step"] for row in rows]
    assert len(kept) <= MAX_CURVE_POINTS + 1 and kept[0] == 1 and kept[-1] == steps[-1]
    first = {"run": "full/seed_3", "variant": "full", "seed": 3, "metric": "train/loss", "step": 1, "value": 1.0}
    assert rows[0] == first


def test_summary_holds_mean_std_and_each_seed() -> None:
    report = {
        "metric": "test/acc",
        "variants": {"full": {"mean": 0.5, "std": 0.1, "ci95": [0.1, 0.9], "values": {"0": 0.4, "1": 0.6}}},
    }
    assert summary(report) == {"full": {"test/acc": {"mean": 0.5, "std": 0.1, "seed_0": 0.4, "seed_1": 0.6}}}
