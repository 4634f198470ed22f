"""The `prepare` command: what the DVC prepare stages run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import {{ cookiecutter.package }}
from {{ cookiecutter.package }}.data import prepare
from {{ cookiecutter.package }}.data.files import MANIFEST, read_manifest

# The synthetic smoke variant of every dataset this project has, with the size overrides it takes.
SMOKE = {
    "cifar10": ["num_train=200", "num_test=100"],
    "shakespeare": ["synthetic_chars=20000"],
}
DATASETS = prepare.available()


def test_available_lists_this_projects_datasets() -> None:
    package = Path({{ cookiecutter.package }}.__file__).parent
    assert tuple(name for name in prepare.KNOWN if (package / "data" / f"{name}.py").is_file()) == DATASETS
    assert DATASETS  # every generated project has at least one baseline, hence one dataset


@pytest.mark.parametrize("dataset", DATASETS)
def test_prepare_synthetic_is_idempotent(tmp_path: Path, dataset: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [dataset, "--synthetic", "--root", str(tmp_path), *SMOKE[dataset]]
    assert prepare.main(argv) == 0
    directory = tmp_path / f"{dataset}_synthetic"
    manifest = read_manifest(directory)
    out = capsys.readouterr().out
    for name, record in manifest.files.items():
        assert f"sha256 {record.sha256}" in out and name in out  # the CLI reports what it wrote
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    assert prepare.main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps  # second run: no writes
    assert set(stamps) == {*manifest.files, MANIFEST}


def test_unknown_dataset_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert prepare.main(["foo", "--synthetic"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: unknown dataset 'foo'; expected one of: {', '.join(DATASETS)}\n"


def test_bad_override_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = DATASETS[0]
    assert prepare.main([dataset, "--synthetic", "--root", str(tmp_path), "no_such_key=1"]) == 1
    assert prepare.main([dataset, "--synthetic", "--root", str(tmp_path), "seed=abc"]) == 1
    assert prepare.main([dataset, "--synthetic", "--root", str(tmp_path), "seed"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert "no_such_key" in errors[0] and "seed" in errors[1] and "key=value" in errors[2]
    assert not any(tmp_path.iterdir())


def test_module_entry_point(tmp_path: Path) -> None:
    """`python -m <package>.data.prepare` works as a command (what dvc.yaml runs)."""
    dataset = DATASETS[-1]
    src = str(Path({{ cookiecutter.package }}.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "{{ cookiecutter.package }}.data.prepare",
            dataset,
            "--synthetic",
            "--root",
            str(tmp_path),
            *SMOKE[dataset],
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"{dataset}_synthetic" / MANIFEST).is_file()
    assert "sha256" in result.stdout
