"""Every reference and command in docs/walkthrough.md works in this project, so the page cannot rot.

- A `file::name` reference names a file that exists and defines `name` (function, class, method, constant);
  the file references of docs/research_plan.md and docs/reproducibility_checklist.md are checked too.
- A `pytest ...` command selects at least one test. The tests are collected, not run: running them here
  would run this test inside itself.
- A `python -m {{ cookiecutter.package }}.demos ...` command runs for real, in a temporary directory.
- A `python -m {{ cookiecutter.package }}.train ...` command composes and validates its config, each value of
  a sweep included, without training. Other entry points answer `--help` and know every option used.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from {{ cookiecutter.package }}.config import register_configs

from helpers import PROJECT_ROOT, run_cli

DOC = PROJECT_ROOT / "docs" / "walkthrough.md"
# Pages whose `file` and `file::name` references must exist (commands are taken from DOC only).
REFERENCING = (DOC, PROJECT_ROOT / "docs" / "research_plan.md", PROJECT_ROOT / "docs" / "reproducibility_checklist.md")
PACKAGE = "{{ cookiecutter.package }}"
REFERENCE = re.compile(r"`((?:src|tests|configs|docs)/[\w./-]+?)(?:::([\w.]+))?`")

# Run in a subprocess: collects each argument list with pytest itself and writes [exit code, items] per list.
COLLECT = """
import json, sys
import pytest

class Count:
    items = 0

    def pytest_collection_finish(self, session):
        self.items = len(session.items)

results = []
for args in json.loads(sys.argv[1]):
    count = Count()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *args], plugins=[count])
    results.append([int(code), count.items])
with open(sys.argv[2], "w") as out:
    json.dump(results, out)
"""


def commands() -> list[list[str]]:
    """The commands of the page's bash blocks as argument lists (comments and blank lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [args for args in (shlex.split(line, comments=True) for line in lines) if args]


def kind(command: list[str]) -> str:
    """pytest | demos | train | module (another entry point of the package) | unknown."""
    if command[0] == "pytest":
        return "pytest"
    if command[:2] == ["python", "-m"] and command[2].startswith(f"{PACKAGE}."):
        module = command[2].removeprefix(f"{PACKAGE}.")
        return module if module in ("demos", "train") else "module"
    return "unknown"


def of_kind(name: str) -> list[list[str]]:
    return [command for command in commands() if kind(command) == name]


def references() -> list[tuple[str, str]]:
    """(path, name) of every `path::name` or `path` reference of the pages; name is '' for a bare path."""
    return sorted({ref for page in REFERENCING for ref in REFERENCE.findall(page.read_text(encoding="utf-8"))})


def defined_names(path: Path) -> set[str]:
    """Top-level functions, classes and constants of a module, and `Class.member` for class members."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{item.name}" for item in node.body if isinstance(item, ast.FunctionDef)}
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """A multirun's jobs worth composing: each value of every swept key once, the other keys at their first."""
    swept = {i: value.split("=", 1)[1].split(",") for i, value in enumerate(overrides) if "," in value}
    first = [value.split("=", 1)[0] + "=" + swept[i][0] if i in swept else value for i, value in enumerate(overrides)]
    jobs = [first]
    for i, values in swept.items():
        key = overrides[i].split("=", 1)[0]
        jobs += [[*first[:i], f"{key}={value}", *first[i + 1 :]] for value in values[1:]]
    return jobs


def test_the_page_has_commands_of_each_kind_and_references() -> None:
    assert len(of_kind("pytest")) >= 8
    assert len(of_kind("demos")) >= 2
    assert of_kind("train") and of_kind("module")
    assert len(references()) >= 30


@pytest.mark.parametrize("command", commands(), ids=shlex.join)
def test_every_command_is_of_a_checked_kind(command: list[str]) -> None:
    assert kind(command) != "unknown", "teach tests/test_walkthrough.py how to check this kind of command"


@pytest.mark.parametrize(("path", "name"), references(), ids=lambda x: x)
def test_reference_exists(path: str, name: str) -> None:
    file = PROJECT_ROOT / path
    assert file.exists(), f"docs/ refer to {path}, which does not exist"
    if name:
        assert file.suffix == ".py", f"{path}::{name}: only Python files have names"
        assert name in defined_names(file), f"{path} defines no {name}"


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, int]]:
    """(exit code, selected tests) of every pytest command, collected in one subprocess."""
    argument_lists = [command[1:] for command in of_kind("pytest")]
    out = tmp_path_factory.mktemp("collect") / "counts.json"
    result = subprocess.run([sys.executable, "-c", COLLECT, json.dumps(argument_lists), str(out)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert out.exists(), f"the collection subprocess failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    results = json.loads(out.read_text())
    return {shlex.join(args): tuple(result) for args, result in zip(argument_lists, results, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize("command", of_kind("pytest"), ids=shlex.join)
def test_pytest_command_selects_tests(command: list[str], collected: dict[str, tuple[int, int]]) -> None:
    code, items = collected[shlex.join(command[1:])]
    assert code == 0 and items > 0, f"`{shlex.join(command)}` selects no test (pytest exit code {code})"


@pytest.mark.parametrize("command", of_kind("demos"), ids=shlex.join)
def test_demos_command_runs(command: list[str], tmp_path: Path) -> None:
    result = run_cli(command[2:], cwd=tmp_path)
    assert "┃" in result.stdout, "the demo prints a table"
    if "--out" in command:
        assert (tmp_path / command[command.index("--out") + 1]).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("command", of_kind("train"), ids=shlex.join)
def test_train_command_composes_a_valid_config(command: list[str]) -> None:
    overrides = [arg for arg in command[3:] if arg not in ("-m", "--multirun")]
    jobs = sweep_jobs(overrides) if len(overrides) < len(command[3:]) else [overrides]
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(PROJECT_ROOT / "configs")):
        for job in jobs:
            cfg = compose("train", overrides=job)
            OmegaConf.to_object(cfg)  # builds the dataclasses: their own checks reject bad values
            if any(arg.startswith("experiment=") for arg in job):
                assert f"experiment={cfg.experiment}" in job


@pytest.mark.parametrize("command", of_kind("module"), ids=shlex.join)
def test_entry_point_knows_every_option_used(command: list[str]) -> None:
    module = importlib.import_module(command[2])
    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text), pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    for option in (arg.split("=")[0] for arg in command[3:] if arg.startswith("--")):
        assert option in help_text.getvalue(), f"{command[2]} has no option {option}"
