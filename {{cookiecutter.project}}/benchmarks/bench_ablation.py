"""Wall time of the smoke ablation of every baseline plus its comparison, as a user runs it, on the CPU.

    python benchmarks/bench_ablation.py [--seeds 0,1,2] [--out benchmarks/results]

For each baseline, one `python -m {{ cookiecutter.package }}.ablate experiment=<name> trainer=smoke tracker=none
--variants full,<other> --seeds 0,1,2`: a Hydra multirun of 2 variants x 3 seeds (one process, one torch
import) followed by the comparison, in a fresh working directory, so the synthetic data is generated
as on a first run. The baselines run one after another, each run on one thread (trainer=smoke).

Reported: the total and per-baseline wall time; per run, the time inside the training loop (from each
run's timing.json: training, evaluation, and the loop's wall time with its checkpoints and logs); the
comparison's time (rerun in this process); and the start-up share: the time two fresh interpreters
need to import the entry points (`ablate`, then `train` in the sweep), measured separately, times the
number of baselines. What is left is per-run set-up: Hydra composition, data load and verification,
the environment record, the run directory and the FLOP count. Target (issue 7): under 2 minutes on a 2-core CPU.
Results go to benchmarks/results/ablation_smoke.json and ablation_smoke.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from {{ cookiecutter.package }}.ablate import DEFAULT_METRICS
from {{ cookiecutter.package }}.compare import compare
from {{ cookiecutter.package }}.data.files import atomic_write_json, atomic_write_text
from {{ cookiecutter.package }}.repro.environment import cpu_name

PACKAGE = "{{ cookiecutter.package }}"
PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "benchmarks" / "results"
TARGET_SECONDS = 120.0
# experiment, its model, the variant ablated against `full` (the pairs of scripts/demo.sh)
ABLATIONS = [
{%- if cookiecutter.__transformer %}
    ("transformer_shakespeare", "transformer", "no_attention"),
{%- endif %}
{%- if cookiecutter.__vit %}
    ("vit_cifar10", "vit", "no_pos_embedding"),
{%- endif %}
{%- if cookiecutter.__simclr %}
    ("simclr_cifar10", "simclr", "weak_aug"),
{%- endif %}
]


def child_env() -> dict[str, str]:
    """The package importable from src/ without an install, and no tracker traffic."""
    path = os.pathsep.join(p for p in (str(PROJECT / "src"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONHASHSEED": "0", "WANDB_MODE": "disabled"}


def import_seconds(module: str, repeats: int = 3) -> float:
    """Median wall time of a fresh interpreter that imports `module` and exits: the start-up cost."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], env=child_env(), check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_ablation(workdir: Path, experiment: str, model: str, other: str, seeds: str) -> dict:
    """One `ablate` command, timed; then every run's timing.json and the comparison timed on its own."""
    command = [sys.executable, "-m", f"{PACKAGE}.ablate", f"experiment={experiment}", "trainer=smoke"]
    command += ["tracker=none", "--variants", f"full,{other}", "--seeds", seeds]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, env=child_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(command[1:])}` failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    root = workdir / "runs" / experiment
    timings = [json.loads(path.read_text()) for path in sorted(root.glob("*/seed_*/timing.json"))]
    start = time.perf_counter()
    compare(root, [DEFAULT_METRICS[model]])  # the same call `ablate` ends with, now with warm imports
    compare_seconds = time.perf_counter() - start
    return {
        "experiment": experiment,
        "variants": ["full", other],
        "metric": DEFAULT_METRICS[model],
        "runs": len(timings),
        "wall_seconds": wall,
        "loop_seconds": sum(t["wall_seconds_this_process"] for t in timings),
        "train_seconds": sum(t["train_seconds"] for t in timings),
        "eval_seconds": sum(t["eval_seconds"] for t in timings),
        "compare_seconds": compare_seconds,
    }


def markdown(record: dict) -> str:
    total, startup = record["total_seconds"], record["startup_seconds"]
    lines = [
        "# Smoke ablation of every baseline, plus the comparison, on the CPU",
        "",
        f"`python benchmarks/bench_ablation.py --seeds {record['seeds']}` on {record['device']} "
        f"({record['cores']} cores; torch {record['torch']}, Python {record['python']}; load average "
        f"{record['load_average'][0]:.1f} before, {record['load_average'][1]:.1f} after): per baseline one "
        f"`python -m {PACKAGE}.ablate experiment=<name> trainer=smoke tracker=none --variants full,<other> "
        f"--seeds {record['seeds']}` (a Hydra multirun of 2 variants x {len(record['seeds'].split(','))} seeds, "
        "then the comparison), one after another, in a fresh directory.",
        "",
        "| experiment | variants | runs | wall (s) | per run (s): loop / train / eval | set-up per run (s) "
        "| compare (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in record["results"]:
        n = r["runs"]
        lines.append(
            f"| {r['experiment']} | {', '.join(r['variants'])} | {n} | {r['wall_seconds']:.1f} | "
            f"{r['loop_seconds'] / n:.2f} / {r['train_seconds'] / n:.2f} / {r['eval_seconds'] / n:.2f} | "
            f"{r['setup_seconds_per_run']:.2f} | {r['compare_seconds']:.2f} |"
        )
    verdict = "met" if total < record["target_seconds"] else "NOT met"
    lines += [
        "",
        f"**Total: {total:.1f} s** for {record['runs']} runs and {len(record['results'])} comparisons "
        f"(target < {record['target_seconds']:.0f} s: {verdict}).",
        "",
        f"- Inside the training loops: {record['loop_seconds']:.1f} s ({100 * record['loop_seconds'] / total:.0f} %), "
        f"of which training {record['train_seconds']:.1f} s and evaluation {record['eval_seconds']:.1f} s; the rest "
        "is checkpoints, logging and the final metrics (SimCLR's linear probe).",
        f"- Start-up: {startup:.1f} s ({100 * startup / total:.0f} %): {len(record['results'])} x (importing "
        f"`{PACKAGE}.ablate` {record['import_seconds']['ablate']:.2f} s + `{PACKAGE}.train.run` "
        f"{record['import_seconds']['train']:.2f} s in a fresh interpreter).",
        f"- Comparisons: {record['compare_seconds']:.1f} s ({100 * record['compare_seconds'] / total:.0f} %).",
        f"- Per-run set-up (Hydra composition, data load and verification, environment record, run directory, FLOP "
        f"count; also the first run's synthetic data generation): {record['setup_seconds']:.1f} s "
        f"({100 * record['setup_seconds'] / total:.0f} %).",
        "",
        "Loop / train / eval: the training loop's wall time, the time in training steps and in evaluation, from each "
        "run's timing.json. Set-up per run: wall time minus start-up, loops and comparison, divided by the runs.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="seeds of every variant (default 0,1,2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where ablation_smoke.json/.md go")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    imports = {"ablate": import_seconds(f"{PACKAGE}.ablate"), "train": import_seconds(f"{PACKAGE}.train.run")}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ablation-") as tmp:
        start = time.perf_counter()
        for experiment, model, other in ABLATIONS:
            results.append(run_ablation(Path(tmp), experiment, model, other, args.seeds))
            print(f"{experiment}: {results[-1]['wall_seconds']:.1f} s for {results[-1]['runs']} runs", flush=True)
        total = time.perf_counter() - start
    startup_each = imports["ablate"] + imports["train"]
    for r in results:
        # the comparison inside `ablate` ran with cold imports; the import cost is counted in start-up
        rest = r["wall_seconds"] - startup_each - r["loop_seconds"] - r["compare_seconds"]
        r["setup_seconds_per_run"] = rest / r["runs"]
    record = {
        "device": (cpu_name() or platform.machine()),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seeds": args.seeds,
        "load_average": [load_before, os.getloadavg()[0]],
        "target_seconds": TARGET_SECONDS,
        "total_seconds": total,
        "runs": sum(r["runs"] for r in results),
        "loop_seconds": sum(r["loop_seconds"] for r in results),
        "train_seconds": sum(r["train_seconds"] for r in results),
        "eval_seconds": sum(r["eval_seconds"] for r in results),
        "compare_seconds": sum(r["compare_seconds"] for r in results),
        "import_seconds": imports,
        "startup_seconds": startup_each * len(results),
        "setup_seconds": sum(r["setup_seconds_per_run"] * r["runs"] for r in results),
        "results": results,
    }
    report = markdown(record)
    atomic_write_json(args.out / "ablation_smoke.json", record)
    atomic_write_text(args.out / "ablation_smoke.md", report)
    print(report)


if __name__ == "__main__":
    main()
