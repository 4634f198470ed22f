"""Pool several comparisons into one picture, as rliable does (Agarwal et al., NeurIPS 2021):

    python -m {{ cookiecutter.package }}.aggregate runs/transformer_shakespeare=4.17:0 runs/vit_cifar10=0.1:1 \\
        runs/simclr_cifar10=0.1:1 --rename no_attention=ablated --rename no_pos_embedding=ablated \\
        --rename weak_aug=ablated --out runs/aggregate

Each argument is an experiment folder holding a comparison.json (written by compare, ablate or the
pipeline), optionally with `=LOW:HIGH`: the scores of a trivial and of a perfect model on that task (chance
accuracy and 1; for a loss, the loss of a uniform guess and 0). Every run's score is normalised to
(score - LOW) / (HIGH - LOW), so 0 is trivial and 1 perfect on every task and higher is always better;
without bounds, the lowest and highest score of the task's runs are used (said in the report). Variants
are matched by name across tasks (`--rename` maps each task's ablation to one name).

Per variant: IQM, median, mean and optimality gap of the normalised scores over runs x tasks, each with a
95 % stratified-bootstrap interval (runs resampled within each task); per variant and the baseline: the
probability of improvement. Writes aggregate.json, aggregate.md, aggregate_intervals.png and
aggregate_profile.png (performance profiles: the fraction of runs above each normalised score) into --out.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .data.files import atomic_write_bytes
from .stats import robust
from .stats.load import ComparisonError

ESTIMATORS = {
    "IQM": robust.iqm,
    "Median": robust.median,
    "Mean": robust.mean,
    "Optimality gap": robust.optimality_gap,
}
OUTPUTS = ("aggregate.json", "aggregate.md", "aggregate_intervals.png", "aggregate_profile.png")


def read_task(spec: str, rename: dict[str, str]) -> dict[str, Any]:
    """One task from `DIR[=LOW:HIGH]`: its comparison.json's metric, values per variant and seed, and bounds."""
    where, _, bounds = spec.partition("=")
    path = Path(where) / "comparison.json" if Path(where).is_dir() else Path(where)
    if not path.is_file():
        raise ComparisonError(f"{where} holds no comparison.json; run compare (or ablate) on it first")
    report = json.loads(path.read_text())
    values = {rename.get(name, name): v["values"] for name, v in report["variants"].items()}
    scores = [value for per_seed in values.values() for value in per_seed.values()]
    try:
        low, high = (float(x) for x in bounds.split(":")) if bounds else (min(scores), max(scores))
    except ValueError:
        raise ComparisonError(f"{spec}: expected DIR or DIR=LOW:HIGH with two numbers, e.g. runs/vit=0.1:1") from None
    if low == high:
        raise ComparisonError(f"{spec}: LOW and HIGH are both {low}; expected two different scores to normalise by")
    normalised = {name: [(v - low) / (high - low) for v in per_seed.values()] for name, per_seed in values.items()}
    return {"name": path.parent.name, "metric": report["metric"], "low": low, "high": high, "given": bool(bounds),
            "values": normalised}  # fmt: skip


