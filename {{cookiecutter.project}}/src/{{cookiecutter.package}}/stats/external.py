"""Scores from elsewhere: another codebase's results, or a paper's reruns, compared like this project's runs.

A CSV file with a header row and one row per run:

    variant,seed,test/acc            # one column per metric; any name, as --metric names it
    full,0,0.912
    full,1,0.905
    no_pos_embedding,0,0.861
    ...

Every statistic is computed as for runs of this project, except one check: such scores come without the
configs that prove two variants differ only in what the ablation changes, so that check is skipped and
the report says so (`config_check` in comparison.json, a line above every table).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .load import ComparisonError, Run, RunSet

CONFIG_CHECK_SKIPPED = (
    "skipped: the scores come from {path}, not from runs of this project, so no config shows that the "
    "variants differ only in what their ablation changes"
)


def load_scores(path: str | Path) -> RunSet:
    """The runs a CSV of variant, seed and metric columns describes (see the module docstring).

    Raises:
        ComparisonError: the file is missing, lacks the variant or seed column, repeats a (variant, seed),
            or holds a value that is not a finite number; the message names the file and the row.
    """
    path = Path(path)
    if not path.is_file():
        raise ComparisonError(f"{path} does not exist; expected a CSV file with columns variant, seed, <metric>")
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    columns = list(rows[0]) if rows else []
    if "variant" not in columns or "seed" not in columns or len(columns) < 3:
        raise ComparisonError(f"{path} has columns {columns}; expected variant, seed and at least one metric")
    runs: dict[tuple[str, int], Run] = {}
    for line, row in enumerate(rows, start=2):
        try:
            seed = int(row["seed"])
            metrics = {name: float(row[name]) for name in columns if name not in ("variant", "seed")}
        except (TypeError, ValueError):
            raise ComparisonError(f"{path}:{line}: {row}; expected an integer seed and a number per metric") from None
        if not all(math.isfinite(value) for value in metrics.values()):
            raise ComparisonError(f"{path}:{line}: {row}; expected finite numbers (a diverged run is not a score)")
        key = (row["variant"], seed)
        if key in runs:
            raise ComparisonError(f"{path}:{line}: variant {key[0]!r} has seed {seed} twice; expected one row per run")
        runs[key] = Run(row["variant"], seed, path, metrics, config={}, variant_keys=(), train_seconds=None)
    if not runs:
        raise ComparisonError(f"{path} has no rows; expected one row per run")
    return RunSet(root=path.parent, runs=tuple(runs.values()), skipped=())
