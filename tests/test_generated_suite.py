"""Install baked projects the way a user does and run their own test suites.

One project is installed with uv into a brand-new virtual environment and runs the fast part of its suite
(tests/test_readme_script.py installs one with pip, as its README says, and runs the whole suite after
every README command). Each baseline alone reuses one
throwaway environment that sees the test runner's packages (`pip install --no-deps -e`) and runs its
fast suite.

TORCH_INSTALL (e.g. "torch==2.14.1 torchvision==0.29.1") selects the PyTorch build installed first into
the fresh environments; CI sets it, elsewhere pip picks the default build. Each fresh environment holds
a full PyTorch (about 5.5 GB for CUDA builds): it is removed as soon as its test ends, so the suite never
holds more than one at a time beside the runner's own.
"""

from __future__ import annotations

import site
import sys
from pathlib import Path

import pytest
from conftest import Baker, run, tool

pytestmark = pytest.mark.slow


def test_uv_install_in_a_fresh_venv_and_run_the_fast_suite(bake: Baker, fresh_python: Path) -> None:
    project = bake(project_name="Fresh Uv", include_simclr="no", tracker="none", python_version="3.10")
    # uv keeps the torch already installed (it satisfies the range) and installs the rest itself.
    run([tool("uv"), "pip", "install", "--quiet", "--python", str(fresh_python), "-e", ".[dev]"], cwd=project)
    result = run([str(fresh_python), "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"], cwd=project)
    assert " passed" in result.stdout and " failed" not in result.stdout


COMBINATIONS = {
    "simclr-only": {"include_vit": "no", "include_transformer": "no", "tracker": "none"},
    "vit-only": {"include_simclr": "no", "include_transformer": "no", "ci": "gitlab"},
    "transformer-only": {"include_simclr": "no", "include_vit": "no", "license": "none"},
}


@pytest.fixture(scope="module")
def shared_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway environment that sees the runner's packages; projects go in with --no-deps.

    `--system-site-packages` would expose the base interpreter's packages, not those of the (virtual)
    environment running the tests, so a .pth file points the new environment at the runner's.
    """
    path = tmp_path_factory.mktemp("shared") / "venv"
    run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
    python = path / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=path.parent)
    runner = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib.stdout.strip()) / "test-runner-packages.pth").write_text("\n".join(runner) + "\n")
    return python


@pytest.mark.parametrize("name", COMBINATIONS)
def test_each_baseline_alone_passes_its_own_suite(bake: Baker, shared_venv: Path, name: str) -> None:
    package = name.replace("-", "_")
    project = bake(project_name=name, **COMBINATIONS[name])
    assert (project / "src" / package).is_dir()
    run([str(shared_venv), "-m", "pip", "install", "--quiet", "--no-deps", "-e", "."], cwd=project)
    # The fast suite: the slow end-to-end tests of every baseline already ran in the full bake above;
    # collecting them here still proves they import and parametrise for a single baseline.
    result = run([str(shared_venv), "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"], cwd=project)
    assert " passed" in result.stdout and " failed" not in result.stdout
