"""The comparison end to end on real smoke runs: each baseline's ablation (2 variants x 3 seeds, trained by
`{{ cookiecutter.package }}.ablate` as one Hydra multirun) gives all four output files, and the tables show the variants,
the tests and the resources, with statistics that agree with scipy applied to the runs' own metrics.json.

Each baseline's ablation runs once per module (a module-scoped fixture) and every assertion shares it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from {{ cookiecutter.package }}.ablate import main

from helpers import find_run

pytestmark = pytest.mark.slow

# experiment, the two variants of its smoke ablation (the same as scripts/demo.sh), its default metric
ABLATIONS = [
{%- if cookiecutter.__transformer %}
    ("transformer_shakespeare", ("full", "no_attention"), "val/loss"),
{%- endif %}
{%- if cookiecutter.__vit %}
    ("vit_cifar10", ("full", "no_pos_embedding"), "test/acc"),
{%- endif %}
{%- if cookiecutter.__simclr %}
    ("simclr_cifar10", ("full", "weak_aug"), "knn/acc"),
{%- endif %}
]
SEEDS = (0, 1, 2)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module", params=ABLATIONS, ids=[a[0] for a in ABLATIONS])
def ablation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Run one baseline's smoke ablation; returns (runs/<experiment>, the ablated variant, the metric)."""
    experiment, (full, other), metric = request.param
    tmp = tmp_path_factory.mktemp(experiment)
    argv = [f"experiment={experiment}", "trainer=smoke", "tracker=none"]
    argv += [f"paths.runs_dir={tmp / 'runs'}", f"paths.data_dir={tmp / 'data'}"]
    assert main([*argv, "--variants", f"{full},{other}", "--seeds", ",".join(map(str, SEEDS))]) == 0
    return tmp / "runs" / experiment, other, metric


def run_of(root: Path, variant: str, seed: int) -> Path:
    """runs/<experiment>/<variant>-<digest>/seed_<seed>: the ablation trains one setting per variant."""
    return find_run(root.parent, root.name, variant, seed)


def per_seed(root: Path, variant: str, metric: str) -> list[float]:
    return [read_json(run_of(root, variant, seed) / "metrics.json")[metric] for seed in SEEDS]


def test_all_four_files_are_written(ablation: tuple[Path, str, str]) -> None:
    root, _, _ = ablation
    for name in ("comparison.md", "comparison.tex", "comparison.json"):
        assert (root / name).stat().st_size > 200, name
    assert (root / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_variant_ran_every_seed_on_the_same_data(ablation: tuple[Path, str, str]) -> None:
    root, other, _ = ablation
    configs = {
        (variant, seed): OmegaConf.to_container(OmegaConf.load(run_of(root, variant, seed) / "config.yaml"))
        for variant in ("full", other)
        for seed in SEEDS
    }
    assert all(config["variant"] == variant and config["seed"] == seed for (variant, seed), config in configs.items())
    data = {json.dumps(config["data"], sort_keys=True) for config in configs.values()}
    assert len(data) == 1, "every variant and seed must train on the same data and splits"
    assert all(bool(config["variant_keys"]) == (variant == other) for (variant, _), config in configs.items())


def test_json_schema_and_statistics_agree_with_scipy(ablation: tuple[Path, str, str]) -> None:
    root, other, metric = ablation
    report = read_json(root / "comparison.json")
    assert report["metric"] == metric and report["baseline"] == "full" and report["seeds"] == list(SEEDS)
    assert set(report["variants"]) == {"full", other} and report["skipped"] == []
    for variant in ("full", other):
        summary = report["variants"][variant]
        values = per_seed(root, variant, metric)
        assert summary["n"] == len(SEEDS)
        assert summary["values"] == {str(seed): value for seed, value in zip(SEEDS, values, strict=True)}
        assert summary["mean"] == pytest.approx(np.mean(values))
        assert summary["std"] == pytest.approx(np.std(values, ddof=1))
        assert summary["ci95"][0] <= summary["mean"] <= summary["ci95"][1]

    [pair] = report["pairs"]
    assert (pair["a"], pair["b"], pair["n"]) == (other, "full", len(SEEDS))
    a, b = per_seed(root, other, metric), per_seed(root, "full", metric)
    assert pair["mean_diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    ttest = stats.ttest_rel(a, b)
    if pair["t_test"]["p"] is None:  # every seed moved by the same amount: t is undefined, and said so
        assert pair["t_test"]["note"]
    else:
        assert pair["t_test"]["statistic"] == pytest.approx(ttest.statistic)
        assert pair["t_test"]["p"] == pytest.approx(ttest.pvalue)
        assert pair["p_holm"] == pytest.approx(ttest.pvalue)  # one pair: Holm leaves p as it is
        assert pair["cohen_dz"] == pytest.approx(np.mean(np.subtract(a, b)) / np.std(np.subtract(a, b), ddof=1))
    assert set(pair["wilcoxon"]) == {"statistic", "p", "note"}
    assert pair["wilcoxon"]["p"] is None or 0 < pair["wilcoxon"]["p"] <= 1
    assert report["friedman"] is None  # needs 3 or more variants

    for variant in ("full", other):
        resources = report["resources"][variant]
        metrics = read_json(run_of(root, variant, 0) / "metrics.json")
        timings = [read_json(run_of(root, variant, s) / "timing.json")["train_seconds"] for s in SEEDS]
        assert resources["params"] == metrics["model/params"] > 0
        assert resources["gflops"] == pytest.approx(metrics["model/gflops"]) and resources["gflops"] > 0
        assert resources["train_seconds_mean"] == pytest.approx(np.mean(timings)) and min(timings) > 0


def test_markdown_and_latex_show_the_variants_and_the_tests(ablation: tuple[Path, str, str]) -> None:
    root, other, metric = ablation
    markdown = (root / "comparison.md").read_text()
    for text in (
        f"{len(SEEDS)} seeds",
        "full (baseline)",
        f"| {other} |",
        f"## {metric}: per variant",
        f"## {metric}: paired tests",
        f"| {other} − full | {len(SEEDS)} |",
        "p (Holm)",
        "p (Wilcoxon)",
        "d_z",
        "Params",
        "GFLOPs",
        "Train time (s)",
    ):
        assert text in markdown, text
    assert "nan" not in markdown.lower()
    latex = (root / "comparison.tex").read_text()
    assert "\\toprule" in latex and "\\bottomrule" in latex and other.replace("_", "\\_") in latex
