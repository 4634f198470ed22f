"""Template updates with cruft: `cruft create` links a project to a template commit, and `cruft update`
brings a newer template version into a project that has commits of its own, cleanly.

cruft clones the template with git even from a local path, so the test commits a copy of this template
(its working tree, uncommitted files included) into a temporary repository and changes it there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, Baker, run, tool

IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org",
    "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.org",
}  # fmt: skip
WALKTHROUGH = Path("{{cookiecutter.project}}", "docs", "walkthrough.md")
TITLE = "# Walkthrough: the classic questions, answered by this code"


def git(*args: str, cwd: Path) -> str:
    return run(["git", *args], cwd=cwd, env=IDENTITY).stdout


def cruft(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([tool("cruft"), *args], cwd=cwd, env=IDENTITY, check=check)


@pytest.fixture
def template_repo(tmp_path: Path) -> Path:
    """This template's working tree (what git would commit, uncommitted files included) as a fresh repo."""
    repo = tmp_path / "template"
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT).split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is listed but gone
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git("init", "--quiet", "--initial-branch=main", cwd=repo)
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "-m", "template v1", cwd=repo)
    return repo


def test_generated_project_tells_cruft_to_skip_git_metadata(bake: Baker) -> None:
    """`cruft update` renders the template twice and diffs the results; the post-gen hook's `git init`
    would put two different .git directories into that diff (binary, and not the user's to apply)."""
    pyproject = tomllib.loads((bake() / "pyproject.toml").read_text())
    assert ".git" in pyproject.get("tool", {}).get("cruft", {}).get("skip", []), "add [tool.cruft] skip = ['.git']"


def create(template_repo: Path, out: Path) -> Path:
    """`cruft create` with the defaults, then commit .cruft.json as docs/updating.md says."""
    cruft("create", "--no-input", "--output-dir", str(out), str(template_repo), cwd=out.parent)
    project = out / "my-paper"
    v1 = git("rev-parse", "HEAD", cwd=template_repo).strip()
    state = json.loads((project / ".cruft.json").read_text())
    assert (state["template"], state["commit"]) == (str(template_repo), v1)
    assert state["context"]["cookiecutter"]["package"] == "my_paper"
    # The post-gen hook made the first commit before cruft wrote .cruft.json (cruft #155): commit it too.
    assert git("status", "--porcelain", cwd=project) == "?? .cruft.json\n"
    git("add", ".cruft.json", cwd=project)
    git("commit", "--quiet", "-m", "Link to the template (cruft)", cwd=project)
    cruft("check", cwd=project)
    return project


def test_create_then_update_to_a_newer_template(template_repo: Path, tmp_path: Path) -> None:
    project = create(template_repo, tmp_path / "projects")

    # The researcher works on the project ...
    page = project / "docs" / "walkthrough.md"
    page.write_text(page.read_text() + "\nOur lab's notes on these questions live in the wiki.\n")
    git("commit", "--quiet", "--all", "-m", "Lab notes", cwd=project)

    # ... while the template moves on: an edited line and a new page.
    template_page = template_repo / WALKTHROUGH
    assert TITLE in template_page.read_text()
    template_page.write_text(template_page.read_text().replace(TITLE, TITLE + " (revised)"))
    (template_repo / WALKTHROUGH).with_name("glossary.md").write_text("# Glossary of {{ cookiecutter.project_name }}\n")
    git("add", "--all", cwd=template_repo)
    git("commit", "--quiet", "-m", "template v2", cwd=template_repo)
    v2 = git("rev-parse", "HEAD", cwd=template_repo).strip()

    assert cruft("check", cwd=project, check=False).returncode == 1, "cruft check must see the newer template"
    cruft("update", "--skip-apply-ask", "--allow-untracked-files", cwd=project)

    text = page.read_text()
    assert TITLE + " (revised)" in text, "the template's change arrived"
    assert text.endswith("Our lab's notes on these questions live in the wiki.\n"), "the project's change stayed"
    assert (project / "docs" / "glossary.md").read_text() == "# Glossary of My Paper\n"
    assert not list(project.rglob("*.rej")) and "<<<<<<<" not in text, "the update applied cleanly"
    assert json.loads((project / ".cruft.json").read_text())["commit"] == v2
    cruft("check", cwd=project)


def test_update_can_change_an_answer_later(template_repo: Path, tmp_path: Path) -> None:
    """Dropping W&B after the fact: the files the post-gen hook would not have created go away."""
    project = create(template_repo, tmp_path / "projects")
    assert (project / "configs" / "tracker" / "wandb.yaml").exists()
    cruft("update", "--skip-apply-ask", "--variables-to-update", json.dumps({"tracker": "none"}), cwd=project)
    assert not (project / "configs" / "tracker" / "wandb.yaml").exists()
    assert "wandb" not in (project / "pyproject.toml").read_text()
    assert json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]["tracker"] == "none"
