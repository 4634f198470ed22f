"""Look up the DVC hash of the files a run reads, from `dvc.lock` and `*.dvc` files.

Reading DVC's own lock files (plain YAML) instead of importing DVC keeps run start-up fast and works
where DVC is not initialised: an input that DVC does not track simply gets no `dvc` entry.
An input inside a tracked directory gets the directory's hash (DVC hashes directories as a whole).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


def _tracked_outputs(root: Path) -> list[dict[str, Any]]:
    """Every output DVC knows of: [{"path", "md5", "source"}], paths relative to `root`."""
    outputs = []
    lock = root / "dvc.lock"
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage, entry in stages.items():
            for out in entry.get("outs", []):
                outputs.append({"path": out["path"], "md5": out.get("md5"), "source": f"dvc.lock:{stage}"})
    for dvcfile in _dvc_files(root):
        base = dvcfile.parent.relative_to(root)
        for out in (yaml.safe_load(dvcfile.read_text()) or {}).get("outs", []):
            outputs.append(
                {"path": str(base / out["path"]), "md5": out.get("md5"), "source": str(dvcfile.relative_to(root))}
            )
    return outputs


SKIP_DIRS = {"runs", "venv", "node_modules", "wandb", "multirun", "outputs", "__pycache__"}


def _dvc_files(root: Path) -> list[Path]:
    """`*.dvc` tracking files, without descending into hidden folders (.git, .dvc, .venv) or run outputs."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and d not in SKIP_DIRS]
        found += [Path(directory) / name for name in files if name.endswith(".dvc")]
    return sorted(found)


def dvc_hashes(inputs: list[Path], root: Path) -> dict[str, dict[str, Any]]:
    """{str(input): {"path": tracked output, "md5": hash, "source": where DVC records it}}."""
    if not inputs:
        return {}
    root = root.resolve()
    outputs = _tracked_outputs(root)
    found = {}
    for path in inputs:
        absolute = path.resolve()
        try:
            relative = absolute.relative_to(root)
        except ValueError:
            continue  # outside the project: DVC cannot track it
        for out in outputs:
            tracked = Path(out["path"])
            if relative == tracked or tracked in relative.parents:
                found[str(path)] = out
                break
    return found
