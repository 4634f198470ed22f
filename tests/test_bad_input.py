"""Bad input: cookiecutter exits non-zero with one clear line naming the variable, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PYTHON, ROOT, run

CASES = [
    (["project_name="], "project_name='' is empty"),
    (["project_name=!!!"], "project_name='!!!' has no letters or digits"),
    (["package=class"], "package='class' is a Python keyword"),
    (["package=import"], "package='import' is a Python keyword"),
    (["package=1abc"], "package='1abc' is not a Python identifier"),
    (["package=my-pkg"], "package='my-pkg' is not a Python identifier"),
    (["package=MyPkg"], "package='MyPkg' has uppercase letters"),
    (["package=json"], "package='json' would shadow the standard-library or dependency module"),
    (["package=torch"], "package='torch' would shadow"),
    (["package=yaml"], "package='yaml' would shadow"),
    (["package=helpers"], "package='helpers' would shadow"),
    (["project=my paper"], "project='my paper' is not a valid slug"),
    (["project=My-Paper"], "project='My-Paper' is not a valid slug"),
    (["include_simclr=no", "include_vit=no", "include_transformer=no"], "switch every baseline off"),
    (["email=ada.example.org"], "email='ada.example.org' is not an email address"),
    (["email="], "email='' is not an email address"),
    (["author= "], "author='' is empty"),
    (["author=."], "author='.' has no letters or digits"),
    (["email=ada<x>@example.org"], "email='ada<x>@example.org' is not an email address"),
    (['dvc_remote=../a"b'], "dvc_remote='../a\"b' contains a double quote"),
    (["python_version=3.9"], "python_version='3.9' is not supported; expected one of 3.10, 3.11, 3.12"),
    (["python_version=3.13"], "python_version='3.13' is not supported"),
    (["license=GPL"], "license='GPL' is not supported; expected one of MIT, Apache-2.0, BSD-3-Clause, none"),
    (["tracker=mlflow"], "tracker='mlflow' is not supported; expected one of wandb, none"),
    (["ci=jenkins"], "ci='jenkins' is not supported; expected one of github, gitlab, none"),
    (["dvc_remote=ftp://host/x"], "dvc_remote='ftp://host/x' uses an unknown scheme"),
    (["dvc_remote=https://ada:s3cret@host/dvc"], "dvc_remote='https://ada:***@host/dvc' holds a password"),
    (["project_name=" + "A" * 300], "project_name is 300 characters long, too long for a directory name"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_rejected_with_one_clear_line(tmp_path: Path, overrides: list[str], message: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = run(
        [PYTHON, "-m", "cookiecutter", "--no-input", "-o", str(out), str(ROOT), "init_git=no", *overrides],
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, result.stderr
    assert message in errors[0]
    assert errors[0].isascii()
    assert "s3cret" not in result.stdout + result.stderr  # a refused password is not echoed either
    assert list(out.iterdir()) == [], "nothing may be left behind"


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    result = run(
        [PYTHON, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path), str(ROOT), "package=class", "email=nope"],
        cwd=tmp_path,
        check=False,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert [e.split("=")[0] for e in errors] == ["ERROR: package", "ERROR: email"]


@pytest.mark.parametrize("remote", ["/srv/dvc-store", "../store", "s3://bucket/path", "ssh://host/dir", "gs://b/p"])
def test_valid_remotes_accepted(bake, remote: str) -> None:
    assert bake(dvc_remote=remote).exists()


@pytest.mark.parametrize("init_git", ["no", "yes"])
def test_the_printed_next_steps_run_in_order(tmp_path: Path, init_git: str) -> None:
    """pre-commit install needs a git repository: without init_git, `git init` comes first."""
    result = run(
        [PYTHON, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path), str(ROOT), f"init_git={init_git}"],
        cwd=tmp_path,
    )
    steps = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert steps[0] == "cd my-paper" and steps[-2].startswith("dvc repro")
    assert steps[-1].startswith("git add dvc.lock && git commit")  # docs/pipeline.md: commit dvc.lock
    install = steps.index("pre-commit install")
    if init_git == "no":
        assert steps.index("git init && git add -A && git commit -m 'Initial commit'") < install
    else:
        assert not any(step.startswith("git init") for step in steps)
