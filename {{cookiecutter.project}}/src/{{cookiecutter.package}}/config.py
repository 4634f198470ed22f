"""Structured-config schemas: every key a run accepts, with its type and default.

Hydra composes `configs/train.yaml` from the groups model/, data/, trainer/, tracker/, experiment/,
preset/ and ablation/, then validates the result against these dataclasses. Because the schemas are
registered with the ConfigStore and every YAML in a group starts from them, a typo such as
`trainer.learning_rate=1e-3` (the key is `trainer.lr`) stops the run with an error instead of being
silently ignored. Model and data schemas live beside their code (e.g. `models/vit.py:ViTConfig`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

# configs/ sits at the project root, next to src/ (an editable install keeps this layout).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


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


PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = r"auto|cpu|cuda(:\d+)?|mps"


def check_trainer(tc: TrainerConfig) -> None:
    """Refuse trainer values no run can use, with one line naming the key, before anything is written.

    The types are Hydra's job (the schema above); these are the ranges: a zero interval would divide by
    zero mid-run, a negative learning rate would train away from the optimum.

    Raises:
        ValueError: the first bad value, e.g. "trainer.checkpoint_every=0 is not valid; expected an integer >= 1".
    """
    positive = ("epochs", "batch_size", "eval_every", "log_every", "checkpoint_every")
    limit, threads = tc.limit_train_batches, tc.num_threads
    rules: list[tuple[str, Any, bool, str]] = [
        *((name, getattr(tc, name), getattr(tc, name) >= 1, "an integer >= 1") for name in positive),
        ("limit_train_batches", limit, limit is None or limit >= 1, "null or an integer >= 1"),
        ("num_threads", threads, threads is None or threads >= 1, "null or an integer >= 1"),
        ("grad_norm_every", tc.grad_norm_every, tc.grad_norm_every >= 0, "an integer >= 0 (0 turns it off)"),
        ("warmup_steps", tc.warmup_steps, tc.warmup_steps >= 0, "an integer >= 0"),
        ("lr", tc.lr, 0 < tc.lr < float("inf"), "a finite number > 0"),
        ("min_lr_ratio", tc.min_lr_ratio, 0 <= tc.min_lr_ratio <= 1, "a number in [0, 1]"),
        ("weight_decay", tc.weight_decay, 0 <= tc.weight_decay < float("inf"), "a finite number >= 0"),
        ("grad_clip", tc.grad_clip, 0 <= tc.grad_clip < float("inf"), "a finite number >= 0 (0 turns it off)"),
        ("betas", list(tc.betas), len(tc.betas) == 2 and all(0 <= b < 1 for b in tc.betas), "two numbers in [0, 1)"),
        ("precision", tc.precision, tc.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
        ("device", tc.device, re.fullmatch(DEVICES, tc.device) is not None, "auto, cpu, cuda, cuda:N or mps"),
    ]
    for name, value, ok, expected in rules:
        if not ok:
            raise ValueError(f"trainer.{name}={value!r} is not valid; expected {expected}")


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
    runs_dir: str = "runs"  # runs/<experiment>/<variant>-<config digest>/seed_<seed>/ (repro/rundir.py)


@dataclass
class RunConfig:
    dir: str | None = None  # default: <runs_dir>/<experiment>/<variant>-<config digest>/seed_<seed>
    name: str | None = None  # replaces <variant>-<config digest> in that path: a name you choose
    overwrite: bool = False  # train a finished run again (and discard an unfinished one of another config)
    resume: bool = True  # continue from checkpoints/last.pt when it exists


@dataclass
class TrainConfig:
    """The whole run: `python -m {{ cookiecutter.package }}.train` composes and validates this."""

    experiment: str = "default"
    variant: str = "full"  # the ablation variant: runs/<experiment>/<variant>-<digest>/...
    variant_keys: list[str] = field(default_factory=list)  # keys the ablation sets; filled in by train/run.py
    override_keys: list[str] = field(default_factory=list)  # keys set on the command line; likewise
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


def compose(overrides: list[str]) -> DictConfig:
    """The config `python -m {{ cookiecutter.package }}.train <overrides>` would run with (not yet resolved)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return hydra_compose(config_name="train", overrides=overrides)


def run_dir_of(overrides: list[str]) -> Path:
    """Where `python -m {{ cookiecutter.package }}.train <overrides>` (one run, no -m) writes: repro/rundir.py's rule."""
    from omegaconf import OmegaConf

    from .repro.rundir import RunDir

    check_overrides(overrides)
    config = OmegaConf.to_container(compose(overrides), resolve=True)
    return RunDir.for_config(config).path  # type: ignore[arg-type]


