"""One command for an ablation study: train every variant with every seed, then compare them.

    python -m {{ cookiecutter.package }}.ablate experiment=vit_cifar10 trainer=smoke
    python -m {{ cookiecutter.package }}.ablate experiment=vit_cifar10 --variants full,gap --seeds 5 --metric test/acc
    python -m {{ cookiecutter.package }}.ablate experiment=vit_cifar10 --launcher slurm trainer.epochs=100

Step 1 is one Hydra multirun, `python -m {{ cookiecutter.package }}.train -m experiment=... ablation=<a>,<b>
seed=0,1,...`, started as a subprocess exactly as a user would type it (and printed first), so every
launcher works unchanged: `--launcher slurm` adds `hydra/launcher=slurm` and the same sweep runs as SLURM
jobs. Step 2 is `compare.compare(runs/<experiment>, ...)` on exactly the runs of this ablation (its
settings and seeds, whatever else runs/<experiment>/ holds): the tables are printed and comparison.md,
.tex, .json and .png are written into runs/<experiment>/. Any other `key=value` is passed to every run.

Defaults: every ablation of the experiment's model (`configs/ablation/<model>_*.yaml`), 5 seeds, and the
model's headline metric (DEFAULT_METRICS). Variants are named by their file without the model prefix
(`gap` for vit_gap.yaml) or by their `variant:` key.

Why the comparison is fair by construction:
- Same seeds: the multirun is the product of the variants and one seed list, so every variant runs
  exactly the same seeds, and a seed fixes the initialisation, the data order (train/loop.py draws
  each epoch's permutation from (seed, epoch)), the augmentation and dropout draws. The comparison
  pairs runs by seed.
- Same data and splits: the dataset, its train/test split and any subset come from the data config
  (`data.seed`, `data.num_train`, ...), never from the run seed, and an ablation file sets only its own
  keys (`variant_keys`). `compare` refuses variants whose configs differ in any other key, data.* included,
  and every run verifies its input files against the dataset's manifest before training.

A run's folder is its config (repro/rundir.py), so a finished run in it is this ablation's run, trained
with these settings: rerunning the command (after an interruption, or with more seeds or variants) trains
only what is missing, and unfinished runs resume from their checkpoints. `run.overwrite=true` trains
every run again. Bad input (unknown experiment or variant, fewer than two seeds, overrides that do not
compose) stops the command with one line and exit status 2, before anything is trained.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from .compare import OUTPUTS, compare
from .config import CONFIG_DIR, OverrideError, PathsConfig, check_overrides, settings_of
from .stats.load import ComparisonError
from .stats.tables import print_report

PACKAGE = "{{ cookiecutter.package }}"

# The metric an ablation of each model is judged on unless --metric says otherwise: its headline number.
DEFAULT_METRICS = {
{%- if cookiecutter.__transformer %}
    "transformer": "val/loss",  # held-out cross-entropy in nats per character (lower is better)
{%- endif %}
{%- if cookiecutter.__vit %}
    "vit": "test/acc",  # top-1 accuracy on the test split
{%- endif %}
{%- if cookiecutter.__simclr %}
    "simclr": "knn/acc",  # kNN accuracy of the frozen encoder: the standard self-supervised monitor
{%- endif %}
}
# Every key of a model's metrics.json (tests/test_train_e2e.py checks them against real runs): --metric
# is checked against these before anything trains, not after the whole sweep.
METRICS = {
{%- if cookiecutter.__transformer %}
    "transformer": ("val/loss", "val/bpc", "val/acc", "model/params", "model/gflops"),
{%- endif %}
{%- if cookiecutter.__vit %}
    "vit": ("test/loss", "test/acc", "model/params", "model/gflops"),
{%- endif %}
{%- if cookiecutter.__simclr %}
    "simclr": ("knn/acc", "probe/acc", "model/params", "model/gflops"),
{%- endif %}
}
# Five seeds: a paired t-test at alpha 0.05 then rejects at |t| > 2.78 (4 degrees of freedom); with three
# seeds it needs |t| > 4.30, i.e. a difference far larger relative to the seed noise.
DEFAULT_SEEDS = 5


class AblationError(ValueError):
    """The ablation cannot run as asked; the message names the value and what was expected."""


@dataclass(frozen=True)
class Variant:
    option: str  # the config file's name, configs/ablation/<option>.yaml: "simclr_temp0.1"
    name: str  # its `variant:` key, the name in the tables: "temp0.1"
    short: str  # the option without the model prefix, as typed after --variants: "temp0.1"
    setting: str = ""  # its runs' folder under runs/<experiment>/ with this ablation's overrides: "temp0.1-1a2b3c4d"


@dataclass(frozen=True)
class Ablation:
    """A resolved ablation: what to train, where the runs land and how to compare them."""

    experiment: str
    model: str
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]
    baseline: str | None  # a variant name; None: compare's default ("full" if present, else all pairs)
    overrides: tuple[str, ...]  # passed to every run (experiment=... first)
    root: Path  # runs/<experiment>

    def grid(self) -> set[tuple[str, int]]:
        return {(variant.name, seed) for variant in self.variants for seed in self.seeds}

    def run_dir(self, variant: Variant, seed: int) -> Path:
        return self.root / variant.setting / f"seed_{seed}"


def _yaml(path: Path) -> dict[str, Any]:
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    return content if isinstance(content, dict) else {}


def _options(group: str) -> list[str]:
    """The config names of one group: configs/<group>/*.yaml without the suffix."""
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def _override(overrides: Sequence[str], key: str) -> str | None:
    """The value of `key=value` among `overrides` (the last one wins, as in Hydra), or None."""
    values = [item.split("=", 1)[1] for item in overrides if item.split("=", 1)[0].lstrip("+") == key]
    return values[-1] if values else None


def model_of(experiment: str, overrides: Sequence[str] = ()) -> str:
    """The model name (`vit`, not `vit_b16`) that `experiment=<experiment>` plus `overrides` trains.

    The model config is `model=<x>` from the overrides, else the experiment's `override /model: <x>`; its
    name is the schema it extends (`defaults: [base_<name>, ...]`), the prefix of its ablation files.
    """
    choice = _override(overrides, "model")
    if choice is None:
        for entry in _yaml(CONFIG_DIR / "experiment" / f"{experiment}.yaml").get("defaults", []):
            if isinstance(entry, dict) and "override /model" in entry:
                choice = entry["override /model"]
    if choice is None or not (CONFIG_DIR / "model" / f"{choice}.yaml").is_file():
        raise AblationError(
            f"cannot tell which model experiment={experiment} trains (model config {choice!r}); expected "
            "`- override /model: <name>` in its defaults, or model=<name> with one of: " + ", ".join(_options("model"))
        )
    for entry in _yaml(CONFIG_DIR / "model" / f"{choice}.yaml").get("defaults", []):
        if isinstance(entry, str) and entry.startswith("base_"):
            return entry.removeprefix("base_")
    return choice


def variants_of(model: str) -> list[Variant]:
    """Every ablation of `model`: configs/ablation/<model>_*.yaml, with the `variant:` name each sets."""
    found = []
    for option in _options("ablation"):
        if option.startswith(f"{model}_"):
            name = _yaml(CONFIG_DIR / "ablation" / f"{option}.yaml").get("variant")
            if not isinstance(name, str) or not name:
                raise AblationError(
                    f"configs/ablation/{option}.yaml sets no `variant:` name; expected e.g. `variant: gap`"
                )
            found.append(Variant(option, name, option.removeprefix(f"{model}_")))
    return found


def _select(available: list[Variant], requested: str | None, model: str) -> list[Variant]:
    """The variants named in `requested` ("full,gap": short names or variant names), or all of them."""
    if requested is None:
        chosen = available
    else:
        lookup = {v.name: v for v in available} | {v.short: v for v in available}
        names = [name.strip() for name in requested.split(",") if name.strip()]
        unknown = [name for name in names if name not in lookup]
        if unknown or not names:
            raise AblationError(
                f"unknown variant {', '.join(unknown) or repr(requested)} of model {model}; "
                f"expected names from: {', '.join(v.short for v in available)}"
            )
        chosen = list(dict.fromkeys(lookup[name] for name in names))  # in the order given, without repeats
    if len(chosen) < 2:
        raise AblationError(
            f"an ablation compares at least 2 variants, got {len(chosen)} ({', '.join(v.short for v in chosen)}) "
            f"for model {model}; add configs/ablation/{model}_<variant>.yaml files or name more variants"
        )
    clashes = sorted({v.name for v in chosen if sum(w.name == v.name for w in chosen) > 1})
    if clashes:
        raise AblationError(
            f"several ablation files set variant: {', '.join(clashes)}; the tables would show one name for "
            "different variants, so give each file its own `variant:` name"
        )
    return chosen


def parse_seeds(text: str) -> tuple[int, ...]:
    """'5' -> seeds 0..4; '0,1,2' -> exactly those seeds. At least two distinct seeds (the tests pair them)."""
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AblationError(f"--seeds {text!r} is not a number of seeds or a list; expected e.g. 5 or 0,1,2") from None
    seeds = tuple(range(numbers[0])) if len(numbers) == 1 and "," not in text else tuple(numbers)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise AblationError(
            f"--seeds {text!r} gives {len(set(seeds))} distinct seed(s); expected at least 2 (a count such as 5, "
            "or a list such as 0,1,2 without repeats), since the comparison needs a spread over seeds"
        )
    return seeds


def resolve(
    overrides: Sequence[str],
    *,
    variants: str | None = None,
    seeds: str = str(DEFAULT_SEEDS),
    metrics: Sequence[str] = (),
    baseline: str | None = None,
    launcher: str | None = None,
) -> Ablation:
    """Check the request against configs/ and fill in the defaults; nothing is trained or written.

    Args:
        overrides: Hydra overrides for every run; must contain `experiment=<name>`.
        variants: comma-separated variant names; None: every ablation of the experiment's model.
        seeds: a count ("5": seeds 0..4) or a comma-separated list ("0,1,2").
        metrics: metrics to compare; empty: DEFAULT_METRICS of the model.
        baseline: the variant every other is tested against; None: "full" if chosen, else all pairs.
        launcher: a hydra/launcher config (e.g. "slurm"); None: Hydra's default, one run after another.

    Raises:
        AblationError: an unknown experiment, variant or baseline, fewer than two variants or seeds, or
            an override that this command sets itself (ablation=, seed=), or one that would put every run
            into one folder (run.name=, run.dir=).
    """
    for key, option in (("ablation", "--variants"), ("seed", "--seeds")):
        if _override(overrides, key) is not None:
            raise AblationError(f"{key}= is what this command sweeps; use {option} instead")
    for key in ("run.name", "run.dir"):
        if _override(overrides, key) is not None:
            raise AblationError(f"{key}= would put every variant and seed into one folder; leave it out")
    if launcher and _override(overrides, "hydra/launcher") is not None:
        raise AblationError(f"--launcher {launcher} and hydra/launcher= are both given; expected one of them")
    experiment = _override(overrides, "experiment")
    if experiment is None or experiment not in _options("experiment"):
        given = "no experiment=<name> given" if experiment is None else f"experiment={experiment} is unknown"
        raise AblationError(f"{given}; expected one of: {', '.join(_options('experiment'))} (configs/experiment/)")
    model = model_of(experiment, overrides)
    chosen = _select(variants_of(model), variants, model)
    if not metrics:
        if model not in DEFAULT_METRICS:
            raise AblationError(f"model {model} has no default metric in ablate.DEFAULT_METRICS; pass --metric <name>")
        metrics = (DEFAULT_METRICS[model],)
    for metric in metrics:
        if model in METRICS and metric not in METRICS[model]:
            raise AblationError(
                f"--metric {metric} is not in the metrics.json of model {model}; expected one of: "
                + ", ".join(METRICS[model])
            )
    baseline_name = None
    if baseline is not None:
        match = [v.name for v in chosen if baseline in (v.name, v.short)]
        if not match:
            raise AblationError(
                f"--baseline {baseline} is not one of the chosen variants; expected one of: "
                + ", ".join(v.short for v in chosen)
            )
        baseline_name = match[0]
    runs_dir = _override(overrides, "paths.runs_dir") or PathsConfig().runs_dir
    extra = [f"hydra/launcher={launcher}"] if launcher else []
    common = [f"experiment={experiment}", *(o for o in overrides if o != f"experiment={experiment}")]
    try:
        check_overrides(common)  # once for all variants
    except OverrideError as err:
        raise AblationError(str(err)) from None
    return Ablation(
        experiment=experiment,
        model=model,
        variants=tuple(_with_setting(variant, common) for variant in chosen),
        seeds=parse_seeds(seeds),
        metrics=tuple(metrics),
        baseline=baseline_name,
        overrides=(*common, *extra),
        root=Path(runs_dir) / experiment,
    )


def _with_setting(variant: Variant, overrides: list[str]) -> Variant:
    """`variant` with the folder its runs land in: the config that training will compose, digested."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        (setting,), _ = settings_of([*overrides, f"ablation={variant.option}"], checked=True)
    except (HydraException, OmegaConfBaseException, ValueError) as err:  # a typo'd key or value, as training says
        raise AblationError(f"the overrides do not compose: {'; '.join(str(err).splitlines())}") from err
    return Variant(variant.option, variant.name, variant.short, setting)


def plan(ablation: Ablation) -> list[tuple[tuple[Variant, ...], tuple[int, ...]]]:
    """The sweeps to launch, as (variants, seeds) products covering every run not yet finished.

    Usually one sweep: everything, nothing (all runs finished), or the seeds one new variant lacks. A
    finished run is in the folder of its config, so it is this ablation's run and is kept, unless
    run.overwrite=true asks for every run again.
    """
    overwrite = str(_override(ablation.overrides, "run.overwrite")).lower() == "true"
    missing: dict[tuple[int, ...], list[Variant]] = {}
    for variant in ablation.variants:
        seeds = tuple(
            s for s in ablation.seeds if overwrite or not (ablation.run_dir(variant, s) / "metrics.json").is_file()
        )
        if seeds:
            missing.setdefault(seeds, []).append(variant)
    return [(tuple(variants), seeds) for seeds, variants in missing.items()]


def sweep_command(ablation: Ablation, variants: Sequence[Variant], seeds: Sequence[int]) -> list[str]:
    """The Hydra multirun that trains `variants` x `seeds`: what a user would type to do it by hand."""
    return [
        sys.executable,
        "-m",
        f"{PACKAGE}.train",
        "-m",
        *ablation.overrides,
        f"ablation={','.join(v.option for v in variants)}",
        f"seed={','.join(map(str, seeds))}",
    ]


def run_ablation(ablation: Ablation) -> dict[str, Any]:
    """Train whatever `plan` says is missing, then compare exactly this ablation's runs; returns the report.

    Raises:
        AblationError: a training sweep failed (its own output says why).
        ComparisonError: the finished runs cannot be compared (see compare.py).
    """
    for variants, seeds in plan(ablation):
        command = sweep_command(ablation, variants, seeds)
        print(f"$ {shlex.join(['python', *command[1:]])}", flush=True)  # unwrapped, to copy; before the sweep's output
        status = subprocess.run(command, check=False).returncode
        if status != 0:
            raise AblationError(
                f"the training sweep exited with status {status} (its output is above); fix the cause and run this "
                "command again: unfinished runs resume, finished ones are kept"
            )
    settings = [variant.setting for variant in ablation.variants]
    return compare(ablation.root, ablation.metrics, baseline=ablation.baseline, settings=settings, seeds=ablation.seeds)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {PACKAGE}.ablate",
        description="Train every ablation variant with every seed (one Hydra multirun), then compare them "
        "(see docs/ablations.md).",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="experiment=<name> and Hydra overrides")
    parser.add_argument("--variants", help="comma-separated variant names (default: every ablation of the model)")
    parser.add_argument(
        "--seeds", default=str(DEFAULT_SEEDS), help=f"a count or a list: 5 or 0,1,2 (default {DEFAULT_SEEDS})"
    )
    parser.add_argument("--metric", action="append", default=[], help="metric to compare (repeat; default per model)")
    parser.add_argument("--baseline", help='variant to test the others against (default: "full")')
    parser.add_argument("--launcher", help="Hydra launcher config, e.g. slurm (default: one run after another)")
    parser.add_argument("--dry-run", action="store_true", help="print the training commands, train nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry; returns the exit status (2 for bad input or runs that cannot be compared)."""
    args = _parser().parse_intermixed_args(argv)
    console = Console()
    try:
        ablation = resolve(
            args.overrides,
            variants=args.variants,
            seeds=args.seeds,
            metrics=args.metric,
            baseline=args.baseline,
            launcher=args.launcher,
        )
        if args.dry_run:
            for variants, seeds in plan(ablation):
                print(shlex.join(["python", *sweep_command(ablation, variants, seeds)[1:]]))
            return 0
        report = run_ablation(ablation)
    except (AblationError, ComparisonError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_report(report, console)
    console.print(f"wrote {', '.join(str(ablation.root / name) for name in OUTPUTS)}", markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
