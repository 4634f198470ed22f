"""Every option combination bakes a project that passes `ruff check` and `ruff format --check`."""

from __future__ import annotations

import pytest
from conftest import Baker, run, tool

COMBINATIONS = {
    "default": {},
    "simclr-only": {"include_vit": "no", "include_transformer": "no"},
    "vit-only": {"include_simclr": "no", "include_transformer": "no"},
    "transformer-only": {"include_simclr": "no", "include_vit": "no"},
    "images-no-tracker": {"include_transformer": "no", "tracker": "none"},
    "python-3.10": {"python_version": "3.10", "license": "none", "ci": "gitlab"},
    "python-3.12-no-ci": {"python_version": "3.12", "ci": "none", "license": "Apache-2.0"},
    # a package name that sorts before the tests' `helpers` module (import order must not depend on it)
    "unicode-name": {"project_name": "Æther Lab", "author": "김연구", "include_simclr": "no"},
}


@pytest.mark.parametrize("name", COMBINATIONS)
def test_baked_project_is_lint_clean(bake: Baker, name: str) -> None:
    project = bake(**COMBINATIONS[name])
    run([tool("ruff"), "check", "--no-cache", "."], cwd=project)
    run([tool("ruff"), "format", "--check", "--no-cache", "."], cwd=project)
