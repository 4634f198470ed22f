"""Format the generated project's Python files in the template with ruff, through a bake.

ruff cannot read Jinja, so: bake the default project, run `ruff check --fix` and `ruff format` on it,
and copy each formatted file back over its template when the mapping is exact (the template holds no
Jinja beyond `{{ cookiecutter.package }}`). Files with other Jinja are listed with their diff to fix
by hand. The template tests (tests/test_lint.py) check every option combination stays clean.

    .venv/bin/python scripts/format_template.py [--check]
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "{{cookiecutter.project}}"
PACKAGE_VAR = "{{ cookiecutter.package }}"
JINJA = re.compile(r"{{|{%|{#")
PATCH = ["patch", "--quiet", "--forward", "--no-backup-if-mismatch", "--reject-file=-"]


def rendered_path(template_file: Path, project: Path) -> Path:
    relative = str(template_file.relative_to(TEMPLATE)).replace("{{cookiecutter.package}}", "my_paper")
    return project / relative


def bake(out: Path) -> Path:
    cookiecutter = Path(sys.executable).parent / "cookiecutter"
    subprocess.run([cookiecutter, "--no-input", "-o", out, ROOT, "init_git=no"], check=True, capture_output=True)
    return out / "my-paper"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    args = parser.parse_args()
    ruff = Path(sys.executable).parent / "ruff"
    with tempfile.TemporaryDirectory() as out:
        pristine, project = bake(Path(out) / "pristine"), bake(Path(out) / "formatted")
        subprocess.run([ruff, "check", "--fix", "--quiet", "."], cwd=project, check=False)
        subprocess.run([ruff, "format", "--quiet", "."], cwd=project, check=True)
        changed = []
        for template_file in sorted(TEMPLATE.rglob("*.py")):
            baked = rendered_path(template_file, project)
            if not baked.exists():
                continue  # removed by an option the default bake doesn't take
            source, formatted = template_file.read_text(), baked.read_text()
            name = template_file.relative_to(ROOT)
            if JINJA.search(source.replace(PACKAGE_VAR, "my_paper")):
                # Real Jinja: show ruff's change on the baked copy, to be made by hand.
                before = rendered_path(template_file, pristine).read_text().splitlines(keepends=True)
                diff = "".join(difflib.unified_diff(before, formatted.splitlines(keepends=True), str(name), "ruff"))
                if diff:
                    changed.append(name)
                    # The hunks apply to the template itself when they don't touch rendered Jinja (the
                    # package name is mapped back to its variable first).
                    if PACKAGE_VAR in source:
                        diff = diff.replace("my_paper", PACKAGE_VAR)
                    patched = (
                        not args.check
                        and subprocess.run(
                            [*PATCH, str(template_file)],
                            input=diff,
                            text=True,
                            capture_output=True,
                        ).returncode
                        == 0
                    )
                    print(f"reformatted {name}" if patched else f"needs manual formatting (Jinja): {name}\n{diff}")
                continue
            back = formatted.replace("my_paper", PACKAGE_VAR) if PACKAGE_VAR in source else formatted
            if back != source:
                changed.append(name)
                print(("would reformat " if args.check else "reformatted ") + str(name))
                if not args.check:
                    template_file.write_text(back)
        return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
