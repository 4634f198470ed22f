"""Where metrics go: always the run directory's metrics.jsonl{% if cookiecutter.__wandb %}, and Weights & Biases when chosen{% endif %}.

The local JSONL log is the source of truth: it is written by the run itself, deterministic, and
survives a kill (a resume truncates it back to the last checkpoint, so no step is logged twice).
{%- if cookiecutter.__wandb %}
wandb is a view of it for dashboards: one wandb run per training run, named
<experiment>/<variant>/seed_<seed> and grouped by experiment. Without an API key it runs offline
(`wandb sync` uploads later), WANDB_MODE is respected, and any wandb failure is a warning, never a
crashed training run.
{%- endif %}
"""

from __future__ import annotations

import json
import logging
import math
{%- if cookiecutter.__wandb %}
import os
{%- endif %}
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class MetricsLog:
    """Append-only JSONL, one object per line, keys sorted so equal records are equal bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 -- kept open for the whole run, closed in close()

    def rewind(self, offset: int) -> None:
        """Cut the log back to `offset` bytes: what a resumed run replays must not be logged twice."""
        self._file.truncate(offset)
        self._file.seek(offset)

    @property
    def offset(self) -> int:
        """Bytes written so far: what a checkpoint records to truncate back to."""
        return self._file.tell()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({k: _plain(v) for k, v in record.items()}, sort_keys=True)
        self._file.write(line.encode() + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _plain(value: Any) -> Any:
    """JSON-safe numbers: tensors to floats, NaN/inf to strings (JSON has no literal for them)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class Tracker:
    """Fan metrics out to the local log{% if cookiecutter.__wandb %} and, when configured, to wandb{% endif %}. Only rank 0 makes one."""

    def __init__(
        self,
        tracker_cfg: Any,
        metrics_path: Path,
        name: str,
        group: str,
        config: dict[str, Any],
        environment: dict[str, Any] | None = None,
    ) -> None:
        self.local = MetricsLog(metrics_path)
        self.remote = None
{%- if cookiecutter.__wandb %}
        if tracker_cfg.name == "wandb":
            self.remote = _start_wandb(tracker_cfg, metrics_path.parent, name, group, config, environment)
{%- endif %}

    @property
    def offset(self) -> int:
        return self.local.offset

    def rewind(self, offset: int) -> None:
        self.local.rewind(offset)

    def log(self, record: dict[str, Any]) -> None:
        """Log one record; it must carry "step" (the optimizer step it belongs to)."""
        self.local.write(record)
{%- if cookiecutter.__wandb %}
        if self.remote is not None:
            self._guard(lambda: self.remote.log({k: _plain(v) for k, v in record.items()}, step=record["step"]))
{%- endif %}

    def summary(self, metrics: dict[str, Any]) -> None:
        """Final metrics (the content of metrics.json)."""
{%- if cookiecutter.__wandb %}
        if self.remote is not None:
            self._guard(lambda: self.remote.summary.update(metrics))
{%- else %}
        del metrics  # the run directory's metrics.json already holds them
{%- endif %}

    def close(self) -> None:
        self.local.close()
{%- if cookiecutter.__wandb %}
        if self.remote is not None:
            self._guard(lambda: self.remote.finish())
            self.remote = None

    def _guard(self, call: Any) -> None:
        """A tracking failure must never end a training run: warn once and continue locally."""
        try:
            call()
        except Exception as err:
            log.warning("wandb failed (%s: %s); continuing with the local metrics log only", type(err).__name__, err)
            self.remote = None


def _start_wandb(
    cfg: Any, run_dir: Path, name: str, group: str, config: dict[str, Any], environment: dict[str, Any] | None
) -> Any:
    """wandb.init for this run, offline unless an API key is available, or None when it fails."""
    try:
        import wandb

        mode = cfg.mode or os.environ.get("WANDB_MODE") or ("online" if _has_wandb_key() else "offline")
        return wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            name=name,
            group=group,
            tags=list(cfg.tags),
            mode=mode,
            dir=str(run_dir),
            config={**config, "environment": environment or {}},
            reinit="finish_previous",  # Hydra multirun trains several runs in one process
        )
    except Exception as err:
        log.warning("wandb could not start (%s: %s); logging to the run directory only", type(err).__name__, err)
        return None


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")
{%- endif %}
