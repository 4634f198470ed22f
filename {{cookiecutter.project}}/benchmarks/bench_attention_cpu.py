"""Training-step speed of our models against reference implementations of the same size, on the CPU.

    pip install -e ".[bench]" && python benchmarks/bench_attention_cpu.py [--repeats 15] [--threads 2]

A step is forward + backward + AdamW update, in training mode (dropout on where the model has it). Each
pair gets a few warm-up steps, then the two models alternate step by step (taking turns to go first), so
a background load slows both alike; the reported time is the median. Pairs (same widths, depths, heads,
pooling and masks):
{%- if cookiecutter.__vit %}
- our `VisionTransformer` (CIFAR-10 default: 32 px, patch 4, width 384, depth 7) against timm's
  `VisionTransformer` with the same settings and class-token pooling;
{%- endif %}
{%- if cookiecutter.__transformer %}
- our `Transformer` layers in the classic encoder shape (post-LN, 512 wide, 8 heads, d_ff 2048, 6 layers,
  ReLU) against `nn.TransformerEncoder`;
- our layers in the language-model shape (pre-LN, causal, 384 wide, 6 heads, d_ff 1536, 6 layers, GELU)
  against `nn.TransformerEncoder(norm_first=True)` with a causal mask.
{%- endif %}
Results go to benchmarks/results/attention_cpu.json and attention_cpu.md; the target is a ratio (ours /
reference) of at most 1.05.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from {{ cookiecutter.package }}.data.files import atomic_write_json, atomic_write_text
{% if cookiecutter.__transformer -%}
from {{ cookiecutter.package }}.models.transformer import Transformer, TransformerConfig, transformer_base
{% endif -%}
{% if cookiecutter.__vit -%}
from {{ cookiecutter.package }}.models.vit import VisionTransformer, ViTConfig
{% endif -%}
from {{ cookiecutter.package }}.repro.environment import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.05


@dataclass
class Pair:
    """Two models of the same size and the function that runs one training step's forward + loss."""

    name: str
    shape: str  # the input, for the record
    ours: nn.Module
    reference: nn.Module
    loss_ours: Callable[[nn.Module], torch.Tensor]
    loss_reference: Callable[[nn.Module], torch.Tensor]


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

{%- if cookiecutter.__vit %}


def vit_pair(batch: int) -> Pair:
    import timm  # the bench extra; only this benchmark needs it

    cfg = ViTConfig(drop_path=0.0, dropout=0.0)  # timm's defaults: no dropout, no stochastic depth
    ours = VisionTransformer(cfg)
    reference = timm.models.vision_transformer.VisionTransformer(
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_classes=cfg.num_classes,
        embed_dim=cfg.dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        global_pool="token",
    )
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=g)
    labels = torch.randint(0, cfg.num_classes, (batch,), generator=g)
    loss = lambda model: nn.functional.cross_entropy(model(images), labels)  # noqa: E731
    return Pair("ViT (CIFAR default) vs timm", f"images ({batch}, 3, 32, 32)", ours, reference, loss, loss)
{%- endif %}

{%- if cookiecutter.__transformer %}


def encoder_pair(cfg: TransformerConfig, name: str, batch: int, length: int) -> Pair:
    """Our block stack against nn.TransformerEncoder with the same settings (embeddings and head left out)."""
    ours = Transformer(cfg).blocks
    reference = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.num_heads,
            cfg.d_ff,
            dropout=cfg.dropout,
            activation=cfg.activation,
            batch_first=True,
            norm_first=cfg.norm_first,
            bias=cfg.bias,
        ),
        num_layers=cfg.num_layers,
        enable_nested_tensor=False,
    )
    x = torch.randn(batch, length, cfg.d_model, generator=torch.Generator().manual_seed(0))
    mask = nn.Transformer.generate_square_subsequent_mask(length) if cfg.causal else None

    def loss_ours(blocks: nn.Module) -> torch.Tensor:
        h = x
        for block in blocks:
            h = block(h)
        return h.square().mean()

    def loss_reference(encoder: nn.Module) -> torch.Tensor:
        return encoder(x, mask=mask, is_causal=cfg.causal).square().mean()

    shape = f"tokens ({batch}, {length}, {cfg.d_model})"
    return Pair(name, shape, ours, reference, loss_ours, loss_reference)
{%- endif %}


