"""Re-run a recorded run and check that it gives the same numbers:

    python -m {{ cookiecutter.package }}.reproduce runs/<experiment>/<setting>/seed_<n> [--out DIR] [--rtol 0]
    python -m {{ cookiecutter.package }}.reproduce experiment=<name> trainer=smoke [seed=N ...]   # the run it trained

Trains again from the run's own config.yaml in a fresh directory (default
runs/.reproduce/<experiment>/<setting>/seed_<n>), compares metrics.json key by key, and lists the
differences between the two environment records (packages, commit, hardware, threads, data hashes)
that could explain a mismatch. Exit status: 0 = match, 1 = mismatch, 2 = the run cannot be reproduced
(not finished, files missing). On CPU with the same environment a match is exact, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.table import Table

from .config import locate_run
from .data.files import WriteError
from .repro.rundir import RunDirError, flatten, read_config
from .tasks import DATA_CONFIGS, MODEL_CONFIGS
from .train.checkpoint import CheckpointError

# Environment fields worth showing when metrics differ (the rest is timestamps and paths).
EXPLAINING_FIELDS = (
    "git.commit",
    "git.dirty",
    "git.diff_sha256",
    "python.version",
    "torch.",
    "platform.cpu",
    "platform.cores",
    "platform.machine",
    "accelerators.",
    "env.",
    "seed.",
)


class ReproduceError(RuntimeError):
    """The run cannot be reproduced as asked."""


def load_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, metrics, environment) of a finished run."""
    files = {name: run_dir / name for name in ("config.yaml", "metrics.json", "environment.json")}
    missing = [name for name, path in files.items() if not path.exists()]
    if missing:
        raise ReproduceError(
            f"{run_dir} lacks {', '.join(missing)}; expected a finished run directory "
            "(runs/<experiment>/<setting>/seed_<n>)"
        )
    config = read_config(files["config.yaml"], fix="a run cannot be reproduced without it")
    return config, read_json(files["metrics.json"]), read_json(files["environment.json"])


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a run's file; one line naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReproduceError(f"{path} is not valid JSON ({err}); the run's record is damaged") from None
    if not isinstance(data, dict):
        raise ReproduceError(f"{path} holds a {type(data).__name__}; expected a JSON object")
    return data


def typed_config(config: dict[str, Any]) -> DictConfig:
    """The recorded plain config, validated against the schemas again (model/data by their `name`)."""
    from .config import TrainConfig

    base = OmegaConf.structured(TrainConfig)
    for group, registry in (("model", MODEL_CONFIGS), ("data", DATA_CONFIGS)):
        name = config[group]["name"]
        if name not in registry:
            raise ReproduceError(
                f"{group}.name={name!r} is not part of this project; expected one of {sorted(registry)}"
            )
        base[group] = OmegaConf.structured(registry[name])
    try:
        return OmegaConf.merge(base, config)  # type: ignore[return-value]
    except OmegaConfBaseException as err:  # a key the schemas lack (a run made with `+key=` before they refused it)
        key = getattr(err, "full_key", None) or "a key"
        raise ReproduceError(
            f"its config.yaml has {key}, which the schemas do not declare ({type(err).__name__}); remove it "
            "from config.yaml to reproduce the run as the current code defines it"
        ) from None


def compare_metrics(
    original: dict[str, Any], rerun: dict[str, Any], rtol: float = 0.0
) -> list[tuple[str, Any, Any, str]]:
    """[(key, original, rerun, how they differ)] for every key that does not match."""
    differences = []
    for key in sorted(original.keys() | rerun.keys()):
        a, b = original.get(key, "<absent>"), rerun.get(key, "<absent>")
        if a == b:
            continue
        if isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=rtol, abs_tol=0):
            continue
        how = (
            f"{b - a:+.3g} ({(b - a) / abs(a):+.2%})"
            if isinstance(a, int | float) and isinstance(b, int | float) and a
            else "differs"
        )
        differences.append((key, a, b, how))
    return differences


