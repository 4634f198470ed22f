"""Look up the DVC hash of the files a run reads, from `dvc.lock` and `*.dvc` files.

Reading DVC's own files (plain YAML and INI) instead of importing DVC keeps run start-up fast and works
where DVC is not initialised: an input that DVC does not track simply gets no `dvc` entry.

DVC hashes a tracked directory as a whole (`md5: <hash>.dir`); the listing behind that hash, a JSON list
of `{"relpath", "md5"}` in the cache (`.dvc/cache/files/md5/<2>/<30>.dir`), gives each file's own md5.
So an input inside a tracked directory records the directory's hash, the file's md5 as DVC committed it,
and whether the file on disk still has that md5:

    {"path": "data/cifar10", "md5": "3f2...dir", "source": "dvc.lock:prepare_cifar10",
     "file_md5": "9c1...", "modified": false}

Under `dvc repro` a stage's lock entry is written as soon as the stage finishes, so a training stage
sees the hashes of the data its `prepare` stage just made. Paths in `dvc.lock` are relative to the
stage's `wdir` (read from the `dvc.yaml` beside it), those in a `.dvc` file to the file's folder.
"""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path
from typing import Any

import yaml

from ..data.files import file_hash

SKIP_DIRS = {"runs", "venv", "node_modules", "wandb", "multirun", "outputs", "__pycache__"}


def _yaml(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}  # a broken DVC file is DVC's to report; the environment record just lacks the hash
    return content if isinstance(content, dict) else {}


def _dvc_files(root: Path) -> list[Path]:
    """`dvc.lock` and `*.dvc` files, without descending into hidden folders (.git, .dvc, .venv) or run outputs."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and d not in SKIP_DIRS]
        found += [Path(directory) / name for name in files if name == "dvc.lock" or name.endswith(".dvc")]
    return sorted(found)


def _stage_wdirs(dvc_yaml: Path) -> dict[str, str]:
    """Stage name -> wdir from a dvc.yaml (templated wdirs, `${...}`, are left out: DVC's to resolve)."""
    stages = _yaml(dvc_yaml).get("stages") or {}
    return {
        name: str(stage["wdir"])
        for name, stage in stages.items()
        if isinstance(stage, dict) and "wdir" in stage and "${" not in str(stage["wdir"])
    }


def tracked_outputs(root: Path) -> list[dict[str, Any]]:
    """Every output DVC records under `root`: [{"path", "md5", "source"}], paths relative to `root`."""

    def record(wdir: Path, out: dict[str, Any], source: str) -> dict[str, Any]:
        path = Path(os.path.relpath(os.path.normpath(wdir / out["path"]), root)).as_posix()
        return {"path": path, "md5": out.get("md5"), "source": source}

    outputs = []
    for dvcfile in _dvc_files(root):
        base, content, source = dvcfile.parent, _yaml(dvcfile), dvcfile.relative_to(root).as_posix()
        if dvcfile.name == "dvc.lock":
            wdirs = _stage_wdirs(base / "dvc.yaml")
            for stage, entry in (content.get("stages") or {}).items():
                wdir = base / wdirs.get(stage.split("@")[0], ".")  # train@full-0 belongs to stage train
                outputs += [record(wdir, out, f"{source}:{stage}") for out in entry.get("outs") or []]
        else:
            wdir = base / str(content.get("wdir", "."))
            outputs += [record(wdir, out, source) for out in content.get("outs") or []]
    return outputs


def cache_dir(root: Path) -> Path:
    """The local cache: `cache.dir` from .dvc/config.local or .dvc/config (relative to .dvc/), else .dvc/cache."""
    for name in ("config.local", "config"):
        config = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            config.read(root / ".dvc" / name, encoding="utf-8")
        except configparser.Error:
            continue
        if config.has_option("cache", "dir"):
            return (root / ".dvc" / os.path.expanduser(config.get("cache", "dir"))).resolve()
    return root / ".dvc" / "cache"


def directory_listing(root: Path, md5: str) -> dict[str, str]:
    """{relpath: md5} of a tracked directory from its `.dir` object in the cache, or {} if it is not there."""
    digest = md5.removesuffix(".dir")
    cache = cache_dir(root)
    for path in (cache / "files" / "md5" / digest[:2] / f"{digest[2:]}.dir", cache / digest[:2] / f"{digest[2:]}.dir"):
        if path.is_file():
            try:
                return {entry["relpath"]: entry["md5"] for entry in json.loads(path.read_text())}
            except (ValueError, KeyError, TypeError):
                return {}
    return {}


def dvc_hashes(inputs: list[Path], root: Path) -> dict[str, dict[str, Any]]:
    """{str(input): DVC's record of it} for every input DVC tracks (see the module docstring)."""
    if not inputs:
        return {}
    root = root.resolve()
    outputs = tracked_outputs(root)
    found = {}
    for path in inputs:
        try:
            relative = path.resolve().relative_to(root)
        except ValueError:
            continue  # outside the project: DVC cannot track it
        for out in outputs:
            tracked = Path(out["path"])
            if relative != tracked and tracked not in relative.parents:
                continue
            record = dict(out)
            md5 = out.get("md5") or ""
            expected = md5 if relative == tracked else None
            if md5.endswith(".dir"):
                expected = directory_listing(root, md5).get(relative.relative_to(tracked).as_posix())
            if expected and path.is_file():
                record["file_md5"] = expected
                record["modified"] = file_hash(path, "md5") != expected  # what `dvc status` would report
            found[str(path)] = record
            break
    return found