def time_pair(pair: Pair, repeats: int, warmup: int) -> dict:
    """Median seconds per training step of each model; the two alternate so that load hits both alike."""
    runs = {}
    for side, model, loss_fn in (
        ("ours", pair.ours, pair.loss_ours),
        ("reference", pair.reference, pair.loss_reference),
    ):
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(model=model, loss_fn=loss_fn, optimizer=optimizer) -> float:
            start = time.perf_counter()
            loss = loss_fn(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return time.perf_counter() - start

        runs[side] = step
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    for _ in range(warmup):
        for step in runs.values():
            step()
    for i in range(repeats):
        for side in ("ours", "reference") if i % 2 == 0 else ("reference", "ours"):  # neither always goes first
            times[side].append(runs[side]())
    ours, reference = statistics.median(times["ours"]), statistics.median(times["reference"])
    return {
        "name": pair.name,
        "input": pair.shape,
        "parameters": {"ours": parameters(pair.ours), "reference": parameters(pair.reference)},
        "median_s": {"ours": ours, "reference": reference},
        "all_s": times,
        "ratio": ours / reference,
    }


def markdown(record: dict) -> str:
    lines = [
        "# Training-step time on the CPU: ours vs reference implementations",
        "",
        f"`python benchmarks/bench_attention_cpu.py --threads {record['threads']} --repeats {record['repeats']}` on "
        f"{record['device']} (torch {record['torch']}): median of {record['repeats']} interleaved training steps "
        "(forward + backward + AdamW) per model.",
        "",
        "| pair | input | parameters (ours / reference) | ours (ms) | reference (ms) | ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in record["results"]:
        p, t = r["parameters"], r["median_s"]
        lines.append(
            f"| {r['name']} | {r['input']} | {p['ours']:,} / {p['reference']:,} | {1e3 * t['ours']:.1f} "
            f"| {1e3 * t['reference']:.1f} | {r['ratio']:.3f} |"
        )
    lines += ["", f"Target: ratio <= {TARGET_RATIO} (ours / reference; below 1 means ours is faster)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where attention_cpu.json/.md go")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pairs: list[Pair] = []
{%- if cookiecutter.__vit %}
    pairs.append(vit_pair(batch=32))
{%- endif %}
{%- if cookiecutter.__transformer %}
    pairs.append(encoder_pair(transformer_base(), "Encoder (base, post-LN) vs nn.TransformerEncoder", 8, 128))
    pairs.append(encoder_pair(TransformerConfig(), "Causal LM layers (pre-LN) vs nn.TransformerEncoder", 8, 256))
{%- endif %}
    if not pairs:
        raise SystemExit("this project has neither the ViT nor the Transformer baseline: nothing to compare")
    results = []
    for pair in pairs:
        results.append(time_pair(pair, args.repeats, args.warmup))
        print(f"{pair.name}: ratio {results[-1]['ratio']:.3f}")
    record = {
        "device": (cpu_name() or platform.machine()),
        "threads": args.threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "target_ratio": TARGET_RATIO,
        "results": results,
    }
    table = Table(title=f"Training step on {record['device']} (threads: {args.threads}, torch {torch.__version__})")
    for column in ("pair", "input", "ours (ms)", "reference (ms)", "ratio"):
        table.add_column(column, justify="left" if column in ("pair", "input") else "right")
    for r in results:
        colour = "green" if r["ratio"] <= TARGET_RATIO else "red"
        ours, reference = (f"{1e3 * r['median_s'][side]:.1f}" for side in ("ours", "reference"))
        table.add_row(r["name"], r["input"], ours, reference, f"[{colour}]{r['ratio']:.3f}")
    Console().print(table)
    atomic_write_json(args.out / "attention_cpu.json", record)
    atomic_write_text(args.out / "attention_cpu.md", markdown(record))


if __name__ == "__main__":
    main()
