"""Show an environment record as a table: `python -m {{ cookiecutter.package }}.env [RUN] [--json]`.

Without RUN it collects the record of this machine now (what a run started here would record); with a
run directory, or the key=value overrides of the command that trained it, it shows that run's
environment.json. `--packages` lists every installed package too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .config import locate_run
from .repro.environment import collect_environment
from .repro.rundir import flatten


def load_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "environment.json" if run_dir.is_dir() else run_dir
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; expected a run directory holding environment.json")
    return json.loads(path.read_text())


def environment_table(record: dict[str, Any], with_packages: bool = False) -> Table:
    """One row per leaf of the record; packages summarised unless asked for."""
    table = Table(title="Environment", show_lines=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    shown = dict(record)
    packages = shown.pop("packages", {})
    for key, value in flatten(shown).items():
        table.add_row(key, json.dumps(value) if isinstance(value, list | dict) else str(value))
    if with_packages:
        for name, version in packages.items():
            table.add_row(f"packages.{name}", version)
    else:
        table.add_row("packages", f"{len(packages)} installed (--packages lists them)")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m {{ cookiecutter.package }}.env", description=__doc__)
    what = "a run directory, or the overrides that trained it (default: this machine)"
    parser.add_argument("run", nargs="*", metavar="RUN", help=what)
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.add_argument("--packages", action="store_true", help="list every installed package")
    args = parser.parse_intermixed_args(argv)
    try:
        record = load_record(locate_run(args.run)) if args.run else collect_environment()[0]
    except (FileNotFoundError, json.JSONDecodeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
    else:
        Console().print(environment_table(record, args.packages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
