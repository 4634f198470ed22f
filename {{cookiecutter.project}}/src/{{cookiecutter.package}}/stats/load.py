"""Read finished runs from disk and refuse any set of runs that cannot be compared fairly.

Training writes `<dir>/<setting>/seed_<n>/`, one folder per setting (`<variant>-<config digest>` or a
run.name, see repro/rundir.py). A setting is what the tables call a variant: its label is the `variant:`
name, or, where two settings share that name (a sweep over trainer.lr, say), the name plus the keys that
tell them apart (`full trainer.lr=0.001`). Before any statistic is computed this module checks the three
things that silently ruin an ablation table:

1. every variant ran the same seeds, at least two of them (the tests are paired by seed);
2. runs of one variant agree in every config key except the seed;
3. two variants differ only in keys that one of their ablations declares (`variant_keys`) or that both
   set on the command line (`override_keys`: both sides of a sweep), so a difference in the table is the
   effect being studied and not, say, a learning rate changed on the command line for one variant.

Each violation raises `ComparisonError` with one line naming the runs, seeds or keys at fault.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..repro.rundir import BOOKKEEPING, covered, flatten

# Config keys that may differ between runs of one comparison: bookkeeping, not experimental conditions.
IGNORED_CONFIG_KEYS = ("seed", "variant", *BOOKKEEPING)

_SEED_DIR = re.compile(r"seed_(-?\d+)")
_MISSING = "<missing>"


class ComparisonError(ValueError):
    """The runs cannot be compared as asked; the message names the runs, seeds or keys at fault."""


@dataclass(frozen=True)
class Run:
    """One finished run: `<dir>/<setting>/seed_<seed>/`."""

    variant: str  # the label of its setting in the tables (see the module docstring)
    seed: int
    path: Path
    metrics: dict[str, Any]  # metrics.json as written by the run
    config: dict[str, Any]  # config.yaml flattened to dotted keys, ignored keys removed
    variant_keys: tuple[str, ...]  # dotted keys this variant's ablation sets
    train_seconds: float | None  # timing.json `train_seconds`, None when absent
    override_keys: tuple[str, ...] = ()  # dotted keys set on its command line (key=value)


@dataclass(frozen=True)
class RunSet:
    """Every finished run under one directory, plus the unfinished ones that were left out."""

    root: Path
    runs: tuple[Run, ...]
    skipped: tuple[Path, ...]  # seed directories without metrics.json

    @property
    def variants(self) -> list[str]:
        return sorted({run.variant for run in self.runs})

    @property
    def seeds(self) -> list[int]:
        return sorted({run.seed for run in self.runs})

    def of(self, variant: str) -> list[Run]:
        """The runs of one variant, ordered by seed."""
        return sorted((run for run in self.runs if run.variant == variant), key=lambda run: run.seed)

    def values(self, metric: str) -> dict[str, dict[int, float]]:
        """`{variant: {seed: value}}` of one metric, checking that every run recorded it as a number."""
        table: dict[str, dict[int, float]] = {}
        for run in sorted(self.runs, key=lambda run: (run.variant, run.seed)):
            if metric not in run.metrics:
                available = ", ".join(sorted(run.metrics)) or "none"
                raise ComparisonError(f"run {run.path} has no metric {metric!r}; its metrics are: {available}")
            value = run.metrics[metric]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ComparisonError(
                    f"run {run.path} has {metric} = {value!r}; expected a finite number (a diverged run must be "
                    "rerun or removed, not averaged)"
                )
            table.setdefault(run.variant, {})[run.seed] = float(value)
        return table


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ComparisonError(f"{path} is not valid JSON ({err}); was the run interrupted while writing it?") from err
    if not isinstance(data, dict):
        raise ComparisonError(f"{path} holds a {type(data).__name__}; expected a JSON object")
    return data


def _read_run(path: Path, setting: str, seed: int) -> Run:
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise ComparisonError(
            f"run {path} has metrics.json but no config.yaml; the comparison needs the config to check that "
            "variants differ only in their ablation keys"
        )
    # resolve=False: the file is already resolved; leftover `${now:...}` would need Hydra's resolvers.
    config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False)
    if not isinstance(config, dict):
        raise ComparisonError(f"{config_path} holds a {type(config).__name__}; expected a mapping")
    variant = str(config.get("variant", setting))
    named = (config.get("run") or {}).get("name")
    if config.get("seed", seed) != seed or (setting not in (variant, named) and not setting.startswith(f"{variant}-")):
        raise ComparisonError(
            f"run {path} lies in {setting}/seed_{seed} but its config.yaml says variant={config.get('variant')!r}, "
            f"seed={config.get('seed')!r}; was the directory moved or renamed?"
        )
    # Hydra override syntax (+key, ~key) may reach variant_keys; the key itself is what counts.
    variant_keys = tuple(str(key).lstrip("+~") for key in config.get("variant_keys") or ())
    override_keys = tuple(str(key) for key in config.get("override_keys") or ())
    flat = {key: value for key, value in flatten(config).items() if not covered(key, IGNORED_CONFIG_KEYS)}
    timing_path = path / "timing.json"
    train_seconds = _read_json(timing_path).get("train_seconds") if timing_path.is_file() else None
    return Run(
        variant=variant,
        seed=seed,
        path=path,
        metrics=_read_json(path / "metrics.json"),
        config=flat,
        variant_keys=variant_keys,
        train_seconds=float(train_seconds) if isinstance(train_seconds, int | float) else None,
        override_keys=override_keys,
    )


def load_runs(root: str | Path, settings: Iterable[str] | None = None, seeds: Iterable[int] | None = None) -> RunSet:
    """Read every `<root>/<setting>/seed_<n>/` that holds a metrics.json, or only the chosen ones.

    Seed directories without metrics.json are unfinished (or crashed) runs: they are listed in
    `RunSet.skipped` so the caller can say so, and left out of every statistic.

    Args:
        root: runs/<experiment>.
        settings: folder names under `root` to compare (`ablate` and the pipeline name exactly their own);
            None: every folder.
        seeds: the seeds to read; None: every seed found.

    Raises:
        ComparisonError: `root` is not a directory, a chosen setting has no folder, or no run is finished.
    """
    root = Path(root)
    if not root.is_dir():
        raise ComparisonError(f"{root} is not a directory; expected runs/<experiment> holding <variant>/seed_<n>/")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if settings is not None:
        chosen = list(dict.fromkeys(settings))
        absent = [name for name in chosen if not (root / name).is_dir()]
        if absent:
            raise ComparisonError(f"{root} has no runs of {', '.join(absent)}; expected folders <setting>/seed_<n>/")
        folders = [root / name for name in chosen]
    wanted = None if seeds is None else set(seeds)
    runs, skipped = [], []
    for folder in folders:
        found = _read_setting(folder, wanted)
        runs += found[0]
        skipped += found[1]
    if not runs:
        unfinished = f" ({len(skipped)} unfinished, without metrics.json)" if skipped else ""
        raise ComparisonError(f"no finished runs under {root}{unfinished}; expected <variant>/seed_<n>/metrics.json")
    return RunSet(root=root, runs=tuple(_labelled(runs)), skipped=tuple(skipped))


def _read_setting(folder: Path, seeds: set[int] | None) -> tuple[list[Run], list[Path]]:
    """(finished runs, unfinished seed folders) of one setting folder, refusing two folders of one seed."""
    runs, skipped, seen = [], [], {}
    for seed_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        match = _SEED_DIR.fullmatch(seed_dir.name)
        if match is None or (seeds is not None and int(match.group(1)) not in seeds):
            continue
        seed = int(match.group(1))
        if seed in seen:  # seed_1 and seed_01: one would silently replace the other
            raise ComparisonError(
                f"{seen[seed]} and {seed_dir} both hold seed {seed} of {folder.name!r}; "
                "expected one directory per seed (remove or rename one)"
            )
        seen[seed] = seed_dir
        if (seed_dir / "metrics.json").is_file():
            runs.append(_read_run(seed_dir, folder.name, seed))
        else:
            skipped.append(seed_dir)
    return runs, skipped


def _labelled(runs: list[Run]) -> list[Run]:
    """The runs with each setting's table label: its variant name, plus the keys that tell apart settings
    sharing that name (`full trainer.lr=0.001`), else the folder name itself."""
    settings = {run.path.parent.name: run for run in runs}  # one run of each setting stands for it
    labels = {}
    for name, run in settings.items():
        twins = [other for other in settings.values() if other.variant == run.variant and other is not run]
        keys = sorted(set().union(*(_differing_keys(run.config, other.config) for other in twins)))
        label = run.variant + "".join(f" {key}={run.config.get(key, _MISSING)}" for key in keys)
        labels[name] = label if twins and len(label) <= 60 else name if twins else run.variant
    if len(set(labels.values())) < len(labels):  # equal configs under two names (run.name): the folders tell
        labels = {name: name for name in settings}
    return [replace(run, variant=labels[run.path.parent.name]) for run in runs]


def check_seeds(runs: RunSet) -> None:
    """Every variant has >= 2 seeds and all variants have the same seeds (the tests pair by seed)."""
    by_variant = {variant: {run.seed for run in runs.of(variant)} for variant in runs.variants}
    few = [f"{variant!r} has {len(seeds)}" for variant, seeds in by_variant.items() if len(seeds) < 2]
    if few:
        raise ComparisonError(f"each variant needs at least 2 seeds for a spread and a test: {', '.join(few)}")
    all_seeds = set().union(*by_variant.values())
    missing = [
        f"{variant!r} lacks seed {', '.join(map(str, sorted(all_seeds - seeds)))}"
        for variant, seeds in by_variant.items()
        if seeds != all_seeds
    ]
    if missing:
        raise ComparisonError(f"seeds do not pair up across variants: {'; '.join(missing)} (run or remove them)")


def _describe_difference(keys: Iterable[str], configs: Mapping[str, Mapping[str, Any]]) -> str:
    """`trainer.lr (full: 0.001, gap: 0.002)` for each key, joined with `; `."""
    parts = []
    for key in sorted(keys):
        values = ", ".join(f"{name}: {config.get(key, _MISSING)!r}" for name, config in configs.items())
        parts.append(f"{key} ({values})")
    return "; ".join(parts)


def _differing_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    return {key for key in a.keys() | b.keys() if a.get(key, _MISSING) != b.get(key, _MISSING)}


def check_configs(runs: RunSet) -> None:
    """Runs of a variant agree except for the seed; variants differ only in their declared ablation keys."""
    representative: dict[str, Run] = {}
    for variant in runs.variants:
        first, *others = runs.of(variant)
        representative[variant] = first
        for other in others:
            keys = _differing_keys(first.config, other.config)
            if keys:
                configs = {f"seed_{first.seed}": first.config, f"seed_{other.seed}": other.config}
                raise ComparisonError(
                    f"runs of variant {variant!r} differ in more than the seed: {_describe_difference(keys, configs)}"
                )
    names = list(representative)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            run_a, run_b = representative[a], representative[b]
            # an ablation's own keys, and a key both set on the command line: the two sides of a sweep
            swept = set(run_a.override_keys) & set(run_b.override_keys)
            declared = set(run_a.variant_keys) | set(run_b.variant_keys) | swept
            stray = {key for key in _differing_keys(run_a.config, run_b.config) if not covered(key, declared)}
            if stray:
                configs = {a: run_a.config, b: run_b.config}
                raise ComparisonError(
                    f"variants {a!r} and {b!r} differ in keys that neither ablation sets (variant_keys) nor both "
                    "commands set (override_keys): "
                    f"{_describe_difference(stray, configs)}"
                )