def score_matrices(tasks: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Variant -> normalised scores (runs, tasks), for the variants every task has, with equal run counts."""
    names = [name for name in tasks[0]["values"] if all(name in task["values"] for task in tasks)]
    if not names:
        raise ComparisonError("no variant name is in every task; expected shared names (use --rename to match them)")
    matrices = {}
    for name in names:
        counts = {task["name"]: len(task["values"][name]) for task in tasks}
        if len(set(counts.values())) != 1:
            raise ComparisonError(f"variant {name!r} has different numbers of runs per task ({counts}); expected equal")
        matrices[name] = np.array([task["values"][name] for task in tasks]).T
    return matrices


def aggregate(tasks: Sequence[dict[str, Any]], baseline: str = "full") -> dict[str, Any]:
    """The aggregate report: estimates with intervals per variant, improvement over the baseline, profiles."""
    matrices = score_matrices(tasks)
    taus = np.linspace(0, 1, 41)
    variants = {
        name: {
            label: {"estimate": fn(scores), "ci95": list(robust.stratified_bootstrap_ci(fn, scores))}
            for label, fn in ESTIMATORS.items()
        }
        | {"profile": robust.performance_profile(scores, taus).tolist(), "runs": int(scores.shape[0])}
        for name, scores in matrices.items()
    }
    base = baseline if baseline in matrices else None
    improvement = []
    for name in matrices if base else []:
        if name != base:
            pair = (matrices[name], matrices[base])
            ci = robust.stratified_bootstrap_ci(robust.probability_of_improvement, *pair)
            improvement.append({"a": name, "b": base, "p": robust.probability_of_improvement(*pair), "ci95": list(ci)})
    tasks_json = [{k: task[k] for k in ("name", "metric", "low", "high", "given")} for task in tasks]
    return {"tasks": tasks_json, "baseline": base, "taus": taus.tolist(), "variants": variants, "pairs": improvement}


def to_markdown(report: dict[str, Any]) -> str:
    lines = ["# Aggregate over tasks", ""]
    for task in report["tasks"]:
        how = "as given" if task["given"] else "the lowest and highest run: no bounds given"
        bounds = f"LOW={task['low']:g}, HIGH={task['high']:g}"
        lines.append(f"- {task['name']}: {task['metric']} normalised by {bounds} ({how})")
    lines += ["", "| Variant | runs per task | " + " | ".join(f"{label} [95 % CI]" for label in ESTIMATORS) + " |"]
    lines.append("|:---|---:|" + "---:|" * len(ESTIMATORS))
    for name, v in report["variants"].items():
        cells = [f"{v[x]['estimate']:.3f} [{v[x]['ci95'][0]:.3f}, {v[x]['ci95'][1]:.3f}]" for x in ESTIMATORS]
        lines.append(f"| {name} | {v['runs']} | " + " | ".join(cells) + " |")
    if report["pairs"]:
        lines += ["", "| Comparison | P(a > b) [95 % CI] |", "|:---|---:|"]
        for p in report["pairs"]:
            lines.append(f"| {p['a']} vs {p['b']} | {p['p']:.2f} [{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}] |")
    lines += ["", "Normalised scores: 0 is the trivial model, 1 the perfect one; higher is better on every task. "
              "Intervals: stratified bootstrap over runs within each task (Agarwal et al., 2021).", ""]  # fmt: skip
    return "\n".join(lines)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()


def intervals_png(report: dict[str, Any]) -> bytes:
    """rliable's interval-estimates figure: one panel per estimator, a bar per variant."""
    names = list(report["variants"])
    fig = Figure(figsize=(3.0 * len(ESTIMATORS), 0.5 * len(names) + 1.4), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, label in zip(fig.subplots(1, len(ESTIMATORS), squeeze=False)[0], ESTIMATORS, strict=True):
        for row, name in enumerate(names):
            low, high = report["variants"][name][label]["ci95"]
            ax.barh(row, high - low, left=low, height=0.6, color=f"C{row}", alpha=0.75)
            ax.plot([report["variants"][name][label]["estimate"]] * 2, [row - 0.3, row + 0.3], color="k", lw=1.5)
        ax.set_yticks(range(len(names)), names if label == "IQM" else [""] * len(names))
        ax.set_title(label)
        ax.set_xlabel("normalised score")
        ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def profile_png(report: dict[str, Any]) -> bytes:
    """Performance profiles: the fraction of runs (all tasks) with a normalised score above tau."""
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for index, (name, v) in enumerate(report["variants"].items()):
        ax.plot(report["taus"], v["profile"], color=f"C{index}", label=name, lw=2)
    ax.set_xlabel(r"normalised score $\tau$")
    ax.set_ylabel(r"fraction of runs with score $> \tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _png(fig)


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m {{ cookiecutter.package }}.aggregate"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("tasks", nargs="+", metavar="DIR[=LOW:HIGH]", help="experiment folders holding comparison.json")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="match variant names")
    parser.add_argument("--baseline", default="full", help="the variant the others are compared with (default full)")
    parser.add_argument("--out", type=Path, default=Path("runs/aggregate"), help="where the four files go")
    args = parser.parse_args(argv)
    bad = [item for item in args.rename if "=" not in item]
    if bad:
        print(f"error: --rename {bad[0]}: expected OLD=NEW", file=sys.stderr)
        return 2
    try:
        rename = dict(item.split("=", 1) for item in args.rename)
        report = aggregate([read_task(spec, rename) for spec in args.tasks], args.baseline)
    except ComparisonError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    outputs = {
        "aggregate.json": (json.dumps(report, indent=2, allow_nan=False) + "\n").encode(),
        "aggregate.md": to_markdown(report).encode(),
        "aggregate_intervals.png": intervals_png(report),
        "aggregate_profile.png": profile_png(report),
    }
    for name, data in outputs.items():
        atomic_write_bytes(args.out / name, data)
    sys.stdout.write(outputs["aggregate.md"].decode())
    print(f"wrote {', '.join(str(args.out / name) for name in OUTPUTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