def compare_environments(original: dict[str, Any], rerun: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Environment differences that can change numbers: packages, code, hardware, threads, data."""
    differences = []
    a, b = (
        flatten({k: v for k, v in original.items() if k != "packages"}),
        flatten({k: v for k, v in rerun.items() if k != "packages"}),
    )
    for key in sorted(a.keys() | b.keys()):
        if key.startswith(EXPLAINING_FIELDS) and a.get(key) != b.get(key):
            differences.append((key, a.get(key), b.get(key)))
    pa, pb = original.get("packages", {}), rerun.get("packages", {})
    for name in sorted(pa.keys() | pb.keys()):
        if pa.get(name) != pb.get(name):
            differences.append((f"packages.{name}", pa.get(name, "<absent>"), pb.get(name, "<absent>")))
    data_a = {d["path"]: d.get("sha256") for d in original.get("data", [])}
    data_b = {d["path"]: d.get("sha256") for d in rerun.get("data", [])}
    for path in sorted(data_a.keys() | data_b.keys()):
        if data_a.get(path) != data_b.get(path):
            differences.append((f"data {path}", data_a.get(path), data_b.get(path)))
    return differences


def reproduce(run_dir: Path, out: Path, rtol: float = 0.0) -> tuple[list, list, dict[str, Any]]:
    """Train the recorded config again into `out`.

    Returns:
        (metric differences, environment differences, the rerun's metrics).
    """
    from .train.run import run_training

    original, rerun_dir = run_dir.resolve(), out.resolve()
    if rerun_dir == original or original in rerun_dir.parents or rerun_dir in original.parents:
        # the rerun overwrites `out`: it must never hold, or sit inside, the run it checks
        raise ReproduceError(
            f"--out {out} overlaps the run being checked ({run_dir}); expected a folder outside it (pass --out)"
        )
    if (out / "metrics.json").exists() and ".reproduce" not in rerun_dir.parts:
        raise ReproduceError(  # the rerun replaces whatever `out` holds: only its own scratch, never a run
            f"--out {out} holds a finished run (metrics.json); expected an empty folder or one under "
            "runs/.reproduce/ (the default)"
        )
    config, metrics, environment = load_run(run_dir)
    cfg = typed_config(config)
    cfg.run.dir = str(out)
    cfg.run.overwrite = True  # `out` is scratch space for this check
    cfg.tracker.name = "none"  # a re-check is not a new experiment on the dashboard
    run_training(cfg)
    rerun = json.loads((out / "metrics.json").read_text())
    rerun_env = json.loads((out / "environment.json").read_text())
    return compare_metrics(metrics, rerun, rtol), compare_environments(environment, rerun_env), rerun


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m {{ cookiecutter.package }}.reproduce", description=__doc__)
    what = "a finished run: its directory, or the key=value overrides that trained it"
    parser.add_argument("run", nargs="+", metavar="RUN", help=what)
    parser.add_argument(
        "--out", type=Path, help="where to rerun (default runs/.reproduce/<experiment>/<setting>/seed_<n>)"
    )
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (0 = exact; GPUs may need 1e-6)")
    args = parser.parse_intermixed_args(argv)
    console = Console()
    try:
        args.run_dir = locate_run(args.run)
        config, _, _ = load_run(args.run_dir)
        setting = args.run_dir.resolve().parent.name  # <variant>-<digest>, run.name or the pipeline's <variant>
        scratch = Path(config["paths"]["runs_dir"], ".reproduce", config["experiment"], setting)
        out = args.out or scratch / args.run_dir.name
        metric_diffs, env_diffs, _ = reproduce(args.run_dir, out, args.rtol)
    except (ReproduceError, RunDirError, CheckpointError, WriteError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    if not metric_diffs:
        console.print(
            f"[bold green]match[/]: {out}/metrics.json equals {args.run_dir}/metrics.json"
            + (" (exactly)" if args.rtol == 0 else f" (rtol={args.rtol})")
        )
    else:
        table = Table(title=f"[bold red]mismatch[/]: {len(metric_diffs)} metric(s) differ")
        for column in ("metric", "original", "rerun", "difference"):
            table.add_column(column)
        for key, a, b, how in metric_diffs:
            table.add_row(key, str(a), str(b), how)
        console.print(table)
    if env_diffs:
        table = Table(title="Environment differences that may explain differences")
        for column in ("field", "original", "rerun"):
            table.add_column(column, overflow="fold")
        for key, a, b in env_diffs:
            table.add_row(key, str(a), str(b))
        console.print(table)
    else:
        console.print("environment: no differences in packages, code, hardware, threads or data")
    return 1 if metric_diffs else 0


if __name__ == "__main__":
    sys.exit(main())