def expand(overrides: list[str]) -> list[list[str]]:
    """The single runs a sweep's overrides stand for, as Hydra's -m expands them: `a=1,2 b=3,4` -> 4 lists."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if not override.is_sweep_override():
            choices.append([override.input_line])
            continue
        if override.value_type is not None and override.value_type.name == "GLOB_CHOICE_SWEEP":
            raise ValueError(f"{override.input_line}: glob() needs Hydra's multirun; list the choices, a,b,c")
        prefix = override.input_line.split("=", 1)[0]
        choices.append([f"{prefix}={value}" for value in override.sweep_string_iterator()])
    return [list(combination) for combination in itertools.product(*choices)]


def settings_of(overrides: list[str], *, checked: bool = False) -> tuple[list[str], list[int]]:
    """(setting folders, seeds) of the runs that `python -m <pkg>.train -m <overrides>` trains.

    The folders are repro/rundir.py's `<variant>-<digest>` (or run.name), in the order of the sweep; the
    seeds are those the overrides name (`seed=0,1,2`), or [] when they name none. `checked`: the caller has
    already passed the overrides through `check_overrides`.
    """
    from omegaconf import OmegaConf

    from .repro.rundir import setting_name

    if not checked:
        check_overrides(overrides)
    settings: dict[str, None] = {}
    seeds: dict[int, None] = {}
    for single in expand(overrides):
        config = OmegaConf.to_container(compose(single), resolve=True)
        settings[setting_name(config)] = None  # type: ignore[arg-type]
        if any(item.split("=", 1)[0] == "seed" for item in single):
            seeds[int(config["seed"])] = None  # type: ignore[index]
    return list(settings), list(seeds)


def locate_run(words: list[str]) -> Path:
    """A run named by its directory (`runs/<experiment>/<setting>/seed_<n>`) or by the overrides of the command
    that trained it (`experiment=vit_cifar10 trainer=smoke seed=1`): reproduce, env and the benchmarks take both.

    Raises:
        ValueError: several words that are not all `key=value` overrides.
    """
    if len(words) == 1 and "=" not in words[0]:
        return Path(words[0])
    if not all("=" in word for word in words):
        raise ValueError(f"{' '.join(words)!r}: expected one run directory, or the key=value overrides that trained it")
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return run_dir_of(list(words))
    except (HydraException, OmegaConfBaseException) as err:
        raise ValueError(f"the overrides do not compose: {'; '.join(str(err).splitlines())}") from err


class OverrideError(ValueError):
    """A command-line override names a key or a config that does not exist; the message says what does."""


# Groups whose choices are this project's files (hydra/... also takes Hydra's and its plugins' own configs).
OWN_GROUPS = ("ablation", "data", "experiment", "model", "preset", "tracker", "trainer")


def check_overrides(overrides: list[str]) -> None:
    """Refuse, before Hydra composes anything, what Hydra would accept silently or explain poorly.

    - A key the schemas do not have is an error in every form: `key=`, `+key=` (Hydra adds it to the
      config) and `++key=`, with the nearest key there is (`trainer.max_epochs` -> `trainer.epochs`).
    - A group choice is the name of a file of that group: `ablation=../experiment/x` would load a file of
      another group (Hydra reads the choice as a relative path).

    Raises:
        OverrideError: one line naming the override and what is expected.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if "=" in o and not o.startswith("-")])
    groups = [o for o in parsed if o.key_or_group in OWN_GROUPS]
    for override in groups:
        _check_choice(override)
    keys = [o for o in parsed if o not in groups and "/" not in o.key_or_group and o.key_or_group != "hydra"]
    keys = [o for o in keys if not o.key_or_group.startswith("hydra.")]
    if not keys:
        return
    first = [f"{o.key_or_group}={next(iter(o.sweep_string_iterator()), '')}" if o.is_sweep_override() else o.input_line
             for o in groups]  # fmt: skip
    known = _schema_keys(compose([o.lstrip("+~") for o in first]))
    for override in keys:
        key = override.key_or_group
        if key not in known and not any(k.startswith(key + ".") for k in known):
            near = _nearest(key, known)
            hint = f"did you mean {near}? " if near else ""
            raise OverrideError(
                f"{override.input_line}: {key} is not a config key ({hint}every key is declared in a schema, "
                "so + and ++ cannot add one either; `--cfg job` prints them all)"
            )


def _nearest(key: str, known: set[str]) -> str | None:
    """The key a typo most likely meant: a sibling it abbreviates (learning_rate -> lr), else the closest."""
    parent, _, leaf = key.rpartition(".")
    initials = "".join(word[0] for word in leaf.split("_") if word)
    siblings = sorted(k for k in known if k.rpartition(".")[0] == parent)
    for sibling in siblings:
        if len(initials) > 1 and sibling.rpartition(".")[2] == initials:
            return sibling
    near = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6) or difflib.get_close_matches(
        key, sorted(known), n=1, cutoff=0.6
    )
    return near[0] if near else None


def _check_choice(override: Any) -> None:
    group = override.key_or_group
    options = sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))
    if override.value_type is not None and override.value_type.name == "GLOB_CHOICE_SWEEP":
        return  # glob(...) picks among the files themselves
    values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
    for value in values:
        if value is None or str(value) == "null" or str(value) in options:
            continue
        raise OverrideError(
            f"{override.input_line}: {value!r} is not a config of {group}/; expected a name among: {', '.join(options)}"
        )


def _schema_keys(cfg: DictConfig) -> set[str]:
    """Every dotted key of a composed config, inner nodes included (`trainer`, `trainer.lr`)."""
    from omegaconf import OmegaConf

    keys: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        for key in node.keys() if OmegaConf.is_dict(node) else []:
            name = f"{prefix}{key}"
            keys.add(name)
            child = node._get_node(key)
            if OmegaConf.is_dict(child):
                walk(child, f"{name}.")

    walk(cfg, "")
    return keys
