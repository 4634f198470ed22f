"""Shape the generated project to the chosen options, then optionally make the first commit.

Runs inside the new project directory with cookiecutter's Python (standard library only).

File ownership is by name: a file or directory whose name contains the token of a baseline
(`simclr`, `vit`, `transformer`), a dataset (`cifar10`, `shakespeare`), the attention benchmarks
(`attention`: ViT and Transformer), a tracker (`wandb`) or a CI system (`github`, `gitlab`) belongs to
it and is removed when that option is off. Tokens are the parts of a name split at `_`, `-` and `.`
(so `test_vit.py` belongs to `vit`, `activity.py` doesn't).
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path

CONTEXT: dict = json.loads(r"""{{ cookiecutter | tojson }}""")

TRUE_WORDS = {"1", "true", "t", "yes", "y", "on"}
# Tokens shared by several baselines: kept while any of them is on (datasets, the attention benchmarks).
SHARED = {"cifar10": ("simclr", "vit"), "shakespeare": ("transformer",), "attention": ("vit", "transformer")}


def flag(name: str) -> bool:
    value = CONTEXT[name]
    return value if isinstance(value, bool) else str(value).strip().lower() in TRUE_WORDS


def unselected_tokens() -> set[str]:
    """Names of every option that is switched off."""
    baselines = {name: flag(f"include_{name}") for name in ("simclr", "vit", "transformer")}
    off = {name for name, on in baselines.items() if not on}
    off |= {token for token, users in SHARED.items() if not any(baselines[u] for u in users)}
    if CONTEXT["tracker"] != "wandb":
        off.add("wandb")
    off |= {ci for ci in ("github", "gitlab") if CONTEXT["ci"] != ci}
    return off


def owners(path: Path) -> set[str]:
    return set(re.split(r"[_.\-]", path.name.lower()))


def remove_unselected(root: Path) -> list[Path]:
    """Delete every file or directory that belongs to an option that is off; return what went."""
    off = unselected_tokens()
    removed: list[Path] = []
    # Walk top-down and stop at removed directories; sorted for a stable report.
    stack = [root]
    while stack:
        for path in sorted(stack.pop().iterdir()):
            if path.name == ".git":
                continue
            if owners(path) & off:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                removed.append(path.relative_to(root))
            elif path.is_dir():
                stack.append(path)
    if CONTEXT["license"] == "none":
        (root / "LICENSE").unlink()
        removed.append(Path("LICENSE"))
    return removed


DVC_REMOTE = "storage"  # the name `dvc push` / `dvc pull` use by default


def dvc_remote_url(remote: str) -> str:
    """`dvc_remote` as `.dvc/config` must store it: what `dvc remote add` run from the project root writes.

    DVC resolves a relative directory in a config file against the file's own folder, `.dvc/`, while the
    option is relative to the project root, so a relative path gains one `../`. URLs, absolute paths and
    `~` paths are stored as given.
    """
    if re.match(r"\w+://", remote) or remote.startswith(("/", "~", "\\")) or re.match(r"[A-Za-z]:[\\/]", remote):
        return remote
    return posixpath.normpath(posixpath.join("..", remote.replace("\\", "/")))


def configure_dvc(root: Path) -> None:
    """Make `dvc_remote` the default remote: the `.dvc/config` that `dvc remote add -d storage <remote>` writes.

    The rest of what `dvc init` writes ships as template files (`.dvc/.gitignore`, `.dvcignore`), so DVC
    need not be installed here. DVC needs git: without `init_git` it stops with "not a git repository"
    until `git init` runs (or `dvc config --local core.no_scm true` opts out of git).
    """
    url = dvc_remote_url(str(CONTEXT["dvc_remote"]).strip())
    if any(c in url for c in "#,") or url != url.strip():
        url = f'"{url}"'  # as `dvc remote add` writes it: bare, configobj cuts at # and splits at commas
    config = f"[core]\n    remote = {DVC_REMOTE}\n['remote \"{DVC_REMOTE}\"']\n    url = {url}\n"
    (root / ".dvc" / "config").write_text(config, encoding="utf-8")


def run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


def init_git(root: Path) -> bool:
    """`git init` and a first commit; works where no git identity is configured."""
    if shutil.which("git") is None:
        print("WARNING: git is not installed; skipped `git init` (install git, then run it yourself)")
        return False
    identity = ("-c", f"user.name={CONTEXT['author']}", "-c", f"user.email={CONTEXT['email']}")
    try:
        run("git", "init", "--quiet", cwd=root)
        run("git", "symbolic-ref", "HEAD", "refs/heads/main", cwd=root)
        run("git", "add", "--all", cwd=root)
        run(
            "git",
            *identity,
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            "Initial commit from ai-research-template",
            cwd=root,
        )
    except subprocess.CalledProcessError as err:
        print(
            f"WARNING: `{' '.join(err.cmd)}` failed: {err.stderr.strip().splitlines()[-1:]}; fix it and commit by hand"
        )
        return False
    return True


def next_steps(root: Path, committed: bool) -> str:
    package = CONTEXT["package"]
    experiment = next(
        name
        for name, include in (
            ("transformer_shakespeare", "include_transformer"),
            ("vit_cifar10", "include_vit"),
            ("simclr_cifar10", "include_simclr"),
        )
        if flag(include)
    )
    lines = [
        f"Created {root.name}/" + (" (git repository with a first commit)" if committed else ""),
        "Next:",
        f"  cd {root.name}",
        '  python -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]"',
    ]
    if not committed:  # pre-commit and DVC both need the repository
        lines.append("  git init && git add -A && git commit -m 'Initial commit'")
    lines += ["  pre-commit install", f"  python -m {package}.train experiment={experiment} trainer=smoke"]
    lines.append("  dvc repro          # the whole smoke pipeline: prepare -> train -> compare (docs/pipeline.md)")
    # dvc.lock names every output: without it in git, `dvc pull` on a fresh clone restores nothing
    lines.append("  git add dvc.lock && git commit -m 'Pipeline results'   # what `dvc pull` restores elsewhere")
    return "\n".join(lines)


def main() -> int:
    root = Path.cwd()
    remove_unselected(root)
    configure_dvc(root)  # before the first commit, which then holds .dvc/
    committed = flag("init_git") and init_git(root)
    print(next_steps(root, committed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
