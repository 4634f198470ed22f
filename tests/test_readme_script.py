"""The generated README, then docs/walkthrough.md and docs/ablations.md, run as a script in one project.

A user types the commands of these pages in order, in one project: installing it, `dvc repro`, the train
commands, a sweep over the learning rate, an ablation, comparisons, `reproduce`, the demos. This test does
exactly that, in a project baked with the default options and installed with pip into a fresh virtual
environment, as the README says; then, as issue "one coherent workflow" asks, an ablation of every
baseline, `dvc repro` again and the project's whole test suite, in that project where everything has run.
Every command must exit 0: the pages show no command that is meant to fail.

What cannot run here is replaced, and the list is kept short and in one place (SKIPPED, REWRITES):
GPU-only settings become the smoke profile, downloads and SLURM are tested elsewhere, `<repo>` is this
project. A command that names an experiment but no trainer profile gets `trainer=smoke`, the same way
docs/ablations.md tells the reader to try its commands on a CPU.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from conftest import Baker, run

pytestmark = pytest.mark.slow

PACKAGE = "readme_script"
PAGES = ("README.md", "docs/walkthrough.md", "docs/ablations.md")

# Commands left out (a command is left out when it starts with one of these), with the reason and where
# the same thing is tested instead.
SKIPPED = {
    "python -m venv .venv && . .venv/bin/activate": "the fresh environment of this test is the activated one",
    "pre-commit install": "hooks are cloned from GitHub, unreachable here: tests/test_precommit.py runs them offline",
    'pip install -e ".[slurm]"': "SLURM: tests/test_slurm.py runs a real cluster",
    "dvc exp run -S trainer=gpu": "the full profile needs a GPU and the real datasets (downloads)",
    f"python -m {PACKAGE}.data.prepare cifar10 #": "a download: tests/data checks it on a hand-made archive",
    f"python -m {PACKAGE}.data.prepare shakespeare #": "a download: tests/data checks it on a hand-made file",
    f"python -m {PACKAGE}.train -m hydra/launcher=slurm": "SLURM: tests/test_slurm.py runs this sweep on a cluster",
    "pytest #": "the suite runs last, after every other command (FINALLY), in a project that has run them",
    'pytest -m "not slow" #': "a subset of the line before",
}
# (text, replacement) in every command: what this machine cannot run, as its nearest equivalent.
REWRITES = (
    ("trainer=gpu", "trainer=smoke"),  # no GPU here
    ("--nproc_per_node=4", "--nproc_per_node=2"),  # two CPU processes (gloo) instead of four GPUs
    ("bench_speed.py --size full", "bench_speed.py --size smoke"),  # the paper-size models need a GPU
    ("git clone <repo> && cd <repo>", "git clone -q . ../clone && cd ../clone"),  # <repo> is this project
)
# After the pages: what the sequence adds (each baseline's ablation, the pipeline again), then the suite.
FINALLY = (
    f"python -m {PACKAGE}.ablate experiment=vit_cifar10 trainer=smoke --seeds 0,1,2",
    f"python -m {PACKAGE}.ablate experiment=simclr_cifar10 trainer=smoke --seeds 0,1,2",
    "dvc repro",
    "pytest -p no:cacheprovider",
)
ENTRY_POINTS = ("train", "ablate", "compare", "reproduce", "env")


def commands(page: Path) -> list[str]:
    """Every command of the page's bash blocks, in order: continuations joined, comments and blanks dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    # A comment starts with " # " (no command on these pages has that inside quotes).
    stripped = (" ".join(re.sub(r"(^|\s+)#(\s.*)?$", "", line).split()) for line in lines)
    return [line for line in stripped if line]


def rewrite(command: str) -> str | None:
    """The command as this test runs it, or None when SKIPPED."""
    # "#" ends a skipped command: `pytest #` is `pytest` alone, not `pytest tests/...`
    if any((command + " #").startswith(skipped) for skipped in SKIPPED):
        return None
    for text, replacement in REWRITES:
        command = command.replace(text, replacement)
    words = shlex.split(command)
    entry = next((w.removeprefix(f"{PACKAGE}.") for w in words if w.startswith(f"{PACKAGE}.")), None)
    overrides = [w for w in words if "=" in w and not w.startswith("-")]
    names_experiment = any(w.startswith("experiment=") for w in overrides) or (entry == "compare" and bool(overrides))
    if entry in ENTRY_POINTS and names_experiment and not any(w.startswith("trainer=") for w in overrides):
        command += " trainer=smoke"  # as docs/ablations.md says: add trainer=smoke to try it on a CPU
    return command


def script(project: Path) -> list[str]:
    steps = [rewrite(command) for page in PAGES for command in commands(project / page)]
    return [step for step in steps if step] + list(FINALLY)


def test_the_commands_are_read_and_rewritten_as_documented(bake: Baker) -> None:
    """The parsing and the substitutions themselves, on the real pages (fast: no command runs)."""
    project = bake(project_name="Readme Script")
    readme = commands(project / "README.md")
    assert readme[:2] == ["python -m venv .venv && . .venv/bin/activate", 'pip install -e ".[dev]"']
    assert "dvc repro" in readme and f"python -m {PACKAGE}.train experiment=vit_cifar10 trainer=gpu" in readme
    steps = script(project)
    assert not any("trainer=gpu" in step or "<repo>" in step or "slurm" in step for step in steps)
    assert f"python -m {PACKAGE}.ablate experiment=vit_cifar10 --variants full,gap --seeds 5 trainer=smoke" in steps
    assert steps[-1].startswith("pytest") and sum(step.startswith("pytest -p") for step in steps) == 1
    assert steps.index("dvc repro") < steps.index(f"python -m {PACKAGE}.ablate experiment=transformer_shakespeare "
                                                   "trainer=smoke --seeds 3")  # fmt: skip


def test_every_documented_command_runs_in_order_in_one_project(bake: Baker, fresh_python: Path) -> None:
    baked = bake(project_name="Readme Script", init_git="yes")
    project = fresh_python.parents[2] / baked.name  # beside the environment: the DVC remote lands next to it
    run(["cp", "-a", str(baked), str(project)], cwd=project.parent)
    bin_dir = fresh_python.parent  # `. .venv/bin/activate`: its bin/ first on PATH
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(bin_dir.parent),
        **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER") for what, value in GIT_ID.items()},
    }
    done = []
    for step in script(project):
        result = run(["bash", "-c", step], cwd=project, env=env, timeout=1800, check=False)
        if result.returncode != 0:
            pytest.fail(
                f"step {len(done) + 1} `{step}` exited {result.returncode} after {len(done)} steps that passed\n"
                f"--- stdout (end)\n{result.stdout[-4000:]}\n--- stderr (end)\n{result.stderr[-4000:]}"
            )
        done.append(step)
    assert " passed" in result.stdout and " failed" not in result.stdout  # the suite, last
    # The runs of the pipeline and of the typed commands never shared a folder: both sets are whole.
    assert len(list((project / "pipeline").glob("*/*/seed_*/metrics.json"))) == 12
    sweep = list((project / "runs" / "transformer_shakespeare").glob("full-*/seed_*/metrics.json"))
    assert len({path.parent.parent.name for path in sweep}) >= 3  # the default, and one per swept learning rate


GIT_ID = {"NAME": "Readme Script", "EMAIL": "readme@example.org"}
