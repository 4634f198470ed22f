"""Validate every cookiecutter variable before anything is generated.

Runs with cookiecutter's own Python, so only the standard library is used. Each problem is reported as
one ASCII line naming the variable, the value and what is allowed; cookiecutter then exits non-zero
and deletes the directory it created.
"""

from __future__ import annotations

import json
import keyword
import re
import sys

# Rendered by cookiecutter: the whole context as JSON (tojson escapes quotes, so """ cannot occur).
CONTEXT: dict = json.loads(r"""{{ cookiecutter | tojson }}""")

TRUE_WORDS = {"1", "true", "t", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "f", "no", "n", "off"}
PYTHON_VERSIONS = ("3.10", "3.11", "3.12")
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "none")
TRACKERS = ("wandb", "none")
CIS = ("github", "gitlab", "none")
# Remote kinds DVC 3 understands (dvc.org/doc/user-guide/data-management/remote-storage).
DVC_SCHEMES = ("s3", "gs", "azure", "ssh", "hdfs", "webhdfs", "http", "https", "webdav", "webdavs", "oss", "gdrive")
# Import names that would shadow a dependency of the generated project.
DEPENDENCY_NAMES = {"torch", "torchvision", "hydra", "omegaconf", "dvc", "wandb", "scipy", "numpy", "pandas"}
DEPENDENCY_NAMES |= {"matplotlib", "rich", "pytest", "tests", "test", "src", "configs", "submitit", "timm"}
DEPENDENCY_NAMES |= {"yaml", "helpers", "conftest"}  # PyYAML; the generated tests' own modules (tests/ is on the path)

# What cookiecutter.json derives `project` to when project_name slugifies to nothing: an empty slug
# would make cookiecutter fail with "directory already exists" before this hook could explain.
EMPTY_SLUG = "invalid-empty-name"
LONG_SLUG = "invalid-name-too-long"  # likewise for a slug too long for a directory name (cookiecutter.json)
MAX_SLUG = 100
SLUG_RE = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
CREDENTIALS_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/@:]*):[^/@]*@")  # scheme://user:password@host
EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")  # git drops < and > from an address


def shown(value: object) -> str:
    """A value as it appears in an error line: quoted, ASCII-escaped (Windows terminals)."""
    return ascii(value) if isinstance(value, str) else repr(value)


def as_bool(name: str, value: object) -> bool | str:
    """Cookiecutter booleans may arrive as bool or as a string from the CLI (cookiecutter #1973)."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return f"{name}={shown(value)} is not a boolean; expected one of true/false, yes/no, 1/0"


def validate(ctx: dict) -> list[str]:
    """Return one message per invalid variable (empty when everything is valid)."""
    errors: list[str] = []
    name = str(ctx.get("project_name", ""))
    if not name.strip():
        errors.append("project_name='' is empty; expected a free-text name such as 'My Paper'")

    project = str(ctx.get("project", ""))
    if name.strip() and project == EMPTY_SLUG:
        errors.append(
            f"project_name={shown(name)} has no letters or digits to derive a directory name from; "
            "expected a name such as 'My Paper' (or set project= explicitly)"
        )
    elif name.strip() and project == LONG_SLUG:
        errors.append(
            f"project_name is {len(name)} characters long, too long for a directory name; expected a name "
            f"whose slug has at most {MAX_SLUG} characters (or set project= to a shorter name)"
        )
    elif len(project) > MAX_SLUG:
        errors.append(f"project={shown(project[:20])}... has {len(project)} characters; expected at most {MAX_SLUG}")
    elif name.strip() and not SLUG_RE.match(project):
        errors.append(
            f"project={shown(project)} is not a valid slug; expected lowercase ASCII letters and digits "
            "separated by single '-' or '_' (no spaces, no uppercase), e.g. 'my-paper'"
        )

    package = str(ctx.get("package", ""))
    if errors and package == project.replace("-", "_"):
        pass  # derived from a name already reported: one line per mistake, not two
    elif not package.isascii() or not package.isidentifier():
        errors.append(
            f"package={shown(package)} is not a Python identifier; expected lowercase ASCII letters, "
            "digits and '_', not starting with a digit, e.g. 'my_paper'"
        )
    elif keyword.iskeyword(package):
        errors.append(f"package={shown(package)} is a Python keyword; expected a name such as 'my_paper'")
    elif package != package.lower():
        errors.append(f"package={shown(package)} has uppercase letters; expected lowercase (PEP 8), e.g. 'my_paper'")
    elif package in sys.stdlib_module_names or package in DEPENDENCY_NAMES:
        errors.append(
            f"package={shown(package)} would shadow the standard-library or dependency module of that name; "
            "expected a project-specific name such as 'my_paper'"
        )

    author = str(ctx.get("author", "")).strip()
    if not author:
        errors.append("author='' is empty; expected your name (it goes into LICENSE and CITATION.cff)")
    elif not any(c.isalnum() for c in author):  # git refuses such a name for the first commit
        errors.append(f"author={shown(author)} has no letters or digits; expected your name")
    email = str(ctx.get("email", ""))
    if not EMAIL_RE.match(email):
        errors.append(f"email={shown(email)} is not an email address; expected 'name@domain.tld'")

    for key, allowed in (
        ("python_version", PYTHON_VERSIONS),
        ("license", LICENSES),
        ("tracker", TRACKERS),
        ("ci", CIS),
    ):
        value = ctx.get(key)
        if value not in allowed:
            # Free-text rather than a cookiecutter choice on purpose: a bad choice makes cookiecutter
            # itself fail with a traceback, while this hook can answer in one line.
            close = [option for option in allowed if option.lower() == str(value).strip().lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{key}={shown(value)} is not supported; expected one of {', '.join(allowed)}{hint}")

    flags = {}
    for key in ("include_simclr", "include_vit", "include_transformer", "init_git"):
        parsed = as_bool(key, ctx.get(key))
        if isinstance(parsed, str):
            errors.append(parsed)
        else:
            flags[key] = parsed
    baselines = ("include_simclr", "include_vit", "include_transformer")
    if all(key in flags and not flags[key] for key in baselines):
        errors.append(
            "include_simclr=False, include_vit=False, include_transformer=False switch every baseline off; "
            "expected at least one of them true"
        )

    remote = str(ctx.get("dvc_remote", "")).strip()
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", remote)
    if not remote:
        errors.append("dvc_remote='' is empty; expected a directory path or a DVC URL such as s3://bucket/path")
    elif any(c in remote for c in '"\n\r'):  # .dvc/config holds it in double quotes
        errors.append(f"dvc_remote={shown(remote)} contains a double quote or a line break; expected a path or URL")
    elif CREDENTIALS_RE.match(remote):  # .dvc/config is committed: a password in it would be published
        masked = CREDENTIALS_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", remote)
        errors.append(
            f"dvc_remote={shown(masked)} holds a password, which the first commit would publish in .dvc/config; "
            "expected the URL without it, then after generation: dvc remote modify --local storage password ..."
        )
    elif scheme and scheme.group(1).lower() not in DVC_SCHEMES:
        errors.append(
            f"dvc_remote={shown(remote)} uses an unknown scheme; expected a directory path or one of "
            f"{', '.join(s + '://' for s in DVC_SCHEMES)}"
        )
    return errors


def main() -> int:
    errors = validate(CONTEXT)
    for message in errors:
        print(f"ERROR: {message}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
