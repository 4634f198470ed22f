"""configs/hydra/launcher/: `local` is Hydra's basic launcher, `slurm` the submitit one with the settings that
make requeued jobs resume; and docs/scaling.md names only keys that exist."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from {{ cookiecutter.package }}.config import TrainerConfig, register_configs

from helpers import PROJECT_ROOT

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the slurm extra")


def launcher(name: str) -> DictConfig:
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(PROJECT_ROOT / "configs")):
        return compose("train", overrides=[f"hydra/launcher={name}"], return_hydra_config=True).hydra.launcher


def test_slurm_launcher_is_submitit_with_requeue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBATCH_PARTITION", "gpu")
    monkeypatch.delenv("SBATCH_ACCOUNT", raising=False)
    slurm = launcher("slurm")
    assert slurm._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert slurm.partition == "gpu" and slurm.account is None  # sbatch's own variables, else the cluster default
    assert slurm.max_num_timeout > 0, "a job stopped at its time limit must be requeued: runs resume"
    assert slurm.signal_delay_s > 0 and slurm.tasks_per_node == 1
    assert slurm.name == "{{ cookiecutter.package }}"


def test_local_launcher_is_the_basic_one() -> None:
    assert launcher("local")._target_ == "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def test_scaling_doc_names_only_existing_keys() -> None:
    text = (PROJECT_ROOT / "docs" / "scaling.md").read_text()
    slurm = launcher("slurm")
    named = set(re.findall(r"hydra\.launcher\.(\w+)", text)) | set(re.findall(r"^\| `(\w+)`", text, re.MULTILINE))
    assert named and not named - set(slurm), f"not launcher keys: {named - set(slurm)}"
    trainer_keys = set(re.findall(r"trainer\.(\w+)", text))
    assert not trainer_keys - {field.name for field in dataclasses.fields(TrainerConfig)}
