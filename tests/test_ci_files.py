"""The generated CI files: valid YAML of the right shape, the same commands on GitHub and GitLab, with pip
and pre-commit caches (and the DVC cache where they run `dvc repro`), and every command they run refers to
something the baked project has; the smoke step also runs for real (slow).

Nothing here talks to GitHub or GitLab. Each command is checked against the project it would run in: the
extras it installs exist, the tools it calls are installed by that install step, `pytest -m` names only
registered markers, `python -m` modules exist and their `group=value` overrides name config files that
exist, `dvc repro` has a pipeline and its targets are stages.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PYTHON, Baker, run, tool

GITHUB = ".github/workflows/ci.yml"
GITLAB = ".gitlab-ci.yml"
SUPPORTED = ("3.10", "3.11", "3.12")


def github_commands(workflow: dict[str, Any]) -> list[str]:
    return [line for step in workflow["jobs"]["test"]["steps"] if "run" in step for line in step["run"].splitlines()]


def gitlab_commands(pipeline: dict[str, Any]) -> list[str]:
    job = pipeline["test"]
    return [*job["before_script"], *job["script"]]


def split(commands: list[str]) -> list[list[str]]:
    """Shell lines -> argument lists, one per command of an `a && b` chain; blank lines dropped."""
    return [shlex.split(part) for line in commands for part in line.split("&&") if part.strip()]


def project_metadata(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "pyproject.toml").read_text())


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def check_command(args: list[str], project: Path, installed: set[str]) -> None:
    """Fail unless `args` can run in `project` once the CI's install step has installed `installed`."""
    meta = project_metadata(project)
    if args[:3] == ["python", "-m", "pip"] or args[0] == "pip":
        rest = args[3:] if args[0] == "python" else args[1:]
        assert rest[0] == "install", f"`{shlex.join(args)}`: only pip install is checked"
        if "-e" in rest:
            target = rest[rest.index("-e") + 1]
            extras = re.fullmatch(r"\.(?:\[([\w,]+)\])?", target)
            assert extras, f"`{shlex.join(args)}`: expected an editable install of the project itself"
            for extra in (extras.group(1) or "").split(","):
                assert not extra or extra in meta["project"]["optional-dependencies"], f"no extra {extra!r}"
        elif "--index-url" in rest:
            url = rest[rest.index("--index-url") + 1]
            packages = [arg for arg in rest[1:] if not arg.startswith("-") and arg != url]
            deps = requirement_names(meta["project"]["dependencies"])
            assert set(packages) <= deps, f"`{shlex.join(args)}` installs {packages}, not all project dependencies"
        return
    tool = args[0]
    assert tool in installed or tool == "python", f"`{shlex.join(args)}`: {tool} is not installed by the CI"
    if tool == "pre-commit":
        assert args[1] == "run" and (project / ".pre-commit-config.yaml").exists()
    elif tool == "pytest":
        assert (project / "tests").is_dir() and "pytest" in meta["tool"], "no tests/ or [tool.pytest] config"
        if "-m" in args:
            registered = {marker.split(":")[0] for marker in meta["tool"]["pytest"]["ini_options"]["markers"]}
            used = set(re.findall(r"\w+", args[args.index("-m") + 1])) - {"not", "and", "or"}
            assert used <= registered, f"pytest -m uses unregistered markers {used - registered}"
    elif tool == "dvc":
        assert args[1] == "repro", f"`{shlex.join(args)}`: only `dvc repro` is checked"
        assert (project / "dvc.yaml").exists(), "`dvc repro` needs a dvc.yaml"
        stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
        for target in (a for a in args[2:] if not a.startswith("-")):
            assert target.split("@")[0] in stages, f"dvc.yaml has no stage {target!r}"
    elif tool == "python":
        assert args[1] == "-m", f"`{shlex.join(args)}`: expected python -m <module>"
        module = Path("src", *args[2].split("."))
        assert (project / module.with_suffix(".py")).exists() or (project / module / "__main__.py").exists()
        for override in (arg for arg in args[3:] if "=" in arg and not arg.startswith("-")):
            group, values = override.split("=", 1)
            if (project / "configs" / group).is_dir():  # a config group: every swept value is a file of it
                for value in values.split(","):
                    assert (project / "configs" / group / f"{value}.yaml").exists(), f"no configs/{group}/{value}.yaml"
    else:
        pytest.fail(f"`{shlex.join(args)}`: teach tests/test_ci_files.py to check {tool}")


def installed_tools(project: Path, commands: list[list[str]]) -> set[str]:
    """Console scripts the CI's install commands provide: the project's dependencies and chosen extras."""
    meta = project_metadata(project)["project"]
    requirements = list(meta["dependencies"])
    for args in commands:
        if "-e" in args:
            extras = re.fullmatch(r"\.(?:\[([\w,]+)\])?", args[args.index("-e") + 1])
            for extra in (extras.group(1) or "").split(",") if extras else []:
                requirements += meta["optional-dependencies"].get(extra, [])
    return requirement_names(requirements)


@pytest.fixture(scope="module")
def github(bake: Baker) -> tuple[Path, dict[str, Any]]:
    project = bake(ci="github")
    return project, yaml.safe_load((project / GITHUB).read_text())


@pytest.fixture(scope="module")
def gitlab(bake: Baker) -> tuple[Path, dict[str, Any]]:
    project = bake(ci="gitlab")
    return project, yaml.safe_load((project / GITLAB).read_text())


