"""Turn checked runs into the comparison report: the plain dict that becomes comparison.json.

The report is the single source of every output: the Markdown, LaTeX and terminal tables
(stats/tables.py) and the figure (stats/plot.py) only format what is here, so they can never
disagree. Its schema is documented in compare.py. It holds only JSON types and no NaN: an undefined
statistic is None with a note saying why.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import robust
from .aso import aso
from .inference import (
    HypothesisTest,
    PairedComparison,
    Summary,
    adjust,
    compare_pair,
    describe,
    friedman,
    paired_t_power,
    seeds_needed,
)
from .load import ComparisonError, Run, RunSet

DEFAULT_BASELINE = "full"  # the variant with every component on, by convention of configs/ablation/
POWER = 0.8  # target power of the seed-count helper (Cohen's conventional 80 %)
MAX_SEEDS = 10_000  # the seed-count helper gives up beyond this: the difference is too small to chase


def choose_baseline(variants: Sequence[str], requested: str | None) -> str | None:
    """The variant every other one is tested against; None means all pairs are tested."""
    if requested is not None:
        if requested not in variants:
            raise ComparisonError(
                f"baseline {requested!r} is not a variant here; the variants are: {', '.join(variants)}"
            )
        return requested
    return DEFAULT_BASELINE if DEFAULT_BASELINE in variants else None


def _test_json(test: HypothesisTest) -> dict[str, Any]:
    return {"statistic": test.statistic, "p": test.p, "note": test.note}


def _summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "n": summary.n,
        "mean": summary.mean,
        "std": summary.std,
        "ci95": list(summary.ci95),
        "median": summary.median,
        "values": {str(seed): value for seed, value in summary.values.items()},  # JSON keys are strings
    }


def _seed_count_json(pair: PairedComparison, difference: float, alpha: float) -> dict[str, Any]:
    """How many seeds would detect `difference` given this pair's observed spread of differences."""
    result: dict[str, Any] = {"difference": difference, "alpha": alpha, "power": POWER}
    if pair.cohen_dz is None:  # identical differences: no spread to plan with
        return result | {"seeds_needed": None, "power_now": None, "note": "the differences have no spread"}
    needed = seeds_needed(difference, pair.sd_diff, alpha=alpha, power=POWER, max_seeds=MAX_SEEDS)
    return result | {
        "seeds_needed": needed,
        "power_now": paired_t_power(difference / pair.sd_diff, pair.n, alpha),
        "note": None if needed is not None else f"more than {MAX_SEEDS} seeds",
    }


def _pair_json(
    pair: PairedComparison, p_adjusted: float | None, correction: str, alpha: float, detect: float | None
) -> dict[str, Any]:
    return {
        "a": pair.a,
        "b": pair.b,
        "n": pair.n,
        "mean_diff": pair.mean_diff,
        "sd_diff": pair.sd_diff,
        "ci95_diff": list(pair.ci95_diff),
        "bootstrap_ci95_diff": list(pair.bootstrap_ci95_diff),
        "t_test": _test_json(pair.t_test),
        "wilcoxon": _test_json(pair.wilcoxon),
        f"p_{correction}": p_adjusted,
        "significant": p_adjusted is not None and p_adjusted < alpha,
        "cohen_dz": pair.cohen_dz,
        "seed_count": None if detect is None else _seed_count_json(pair, detect, alpha),
    }


def _robust_variant(values: dict[int, float]) -> dict[str, Any]:
    """rliable's interquartile mean of the seeds, with its bootstrap interval (stats/robust.py)."""
    scores = list(values.values())
    return {"iqm": robust.iqm(scores), "iqm_ci95": list(robust.stratified_bootstrap_ci(robust.iqm, scores))}


def _robust_pair(a: dict[int, float], b: dict[int, float], comparisons: int, alpha: float) -> dict[str, Any]:
    """Probability of improvement and Almost Stochastic Order in both directions: no normality assumed."""
    x, y = list(a.values()), list(b.values())
    improvement = robust.probability_of_improvement(x, y)
    ci = robust.stratified_bootstrap_ci(robust.probability_of_improvement, x, y)
    forward, backward = (aso(p, q, confidence=1 - alpha, comparisons=comparisons) for p, q in ((x, y), (y, x)))
    return {
        "prob_improvement": {"p": improvement, "ci95": list(ci)},
        "aso": {
            "epsilon_min": forward.epsilon_min,  # of "a is stochastically larger than b"
            "epsilon_min_reverse": backward.epsilon_min,  # of "b is stochastically larger than a"
            "violation_ratio": forward.violation_ratio,
            "confidence": forward.confidence,
            "tau": forward.tau,
            "a_larger": forward.a_better,
            "b_larger": backward.a_better,
        },
    }


