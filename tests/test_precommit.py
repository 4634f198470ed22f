"""The generated project's pre-commit checks, proven offline.

Users run `.pre-commit-config.yaml` as written: pre-commit clones each hook repository at its pinned `rev`.
Nothing can be cloned here, so the test rewrites every remote hook into a `repo: local` hook with
`language: system` that runs the same console script of the same tool, at the same version, installed from
PyPI by the template's dev extra. Hook ids, args, file filters and excludes are taken from the user's file,
so the configuration under test is the user's; only where the tools come from differs. Version checks keep
the revs, the template's pins and the installed tools from drifting apart.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, Baker, run, tool
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

CONFIG = ".pre-commit-config.yaml"

# Each hook as its repository's .pre-commit-hooks.yaml defines it at the pinned rev: the console script it
# runs and the files it receives. Upstream says `language: python`; here it is `language: system`.
UPSTREAM: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "https://github.com/pre-commit/pre-commit-hooks": (
        "pre-commit-hooks",
        {
            "trailing-whitespace": {"entry": "trailing-whitespace-fixer", "types": ["text"]},
            "end-of-file-fixer": {"entry": "end-of-file-fixer", "types": ["text"]},
            "check-yaml": {"entry": "check-yaml", "types": ["yaml"]},
            "check-toml": {"entry": "check-toml", "types": ["toml"]},
            "check-json": {"entry": "check-json", "types": ["json"]},
            "check-merge-conflict": {"entry": "check-merge-conflict", "types": ["text"]},
            "check-added-large-files": {"entry": "check-added-large-files"},
            "detect-private-key": {"entry": "detect-private-key", "types": ["text"]},
        },
    ),
    "https://github.com/astral-sh/ruff-pre-commit": (
        "ruff",
        {
            "ruff-check": {
                "entry": "ruff check --force-exclude",
                "types_or": ["python", "pyi", "jupyter"],
                "require_serial": True,
            },
            "ruff-format": {
                "entry": "ruff format --force-exclude",
                "types_or": ["python", "pyi", "jupyter"],
                "require_serial": True,
            },
        },
    ),
    "https://github.com/kynan/nbstripout": (
        "nbstripout",
        {"nbstripout": {"entry": "nbstripout", "types": ["jupyter"]}},
    ),
    "https://github.com/Yelp/detect-secrets": (
        "detect-secrets",
        {"detect-secrets": {"entry": "detect-secrets-hook", "files": ".*"}},
    ),
}
# What the user's hook entry may set on top of the upstream definition.
USER_KEYS = ("args", "exclude", "files", "types", "types_or", "exclude_types", "stages")


def offline_config(config: dict[str, Any]) -> dict[str, Any]:
    """The same hooks as `repo: local` + `language: system`, calling this environment's console scripts."""
    top = {key: value for key, value in config.items() if key != "repos"}  # exclude, minimum version, ...
    hooks = []
    for repo in config["repos"]:
        _, defined = UPSTREAM[repo["repo"]]
        for hook in repo["hooks"]:
            upstream = dict(defined[hook["id"]])
            script, *rest = shlex.split(upstream.pop("entry"))
            entry = shlex.join([tool(script), *rest])
            user = {key: hook[key] for key in USER_KEYS if key in hook}
            hooks.append(
                {"id": hook["id"], "name": hook["id"], "entry": entry, "language": "system", **upstream, **user}
            )
    return {**top, "repos": [{"repo": "local", "hooks": hooks}]}


def template_pins() -> dict[str, str]:
    """`name==version` pins of the template's dev extra."""
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    pins = {}
    for line in dev:
        requirement = Requirement(line)
        exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if exact:
            pins[requirement.name] = exact[0]
    return pins


def git_env(tmp: Path) -> dict[str, str]:
    return {
        "PRE_COMMIT_HOME": str(tmp / "pre-commit-home"),  # pre-commit's own cache, kept out of ~/.cache
        "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org",
        "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.org",
    }  # fmt: skip


def failed_hooks(output: str) -> set[str]:
    """pre-commit prints `- hook id: <id>` under every hook that failed."""
    return set(re.findall(r"^- hook id: (\S+)$", output, flags=re.MULTILINE))


def commit_worktree(source: Path, dest: Path, env: dict[str, str]) -> None:
    """Copy what git would commit from `source` (uncommitted files included) into a new repository `dest`."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=source).stdout
    for name in filter(None, listed.split("\0")):
        if (source / name).is_file():  # a tracked file deleted in the working tree is listed but gone
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, dest / name)
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=dest, env=env)
    run(["git", "add", "--all"], cwd=dest, env=env)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "snapshot"], cwd=dest, env=env)


@pytest.fixture(scope="module")
def config(bake: Baker) -> dict[str, Any]:
    return yaml.safe_load((bake() / CONFIG).read_text())


@pytest.fixture(scope="module")
def repo(bake: Baker, config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A committed copy of the default bake and the offline config beside it (outside the repository)."""
    tmp = tmp_path_factory.mktemp("precommit")
    project = tmp / "my-paper"
    shutil.copytree(bake(), project)
    offline = tmp / "offline-pre-commit-config.yaml"
    offline.write_text(yaml.safe_dump(offline_config(config), sort_keys=False))
    env = git_env(tmp)
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=project, env=env)
    run(["git", "add", "--all"], cwd=project, env=env)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "baked"], cwd=project, env=env)
    return project, offline, env


@pytest.fixture
def clean(repo: tuple[Path, Path, dict]) -> Iterator[tuple[Path, Path, dict]]:
    """The repository as committed, before and after the test (hooks may rewrite files, tests plant some)."""
    project, _, env = repo

    def reset() -> None:
        run(["git", "reset", "--quiet", "--hard", "HEAD"], cwd=project, env=env)
        run(["git", "clean", "--quiet", "-fdx"], cwd=project, env=env)

    reset()
    yield repo
    reset()


