"""Compare ablation variants over seeds: the statistics and tables behind an ablation study.

Reads `<dir>/<setting>/seed_<n>/metrics.json` (a setting is one config: `<variant>-<digest>`, see
repro/rundir.py), checks that the runs can be compared (same seeds in every variant, configs that differ
only in the ablation's keys or in a key swept on the command line), runs seed-paired tests and writes
`comparison.md`, `comparison.tex` (booktabs), `comparison.json` and `comparison.png` into `<dir>`.
docs/ablations.md explains how to read the tables.

    python -m {{ cookiecutter.package }}.compare runs/vit_cifar10 --metric test/acc \\
        --metric test/loss --baseline full --correction holm --alpha 0.05 --detect 0.005
    python -m {{ cookiecutter.package }}.compare runs/transformer_shakespeare trainer=smoke 'trainer.lr=1e-3,3e-4' \\
        seed=0,1 --metric val/loss     # only the runs these overrides trained (-m ... of train)

Without overrides every setting under `<dir>` is compared; with them, exactly the settings (and seeds)
that `python -m {{ cookiecutter.package }}.train -m experiment=<dir's name> <overrides>` trained.
`--scores FILE.csv` compares scores from elsewhere (stats/external.py) and writes into `<dir>`.

A run that cannot be compared stops the command with one line and exit status 2.

comparison.json (all values JSON; an undefined statistic is null with a `note`, never NaN)::

    {
      "metric": "test/acc",                       # the first --metric; it fills the next three keys
      "variants": {name: VARIANT, ...},           # == by_metric[metric]["variants"]
      "pairs": [PAIR, ...],                       # == by_metric[metric]["pairs"]
      "friedman": FRIEDMAN | null,                # == by_metric[metric]["friedman"]
      "by_metric": {metric: {"variants": ..., "pairs": ..., "friedman": ...}, ...},  # every --metric
      "metrics": ["test/acc", ...],
      "resources": {name: {"params": int | null, "gflops": float | null, "train_seconds_mean": float | null}},
      "directory": "runs/vit_cifar10", "baseline": "full" | null, "correction": "holm" | "bh",
      "alpha": 0.05, "seeds": [0, 1, 2], "skipped": ["gap/seed_3", ...],  # runs without metrics.json
      "config_check": "passed" | "skipped: ..."   # --scores: no configs to check, and said so
    }
    VARIANT = {"n": 3, "mean": float, "std": float (ddof=1), "ci95": [lo, hi] (t-interval), "median": float,
               "values": {"0": float, ...},   # seed (as a string) -> value
               "iqm": float, "iqm_ci95": [lo, hi]}   # interquartile mean, stratified-bootstrap interval (rliable)
    PAIR = {"a": name, "b": name, "n": seeds paired,
            "mean_diff": mean of a - b, "sd_diff": sd of a - b, "ci95_diff": [lo, hi] (t-interval),
            "bootstrap_ci95_diff": [lo, hi] (percentile bootstrap of the differences, fixed generator),
            "t_test": TEST (paired t), "wilcoxon": TEST (signed-rank),
            "p_holm" | "p_bh": t-test p adjusted across this metric's pairs (null where the t-test is),
            "significant": adjusted p < alpha, "cohen_dz": mean_diff / sd_diff | null,
            "seed_count": null | {"difference", "alpha", "power", "seeds_needed": int | null,
                                  "power_now": float | null, "note": str | null},   # with --detect
            "prob_improvement": {"p": P(a > b) + P(a = b)/2 over runs, "ci95": [lo, hi]},   # rliable
            "aso": {"epsilon_min": of "a stochastically larger than b", "epsilon_min_reverse": of "b larger than a",
                    "violation_ratio", "confidence", "tau": 0.5, "a_larger": bool, "b_larger": bool}}   # deepsig
    TEST = {"statistic": float | null, "p": float | null, "note": str | null}   # note: why p is null, or a caveat
    FRIEDMAN = TEST + {"k": variants, "n": seeds}   # null with fewer than 3 variants

Pairs are every variant against the baseline (`--baseline`, default a variant named "full"), else every
pair of variants.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from .data.files import atomic_write_bytes
from .stats.external import CONFIG_CHECK_SKIPPED, load_scores
from .stats.load import ComparisonError, RunSet, check_configs, check_seeds, load_runs
from .stats.plot import comparison_png
from .stats.report import build_report
from .stats.tables import print_report, to_latex, to_markdown

OUTPUTS = ("comparison.md", "comparison.tex", "comparison.json", "comparison.png")


def compare(
    directory: str | Path,
    metrics: Sequence[str],
    *,
    baseline: str | None = None,
    correction: str = "holm",
    alpha: float = 0.05,
    detect: Sequence[float] | None = None,
    settings: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    scores: Path | None = None,
) -> dict[str, Any]:
    """Check the runs under `directory`, compute the report and write the four comparison files there.

    Args:
        directory: `runs/<experiment>`, holding `<setting>/seed_<n>/metrics.json`.
        metrics: metric names as in metrics.json, e.g. ["test/acc"].
        baseline: variant to test the others against; None: "full" if present, else all pairs.
        correction: "holm" (family-wise error) or "bh" (false discovery rate).
        alpha: test level; also used by the seed-count helper.
        detect: differences worth detecting (one, or one per metric) for the seed-count helper.
        settings: the setting folders to compare; None: every one under `directory`.
        seeds: the seeds to compare; None: every seed found.
        scores: a CSV of variant, seed and metrics from elsewhere (stats/external.py) instead of the runs
            under `directory`, which then only says where the files go; the config check is skipped, and said so.

    Returns:
        The report, as written to comparison.json.

    Raises:
        ComparisonError: the runs cannot be compared; the message names the runs, seeds or keys.
    """
    runs = load_runs(directory, settings, seeds) if scores is None else load_scores(scores)
    _check(runs, directory, selected=settings is not None, configs=scores is None)
    with warnings.catch_warnings():  # an overflow is reported below as one line, not as numpy's warnings
        warnings.simplefilter("ignore", RuntimeWarning)
        report = build_report(runs, metrics, baseline=baseline, correction=correction, alpha=alpha, detect=detect)
    report["config_check"] = "passed" if scores is None else CONFIG_CHECK_SKIPPED.format(path=scores)
    _write(report, Path(directory))
    return report


def _check(runs: RunSet, directory: str | Path, *, selected: bool, configs: bool) -> None:
    """check_seeds and (for runs of this project) check_configs; over a whole folder, say how to pick runs."""
    try:
        check_seeds(runs)
        if configs:
            check_configs(runs)
    except ComparisonError as err:
        if selected or len({run.path.parent for run in runs.runs}) < 3:
            raise
        raise ComparisonError(  # every setting of the folder was read: say how to pick some
            f"{err}; to compare some of the {len(runs.variants)} settings in {directory}, name them by the "
            "overrides that trained them (compare DIR key=value ..., docs/ablations.md)"
        ) from err


def _write(report: dict[str, Any], root: Path) -> None:
    """Render all four files, then write them: a renderer that fails leaves the previous set whole.

    allow_nan=False: a NaN that slipped past the checks fails here instead of reaching a paper.
    """
    where = _non_finite(report)
    if where:  # finite values can still overflow: the mean of two 1.7e308 is inf
        raise ComparisonError(
            f"{where} of the comparison is not a finite number; the metric's values are too large to average "
            "in double precision (rescale it, e.g. report it in other units)"
        )
    outputs = {
        "comparison.json": (json.dumps(report, indent=2, allow_nan=False) + "\n").encode(),
        "comparison.md": to_markdown(report).encode(),
        "comparison.tex": to_latex(report).encode(),
        "comparison.png": comparison_png(report),
    }
    for name, data in outputs.items():
        atomic_write_bytes(root / name, data)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package }}.compare",
        description="Seed-paired statistical comparison of ablation variants (see docs/ablations.md).",
    )
    parser.add_argument(
        "directory", type=Path, help="runs/<experiment>, holding <setting>/seed_<n>/ (with --scores: where to write)"
    )
    parser.add_argument("--scores", type=Path, help="compare a CSV of variant,seed,<metric> rows from elsewhere")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="compare only the runs these training overrides made"
    )
    parser.add_argument(
        "--metric", action="append", required=True, help="metric key in metrics.json (repeat for several)"
    )
    parser.add_argument("--baseline", help='variant to test the others against (default: "full" if present)')
    parser.add_argument("--correction", choices=("holm", "bh"), default="holm", help="multiple-comparison correction")
    parser.add_argument("--alpha", type=float, default=0.05, help="test level (default 0.05)")
    parser.add_argument(
        "--detect",
        type=float,
        action="append",
        metavar="DIFFERENCE",
        help="print how many seeds detect this difference with power 0.8 (once, or once per --metric)",
    )
    return parser


def _non_finite(value: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN or infinity in a report, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "a value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found = _non_finite(child, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def _selection(directory: Path, overrides: Sequence[str]) -> tuple[list[str] | None, list[int] | None]:
    """(settings, seeds) that `train -m experiment=<directory's name> <overrides>` made; (None, None) without."""
    if not overrides:
        return None, None
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .config import settings_of

    try:
        settings, seeds = settings_of([f"experiment={directory.name}", *overrides])
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise ComparisonError(f"the overrides do not compose: {'; '.join(str(err).splitlines())}") from err
    return settings, seeds or None


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry; returns the exit status (2 when the runs cannot be compared)."""
    args = _parser().parse_intermixed_args(argv)
    console = Console()
    bad = [d for d in args.detect or () if not (math.isfinite(d) and d > 0)]
    if bad or not (0 < args.alpha < 1):
        what = f"--detect {bad[0]}" if bad else f"--alpha {args.alpha}"
        expected = "a positive, finite difference" if bad else "a level in (0, 1)"
        print(f"error: {what} is not valid; expected {expected}", file=sys.stderr)
        return 2
    try:
        settings, seeds = _selection(args.directory, args.overrides)
        report = compare(
            args.directory,
            args.metric,
            baseline=args.baseline,
            correction=args.correction,
            alpha=args.alpha,
            detect=args.detect,
            settings=settings,
            seeds=seeds,
            scores=args.scores,
        )
    except ComparisonError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_report(report, console)
    console.print(f"wrote {', '.join(str(args.directory / name) for name in OUTPUTS)}", markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
