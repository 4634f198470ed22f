"""Structured-config schemas: every key a run accepts, with its type and default.

Hydra composes `configs/train.yaml` from the groups model/, data/, trainer/, tracker/, experiment/,
preset/ and ablation/, then validates the result against these dataclasses. Because the schemas are
registered with the ConfigStore and every YAML in a group starts from them, a typo such as
`trainer.learning_rate=1e-3` (the key is `trainer.lr`) stops the run with an error instead of being
silently ignored. Model and data schemas live beside their code (e.g. `models/vit.py:ViTConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TrainerConfig:
    """How to optimise, shared by every baseline (see train/loop.py)."""

    epochs: int = 10
    batch_size: int = 128  # global batch: split evenly across DDP ranks, so results don't depend on N
    limit_train_batches: int | None = None  # cap batches per epoch (smoke runs, debugging)
    lr: float = 1e-3  # peak learning rate, reached after warmup
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100  # linear warmup avoids early Adam instability in Transformers
    weight_decay: float = 0.05  # AdamW; applied only to >= 2-D weights (not biases, norms)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16 (autocast + GradScaler)
    compile: bool = False  # torch.compile the model (GPU speed path)
    tf32: bool = False  # allow TF32 matmuls on Ampere+ GPUs
    channels_last: bool = False  # NHWC memory format for conv nets on GPU
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = True  # torch.use_deterministic_algorithms + cuDNN/cuBLAS settings
    num_threads: int | None = None  # torch CPU threads; pinned and recorded because sums depend on it
    eval_every: int = 1  # epochs between evaluations (the last epoch is always evaluated)
    log_every: int = 10  # optimizer steps between metrics.jsonl lines
    grad_norm_every: int = 50  # steps between per-layer gradient-norm logs; 0 disables
    checkpoint_every: int = 200  # steps between checkpoints (also written at every epoch end)
    progress: bool = True  # rich progress bar (off in batch jobs to keep logs clean)


@dataclass
class TrackerConfig:
    """Where metrics go besides the run directory's metrics.jsonl (always written)."""

    name: str = "none"  # none | wandb
    project: str = "{{ cookiecutter.project }}"
    entity: str | None = None
    mode: str | None = None  # online | offline | disabled; default: offline unless an API key is set
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsConfig:
    data_dir: str = "data"  # prepared datasets (DVC outputs)
    runs_dir: str = "runs"  # runs/<experiment>/<variant>/seed_<seed>/


@dataclass
class RunConfig:
    dir: str | None = None  # default: <runs_dir>/<experiment>/<variant>/seed_<seed>
    overwrite: bool = False  # replace a finished run instead of refusing
    resume: bool = True  # continue from checkpoints/last.pt when it exists


@dataclass
class TrainConfig:
    """The whole run: `python -m {{ cookiecutter.package }}.train` composes and validates this."""

    experiment: str = "default"
    variant: str = "full"  # the ablation variant: runs/<experiment>/<variant>/...
    variant_keys: list[str] = field(default_factory=list)  # keys the ablation sets; filled in by train.py
    seed: int = 0
    model: Any = MISSING
    data: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    run: RunConfig = field(default_factory=RunConfig)


def register_configs() -> None:
    """Make the schemas known to Hydra; YAML files in configs/ extend them."""
    from .tasks import DATA_CONFIGS, MODEL_CONFIGS  # imports the models: keep `config` itself light

    cs = ConfigStore.instance()
    cs.store(name="base_train", node=TrainConfig)
    for name, node in MODEL_CONFIGS.items():
        cs.store(group="model", name=f"base_{name}", node=node)
    for name, node in DATA_CONFIGS.items():
        cs.store(group="data", name=f"base_{name}", node=node)
