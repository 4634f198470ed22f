"""Seed-paired comparison of ablation variants: load and check runs, test, tabulate, plot.

`python -m {{ cookiecutter.package }}.compare` drives these modules.
They are also importable on their own, e.g. `seeds_needed` to plan a sweep before running it.
"""

from .inference import (
    HypothesisTest,
    PairedComparison,
    Summary,
    adjust,
    compare_pair,
    describe,
    friedman,
    holm,
    paired_t_power,
    seeds_needed,
)
from .load import ComparisonError, Run, RunSet, check_configs, check_seeds, load_runs
from .report import build_report

__all__ = [
    "ComparisonError",
    "HypothesisTest",
    "PairedComparison",
    "Run",
    "RunSet",
    "Summary",
    "adjust",
    "build_report",
    "check_configs",
    "check_seeds",
    "compare_pair",
    "describe",
    "friedman",
    "holm",
    "load_runs",
    "paired_t_power",
    "seeds_needed",
]
