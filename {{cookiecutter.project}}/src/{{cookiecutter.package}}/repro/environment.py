"""Record everything about where and how a run ran, so a result can be traced and re-created.

`collect_environment()` returns a JSON-ready dict with the keys of the run-directory contract:
command, argv, started_at, git, python, packages, platform, torch, accelerators, seed, data, env.
Every probe that can fail (no git, no GPU, no nvidia-smi) records *why* its field is empty instead of
raising: an environment record must never be the reason a run did not start.

Secrets: environment variables are copied from an allow-list only. API keys and tokens (WANDB_API_KEY,
AWS_SECRET_ACCESS_KEY, HF_TOKEN, GITHUB_TOKEN, ...) never enter the record, whatever their names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from ..data.files import sha256_file

# Variables that change what a run computes or where it ran; nothing else is recorded.
ENV_ALLOWLIST = (
    "CUDA_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NCCL_ALGO",
    "NCCL_PROTO",
    "TORCH_CUDNN_V8_API_ENABLED",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_PARTITION",
    "SLURM_NODELIST",
    "SLURM_NTASKS",
    "SLURM_CPUS_PER_TASK",
    "WANDB_MODE",
    "HYDRA_FULL_ERROR",
)


def _run_bytes(cmd: list[str], cwd: Path | None = None) -> bytes | None:
    """stdout of a command as bytes, or None when it is missing or fails (probes must never raise)."""
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    """stdout of a command as text (undecodable bytes replaced), or None when it is missing or fails."""
    out = _run_bytes(cmd, cwd)
    return None if out is None else out.decode("utf-8", errors="replace")


# Untracked files are listed by name (a new module the run imported shows up), up to this many.
MAX_UNTRACKED = 50


def git_info(cwd: Path | None = None) -> tuple[dict[str, Any], bytes]:
    """Commit, branch, dirty state and untracked files; also the diff against HEAD, as git wrote it.

    `cwd`: where git is asked. By default, this package's source when it sits in a work tree (an
    editable install runs the project's own files wherever the command starts), else the directory the
    command runs in (a plain install has no work tree of its own: the best guess left).

    The diff stays bytes end to end (saved as git.diff, hashed as is): decoding would fail on files in
    other encodings and would drop the CRs of CRLF files, and `git apply` needs them.
    """
    if shutil.which("git") is None:
        return {"available": False, "reason": "git is not installed"}, b""
    places = [cwd] if cwd else [Path(__file__).resolve().parents[1], Path.cwd()]
    for cwd in places:
        top = _run(["git", "rev-parse", "--show-toplevel"], cwd)
        if top is not None:
            break
    if top is None:
        return {"available": False, "reason": f"{cwd} is not inside a git repository"}, b""
    commit = (_run(["git", "rev-parse", "HEAD"], cwd) or "").strip() or None
    branch = (_run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd) or "").strip() or None
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd) or ""
    others = _run(["git", "ls-files", "--others", "--exclude-standard", "--full-name", "-z"], top.strip()) or ""
    untracked = sorted(name for name in others.split("\0") if name)
    diff = (_run_bytes(["git", "diff", "HEAD", "--binary"], cwd) or b"") if commit else b""
    info: dict[str, Any] = {
        "available": True,
        "root": top.strip(),
        "commit": commit,
        "branch": branch,
        "dirty": bool(status.strip()),  # tracked files changed (git's meaning: untracked files are listed apart)
        "diff_sha256": hashlib.sha256(diff).hexdigest() if diff else None,
        "untracked": untracked[:MAX_UNTRACKED],
    }
    if len(untracked) > MAX_UNTRACKED:
        info["untracked_total"] = len(untracked)
    if commit is None:
        info["reason"] = "the repository has no commits yet"
    return info, diff


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    """Name and Version from the metadata's header block.

    `dist.metadata` runs the email parser over the whole file, long description included: 8x slower
    over a few hundred packages (about 90 ms a run), and every run records its packages.
    """
    fields: dict[str, str] = {}
    for line in (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "").splitlines():
        if not line:
            break  # the headers end at the first blank line; the description follows
        key, _, value = line.partition(":")
        if key in ("Name", "Version"):
            fields.setdefault(key, value.strip())
    return fields.get("Name"), fields.get("Version")


def packages() -> dict[str, str]:
    """Every installed distribution and its version (what `pip freeze` would list), sorted by name."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = _name_and_version(dist)
        if name and version:
            found.setdefault(name.lower(), version)  # the first on sys.path is the one Python imports
    return dict(sorted(found.items()))


def cpu_name() -> str | None:
    """The CPU model (from /proc/cpuinfo on Linux, where `platform.processor()` is often empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="ignore").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def platform_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "os": platform.system(),
        "release": platform.release(),
        "kernel": platform.version(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "memory_bytes": None,
    }
    try:
        info["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        info["memory_reason"] = "os.sysconf cannot report physical memory on this platform"
    return info


def torch_info() -> dict[str, Any]:
    cudnn = torch.backends.cudnn
    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn.version() if cudnn.is_available() else None,
        "num_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": cudnn.deterministic,
        "cudnn_benchmark": cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": cudnn.allow_tf32,
        "default_dtype": str(torch.get_default_dtype()),
    }


def accelerator_info() -> dict[str, Any]:
    if not torch.cuda.is_available():
        reason = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        return {"count": 0, "devices": [], "reason": reason}
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            {
                "name": props.name,
                "memory_bytes": props.total_memory,
                "capability": f"{props.major}.{props.minor}",
                "multiprocessors": props.multi_processor_count,
            }
        )
    driver = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return {
        "count": len(devices),
        "devices": devices,
        "driver": driver.splitlines()[0].strip() if driver else None,
        **({} if driver else {"driver_reason": "nvidia-smi is not available"}),
    }


def data_info(inputs: list[Path], root: Path | None = None) -> list[dict[str, Any]]:
    """Path, size and sha256 of every input file, plus the DVC hash where DVC tracks it."""
    from .dvc import dvc_hashes  # local import: only needed when there are inputs

    records = []
    dvc = dvc_hashes(inputs, root or Path.cwd())
    for path in inputs:
        record: dict[str, Any] = {"path": str(path)}
        if path.exists():
            record["bytes"] = path.stat().st_size
            record["sha256"] = sha256_file(path)
        else:
            record["reason"] = "missing"
        if str(path) in dvc:
            record["dvc"] = dvc[str(path)]
        records.append(record)
    return records


def collect_environment(
    seed: Any = None, inputs: list[Path] | None = None, cwd: Path | None = None
) -> tuple[dict[str, Any], bytes]:
    """The environment record and the git diff (saved beside it as git.diff when the tree is dirty).

    `cwd`: where git is asked (default: see `git_info`) and DVC paths are resolved.
    """
    git, diff = git_info(cwd)
    record = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "argv": list(sys.argv),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": packages(),
        "platform": platform_info(),
        "torch": torch_info(),
        "accelerators": accelerator_info(),
        "seed": seed,
        "data": data_info(inputs or [], cwd),
        "env": {name: os.environ[name] for name in ENV_ALLOWLIST if name in os.environ},
    }
    return record, diff