def _metric_report(
    values: dict[str, dict[int, float]],
    order: Sequence[str],
    baseline: str | None,
    correction: str,
    alpha: float,
    detect: float | None,
) -> dict[str, Any]:
    """Summaries, corrected paired tests and the Friedman test of one metric."""
    if baseline is None:
        pairings = list(itertools.combinations(order, 2))
    else:
        pairings = [(variant, baseline) for variant in order if variant != baseline]
    pairs = [compare_pair(a, values[a], b, values[b], alpha=alpha) for a, b in pairings]
    # The family is every pair of this metric: Holm keeps P(any false claim) <= alpha across the table.
    p_adjusted = adjust([pair.t_test.p for pair in pairs], correction)
    omnibus = friedman({variant: values[variant] for variant in order})
    n_seeds = len(values[order[0]])
    return {
        "variants": {
            variant: _summary_json(describe(values[variant])) | _robust_variant(values[variant]) for variant in order
        },
        "pairs": [
            _pair_json(pair, p, correction, alpha, detect) | _robust_pair(values[a], values[b], len(pairs), alpha)
            for pair, p, (a, b) in zip(pairs, p_adjusted, pairings, strict=True)
        ],
        "friedman": None if omnibus is None else _test_json(omnibus) | {"k": len(order), "n": n_seeds},
    }


def _mean_of(runs: Sequence[Run], read: Callable[[Run], Any]) -> float | None:
    """Mean of a recorded number over runs (NaN and inf skipped, as not recorded); None when no run recorded it."""
    values = [
        value
        for value in map(read, runs)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ]
    return float(np.mean(values)) if values else None


def _resources(runs: RunSet, order: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parameters and FLOPs from metrics.json, mean training time from timing.json; None when not recorded."""
    resources = {}
    for variant in order:
        variant_runs = runs.of(variant)
        params = _mean_of(variant_runs, lambda run: run.metrics.get("model/params"))
        resources[variant] = {
            "params": None if params is None else round(params),
            "gflops": _mean_of(variant_runs, lambda run: run.metrics.get("model/gflops")),
            "train_seconds_mean": _mean_of(variant_runs, lambda run: run.train_seconds),
        }
    return resources


def build_report(
    runs: RunSet,
    metrics: Sequence[str],
    *,
    baseline: str | None = None,
    correction: str = "holm",
    alpha: float = 0.05,
    detect: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Compute every statistic of the comparison (schema: see compare.py).

    Args:
        runs: runs that passed `check_seeds` and `check_configs`.
        metrics: metric names as in metrics.json; the first one also fills the top-level keys.
        baseline: test every variant against this one; None picks "full" if present, else all pairs.
        correction: "holm" or "bh", applied per metric across its pairs.
        alpha: level of the tests, the significance flags and the seed-count helper.
        detect: smallest differences worth detecting: one for all metrics or one per metric.
    """
    if not metrics:
        raise ComparisonError("no metric requested; pass --metric NAME (e.g. --metric test/acc)")
    if correction not in ("holm", "bh"):
        raise ComparisonError(f"correction must be 'holm' or 'bh', got {correction!r}")
    if not 0 < alpha < 1:
        raise ComparisonError(f"alpha must lie in (0, 1), got {alpha}")
    detect = list(detect or [])
    if len(detect) not in (0, 1, len(metrics)):
        raise ComparisonError(
            f"got {len(detect)} --detect values for {len(metrics)} metrics; give one or one per metric"
        )
    if any(d <= 0 for d in detect):
        raise ComparisonError(f"--detect differences must be positive, got {detect}")
    per_metric_detect = detect * len(metrics) if len(detect) == 1 else detect or [None] * len(metrics)

    baseline = choose_baseline(runs.variants, baseline)
    order = sorted(runs.variants, key=lambda variant: (variant != baseline, variant))  # baseline first
    by_metric = {
        metric: _metric_report(runs.values(metric), order, baseline, correction, alpha, difference)
        for metric, difference in zip(metrics, per_metric_detect, strict=True)
    }
    first = by_metric[metrics[0]]
    return {
        "metric": metrics[0],
        "metrics": list(metrics),
        "directory": str(runs.root),
        "baseline": baseline,
        "correction": correction,
        "alpha": alpha,
        "seeds": runs.seeds,
        "skipped": [str(path.relative_to(runs.root)) for path in runs.skipped],
        "variants": first["variants"],
        "pairs": first["pairs"],
        "friedman": first["friedman"],
        "resources": _resources(runs, order),
        "by_metric": by_metric,
    }
