"""Training throughput of every baseline, and what torch.compile and bf16 buy, measured side by side.

    python benchmarks/bench_speed.py                    # smoke-size models (trainer=smoke), e.g. on a CPU
    python benchmarks/bench_speed.py --size full        # the paper-size recipes (trainer=gpu), on a GPU
{%- if cookiecutter.__transformer %}
    python benchmarks/bench_speed.py --size full --experiments transformer_shakespeare \\
        --override model.d_model=768 model.num_heads=12 model.num_layers=12 model.block_size=1024 trainer.batch_size=16
{%- endif %}

A step is the training loop's step (train/loop.py): a batch from the task (augmentation on the device), the
forward pass under autocast, backward, gradient clipping and AdamW (fused on CUDA), with the run's own
settings (deterministic algorithms, TF32, channels_last) from the composed config. Four copies of each model
start from the same weights: eager or `torch.compile`d, fp32 or bf16 autocast. They take turns, a few steps
each, so that background load slows all four alike; the reported step time is the median over the turns,
after warm-up. The first step of each variant is reported apart: for a compiled variant it is the compile
time, measured cold (a fresh Inductor and Triton cache per run; variants compiled later in the same run
reuse some kernels). Timing synchronises the device at the edges of each turn only. Data is the synthetic
twin of each dataset (same shapes), so nothing is downloaded. Throughput counts what `Task.count` counts,
as timing.json does: tokens, images, and for SimCLR both views of each image.

Model FLOPs utilisation, MFU = model FLOPs per step / step time / the device's peak dense FLOP/s for the
step's dtype (bf16, or TF32 for fp32 matmuls when TF32 is on). FLOPs per step are counted by
`torch.utils.flop_counter` on one forward + backward (matmuls, convolutions, attention); for the Transformer
6 * parameters * tokens (Kaplan et al. 2020) is recorded beside it as a cross-check. MFU is reported for
the GPUs in PEAK_TFLOPS, or any device given `--peak-tflops`; on a CPU it is not defined here.

Results: benchmarks/results/speed_<device>.json and .md (the device is named in both).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from {{ cookiecutter.package }}.config import TrainConfig, register_configs
from {{ cookiecutter.package }}.data.files import atomic_write_json, atomic_write_text
from {{ cookiecutter.package }}.repro.environment import cpu_name
from {{ cookiecutter.package }}.repro.seeding import seed_everything
from {{ cookiecutter.package }}.tasks import build_task
from {{ cookiecutter.package }}.tasks.base import Task
from {{ cookiecutter.package }}.train.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = [("eager", "fp32"), ("eager", "bf16"), ("compiled", "fp32"), ("compiled", "bf16")]
# Dense peak TFLOP/s (no sparsity) from NVIDIA's datasheets, by a pattern of torch.cuda.get_device_name();
# first match wins, so the PCIe H100 precedes the SXM one.
PEAK_TFLOPS = [
    (r"H100.*PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0}),
    (r"H100|H200|GH200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (r"A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
]


def resolve(device: str) -> torch.device:
    return torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name() or platform.machine()


def peak_flops(name: str, dtype: str, override_tflops: float | None) -> float | None:
    """Peak FLOP/s of the device for `dtype` ("bf16", "tf32" or "fp32"), or None when unknown."""
    if override_tflops:
        return override_tflops * 1e12
    for pattern, peaks in PEAK_TFLOPS:
        if re.search(pattern, name):
            return peaks[dtype] * 1e12
    return None


def load_config(experiment: str, size: str, overrides: list[str]) -> TrainConfig:
    """The run's config as `train` composes it; at full size the data becomes the synthetic twin, just large
    enough for a few distinct batches."""
    register_configs()
    trainer = "smoke" if size == "smoke" else "gpu"
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        cfg = compose("train", overrides=[f"experiment={experiment}", f"trainer={trainer}", *overrides])
    if size == "full":
        batch = cfg.trainer.batch_size
        cfg.data.synthetic = True
        if "num_train" in cfg.data:  # images
            cfg.data.num_train, cfg.data.num_test = 4 * batch, 256
        if "synthetic_chars" in cfg.data:  # text: 4 batches of windows in the training split, plus validation
            windows = 4 * batch + 2
            cfg.data.synthetic_chars = math.ceil(windows * cfg.model.block_size / (1 - cfg.data.val_fraction))
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def training_step(
    task: Task, model: nn.Module, cfg: TrainConfig, compiled: bool, dtype: str
) -> Callable[[int], torch.Tensor]:
    """A function that takes one optimizer step of `model` on batch number `b`, as train/loop.py does."""
    device = next(model.parameters()).device
    tc = cfg.trainer
    optimizer = build_optimizer(model, tc.lr, tc.weight_decay, tuple(tc.betas), device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    forward = torch.compile(model) if compiled else model
    order = torch.randperm(task.num_train, generator=torch.Generator().manual_seed(0)).to(device)
    steps_per_pass = task.num_train // tc.batch_size

    def step(b: int) -> torch.Tensor:
        start = (b % steps_per_pass) * tc.batch_size
        generator = torch.Generator(device).manual_seed(b)
        batch = task.batch(order[start : start + tc.batch_size], generator)
        with autocast:
            loss, _ = task.loss(forward, batch)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def flops_per_step(task: Task, cfg: TrainConfig) -> float:
    """Forward + backward FLOPs of one training batch, counted on an eager copy of the model."""
    model = copy.deepcopy(task.model)
    device = next(model.parameters()).device
    batch = task.batch(torch.arange(cfg.trainer.batch_size, device=device), torch.Generator(device).manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        loss, _ = task.loss(model, batch)
        loss.backward()
    return float(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_experiment(experiment: str, args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config(experiment, args.size, args.override)
    tc = cfg.trainer
    device = resolve(args.device)
    torch.set_num_threads(args.threads or tc.num_threads or torch.get_num_threads())
    seed_everything(cfg.seed, tc.deterministic)
    torch.backends.cuda.matmul.allow_tf32 = tc.tf32
    torch.backends.cudnn.allow_tf32 = tc.tf32
    task, _ = build_task(cfg, device)
    if tc.channels_last:
        task.model.to(memory_format=torch.channels_last)
    units = task.count(task.example_batch(tc.batch_size))  # images or tokens per step
    flops = flops_per_step(task, cfg)
    params = sum(p.numel() for p in task.model.parameters() if p.requires_grad)
    name = device_name(device)

    steps, compile_seconds = {}, {}
    for mode, dtype in VARIANTS:
        model = copy.deepcopy(task.model)  # the same initial weights for all four
        steps[mode, dtype] = training_step(task, model, cfg, mode == "compiled", dtype)
        sync(device)
        start = time.perf_counter()
        steps[mode, dtype](0)  # the first step compiles
        sync(device)
        compile_seconds[mode, dtype] = time.perf_counter() - start
        for b in range(1, args.warmup + 1):
            steps[mode, dtype](b)
    times: dict[tuple[str, str], list[float]] = {variant: [] for variant in VARIANTS}
    b = args.warmup + 1
    for turn in range(args.turns):
        for variant in VARIANTS[turn % 4 :] + VARIANTS[: turn % 4]:  # each variant goes first in turn
            sync(device)
            start = time.perf_counter()
            for _ in range(args.steps_per_turn):
                steps[variant](b)
                b += 1
            sync(device)
            times[variant].append((time.perf_counter() - start) / args.steps_per_turn)

    variants = {}
    for (mode, dtype), seconds in times.items():
        median = statistics.median(seconds)
        matmul = "bf16" if dtype == "bf16" else ("tf32" if tc.tf32 else "fp32")
        peak = peak_flops(name, matmul, args.peak_tflops) if device.type == "cuda" or args.peak_tflops else None
        variants[f"{mode} {dtype}"] = {
            "step_ms": 1000 * median,
            "all_step_ms": [1000 * s for s in seconds],
            f"{task.unit}_per_second": units / median,
            "first_step_s": compile_seconds[mode, dtype],
            "mfu": flops / median / peak if peak else None,
        }
    ms = {key: value["step_ms"] for key, value in variants.items()}
    result = {
        "experiment": experiment,
        "parameters": params,
        "batch_size": tc.batch_size,
        "unit": task.unit,
        "units_per_step": units,
        "flops_per_step": flops,
        "settings": {"tf32": tc.tf32, "channels_last": tc.channels_last, "deterministic": tc.deterministic},
        "variants": variants,
        # > 1: the second of the pair is faster
        "ratios": {
            "eager / compiled (fp32)": ms["eager fp32"] / ms["compiled fp32"],
            "eager / compiled (bf16)": ms["eager bf16"] / ms["compiled bf16"],
            "fp32 / bf16 (eager)": ms["eager fp32"] / ms["eager bf16"],
            "fp32 / bf16 (compiled)": ms["compiled fp32"] / ms["compiled bf16"],
        },
    }
    if task.unit == "tokens":
        result["flops_per_step_6nd"] = 6 * params * units
    return result


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Training speed: eager vs compiled, fp32 vs bf16 ({report['size']} size)",
        "",
        f"`{report['command']}` on {report['device']} ({report['device_type']}, {report['threads']} CPU threads, "
        f"torch {report['torch']}). Median step time over {report['turns']} turns of {report['steps_per_turn']} "
        "steps; a step is batch + forward + backward + clip + AdamW, as in train/loop.py. "
        "First step: the first call, which compiles (cold caches). SimCLR counts both views of an image.",
        "",
        "| experiment | params | batch | variant | step (ms) | throughput | first step (s) | MFU |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for result in report["results"]:
        for variant, values in result["variants"].items():
            rate = values[f"{result['unit']}_per_second"]
            mfu = f"{100 * values['mfu']:.1f} %" if values["mfu"] is not None else "n/a"
            lines.append(
                f"| {result['experiment']} | {result['parameters']:,} | {result['batch_size']} | {variant} | "
                f"{values['step_ms']:.1f} | {rate:,.0f} {result['unit']}/s | {values['first_step_s']:.1f} | {mfu} |"
            )
    lines += ["", "Ratios of step times (> 1: the second is faster):", ""]
    lines += ["| experiment | " + " | ".join(report["results"][0]["ratios"]) + " |"]
    lines += ["|---|" + "---:|" * len(report["results"][0]["ratios"])]
    for result in report["results"]:
        lines.append(f"| {result['experiment']} | " + " | ".join(f"{r:.2f}" for r in result["ratios"].values()) + " |")
    lines += ["", report["note"], ""]
    return "\n".join(lines)


def main() -> None:
    experiments = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["smoke", "full"], default="smoke", help="trainer=smoke or trainer=gpu")
    parser.add_argument("--experiments", default=",".join(experiments), help="comma-separated experiment names")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's)")
    parser.add_argument("--warmup", type=int, default=3, help="steps after the first, not timed")
    parser.add_argument("--turns", type=int, default=10, help="timed turns per variant")
    parser.add_argument("--steps-per-turn", type=int, default=5, help="steps per turn")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak TFLOP/s of an unlisted device")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides, e.g. model.dim=512")
    parser.add_argument("--name", default=None, help="result file stem (default: speed_<device>)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as cache:
        for variable in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):  # cold compile times, not a warm cache
            os.environ.setdefault(variable, cache)
        for experiment in args.experiments.split(","):
            results.append(bench_experiment(experiment, args))
            print(json.dumps({k: results[-1][k] for k in ("experiment", "ratios")}, indent=2))
    device = resolve(args.device)
    name = device_name(device)
    command = f"python benchmarks/bench_speed.py --size {args.size}"
    if args.override:
        command += " --override " + " ".join(args.override)
    measured_mfu = any(v["mfu"] is not None for r in results for v in r["variants"].values())
    report = {
        "command": command,
        "device": name,
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "size": args.size,
        "turns": args.turns,
        "steps_per_turn": args.steps_per_turn,
        "warmup": args.warmup,
        "note": " ".join(
            [
                "MFU: model FLOPs per step (torch.utils.flop_counter) / step time / peak dense FLOP/s of the device."
                if measured_mfu
                else "MFU not measured: it needs a GPU with a known peak (PEAK_TFLOPS) or --peak-tflops.",
                "On a CPU, and for smoke-size models above all, per-operation overhead dominates: these ratios do "
                "not predict a GPU's; run `--size full` on one for those."
                if device.type == "cpu"
                else "",
            ]
        ).strip(),
        "results": results,
    }
    stem = args.name or "speed_" + re.sub(r"[^a-z0-9]+", "_", (name if device.type == "cuda" else "cpu").lower())
    text = markdown(report)
    atomic_write_json(RESULTS / f"{stem}.json", report)
    atomic_write_text(RESULTS / f"{stem}.md", text)
    print(text)


if __name__ == "__main__":
    main()