def test_github_workflow_shape(github: tuple[Path, dict[str, Any]]) -> None:
    project, workflow = github
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert {"push", "pull_request"} <= set(triggers)
    job = workflow["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] <= 60
    for step in job["steps"]:
        assert ("uses" in step) != ("run" in step), f"a step needs exactly one of uses/run: {step}"
        if "uses" in step:
            assert re.fullmatch(r"actions/[\w-]+@v\d+", step["uses"]), f"pin actions to a major version: {step}"
    text = (project / GITHUB).read_text()
    assert "${{ matrix.python-version }}" in text, "GitHub expressions must survive Jinja ({% raw %})"


def test_github_caches_pip_pre_commit_and_dvc(github: tuple[Path, dict[str, Any]]) -> None:
    _, workflow = github
    steps = workflow["jobs"]["test"]["steps"]
    setup = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip" and setup["with"]["cache-dependency-path"] == "pyproject.toml"
    cached = {step["with"]["path"] for step in steps if step.get("uses", "").startswith("actions/cache")}
    runs_dvc = any(line.startswith("dvc repro") for line in github_commands(workflow))
    assert cached == {"~/.cache/pre-commit", *([".dvc/cache"] if runs_dvc else [])}
    # A cache must be restored before the step that uses it.
    order = [step.get("run", step.get("with", {}).get("path", "")) for step in steps]
    assert order.index("~/.cache/pre-commit") < next(i for i, o in enumerate(order) if o.startswith("pre-commit"))
    if runs_dvc:
        assert order.index(".dvc/cache") < next(i for i, o in enumerate(order) if o.startswith("dvc repro"))


def test_gitlab_pipeline_shape_and_caches(gitlab: tuple[Path, dict[str, Any]]) -> None:
    _, pipeline = gitlab
    job = pipeline["test"]
    assert job["image"] == "python:$PYTHON_VERSION"
    paths = {path for cache in job["cache"] for path in cache["paths"]}
    runs_dvc = any(line.startswith("dvc repro") for line in gitlab_commands(pipeline))
    assert paths == {".cache/pip", ".cache/pre-commit", *([".dvc/cache"] if runs_dvc else [])}
    assert pipeline["variables"]["PIP_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pip"
    assert pipeline["variables"]["PRE_COMMIT_HOME"] == "$CI_PROJECT_DIR/.cache/pre-commit"


@pytest.mark.parametrize("python_version", SUPPORTED)
def test_both_test_the_oldest_supported_and_the_newest_python(bake: Baker, python_version: str) -> None:
    expected = sorted({python_version, SUPPORTED[-1]})
    github = yaml.safe_load((bake(ci="github", python_version=python_version) / GITHUB).read_text())
    assert github["jobs"]["test"]["strategy"]["matrix"]["python-version"] == expected
    gitlab = yaml.safe_load((bake(ci="gitlab", python_version=python_version) / GITLAB).read_text())
    assert gitlab["test"]["parallel"]["matrix"][0]["PYTHON_VERSION"] == expected


def test_github_and_gitlab_run_the_same_commands(
    github: tuple[Path, dict[str, Any]], gitlab: tuple[Path, dict[str, Any]]
) -> None:
    assert github_commands(github[1]) == gitlab_commands(gitlab[1])


def smoke_commands(commands: list[list[str]]) -> list[list[str]]:
    """The commands after the tests: `dvc repro`, or smoke training runs and their comparison."""
    return commands[next(i for i, args in enumerate(commands) if args[0] == "pytest") + 1 :]


def test_ci_runs_pre_commit_tests_and_a_smoke_pipeline(github: tuple[Path, dict[str, Any]]) -> None:
    commands = split(github_commands(github[1]))
    assert {"pre-commit", "pytest"} <= {args[0] for args in commands}
    smoke = smoke_commands(commands)
    trains = [args for args in smoke if args[:3] == ["python", "-m", "my_paper.train"]]
    assert smoke[0][:2] == ["dvc", "repro"] or (trains and all("trainer=smoke" in args for args in trains))


@pytest.mark.slow
def test_smoke_step_runs_for_real(github: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """The CI's last step, run as CI would after the install (here the package comes from PYTHONPATH)."""
    project = tmp_path / "my-paper"
    shutil.copytree(github[0], project)
    # CI checks out a git repository (DVC needs one) and has the environment's tools on PATH.
    run(["git", "init", "-q"], cwd=project)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "add", "-A"], cwd=project)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "commit", "-qm", "ci"], cwd=project)
    env = {"PYTHONPATH": str(project / "src"), "PATH": f"{Path(PYTHON).parent}:{os.environ['PATH']}"}
    for args in smoke_commands(split(github_commands(github[1]))):
        command = [PYTHON, *args[1:]] if args[0] == "python" else [tool(args[0]), *args[1:]]
        run(command, cwd=project, env=env, timeout=600)
    if all(args[0] != "dvc" for args in smoke_commands(split(github_commands(github[1])))):
        assert (project / "pipeline" / "transformer_shakespeare" / "comparison.md").exists()


@pytest.mark.parametrize("ci", ["github", "gitlab"])
@pytest.mark.parametrize(
    "options",
    [{}, {"include_simclr": "no", "include_vit": "no"}, {"include_transformer": "no", "tracker": "none"}],
    ids=["default", "transformer-only", "images-no-tracker"],
)
def test_every_command_refers_to_what_the_project_has(bake: Baker, ci: str, options: dict[str, str]) -> None:
    project = bake(ci=ci, **options)
    config = yaml.safe_load((project / (GITHUB if ci == "github" else GITLAB)).read_text())
    commands = split(github_commands(config) if ci == "github" else gitlab_commands(config))
    installed = installed_tools(project, commands)
    for args in commands:
        check_command(args, project, installed)
