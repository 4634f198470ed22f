"""The commands behind dvc.yaml: prepare one dataset, train one matrix item, compare one experiment.

    python -m {{ cookiecutter.package }}.pipeline prepare cifar10           # stage prepare_cifar10
    python -m {{ cookiecutter.package }}.pipeline train vit_cifar10 gap 0   # stage train_vit@gap-0
    python -m {{ cookiecutter.package }}.pipeline compare vit_cifar10       # stage compare_vit

params.yaml holds the pipeline's *choices* and nothing else: the Hydra trainer profile, which prepared
directory each dataset's runs read (the synthetic twin or the real data), the seeds, and each
experiment's variants and metric. Every hyperparameter stays in configs/ and reaches a run only through
Hydra, so params.yaml and the Hydra configs cannot disagree; dvc.yaml declares the config files a stage
reads as DVC params, so a changed key reruns exactly the stages that read it and shows in
`dvc params diff`. This module turns the choices into Hydra overrides: `train vit_cifar10 gap 0` runs

    python -m {{ cookiecutter.package }}.train experiment=vit_cifar10 ablation=vit_gap seed=0 trainer=smoke data.synthetic=true \\
        run.dir=pipeline/vit_cifar10/gap/seed_0

The pipeline's runs live in pipeline/<experiment>/<variant>/seed_<n>/ (dvc.yaml's outputs), apart from
runs/, where commands typed by hand land (repro/rundir.py): `dvc repro`, `train`, `ablate` and `compare`
never read or refuse each other's runs, in any order.

Three rules keep the outputs stable (DVC hashes them, and a file changed behind its back would rerun
every stage after it):
- A dataset is prepared once for every experiment that reads it: a synthetic twin is generated at the
  largest size any of them asks for, and a smaller request reads its prefix (data/cifar10.py).
- An ablation changes the model, never the data: every variant trains on the same files, which is what
  makes the seed-paired comparison valid; `train` refuses a variant whose data config differs.
- `compare` compares exactly the variants and seeds listed in params.yaml; a run directory left over
  from an earlier params.yaml is named in the log and left out of the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from .config import CONFIG_DIR, compose
from .data.files import DataError, atomic_write_json, atomic_write_text, read_manifest

PARAMS_FILE = Path("params.yaml")
DATA_DIR = Path("data")  # dvc.yaml's outputs: data/<directory> and pipeline/<experiment>/<variant>/seed_<n>
RUNS_DIR = Path("pipeline")  # the pipeline's own runs; runs/ is for commands typed by hand
SYNTHETIC_SUFFIX = "_synthetic"  # data/<name>_synthetic holds a dataset's twin (the data modules' dataset_dir)
# Synthetic-twin sizes: a smaller twin is a prefix of a larger one, so one twin serves every size up to its own.
SIZE_KEYS = ("num_train", "num_test")
MAX_CURVE_POINTS = 500  # per run and metric: enough for a learning curve, small enough for a browser

log = logging.getLogger(__name__)


class PipelineError(ValueError):
    """params.yaml, dvc.yaml or the run directories do not fit together; the message says how to fix it."""


# ---------------------------------------------------------------------------------------------------
# params.yaml
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentPlan:
    variants: tuple[str, ...]  # configs/ablation/<model>_<variant>.yaml, run in pipeline/<experiment>/<variant>/
    metric: str  # the metric compare tests (a key of every run's metrics.json)


@dataclass(frozen=True)
class Params:
    """The pipeline's choices, as params.yaml states them."""

    trainer: str  # Hydra trainer profile of every run: smoke | default | gpu
    data: dict[str, str]  # dataset name -> the directory under data/ its runs read
    seeds: tuple[int, ...]
    experiments: dict[str, ExperimentPlan]

    @classmethod
    def read(cls, path: Path = PARAMS_FILE) -> Params:
        """Load and check params.yaml; every problem is one sentence naming the key."""
        if not path.is_file():
            raise PipelineError(f"{path} is missing; run the pipeline from the project root (where dvc.yaml is)")
        raw = yaml.safe_load(path.read_text()) or {}
        missing = [key for key in ("trainer", "data", "seeds", "experiments") if key not in raw]
        if missing:
            raise PipelineError(f"{path} lacks {', '.join(missing)}; see docs/pipeline.md for its keys")
        seeds = raw["seeds"]
        if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise PipelineError(f"{path}: seeds={seeds!r}; expected a list of integers such as [0, 1, 2]")
        if len(set(seeds)) != len(seeds):
            raise PipelineError(f"{path}: seeds={seeds!r} repeats a seed; expected distinct seeds")
        trainers = sorted(p.stem for p in (CONFIG_DIR / "trainer").glob("*.yaml"))
        if raw["trainer"] not in trainers:
            raise PipelineError(f"{path}: trainer={raw['trainer']!r}; expected one of {trainers} (configs/trainer/)")
        experiments = {}
        for name, plan in (raw["experiments"] or {}).items():
            variants = plan.get("variants") if isinstance(plan, dict) else None
            if not variants or not isinstance(variants, list) or len(set(variants)) != len(variants):
                raise PipelineError(f"{path}: experiments.{name}.variants={variants!r}; expected distinct names")
            if not isinstance(plan.get("metric"), str):
                raise PipelineError(f"{path}: experiments.{name}.metric is missing; expected a key of metrics.json")
            experiments[name] = ExperimentPlan(tuple(str(v) for v in variants), plan["metric"])
        return cls(str(raw["trainer"]), dict(raw["data"] or {}), tuple(seeds), experiments)

    def plan(self, experiment: str) -> ExperimentPlan:
        if experiment not in self.experiments:
            raise PipelineError(
                f"experiment {experiment!r} is not in {PARAMS_FILE}; expected one of {sorted(self.experiments)}"
            )
        return self.experiments[experiment]

    def data_dir(self, dataset: str) -> tuple[Path, bool]:
        """(data/<directory>, synthetic) for a dataset; the directory is `<name>` or `<name>_synthetic`."""
        directory = self.data.get(dataset)
        if directory not in (dataset, dataset + SYNTHETIC_SUFFIX):
            raise PipelineError(
                f"{PARAMS_FILE}: data.{dataset}={directory!r}; expected {dataset!r} (the real data) "
                f"or {dataset + SYNTHETIC_SUFFIX!r} (the offline synthetic twin)"
            )
        return DATA_DIR / directory, directory != dataset


