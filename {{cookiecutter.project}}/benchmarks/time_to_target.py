"""Time to target: the training time each run needed to first reach a target score, against a budget.

    python -m {{ cookiecutter.package }}.train experiment=<name> trainer=gpu      # a full run on the GPU, real data
    python benchmarks/time_to_target.py runs/<name>/<setting>/seed_0 [more run directories]
    python benchmarks/time_to_target.py experiment=<name> trainer=gpu   # the run this command trained

Each run's timing.json lists its evaluations with the training time it took to reach each one
(`train_seconds`: optimizer steps only, evaluation excluded, the first steps' compilation included, the
device synchronised at epoch edges). The report gives, per run, the first evaluation that meets the target
and whether that time is within the budget. The default targets are those set for one H100 (issue 5),
after published anchors on an A100:
{%- if cookiecutter.__transformer %}
- transformer_shakespeare: val/loss <= 1.47 within 90 s (nanoGPT's shakespeare-char: 1.47 in about 3 min);
{%- endif %}
{%- if cookiecutter.__simclr %}
- simclr_cifar10: knn/acc >= 0.83 within 10 min (SimCLR ResNet-18: 83 % kNN in 100 epochs, about 20 min);
{%- endif %}
{%- if cookiecutter.__vit %}
- vit_cifar10: test/acc >= 0.90 within 15 min (a 6M-parameter patch-4 ViT: 91 % in 200 epochs).
{%- endif %}
`--metric`, `--target`, `--mode` and `--budget` set another target for every run given. A run on a synthetic
twin is reported as such: its scores say nothing about the real dataset. A run that never reaches the
target is reported with its best score, never as a time.

Results: benchmarks/results/time_to_target_<device>.json and .md (the device is named in both).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from {{ cookiecutter.package }}.config import locate_run
from {{ cookiecutter.package }}.data.files import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Target:
    metric: str
    value: float
    mode: str  # "min": lower is better (a loss), "max": higher is better (an accuracy)
    budget_seconds: float | None = None

    def met(self, score: float) -> bool:
        return score <= self.value if self.mode == "min" else score >= self.value

    def describe(self) -> str:
        return f"{self.metric} {'<=' if self.mode == 'min' else '>='} {self.value:g}"


TARGETS: dict[str, Target] = {
{%- if cookiecutter.__transformer %}
    "transformer_shakespeare": Target("val/loss", 1.47, "min", 90),
{%- endif %}
{%- if cookiecutter.__simclr %}
    "simclr_cifar10": Target("knn/acc", 0.83, "max", 600),
{%- endif %}
{%- if cookiecutter.__vit %}
    "vit_cifar10": Target("test/acc", 0.90, "max", 900),
{%- endif %}
}


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"error: {path} is missing; expected a finished run directory (train writes it)") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"error: {path} is not valid JSON ({err}); expected the file train wrote") from None


def device_of(environment: dict[str, Any], timing: dict[str, Any]) -> str:
    """The accelerator's name when the run used one, else the CPU's."""
    devices = environment.get("accelerators", {}).get("devices", [])
    if str(timing.get("device", "")).startswith("cuda") and devices:
        return devices[0]["name"]
    return environment.get("platform", {}).get("cpu") or "cpu"


def time_to_target(run_dir: Path, target: Target | None = None, budget: float | None = None) -> dict[str, Any]:
    """The first evaluation of `run_dir` that meets `target` (default: its experiment's), with its time."""
    if not (run_dir / "config.yaml").is_file():
        raise SystemExit(f"error: {run_dir / 'config.yaml'} is missing; expected a run directory")
    config: Any = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    if not isinstance(config, dict):
        raise SystemExit(f"error: {run_dir / 'config.yaml'} holds no config mapping; expected the one train wrote")
    timing = read_json(run_dir / "timing.json")
    environment = read_json(run_dir / "environment.json")
    experiment = config.get("experiment")
    if target is None:
        if experiment not in TARGETS:
            raise SystemExit(
                f"error: no default target for experiment={experiment!r} ({run_dir}); expected one of "
                f"{', '.join(TARGETS)}, or pass --metric and --target"
            )
        target = TARGETS[experiment]
    if budget is not None:
        target = replace(target, budget_seconds=budget)
    evaluations = timing.get("evaluations")
    if not evaluations:
        raise SystemExit(f"error: {run_dir / 'timing.json'} lists no evaluations; expected a run with eval_every > 0")
    if target.metric not in evaluations[-1]:
        scores = sorted(k for k in evaluations[-1] if k not in ("step", "epoch", "train_seconds"))
        raise SystemExit(f"error: metric {target.metric!r} is not evaluated in {run_dir}; expected one of {scores}")
    reached = next((e for e in evaluations if target.met(e[target.metric])), None)
    scores = [e[target.metric] for e in evaluations]
    seconds = reached["train_seconds"] if reached else None
    return {
        "run": str(run_dir),
        "experiment": experiment,
        "synthetic": bool(config.get("data", {}).get("synthetic")),
        "device": device_of(environment, timing),
        "target": asdict(target),
        "reached": reached is not None,
        "epoch": reached["epoch"] if reached else None,
        "step": reached["step"] if reached else None,
        "train_seconds": seconds,
        "within_budget": None if seconds is None or target.budget_seconds is None else seconds <= target.budget_seconds,
        "best": min(scores) if target.mode == "min" else max(scores),
        "final": scores[-1],
        "total_train_seconds": timing.get("train_seconds"),
        "throughput": {k: v for k, v in timing.items() if k.endswith("_per_second")},
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    def fmt(value: float | None, spec: str = ".1f") -> str:
        return "n/a" if value is None else format(value, spec)

    lines = [
        "# Time to target",
        "",
        "`python benchmarks/time_to_target.py` on finished runs. Time: `train_seconds` of the first evaluation "
        "meeting the target (optimizer steps only; evaluation excluded; compilation included).",
        "",
        "| run | device | data | target | reached at | train time (s) | budget (s) | in budget | best | throughput |",
        "|---|---|---|---|---|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        target = row["target"]
        reached = f"epoch {row['epoch']}, step {row['step']}" if row["reached"] else "not reached"
        within = {True: "yes", False: "no", None: "n/a"}[row["within_budget"]]
        rates = ", ".join(f"{v:,.0f} {k.removesuffix('_per_second')}/s" for k, v in row["throughput"].items() if v)
        lines.append(
            f"| {row['run']} | {row['device']} | {'synthetic twin' if row['synthetic'] else 'real'} "
            f"| {Target(**target).describe()} | {reached} | {fmt(row['train_seconds'])} "
            f"| {fmt(target['budget_seconds'], '.0f')} | {within} | {row['best']:.4g} | {rates or 'n/a'} |"
        )
    if any(row["synthetic"] for row in rows):
        lines += ["", "Runs on a synthetic twin test the tooling only: their scores are not comparable to the targets."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "runs", nargs="+", help="finished run directories (runs/<exp>/<setting>/seed_<n>), or the overrides of one run"
    )
    parser.add_argument("--metric", help="evaluated metric, e.g. val/loss (default: the experiment's target)")
    parser.add_argument("--target", type=float, help="the score to reach")
    parser.add_argument("--mode", choices=("min", "max"), help="min: lower is better; max: higher is better")
    parser.add_argument("--budget", type=float, help="seconds of training allowed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where time_to_target_<device>.json/.md go")
    args = parser.parse_args(argv)
    custom = (args.metric, args.target, args.mode)
    if any(v is not None for v in custom) and not all(v is not None for v in custom):
        parser.error("--metric, --target and --mode go together")
    if args.target is not None and not math.isfinite(args.target):
        parser.error(f"--target {args.target}: expected a finite score")
    if args.budget is not None and not args.budget > 0:
        parser.error(f"--budget {args.budget}: expected a positive number of seconds")
    target = Target(args.metric, args.target, args.mode) if args.metric else None
    overrides = all("=" in word for word in args.runs)
    runs = [locate_run(args.runs)] if overrides else [Path(word) for word in args.runs]
    rows = [time_to_target(run, target, args.budget) for run in runs]
    devices = sorted({row["device"] for row in rows})
    slug = re.sub(r"[^a-z0-9]+", "_", "_".join(devices).lower()).strip("_") or "device"
    report = markdown(rows)
    atomic_write_json(args.out / f"time_to_target_{slug}.json", rows)
    atomic_write_text(args.out / f"time_to_target_{slug}.md", report)
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
