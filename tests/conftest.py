"""Fixtures of the template tests: bake projects once per option combination, run their tools.

Baking is cheap (well under a second); installing a project and running its pipelines is not, so
those steps happen for a few combinations only and are marked `slow`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def pytest_configure(config: pytest.Config) -> None:
    # pytest-cookies bakes from --template (default "."); make it independent of the cwd.
    if config.option.template == ".":
        config.option.template = str(ROOT)


def tool(name: str) -> str:
    """A console script of the environment running the tests (ruff, dvc, cruft, ...)."""
    candidate = BIN / name
    return str(candidate) if candidate.exists() else name


def run(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run a command; on failure, fail the test with its full output."""
    full_env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_ERROR_REPORTING": "false",
        "PYTHONHASHSEED": "0",
        **(env or {}),
    }
    result = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        command = " ".join(map(str, cmd))
        pytest.fail(f"`{command}` exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


class Baker:
    """Bake a combination once per session (pytest-cookies' session fixture), keyed by its options."""

    def __init__(self, cookies_session: Any) -> None:
        self.cookies = cookies_session
        self.cache: dict[tuple, Path] = {}

    def __call__(self, **options: Any) -> Path:
        key = tuple(sorted(options.items()))
        if key not in self.cache:
            context = {"init_git": "no", **{k: v for k, v in options.items()}}
            result = self.cookies.bake(extra_context=context)
            assert result.exception is None, f"bake {options} raised {result.exception!r}"
            assert result.exit_code == 0
            self.cache[key] = Path(result.project_path)
        return self.cache[key]


@pytest.fixture(scope="session")
def bake(cookies_session: Any) -> Baker:
    return Baker(cookies_session)


TORCH = shlex.split(os.environ.get("TORCH_INSTALL", "torch torchvision"))
# What one fresh environment with PyTorch needs while it installs (a CUDA build is about 5.5 GB).
FRESH_VENV_BYTES = 7 * 2**30


@pytest.fixture
def fresh_python(tmp_path: Path) -> Iterator[Path]:
    """A brand-new virtual environment with PyTorch only; its Python. Removed when the test ends."""
    free = shutil.disk_usage(tmp_path).free
    if free < FRESH_VENV_BYTES:
        pytest.fail(
            f"{tmp_path} has {free / 2**30:.1f} GiB free; a fresh environment with PyTorch needs about "
            f"{FRESH_VENV_BYTES / 2**30:.0f} GiB (set TMPDIR to a larger disk)"
        )
    path = tmp_path / "venv"
    try:
        run([sys.executable, "-m", "venv", str(path)], cwd=tmp_path)
        python = path / "bin" / "python"
        run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], cwd=tmp_path)
        run([str(python), "-m", "pip", "install", "--quiet", *TORCH], cwd=tmp_path)
        yield python
    finally:
        shutil.rmtree(path, ignore_errors=True)
