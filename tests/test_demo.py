"""README command 1, as a user runs it: `scripts/demo.sh` bakes a project, installs it, runs the smoke
ablation of every baseline with three seeds and prints the comparison tables.

The script installs the demo project into the repository's `.venv` (the one scripts/test.sh builds and
runs these tests in), so this test runs only there, with the PyTorch requirement `.venv` was built with:
setup_env.sh then has nothing to do and never rebuilds the environment under the running tests.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from conftest import PYTHON, ROOT, run

pytestmark = pytest.mark.slow

EXPERIMENTS = {
    "transformer_shakespeare": ("full", "no_attention", "val/loss"),
    "vit_cifar10": ("full", "no_pos_embedding", "test/acc"),
    "simclr_cifar10": ("full", "weak_aug", "knn/acc"),
}


def test_the_demo_prints_a_comparison_table_per_baseline(tmp_path: Path) -> None:
    venv = ROOT / ".venv"
    stamp = venv / ".ai-research-template-stamp"
    if Path(PYTHON).parent != venv / "bin" or not stamp.is_file():
        pytest.skip("scripts/demo.sh installs into the repository's .venv: run the tests through scripts/test.sh")
    built_from, torch_install = stamp.read_text().strip().split(" ", 1)
    if built_from != hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest():
        pytest.skip(".venv was built from an older pyproject.toml: scripts/test.sh rebuilds it, then runs this")
    demo = tmp_path / "demo"
    result = run(["scripts/demo.sh"], cwd=ROOT, env={"DEMO_DIR": str(demo), "TORCH_INSTALL": torch_install})

    assert "setting up" not in result.stdout  # the environment of the running tests was left alone
    project = demo / "demo-paper"
    assert (project / ".git").is_dir()
    for experiment, (baseline, variant, metric) in EXPERIMENTS.items():
        assert f"=== {experiment}: {baseline},{variant} x seeds 0,1,2 ===" in result.stdout
        table = (project / "runs" / experiment / "comparison.md").read_text()
        assert table in result.stdout  # printed, not only written
        assert f"2 variants x 3 seeds (0, 1, 2), paired by seed; tests against baseline `{baseline}`" in table
        assert re.search(rf"^\| {variant} \u2212 {baseline} \| 3 \| -?\d", table, re.MULTILINE), table
        assert f"## {metric}: paired tests" in table
        for seed in (0, 1, 2):
            for name in (baseline, variant):
                [run_dir] = (project / "runs" / experiment).glob(f"{name}-*/seed_{seed}")  # <variant>-<config digest>
                assert (run_dir / "metrics.json").is_file()
    assert re.search(r"demo finished in \d+ s", result.stdout)
    # The pooled view: one row per role (full, ablated) over the three tasks, and the figures.
    for row in ("| full | 3 |", "| ablated | 3 |", "| ablated vs full |"):
        assert row in result.stdout, row
    for name in ("aggregate_profile.png", "aggregate_intervals.png"):
        assert (project / "runs" / "aggregate" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
