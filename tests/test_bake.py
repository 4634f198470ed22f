"""Baking: the default project and the option matrix produce exactly the files their options ask for."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import Baker

BASELINES = ("simclr", "vit", "transformer")
TOKENS = {"simclr": "simclr", "vit": "vit", "transformer": "transformer"}


def files(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file() and ".git/" not in str(p)}


def only(baseline: str) -> dict[str, str]:
    return {f"include_{b}": "yes" if b == baseline else "no" for b in BASELINES}


def test_default_bake_has_the_documented_layout(bake: Baker) -> None:
    project = bake()
    assert project.name == "my-paper"
    present = files(project)
    for path in (
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "CITATION.cff",
        ".gitignore",
        "configs/train.yaml",
        "configs/trainer/smoke.yaml",
        "configs/trainer/gpu.yaml",
        "src/my_paper/repro/seeding.py",
        "src/my_paper/repro/environment.py",
        "src/my_paper/repro/rundir.py",
        "src/my_paper/train/loop.py",
        "src/my_paper/train/checkpoint.py",
        "src/my_paper/tracking.py",
        "src/my_paper/models/layers.py",
        "src/my_paper/models/simclr.py",
        "src/my_paper/models/vit.py",
        "src/my_paper/models/transformer.py",
        "src/my_paper/compare.py",
        "src/my_paper/reproduce.py",
        "src/my_paper/env.py",
        "src/my_paper/train/__main__.py",
        "src/my_paper/ablate.py",
        "src/my_paper/pipeline.py",
        "dvc.yaml",
        "params.yaml",
        ".dvc/config",
        ".dvcignore",
        ".pre-commit-config.yaml",
        "docs/walkthrough.md",
        "docs/reproducibility_checklist.md",
        "docs/research_plan.md",
        "docs/ablations.md",
    ):
        assert path in present, path
    # Nothing of Jinja survives rendering.
    for path in project.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".yaml", ".toml", ".md", ".cff", ".txt", ".yml"}:
            text = path.read_text()
            assert "cookiecutter." not in text, path
            assert "{%" not in text, path


def test_generated_metadata_is_valid(bake: Baker) -> None:
    project = bake(author='Ada "Quoted" Lovelace', description='A "quoted" \\ description')
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "my-paper"
    assert meta["authors"][0]["name"] == 'Ada "Quoted" Lovelace'
    assert meta["description"] == 'A "quoted" \\ description'
    assert meta["requires-python"] == ">=3.11"
    assert not any(dep.startswith("torch==") for dep in meta["dependencies"]), "torch must not be pinned"
    citation = yaml.safe_load((project / "CITATION.cff").read_text())
    assert citation["authors"][0] == {
        "given-names": 'Ada "Quoted"',
        "family-names": "Lovelace",
        "email": "ada@example.org",
    }
    assert citation["license"] == "MIT"


@pytest.mark.parametrize("baseline", BASELINES)
def test_each_baseline_alone(bake: Baker, baseline: str) -> None:
    project = bake(**only(baseline))
    present = files(project)
    others = [b for b in BASELINES if b != baseline]
    for path in present:
        parts = set(re.split(r"[_.\-/]", path))
        assert not parts & set(others), f"{path} belongs to a removed baseline"
    assert any(baseline in p for p in present if p.startswith("src/my_paper/models/"))
    assert any(p.startswith(f"configs/experiment/{baseline}") for p in present)
    # No dangling reference to a removed baseline in the shared code and configs.
    for path in project.rglob("*.py"):
        text = path.read_text()
        for other in others:
            assert f"models.{other}" not in text and f"tasks.{other}" not in text, (path, other)
    train_yaml = yaml.safe_load((project / "configs/train.yaml").read_text())
    assert {"model": baseline} in train_yaml["defaults"]
    needs_cifar = baseline in ("simclr", "vit")
    assert any("cifar10" in p for p in present) == needs_cifar
    assert any("shakespeare" in p for p in present) == (not needs_cifar)


def test_tracker_none_removes_wandb(bake: Baker) -> None:
    project = bake(tracker="none")
    assert not any("wandb" in p for p in files(project))
    assert "wandb" not in (project / "pyproject.toml").read_text()
    assert "wandb" not in (project / "src/my_paper/tracking.py").read_text()
    assert "tracker: none" in (project / "configs/train.yaml").read_text()


def test_tracker_wandb_keeps_it(bake: Baker) -> None:
    project = bake(tracker="wandb")
    assert "configs/tracker/wandb.yaml" in files(project)
    assert '"wandb>=' in (project / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    ("ci", "present", "absent"),
    [
        ("github", ".github/workflows/ci.yml", ".gitlab-ci.yml"),
        ("gitlab", ".gitlab-ci.yml", ".github/workflows/ci.yml"),
        ("none", None, None),
    ],
)
def test_ci_choice(bake: Baker, ci: str, present: str | None, absent: str | None) -> None:
    project = bake(ci=ci)
    names = files(project)
    if present:
        assert present in names
        yaml.safe_load((project / present).read_text())  # valid YAML
    if ci == "none":
        assert not any(n.startswith(".github/") or n == ".gitlab-ci.yml" for n in names)
    elif absent:
        assert absent not in names


@pytest.mark.parametrize(
    ("license_", "first_line"),
    [("MIT", "MIT License"), ("Apache-2.0", "Apache License"), ("BSD-3-Clause", "BSD 3-Clause License")],
)
def test_license_text(bake: Baker, license_: str, first_line: str) -> None:
    project = bake(license=license_, author="Ada Lovelace")
    text = (project / "LICENSE").read_text()
    assert text.strip().splitlines()[0].strip() == first_line
    assert "Ada Lovelace" in text


def test_license_none(bake: Baker) -> None:
    project = bake(license="none")
    assert not (project / "LICENSE").exists()
    assert "license" not in (project / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]


@pytest.mark.parametrize("python_version", ["3.10", "3.11", "3.12"])
def test_python_version_sets_floor_and_ruff_target(bake: Baker, python_version: str) -> None:
    project = bake(python_version=python_version)
    text = (project / "pyproject.toml").read_text()
    assert f'requires-python = ">={python_version}"' in text
    assert f'target-version = "py{python_version.replace(".", "")}"' in text


def test_init_git_makes_a_first_commit_without_identity(
    cookies, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No global identity: HOME without .gitconfig, system config ignored.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    result = cookies.bake(extra_context={"init_git": "yes", "author": "Ada Lovelace", "email": "ada@lab.org"})
    assert result.exception is None and result.exit_code == 0
    project = Path(result.project_path)
    log = subprocess.run(
        ["git", "log", "--format=%an <%ae>|%s"], cwd=project, capture_output=True, text=True, check=True
    )
    assert log.stdout.strip().splitlines() == ["Ada Lovelace <ada@lab.org>|Initial commit from ai-research-template"]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True)
    assert status.stdout == "", "the first commit holds every generated file"
    branch = subprocess.run(
        ["git", "branch", "--show-current"], cwd=project, capture_output=True, text=True, check=True
    )
    assert branch.stdout.strip() == "main"


def test_init_git_off_leaves_no_repository(bake: Baker) -> None:
    assert not (bake(init_git="no") / ".git").exists()


@pytest.mark.parametrize("spelling", [("True", "False"), ("yes", "no"), ("y", "n"), ("1", "0")])
def test_boolean_spellings_from_the_command_line(tmp_path: Path, spelling: tuple[str, str]) -> None:
    """`include_vit=False` from the CLI must switch ViT off (cookiecutter #1973)."""
    from conftest import PYTHON, ROOT, run

    yes, no = spelling
    run(
        [
            PYTHON,
            "-m",
            "cookiecutter",
            "--no-input",
            "-o",
            str(tmp_path),
            str(ROOT),
            "init_git=" + no,
            f"include_vit={no}",
            f"include_simclr={no}",
            f"include_transformer={yes}",
        ],
        cwd=tmp_path,
    )
    names = files(tmp_path / "my-paper")
    assert any("transformer" in n for n in names)
    assert not any("vit" in re.split(r"[_.\-/]", n) or "simclr" in n for n in names)


@pytest.mark.parametrize(
    ("name", "slug", "package"),
    [
        ("Æther Lab", "aether-lab", "aether_lab"),
        ("김연구", "gimyeongu", "gimyeongu"),
        ("Vision 2.0: Redux!", "vision-2-0-redux", "vision_2_0_redux"),
    ],
)
def test_unicode_names(bake: Baker, name: str, slug: str, package: str) -> None:
    project = bake(project_name=name, author="김연구 Æther")
    assert project.name == slug
    assert (project / "src" / package / "__init__.py").exists()
    assert name in (project / "README.md").read_text()
    citation = yaml.safe_load((project / "CITATION.cff").read_text())
    assert citation["title"] == name
    assert citation["authors"][0]["family-names"] == "Æther"
