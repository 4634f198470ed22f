"""rliable's aggregates, Almost Stochastic Order, scores from a CSV and the aggregate over tasks: closed forms,
naive references and invariances (the template's tests also compare every number with rliable and deepsig)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from {{ cookiecutter.package }}.aggregate import main as aggregate_main
from {{ cookiecutter.package }}.compare import compare
from {{ cookiecutter.package }}.stats import robust
from {{ cookiecutter.package }}.stats.aso import aso, quantiles, violation_ratio
from {{ cookiecutter.package }}.stats.load import ComparisonError

from .test_compare import TABLE


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert robust.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(np.mean([3, 4, 5, 6]))  # the outlier is cut
    assert robust.iqm([[1, 10], [2, 20], [3, 30], [4, 40]]) == pytest.approx(np.mean([3, 4, 10, 20]))  # runs x tasks


def test_optimality_gap_counts_only_the_shortfall() -> None:
    assert robust.optimality_gap([0.5, 1.2, 0.9], gamma=1.0) == pytest.approx((0.5 + 0 + 0.1) / 3)


def test_probability_of_improvement_against_counting_every_pair() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 7), rng.integers(0, 5, 6)  # with ties
    naive = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(x, y)])
    assert robust.probability_of_improvement(x, y) == pytest.approx(naive)
    assert robust.probability_of_improvement(x, y) + robust.probability_of_improvement(y, x) == pytest.approx(1)
    assert robust.probability_of_improvement([3, 4, 5], [0, 1, 2]) == 1.0


def test_the_bootstrap_interval_holds_the_estimate_and_is_reproducible() -> None:
    scores = [0.61, 0.64, 0.66, 0.70, 0.72]
    low, high = robust.stratified_bootstrap_ci(robust.iqm, scores, seed=3)
    assert low <= robust.iqm(scores) <= high
    assert (low, high) == robust.stratified_bootstrap_ci(robust.iqm, scores, seed=3)
    assert robust.stratified_bootstrap_ci(robust.iqm, [0.5] * 4) == (0.5, 0.5)  # no spread, no width


def test_performance_profile_is_the_fraction_above_each_threshold() -> None:
    np.testing.assert_allclose(robust.performance_profile([0.2, 0.4, 0.6, 0.8], [0.0, 0.5, 0.9]), [1.0, 0.5, 0.0])


def test_aso_violation_ratio_and_epsilon_min_in_the_clear_cases() -> None:
    better, worse = np.linspace(0.8, 0.9, 5), np.linspace(0.5, 0.6, 5)
    assert violation_ratio(better, worse) == 0.0
    # like deepsig, the numerator leaves out the first of the 199 integration points (t = dt)
    assert violation_ratio(worse, better) == pytest.approx(198 / 199)
    assert aso(better, worse, bootstrap=200).epsilon_min == 0.0 and aso(better, worse, bootstrap=200).a_better
    assert aso(worse, better, bootstrap=200).epsilon_min > 0.99
    same = aso(better, better, bootstrap=200)
    assert same.violation_ratio == 0.5 and not same.a_better  # no order: no claim
    np.testing.assert_array_equal(quantiles(np.array([3.0, 1.0, 2.0]), np.array([0.1, 0.5, 1.0])), [1.0, 2.0, 3.0])


def test_aso_leaves_the_global_generator_alone() -> None:
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    aso([1.0, 2.0, 3.0], [2.0, 2.5, 4.0], bootstrap=50)
    assert np.random.rand() == expected


def test_compare_reports_iqm_improvement_and_aso(tmp_path, write_sweep) -> None:
    write_sweep(tmp_path, TABLE)
    report = compare(tmp_path, ["test/acc"])
    assert report["variants"]["full"]["iqm"] == pytest.approx(robust.iqm(list(TABLE["full"].values())))
    nopos = next(pair for pair in report["pairs"] if pair["a"] == "nopos")
    assert nopos["prob_improvement"]["p"] == 0.0  # every nopos seed below every full seed
    assert nopos["aso"]["b_larger"] and not nopos["aso"]["a_larger"]  # full is stochastically larger
    assert nopos["aso"]["confidence"] == pytest.approx(0.95 + 0.05 / 2)  # two pairs: corrected


def test_scores_from_a_csv_are_compared_with_the_config_check_said_skipped(tmp_path) -> None:
    csv = tmp_path / "paper.csv"
    rows = [f"{variant},{seed},{value}" for variant, per_seed in TABLE.items() for seed, value in per_seed.items()]
    csv.write_text("variant,seed,test/acc\n" + "\n".join(rows) + "\n")
    report = compare(tmp_path / "out", ["test/acc"], scores=csv)
    assert report["config_check"].startswith(f"skipped: the scores come from {csv}")
    assert report["variants"]["gap"]["values"] == {str(s): v for s, v in TABLE["gap"].items()}
    assert "Config check skipped: the scores come from" in (tmp_path / "out" / "comparison.md").read_text()
    csv.write_text("variant,seed,test/acc\nfull,0,0.9\nfull,0,0.8\n")
    with pytest.raises(ComparisonError, match=r"paper.csv:3: variant 'full' has seed 0 twice"):
        compare(tmp_path / "out", ["test/acc"], scores=csv)


def test_the_aggregate_normalises_each_task_and_pools_them(tmp_path, write_sweep, capsys) -> None:
    for task, shift in (("a", 0.0), ("b", 0.05)):
        write_sweep(tmp_path / task, {v: {s: x - shift for s, x in per.items()} for v, per in TABLE.items()})
        compare(tmp_path / task, ["test/acc"])
    out = tmp_path / "pooled"
    assert aggregate_main([f"{tmp_path / 'a'}=0.1:1", f"{tmp_path / 'b'}=0.1:1", "--out", str(out)]) == 0
    report = json.loads((out / "aggregate.json").read_text())
    full_a = (np.array(list(TABLE["full"].values())) - 0.1) / 0.9
    full_b = (np.array(list(TABLE["full"].values())) - 0.05 - 0.1) / 0.9
    assert report["variants"]["full"]["IQM"]["estimate"] == pytest.approx(robust.iqm(np.stack([full_a, full_b], 1)))
    assert {p["a"] for p in report["pairs"]} == {"gap", "nopos"} and report["baseline"] == "full"
    assert (out / "aggregate_profile.png").read_bytes()[:4] == b"\x89PNG"
    assert aggregate_main([str(tmp_path / "a"), "--rename", "x"]) == 2
    assert "--rename x: expected OLD=NEW" in capsys.readouterr().err
