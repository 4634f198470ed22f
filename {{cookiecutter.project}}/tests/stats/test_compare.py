"""End to end: fake-but-structurally-real sweeps -> comparison.{md,tex,json,png}, and the CLI's errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

import {{ cookiecutter.package }}
from {{ cookiecutter.package }}.compare import OUTPUTS, compare, main
from {{ cookiecutter.package }}.stats.load import ComparisonError

# Three variants x four seeds; "gap" is consistently a little worse, "nopos" clearly worse.
TABLE = {
    "full": {0: 0.912, 1: 0.905, 2: 0.921, 3: 0.899},
    "gap": {0: 0.907, 1: 0.903, 2: 0.913, 3: 0.896},
    "nopos": {0: 0.861, 1: 0.872, 2: 0.866, 3: 0.858},
}
VARIANT_KEYS = {"n", "mean", "std", "ci95", "median", "values", "iqm", "iqm_ci95"}
PAIR_KEYS = {"a", "b", "n", "mean_diff", "sd_diff", "ci95_diff", "bootstrap_ci95_diff", "t_test", "wilcoxon"}
PAIR_KEYS |= {"p_holm", "significant", "cohen_dz", "seed_count", "prob_improvement", "aso"}


def strict_json(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path} contains {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_compare_writes_four_files_with_the_documented_schema(tmp_path, write_sweep):
    write_sweep(tmp_path, TABLE)
    report = compare(tmp_path, ["test/acc"])
    assert all((tmp_path / name).stat().st_size > 0 for name in OUTPUTS)
    assert not list(tmp_path.glob(".comparison*"))  # temporary files were renamed, none left behind
    data = strict_json(tmp_path / "comparison.json")
    assert data == json.loads(json.dumps(report))
    assert (data["metric"], data["baseline"], data["seeds"], data["skipped"]) == ("test/acc", "full", [0, 1, 2, 3], [])
    assert list(data["variants"]) == ["full", "gap", "nopos"]  # the baseline first
    assert all(set(summary) == VARIANT_KEYS for summary in data["variants"].values())
    assert data["variants"]["gap"]["values"] == {str(seed): value for seed, value in TABLE["gap"].items()}
    assert [(pair["a"], pair["b"]) for pair in data["pairs"]] == [("gap", "full"), ("nopos", "full")]
    assert all(set(pair) == PAIR_KEYS for pair in data["pairs"])
    assert set(data["friedman"]) == {"statistic", "p", "note", "k", "n"}
    assert data["resources"]["full"] == {"params": 1_234_567, "gflops": 0.42, "train_seconds_mean": 10.0}
    assert data["by_metric"]["test/acc"]["pairs"] == data["pairs"]


def test_reported_numbers_are_scipys(tmp_path, write_sweep):
    write_sweep(tmp_path, TABLE)
    pairs = compare(tmp_path, ["test/acc"])["pairs"]
    for pair, variant in zip(pairs, ["gap", "nopos"], strict=True):
        a = [TABLE[variant][s] for s in range(4)]
        b = [TABLE["full"][s] for s in range(4)]
        expected = stats.ttest_rel(a, b)
        assert (pair["t_test"]["statistic"], pair["t_test"]["p"]) == pytest.approx(tuple(expected))
        assert pair["wilcoxon"]["p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    # Holm over the two pairs: the smaller p doubles, the larger stays (unless below the doubled one).
    p_small, p_large = sorted(pair["t_test"]["p"] for pair in pairs)
    assert sorted(pair["p_holm"] for pair in pairs) == pytest.approx([2 * p_small, max(2 * p_small, p_large)])


def test_markdown_and_latex_show_variants_tests_and_resources(tmp_path, write_sweep):
    write_sweep(tmp_path, TABLE)
    compare(tmp_path, ["test/acc"], detect=[0.005])
    markdown = (tmp_path / "comparison.md").read_text()
    for text in ("full (baseline)", "| gap |", "nopos − full", "p (Holm)", "p (Wilcoxon)", "d_z", "Friedman test"):
        assert text in markdown
    assert "1.23M" in markdown and "0.42" in markdown  # params and GFLOPs columns
    assert "needs" in markdown and "seeds (have 4" in markdown  # the seed-count helper
    latex = (tmp_path / "comparison.tex").read_text()
    assert "## test/acc: robust comparisons" in markdown and "| nopos vs full |" in markdown
    assert "P(a > b) [95 % CI]" in markdown and "ASO ε_min (a > b)" in markdown
    assert latex.count("\\begin{tabular}") == latex.count("\\bottomrule") == 4
    assert "\\toprule" in latex and "$\\pm$" in latex and "test/acc" in latex
    unescaped = re.sub(r"\\[{}$%_&#]", "", latex)  # drop escaped specials, keep the markup's own
    assert unescaped.count("{") == unescaped.count("}") and unescaped.count("$") % 2 == 0
    assert all(ord(ch) < 128 for ch in latex)  # every symbol spelled in LaTeX, none left as Unicode
    assert "nan" not in (markdown + latex).lower()


def test_a_metric_without_any_difference_reports_na_with_reasons_not_nan(tmp_path, write_sweep):
    write_sweep(tmp_path, TABLE)  # model/params is 1234567 in every run
    report = compare(tmp_path, ["model/params"], detect=[1.0])
    for pair in report["pairs"]:
        assert pair["t_test"] == pair["wilcoxon"] == {"statistic": None, "p": None, "note": "all differences are zero"}
        assert (pair["p_holm"], pair["significant"], pair["cohen_dz"]) == (None, False, None)
        assert pair["seed_count"]["seeds_needed"] is None
    assert report["friedman"]["p"] is None
    markdown = (tmp_path / "comparison.md").read_text()
    assert "gap − full: t-test n/a, all differences are zero." in markdown
    assert "1234567 ± 0" in markdown and "nan" not in markdown.lower()
    strict_json(tmp_path / "comparison.json")


def test_several_metrics_nest_per_metric_and_keep_the_first_on_top(tmp_path, write_sweep):
    write_sweep(tmp_path, TABLE)
    report = compare(tmp_path, ["test/acc", "test/loss"], correction="bh", detect=[0.01, 0.02])
    assert report["metrics"] == list(report["by_metric"]) == ["test/acc", "test/loss"]
    assert report["variants"] == report["by_metric"]["test/acc"]["variants"]
    loss_pairs = report["by_metric"]["test/loss"]["pairs"]
    assert all("p_bh" in pair and "p_holm" not in pair for pair in loss_pairs)
    # test/loss = 1 - test/acc in the fixture: same tests, opposite sign.
    acc_pairs = report["pairs"]
    assert [p["mean_diff"] for p in loss_pairs] == pytest.approx([-p["mean_diff"] for p in acc_pairs])
    assert [p["seed_count"]["difference"] for p in loss_pairs] == [0.02, 0.02]


def test_without_a_full_variant_every_pair_is_tested(tmp_path, write_sweep):
    write_sweep(tmp_path, {"gap": TABLE["gap"], "nopos": TABLE["nopos"]})
    report = compare(tmp_path, ["test/acc"])
    assert report["baseline"] is None and report["friedman"] is None
    assert [(pair["a"], pair["b"]) for pair in report["pairs"]] == [("gap", "nopos")]
    assert [(p["a"], p["b"]) for p in compare(tmp_path, ["test/acc"], baseline="nopos")["pairs"]] == [("gap", "nopos")]


def test_outputs_are_identical_on_rerun(tmp_path, write_sweep):
    write_sweep(tmp_path, TABLE)
    compare(tmp_path, ["test/acc"])
    first = {name: (tmp_path / name).read_bytes() for name in OUTPUTS}
    compare(tmp_path, ["test/acc"])
    assert {name: (tmp_path / name).read_bytes() for name in OUTPUTS} == first


def test_a_renderer_that_fails_leaves_the_previous_files_whole(tmp_path, write_sweep, monkeypatch):
    write_sweep(tmp_path, TABLE)
    compare(tmp_path, ["test/acc"])
    before = {name: (tmp_path / name).read_bytes() for name in OUTPUTS}

    def broken(report):
        raise RuntimeError("matplotlib could not parse a label")

    monkeypatch.setattr({{ cookiecutter.package }}.compare, "comparison_png", broken)
    with pytest.raises(RuntimeError, match="could not parse"):
        compare(tmp_path, ["test/acc", "test/loss"])  # a new table would differ from the old one
    assert {name: (tmp_path / name).read_bytes() for name in OUTPUTS} == before


def test_resources_skip_values_that_are_not_finite(tmp_path, write_sweep):
    write_sweep(tmp_path, TABLE)
    metrics = tmp_path / "gap" / "seed_0" / "metrics.json"
    metrics.write_text(metrics.read_text().replace("0.42", "NaN"))  # a FLOP count that failed
    report = compare(tmp_path, ["test/acc"])
    assert report["resources"]["gap"]["gflops"] == 0.42  # the mean of the three runs that recorded it
    strict_json(tmp_path / "comparison.json")


def test_bad_options_are_clear_errors(tmp_path, write_sweep):
    write_sweep(tmp_path, TABLE)
    with pytest.raises(ComparisonError, match="baseline 'none' is not a variant here; the variants are: full"):
        compare(tmp_path, ["test/acc"], baseline="none")
    with pytest.raises(ComparisonError, match="2 --detect values for 1 metrics"):
        compare(tmp_path, ["test/acc"], detect=[0.1, 0.2])
    with pytest.raises(ComparisonError, match="alpha must lie in"):
        compare(tmp_path, ["test/acc"], alpha=1.5)
    assert not (tmp_path / "comparison.json").exists()  # nothing written for a refused comparison


@pytest.mark.parametrize(
    "table, message",
    [
        ({"full": {0: 0.9}, "gap": {0: 0.8}}, "at least 2 seeds"),
        ({"full": {0: 0.9, 1: 0.8}, "gap": {0: 0.8, 2: 0.7}}, "'full' lacks seed 2; 'gap' lacks seed 1"),
    ],
)
def test_cli_exits_2_with_the_message(tmp_path, write_sweep, capsys, table, message):
    write_sweep(tmp_path, table)
    assert main([str(tmp_path), "--metric", "test/acc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_missing_metric_empty_directory_and_unknown_baseline(tmp_path, write_sweep, capsys):
    assert main([str(tmp_path), "--metric", "test/acc"]) == 2
    assert "no finished runs" in capsys.readouterr().err
    write_sweep(tmp_path, TABLE)
    assert main([str(tmp_path), "--metric", "val/acc"]) == 2
    assert "has no metric 'val/acc'; its metrics are: model/gflops, model/params, test/acc" in capsys.readouterr().err
    assert main([str(tmp_path), "--metric", "test/acc", "--baseline", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: baseline 'nope' is not a variant")


def test_cli_runs_as_a_module_and_prints_the_table(tmp_path, write_sweep):
    write_sweep(tmp_path, TABLE)
    (tmp_path / "gap" / "seed_4").mkdir()  # an unfinished run: reported, not compared
    src = Path({{ cookiecutter.package }}.__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "200"}
    module = "{{ cookiecutter.package }}.compare"
    command = [sys.executable, "-m", module, str(tmp_path), "--metric", "test/acc", "--detect", "0.01"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    for text in ("gap − full", "p (Holm)", "Skipped unfinished runs (no metrics.json): gap/seed_4", "seeds (have 4"):
        assert text in result.stdout
    assert all((tmp_path / name).is_file() for name in OUTPUTS)


def test_values_too_large_to_average_are_one_line_and_nothing_is_written(tmp_path, write_sweep, capsys):
    write_sweep(tmp_path, {"full": {0: 1.7e308, 1: 1.7e308}, "gap": {0: 1.6e308, 1: 1.7e308}})
    assert main([str(tmp_path), "--metric", "test/acc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a finite number" in err and "too large to average" in err
    assert not any((tmp_path / name).exists() for name in OUTPUTS)


@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "0"])
def test_a_detectable_difference_must_be_positive_and_finite(tmp_path, write_sweep, capsys, value):
    write_sweep(tmp_path, TABLE)
    assert main([str(tmp_path), "--metric", "test/acc", "--detect", value]) == 2
    assert (
        capsys.readouterr().err
        == f"error: --detect {float(value)} is not valid; expected a positive, finite difference\n"
    )
