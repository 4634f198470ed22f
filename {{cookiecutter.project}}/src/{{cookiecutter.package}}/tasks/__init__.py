"""Which task trains which model on which data: the one registry the entry points consult.

A baseline is a (model config, data config, task) triple. `build_task` checks that the chosen model
and data fit together, loads (and verifies) the data, builds the task and moves it to the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data import {% if cookiecutter.__simclr or cookiecutter.__vit %}cifar10{% if cookiecutter.__transformer %}, {% endif %}{% endif %}{% if cookiecutter.__transformer %}shakespeare{% endif %}
{%- if cookiecutter.__simclr %}
from ..models.simclr import SimCLRConfig
{%- endif %}
{%- if cookiecutter.__transformer %}
from ..models.transformer import TransformerConfig
{%- endif %}
{%- if cookiecutter.__vit %}
from ..models.vit import ViTConfig
{%- endif %}
from .base import Task

if TYPE_CHECKING:
    from ..config import TrainConfig

# name -> schema: registered with Hydra as model/base_<name> and data/base_<name> (config.py)
MODEL_CONFIGS: dict[str, type] = {
{%- if cookiecutter.__simclr %}
    "simclr": SimCLRConfig,
{%- endif %}
{%- if cookiecutter.__transformer %}
    "transformer": TransformerConfig,
{%- endif %}
{%- if cookiecutter.__vit %}
    "vit": ViTConfig,
{%- endif %}
}
DATA_CONFIGS: dict[str, type] = {
{%- if cookiecutter.__simclr or cookiecutter.__vit %}
    "cifar10": cifar10.CIFAR10Config,
{%- endif %}
{%- if cookiecutter.__transformer %}
    "shakespeare": shakespeare.ShakespeareConfig,
{%- endif %}
}
# model name -> the data it trains on
MODEL_DATA = {"simclr": "cifar10", "vit": "cifar10", "transformer": "shakespeare"}


def build_task(cfg: TrainConfig, device: torch.device) -> tuple[Task, list[Path]]:
    """The task for `cfg.model` on `cfg.data`, on `device`, and the data files it read."""
    model_cfg: Any = cfg.model
    data_cfg: Any = cfg.data
    if model_cfg.name not in MODEL_CONFIGS:
        raise ValueError(
            f"model.name={model_cfg.name!r} is not a baseline of this project; expected one of {sorted(MODEL_CONFIGS)}"
        )
    expected = MODEL_DATA[model_cfg.name]
    if data_cfg.name != expected:
        raise ValueError(
            f"data={data_cfg.name!r} does not fit model={model_cfg.name!r}; expected data={expected} "
            f"(or an experiment that sets both, e.g. experiment={model_cfg.name}_{expected})"
        )
{%- if cookiecutter.__transformer %}
    if model_cfg.name == "transformer":
        from .transformer import LanguageModelTask

        task: Task = LanguageModelTask(model_cfg, shakespeare.load(data_cfg))
        inputs = shakespeare.input_files(data_cfg)
{%- endif %}
{%- if cookiecutter.__vit %}
    if model_cfg.name == "vit":
        from .vit import ImageClassificationTask

        task = ImageClassificationTask(model_cfg, cifar10.load(data_cfg))
        inputs = cifar10.input_files(data_cfg)
{%- endif %}
{%- if cookiecutter.__simclr %}
    if model_cfg.name == "simclr":
        from .simclr import SimCLRTask

        task = SimCLRTask(model_cfg, cifar10.load(data_cfg), channels_last=cfg.trainer.channels_last)
        inputs = cifar10.input_files(data_cfg)
{%- endif %}
    task.to(device)
    return task, inputs
