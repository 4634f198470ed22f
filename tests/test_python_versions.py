"""The supported Python range beyond the one running the tests: hooks run, and the baked code compiles.

The generated project supports Python 3.10 to 3.12. Installing PyTorch for another interpreter means
downloading gigabytes, so these tests check what differs between versions without it: cookiecutter's
hooks run under that Python (they use only the standard library), and every generated module and test
compiles with it (syntax such as PEP 695 generics or `except*` would not on 3.10). The lint tests check
the same code with ruff's target version set to each floor.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, run

pytestmark = pytest.mark.slow


def find_python(version: str) -> str | None:
    """An interpreter of `version` that actually runs (pyenv shims may exist without the version)."""
    candidates = [
        shutil.which(f"python{version}"),
        *sorted(glob.glob(str(Path.home() / f".pyenv/versions/{version}.*/bin/python{version}"))),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(map(int, version.split(".")))):
            return candidate
    return None


@pytest.mark.parametrize("version", ["3.10", "3.12"])
def test_hooks_run_and_generated_code_compiles(tmp_path: Path, version: str) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter on this machine")
    venv = tmp_path / "venv"
    run([python, "-m", "venv", str(venv)], cwd=tmp_path)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "cookiecutter>=2.6"], cwd=tmp_path)
    out = tmp_path / "out"
    run(
        [
            str(venv / "bin" / "cookiecutter"),
            "--no-input",
            "-o",
            str(out),
            str(ROOT),
            "init_git=no",
            f"python_version={version}",
            "project_name=Æther Lab",
        ],
        cwd=tmp_path,
    )
    project = out / "aether-lab"
    assert (project / "src" / "aether_lab" / "train" / "loop.py").exists()
    run([python, "-m", "compileall", "-q", "src", "tests", "benchmarks"], cwd=project)
    # and the hook still refuses bad input with its one line on this interpreter
    bad = run(
        [str(venv / "bin" / "cookiecutter"), "--no-input", "-o", str(tmp_path / "bad"), str(ROOT), "package=class"],
        cwd=tmp_path,
        check=False,
    )
    assert bad.returncode != 0 and "ERROR: package='class' is a Python keyword" in bad.stderr
