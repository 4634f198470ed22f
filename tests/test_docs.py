"""The option reference in docs/options/ covers every option, states its real default, and quotes the
pre-generation hook's error messages word for word (each quoted error is reproduced here)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from conftest import PYTHON, ROOT, run

OPTIONS = ROOT / "docs" / "options"
CONTEXT = json.loads((ROOT / "cookiecutter.json").read_text())
PUBLIC = [key for key in CONTEXT if not key.startswith("_")]
ERROR_LINE = re.compile(r"^ERROR: .+$", flags=re.MULTILINE)
# `key=value` pairs at the start of an error line: value is a Python literal ('text', False) or a bare word.
ASSIGNMENT = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|[^\s,]+)")


def documented_errors() -> list[str]:
    return sorted({line for page in OPTIONS.glob("*.md") for line in ERROR_LINE.findall(page.read_text())})


def test_every_option_has_a_page_and_a_row_in_the_index() -> None:
    pages = {path.stem for path in OPTIONS.glob("*.md")} - {"README"}
    assert pages == set(PUBLIC)
    index = (OPTIONS / "README.md").read_text()
    rows = re.findall(r"^\| \[(\w+)\]\(\1\.md\) \|", index, flags=re.MULTILINE)
    assert rows == PUBLIC, "one row per option, in the order cookiecutter asks"


@pytest.mark.parametrize("option", PUBLIC)
def test_page_states_the_real_default_and_prompt(option: str) -> None:
    text = (OPTIONS / f"{option}.md").read_text()
    assert text.startswith(f"# `{option}`\n")
    prompt = CONTEXT["__prompts__"][option]
    assert f"| Prompt | {prompt} |" in text
    default = CONTEXT[option]
    if isinstance(default, str) and "{{" in default:
        assert "| Default | derived" in text or "| Default | `../<project>" in text, "a derived default says so"
    else:
        shown = json.dumps(default) if isinstance(default, bool) else default
        assert f"| Default | `{shown}` |" in text


@pytest.mark.parametrize("line", documented_errors())
def test_documented_error_is_the_hooks_own_message(line: str, tmp_path: Path) -> None:
    head = line.removeprefix("ERROR: ").split(" is ")[0].split(" has ")[0].split(" switch ")[0]
    head = head.split(" would ")[0].split(" uses ")[0]
    overrides = {key: ast.literal_eval(value) if value[0] == "'" else value for key, value in ASSIGNMENT.findall(head)}
    assert overrides, f"cannot read the option and value from: {line}"
    cli = [f"{key}={value}" for key, value in overrides.items()]
    result = run([PYTHON, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path), str(ROOT), "init_git=no", *cli],
                 cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode != 0 and line in result.stderr.splitlines(), result.stderr
    assert not any(tmp_path.iterdir()), "a rejected bake leaves nothing behind"