def test_every_hook_has_an_offline_twin(config: dict[str, Any]) -> None:
    for repo in config["repos"]:
        assert repo["repo"] in UPSTREAM, f"{repo['repo']}: add its hooks to UPSTREAM so the offline test runs them"
        for hook in repo["hooks"]:
            assert hook["id"] in UPSTREAM[repo["repo"]][1], f"{repo['repo']}: hook {hook['id']!r} has no offline twin"
            assert set(hook) <= {"id", *USER_KEYS}, f"hook {hook['id']!r} sets a key the offline twin would drop"


@pytest.mark.parametrize("owner", ["generated project", "template repository"])
def test_revs_equal_the_template_pins_and_the_installed_tools(config: dict[str, Any], owner: str) -> None:
    pins = template_pins()
    if owner == "template repository":
        config = yaml.safe_load((ROOT / CONFIG).read_text())
    for repo in config["repos"]:
        distribution = UPSTREAM[repo["repo"]][0]
        rev = repo["rev"].removeprefix("v")
        assert pins.get(distribution) == rev, f"pyproject.toml dev extra must pin {distribution}=={rev}"
        assert version(distribution) == rev, f"installed {distribution} {version(distribution)} != rev {rev}"


def test_project_ruff_requirement_admits_the_hook_version(bake: Baker, config: dict[str, Any]) -> None:
    """The ruff of `pip install -e .[dev]` must be able to be the hook's ruff, or editor and hook disagree."""
    rev = next(r["rev"] for r in config["repos"] if UPSTREAM[r["repo"]][0] == "ruff").removeprefix("v")
    dev = tomllib.loads((bake() / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    ruff = next(Requirement(line) for line in dev if Requirement(line).name == "ruff")
    assert SpecifierSet(str(ruff.specifier)).contains(rev), f"project requires {ruff}, hooks run ruff {rev}"


def test_both_configs_are_valid(repo: tuple[Path, Path, dict]) -> None:
    project, offline, env = repo
    run([tool("pre-commit"), "validate-config", CONFIG, str(offline)], cwd=project, env=env)


def test_baked_project_passes_its_own_checks(clean: tuple[Path, Path, dict]) -> None:
    project, offline, env = clean
    result = run([tool("pre-commit"), "run", "--all-files", "--config", str(offline)], cwd=project, env=env,
                 check=False)  # fmt: skip
    assert result.returncode == 0, f"the baked project fails its own pre-commit checks:\n{result.stdout}{result.stderr}"
    status = run(["git", "status", "--porcelain"], cwd=project, env=env).stdout
    assert status == "", f"a hook rewrote files of the baked project:\n{status}"


def test_planted_large_file_and_secrets_are_rejected(clean: tuple[Path, Path, dict]) -> None:
    project, offline, env = clean
    big = project / "results" / "predictions.npy"
    big.parent.mkdir()
    big.write_bytes(os.urandom(5 * 1024 * 1024))
    # Built at run time so that no scanner flags this test file itself.
    wandb_key = hashlib.sha1(b"planted wandb key").hexdigest()  # 40 hex digits, like a real W&B key
    aws_key = "AKIA" + hashlib.sha256(b"planted aws key").hexdigest().upper()[:16]
    secrets = project / "scripts" / "upload.py"
    secrets.parent.mkdir()
    secrets.write_text(f'"""Upload results."""\n\nWANDB_API_KEY = "{wandb_key}"\nAWS_ACCESS_KEY_ID = "{aws_key}"\n')
    run(["git", "add", "--all"], cwd=project, env=env)
    # Without --all-files pre-commit checks the staged files: exactly what `git commit` would do.
    result = run([tool("pre-commit"), "run", "--config", str(offline)], cwd=project, env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert failed_hooks(output) == {"check-added-large-files", "detect-secrets"}, output
    assert "results/predictions.npy (5120 KB) exceeds 1000 KB" in output
    assert "Location:    scripts/upload.py:3" in output, output  # the W&B key
    assert "Secret Type: AWS Access Key" in output and "Location:    scripts/upload.py:4" in output, output


def test_dvc_hashes_are_not_secrets(clean: tuple[Path, Path, dict]) -> None:
    """dvc.lock and .dvc files are full of md5 digests; the secret scanner must let them through."""
    project, offline, env = clean
    digest = hashlib.md5(b"prepared dataset").hexdigest()
    (project / "data.dvc").write_text(f"outs:\n- md5: {digest}.dir\n  size: 1024\n  nfiles: 4\n  path: data\n")
    run(["git", "add", "data.dvc"], cwd=project, env=env)
    result = run([tool("pre-commit"), "run", "--config", str(offline)], cwd=project, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_repository_passes_its_own_checks(tmp_path: Path) -> None:
    """The template's hooks/ and tests/ are ruff-clean and its YAML/TOML/JSON parse (a snapshot of the working tree)."""
    env = git_env(tmp_path)
    repo = tmp_path / "template"
    commit_worktree(ROOT, repo, env)
    offline = tmp_path / "offline-pre-commit-config.yaml"
    offline.write_text(yaml.safe_dump(offline_config(yaml.safe_load((ROOT / CONFIG).read_text())), sort_keys=False))
    result = run([tool("pre-commit"), "run", "--all-files", "--config", str(offline)], cwd=repo, env=env,
                 check=False)  # fmt: skip
    assert result.returncode == 0, f"the template fails its own pre-commit checks:\n{result.stdout}{result.stderr}"