# ---------------------------------------------------------------------------------------------------
# Hydra
# ---------------------------------------------------------------------------------------------------


def data_config(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg.data, resolve=True)  # type: ignore[return-value]


def experiment_data(params: Params, experiment: str) -> tuple[str, str, bool, dict[str, Any]]:
    """(model name, dataset name, synthetic, data config) of an experiment under params.yaml's choices."""
    cfg = compose([f"experiment={experiment}", f"trainer={params.trainer}"])
    dataset = str(cfg.data.name)
    _, synthetic = params.data_dir(dataset)
    return str(cfg.model.name), dataset, synthetic, {**data_config(cfg), "synthetic": synthetic}


def train_overrides(params: Params, experiment: str, variant: str, seed: int) -> list[str]:
    """The Hydra overrides of one matrix item, after checking its ablation file and its data."""
    plan = params.plan(experiment)
    if variant not in plan.variants or seed not in params.seeds:
        raise PipelineError(
            f"{experiment}/{variant}/seed_{seed} is not in {PARAMS_FILE} "
            f"(variants {list(plan.variants)}, seeds {list(params.seeds)})"
        )
    model, _, synthetic, base_data = experiment_data(params, experiment)
    ablation = f"{model}_{variant}"
    path = CONFIG_DIR / "ablation" / f"{ablation}.yaml"
    declared = (yaml.safe_load(path.read_text()) or {}).get("variant") if path.is_file() else None
    if declared != variant:
        found = f"says variant: {declared}" if path.is_file() else "does not exist"
        raise PipelineError(
            f"variant {variant!r} of {experiment} needs configs/ablation/{ablation}.yaml with `variant: {variant}` "
            f"(runs land in {RUNS_DIR}/{experiment}/{variant}/), but that file {found}"
        )
    overrides = [
        f"experiment={experiment}",
        f"ablation={ablation}",
        f"seed={seed}",
        f"trainer={params.trainer}",
        f"data.synthetic={str(synthetic).lower()}",
        f"run.dir={run_path(experiment, variant, seed)}",
    ]
    cfg = compose(overrides)
    data = data_config(cfg)
    changed = sorted(key for key in {*data, *base_data} if data.get(key) != base_data.get(key))
    if changed:
        raise PipelineError(
            f"ablation {ablation} changes data.{', data.'.join(changed)}; every variant must train on the same "
            "data for the seed-paired comparison, so an ablation may change the model and trainer only"
        )
    if Path(cfg.paths.data_dir) != DATA_DIR:
        raise PipelineError(
            f"paths.data_dir={cfg.paths.data_dir!r}, but dvc.yaml's stages read and write {DATA_DIR}/; keep the default"
        )
    return overrides


def run_path(experiment: str, variant: str, seed: int) -> Path:
    """A matrix item's run directory: dvc.yaml's `outs` of the train stages name the same path."""
    return RUNS_DIR / experiment / variant / f"seed_{seed}"


# ---------------------------------------------------------------------------------------------------
# The three stages
# ---------------------------------------------------------------------------------------------------


def covering(configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One data config that serves every experiment in `configs` (experiment -> data config).

    Keys must agree, except the twin sizes in SIZE_KEYS, which take the largest request (None: the
    whole dataset): the smaller ones read a prefix of it, byte for byte the twin they would generate.
    """
    merged = dict(next(iter(configs.values())))
    for key in merged:
        values = {name: config.get(key) for name, config in configs.items()}
        if len({json.dumps(v) for v in values.values()}) == 1:
            continue
        if key not in SIZE_KEYS:
            raise PipelineError(
                f"experiments read one dataset but disagree on data.{key} ({values}); set it in "
                "configs/data/ or in the presets"
            )
        merged[key] = None if None in values.values() else max(values.values())
    return merged


def prepare(params: Params, dataset: str) -> Path:
    """Make data/<directory of `dataset`> hold what every experiment of params.yaml reads from it."""
    from .data.prepare import dataset_module

    directory, _ = params.data_dir(dataset)
    readers = {}
    for experiment in params.experiments:
        _, name, _, data = experiment_data(params, experiment)
        if name == dataset:
            readers[experiment] = data
    if not readers:
        raise PipelineError(
            f"no experiment in {PARAMS_FILE} reads {dataset}; remove data.{dataset} there and the "
            f"prepare_{dataset} stage from dvc.yaml, or add an experiment that uses it"
        )
    module = dataset_module(dataset)
    merged = OmegaConf.merge(OmegaConf.structured(module.Config), covering(readers))
    cfg = OmegaConf.to_object(merged)
    if Path(module.dataset_dir(cfg)) != directory:
        raise PipelineError(
            f"the experiments read {dataset} from {module.dataset_dir(cfg)}, but {PARAMS_FILE} and dvc.yaml "
            f"expect {directory}; keep paths.data_dir at its default ({DATA_DIR})"
        )
    log.info("preparing %s for %s", directory, ", ".join(readers))
    module.prepare(cfg)
    manifest = read_manifest(directory)
    for name, record in manifest.files.items():
        log.info("  %-20s %12s bytes  sha256 %s", name, f"{record.bytes:,}", record.sha256)
    return directory


def train(params: Params, experiment: str, variant: str, seed: int) -> int:
    """Run `python -m <package>.train` with the overrides of one matrix item, in this process."""
    from .train import run

    overrides = train_overrides(params, experiment, variant, seed)
    command = [f"{Path(run.__file__).with_name('__main__.py')}", *overrides]
    print(f"python -m {__package__}.train {shlex.join(overrides)}", flush=True)
    sys.argv = command  # Hydra reads the overrides from sys.argv; the environment record stores the command
    try:
        run.main()
    except SystemExit as exit_:  # Hydra and run.main end with sys.exit on errors
        return int(exit_.code or 0)
    return 0


def check_runs(params: Params, experiment: str) -> Path:
    """pipeline/<experiment> holds a finished run for every (variant, seed) of params.yaml.

    Folders left from an earlier params.yaml (other seeds or variants) are named in the log and left out
    of the comparison, which holds exactly the runs params.yaml asks for.
    """
    plan = params.plan(experiment)
    root = RUNS_DIR / experiment
    expected = {run_path(experiment, variant, seed) for variant in plan.variants for seed in params.seeds}
    present = {seed_dir for variant_dir in _dirs(root) for seed_dir in _dirs(variant_dir)}
    stale = sorted(str(p) for p in present - expected)
    if stale:
        log.info("not compared (not among the variants and seeds of %s): %s", PARAMS_FILE, ", ".join(stale))
    unfinished = sorted(str(p) for p in expected if not (p / "metrics.json").is_file())
    if unfinished:
        raise PipelineError(
            f"{', '.join(unfinished)} {'has' if len(unfinished) == 1 else 'have'} no metrics.json; if a variant "
            f"was added to {PARAMS_FILE}, add {root}/<variant> to the deps of this experiment's compare stage "
            "in dvc.yaml so that DVC trains it first"
        )
    return root


def _dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")) if path.is_dir() else []


def summary(comparison: dict[str, Any]) -> dict[str, Any]:
    """The compared metric per variant: mean, std and every seed (comparison.md has the rest), for `dvc metrics`."""
    metric = comparison["metric"]
    return {
        variant: {
            metric: {
                "mean": stats["mean"],
                "std": stats["std"],
                **{f"seed_{seed}": value for seed, value in stats["values"].items()},
            }
        }
        for variant, stats in comparison["variants"].items()
    }


def curves(runs: Sequence[Path]) -> list[dict[str, Any]]:
    """Learning curves of `runs` in long form, one row per (run, metric, step), for `dvc plots show`.

    Rows are {"run": "<variant>/seed_<n>", "variant", "seed", "metric", "step", "value"}, read from each
    run's metrics.jsonl: every numeric key except step, epoch and the per-layer gradient norms, thinned to
    at most MAX_CURVE_POINTS steps per run and metric (the last step always kept).
    """
    rows = []
    for path in runs:
        variant, seed = path.parent.name, int(path.name.removeprefix("seed_"))
        series: dict[str, list[tuple[int, float]]] = {}
        for line in (path / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            for key, value in record.items():
                if key in ("step", "epoch") or key.startswith("grad_norm/") or isinstance(value, bool | str):
                    continue
                series.setdefault(key, []).append((record["step"], value))
        for metric, points in sorted(series.items()):
            kept = points[:: -(-len(points) // MAX_CURVE_POINTS)]  # every k-th, k = ceil(len / MAX)
            if kept[-1] != points[-1]:
                kept.append(points[-1])  # the final value is the one metrics.json reports
            run = f"{variant}/seed_{seed}"
            rows += [
                {"run": run, "variant": variant, "seed": seed, "metric": metric, "step": step, "value": value}
                for step, value in kept
            ]
    return rows


def compare(params: Params, experiment: str) -> int:
    """`python -m <package>.compare` on the experiment's runs, plus the summary and curves DVC shows."""
    from rich.console import Console

    from .compare import compare as compare_runs
    from .stats.load import ComparisonError
    from .stats.tables import print_report

    plan = params.plan(experiment)
    root = check_runs(params, experiment)
    try:
        report = compare_runs(root, [plan.metric], settings=plan.variants, seeds=params.seeds)
    except ComparisonError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_report(report, Console())
    atomic_write_json(root / "summary.json", summary(report))
    runs = [root / variant / f"seed_{seed}" for variant in plan.variants for seed in params.seeds]
    atomic_write_text(root / "curves.json", json.dumps(curves(runs), separators=(",", ":"), sort_keys=True) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.pipeline",
        description="The stages of dvc.yaml, driven by params.yaml (see docs/pipeline.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_cmd = commands.add_parser("prepare", help="prepare one dataset for every experiment that reads it")
    prepare_cmd.add_argument("dataset", help="a key of params.yaml's data, e.g. cifar10")
    train_cmd = commands.add_parser("train", help="train one (experiment, variant, seed) of params.yaml")
    train_cmd.add_argument("experiment", help="a key of params.yaml's experiments, e.g. vit_cifar10")
    train_cmd.add_argument("variant", help="one of the experiment's variants, e.g. gap")
    train_cmd.add_argument("seed", type=int, help="one of params.yaml's seeds")
    compare_cmd = commands.add_parser("compare", help="compare the variants of one experiment over its seeds")
    compare_cmd.add_argument("experiment", help="a key of params.yaml's experiments")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        params = Params.read()
        if args.command == "prepare":
            prepare(params, args.dataset)
            return 0
        if args.command == "train":
            return train(params, args.experiment, args.variant, args.seed)
        return compare(params, args.experiment)
    except (PipelineError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
