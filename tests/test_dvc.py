"""DVC in baked projects: what generation sets up, and the smoke pipeline end to end, offline.

Fast: `.dvc/config` and `.dvc/.gitignore` equal what `dvc init` + `dvc remote add -d` write, for local,
absolute, home and URL remotes; the first commit holds them; without git, DVC asks for it; every baseline
combination gives a pipeline DVC can parse whose stages are those of params.yaml.

Slow (one baked project, module-scoped, about 2.5 minutes on 2 CPU cores): `dvc repro` of one experiment
(its dataset, 2 variants x 2 seeds, the comparison), a second `dvc repro` that reruns nothing, one changed
param rerunning only the stages that read it, `dvc metrics show` / `dvc plots show`, the whole default
pipeline, `dvc push` -> `git clone` -> `dvc pull` restoring data and results byte for byte, and a corrupted
data file that `dvc status` reports and training refuses.

The baked project's commands run with `python` = the test runner's interpreter and PYTHONPATH=<project>/src
(no install needed), DVC_NO_ANALYTICS=1 and wandb offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BIN, PYTHON, Baker, run, tool

DVC = tool("dvc")
REMOTES = ["../my-paper-dvc-storage", "./store", "/srv/dvc-store", "~/dvc-store", "s3://bucket/path", "ssh://host/dir"]
REMOTES += ["../store#1,b"]  # characters DVC's config format would cut or split unless quoted
GIT_IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.org"]
EXPERIMENT, MODEL, DATASET = "transformer_shakespeare", "transformer", "shakespeare_synthetic"


def project_env(project: Path) -> dict[str, str]:
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # `python` in dvc.yaml is the test runner's
        "PYTHONPATH": str(project / "src"),
        "DVC_NO_ANALYTICS": "1",
    }


def dvc(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([DVC, *args], cwd=project, env=project_env(project), check=check)


def ran_stages(output: str) -> list[str]:
    """Stages `dvc repro` executed (or would, with --dry), from its "Running stage '...'" lines."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


# ---------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("remote", REMOTES)
def test_dvc_setup_is_what_dvc_init_and_remote_add_write(bake: Baker, tmp_path: Path, remote: str) -> None:
    project = bake(dvc_remote=remote)
    reference = tmp_path / "my-paper"
    reference.mkdir()
    run(["git", "init", "-q"], cwd=reference)
    run([DVC, "init", "-q"], cwd=reference, env={"DVC_NO_ANALYTICS": "1"})
    run([DVC, "remote", "add", "-d", "storage", remote], cwd=reference, env={"DVC_NO_ANALYTICS": "1"})
    for name in (".dvc/config", ".dvc/.gitignore"):
        assert (project / name).read_text() == (reference / name).read_text(), name
    assert (project / ".dvcignore").read_text().startswith("# ")  # dvc init's file, plus our patterns


def test_the_first_commit_holds_the_dvc_setup_and_dvc_works(bake: Baker) -> None:
    project = bake(init_git="yes")
    tracked = run(["git", "ls-files"], cwd=project).stdout.split()
    for name in (".dvc/config", ".dvc/.gitignore", ".dvc/plots/curves.json", ".dvcignore", "dvc.yaml", "params.yaml"):
        assert name in tracked, name
    assert run(["git", "status", "--porcelain"], cwd=project).stdout == ""
    remotes = dvc(project, "remote", "list").stdout.split()
    assert remotes[0] == "storage" and Path(remotes[1]) == project.parent / "my-paper-dvc-storage"
    stages = dvc(project, "stage", "list", "--name-only").stdout.split()
    assert {"prepare_cifar10", "prepare_shakespeare", "compare_vit", "train_transformer@full-0"} <= set(stages)


def test_without_git_dvc_asks_for_it(bake: Baker, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(bake(init_git="no", project_name="No Git"), project)
    failed = dvc(project, "status", check=False)
    assert failed.returncode != 0 and "is not a git repository" in failed.stderr
    run(["git", "init", "-q"], cwd=project)
    dvc(project, "status")  # works once the repository exists
    shutil.rmtree(project / ".git")
    dvc(project, "config", "--local", "core.no_scm", "true")  # or opt out of git, as the hook's docstring says
    dvc(project, "status")


@pytest.mark.parametrize(
    ("options", "experiments"),
    [
        ({"include_vit": "no", "include_transformer": "no", "tracker": "none"}, {"simclr": "cifar10"}),
        ({"include_simclr": "no", "include_transformer": "no"}, {"vit": "cifar10"}),
        ({"include_simclr": "no", "include_vit": "no"}, {"transformer": "shakespeare"}),
        ({}, {"transformer": "shakespeare", "vit": "cifar10", "simclr": "cifar10"}),
    ],
)
def test_every_combination_has_a_pipeline_of_its_baselines(
    bake: Baker, options: dict[str, str], experiments: dict[str, str]
) -> None:
    from dvc.repo import Repo

    project = bake(**options)
    params = yaml.safe_load((project / "params.yaml").read_text())
    with Repo(str(project), config={"core": {"no_scm": True}}) as repo:
        groups = {stage.name.split("@")[0] for stage in repo.index.stages}
    assert groups == {f"prepare_{d}" for d in experiments.values()} | {
        f"{kind}_{model}" for model in experiments for kind in ("train", "compare")
    }
    assert set(params["data"]) == set(experiments.values())
    assert {name.split("_")[0] for name in params["experiments"]} == set(experiments)
    assert ("wandb/" in (project / ".dvcignore").read_text()) == (options.get("tracker") != "none")


# ---------------------------------------------------------------------------------------------------
# The smoke pipeline, end to end (slow)
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(bake: Baker, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A baked project (git, default options) after `dvc repro compare_<model>`: its dataset, 2 x 2 runs, compare."""
    baked = bake(init_git="yes")
    project = tmp_path_factory.mktemp("pipeline") / baked.name  # its own folder, and so its own remote
    shutil.copytree(baked, project, symlinks=True)
    repro = dvc(project, "repro", f"compare_{MODEL}")
    return {"project": project, "repro": repro.stdout}


def run_dirs(project: Path) -> list[Path]:
    params = yaml.safe_load((project / "params.yaml").read_text())
    variants = params["experiments"][EXPERIMENT]["variants"]
    return [project / "pipeline" / EXPERIMENT / v / f"seed_{s}" for v in variants for s in params["seeds"]]


@pytest.mark.slow
def test_repro_runs_one_experiment_end_to_end(pipeline: dict[str, Any]) -> None:
    project = pipeline["project"]
    runs = run_dirs(project)
    assert len(runs) == 4
    assert ran_stages(pipeline["repro"]) == [
        f"prepare_{DATASET.split('_')[0]}",
        *(f"train_{MODEL}@{r.parent.name}-{r.name.removeprefix('seed_')}" for r in runs),
        f"compare_{MODEL}",
    ]
    for name in ("comparison.md", "comparison.tex", "comparison.json", "comparison.png", "summary.json", "curves.json"):
        assert (project / "pipeline" / EXPERIMENT / name).is_file(), name
    # Each run's environment record names the DVC hash of every input it read, as dvc.lock has it now.
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    (data_out,) = lock["stages"][f"prepare_{DATASET.split('_')[0]}"]["outs"]
    for run_dir in runs:
        inputs = json.loads((run_dir / "environment.json").read_text())["data"]
        assert inputs and all(i["dvc"]["md5"] == data_out["md5"] and i["dvc"]["modified"] is False for i in inputs)
        assert all(len(i["dvc"]["file_md5"]) == 32 for i in inputs)


@pytest.mark.slow
def test_a_second_repro_reruns_nothing(pipeline: dict[str, Any]) -> None:
    project = pipeline["project"]
    again = dvc(project, "repro", f"compare_{MODEL}")
    assert ran_stages(again.stdout) == []
    assert "Data and pipelines are up to date" in dvc(project, "status", f"compare_{MODEL}", "--with-deps").stdout


@pytest.mark.slow
def test_one_changed_param_reruns_only_the_stages_that_read_it(pipeline: dict[str, Any]) -> None:
    project = pipeline["project"]
    params_file = project / "params.yaml"
    original = params_file.read_text()
    # A pipeline choice only the comparison reads: that stage alone runs, for real.
    params_file.write_text(original.replace("metric: val/loss", "metric: val/acc"))
    assert ran_stages(dvc(project, "repro", f"compare_{MODEL}").stdout) == [f"compare_{MODEL}"]
    assert "val/acc" in json.loads((project / "pipeline" / EXPERIMENT / "summary.json").read_text())["full"]
    params_file.write_text(original)
    dvc(project, "repro", f"compare_{MODEL}")  # back to the committed state (DVC's run cache restores it)
    # Hydra keys, dry runs (`--dry` lists the stages whose own deps or params changed; the comparison
    # follows once their outputs change). A key of one ablation: that variant's runs only, not the data.
    ablation = project / "configs" / "ablation" / f"{MODEL}_no_residual.yaml"
    text = ablation.read_text()
    ablation.write_text(text + "trainer:\n  lr: 2.0e-3\n")
    dry = ran_stages(dvc(project, "repro", "--dry", f"compare_{MODEL}").stdout)
    assert dry == [f"train_{MODEL}@no_residual-0", f"train_{MODEL}@no_residual-1"]
    ablation.write_text(text)
    # A key of the smoke preset outside its data section: every run of the model, still not the data.
    preset = project / "configs" / "preset" / f"{MODEL}_smoke.yaml"
    text = preset.read_text()
    preset.write_text(text.replace("lr: 3.0e-3", "lr: 2.0e-3"))
    dry = ran_stages(dvc(project, "repro", "--dry", f"compare_{MODEL}").stdout)
    assert dry == [f"train_{MODEL}@{r.parent.name}-{r.name.removeprefix('seed_')}" for r in run_dirs(project)]
    preset.write_text(text)
    assert ran_stages(dvc(project, "repro", f"compare_{MODEL}").stdout) == []


@pytest.mark.slow
def test_metrics_and_plots_show(pipeline: dict[str, Any]) -> None:
    project = pipeline["project"]
    target = f"pipeline/{EXPERIMENT}/summary.json"
    (shown,) = json.loads(dvc(project, "metrics", "show", "--json", target).stdout).values()  # the workspace
    summary = shown["data"][target]["data"]
    for run_dir in run_dirs(project):
        final = json.loads((run_dir / "metrics.json").read_text())
        assert summary[run_dir.parent.name]["val/loss"][run_dir.name] == final["val/loss"]
    targets = [f"pipeline/{EXPERIMENT}/curves.json", f"pipeline/{EXPERIMENT}/comparison.png"]
    plots = json.loads(dvc(project, "plots", "show", "--json", *targets).stdout)
    assert not plots.get("errors"), plots.get("errors")
    curves = plots["data"][f"pipeline/{EXPERIMENT}/curves.json"][0]["content"]
    assert {row["run"] for row in curves["data"]["values"]} == {f"{r.parent.name}/{r.name}" for r in run_dirs(project)}
    assert f"pipeline/{EXPERIMENT}/comparison.png" in plots["data"]


@pytest.mark.slow
def test_the_whole_default_pipeline_runs_and_then_is_up_to_date(pipeline: dict[str, Any]) -> None:
    project = pipeline["project"]
    first = ran_stages(dvc(project, "repro").stdout)
    assert {"prepare_cifar10", "compare_vit", "compare_simclr"} <= set(first)
    assert not any(stage.startswith(("prepare_shakespeare", f"train_{MODEL}")) for stage in first)  # done above
    assert ran_stages(dvc(project, "repro").stdout) == []
    assert "Data and pipelines are up to date" in dvc(project, "status").stdout


def tracked_files(project: Path) -> dict[str, bytes]:
    """Every file DVC versions here: what dvc.lock lists as outputs (wandb/ is .dvcignore'd)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    files = {}
    for stage in lock["stages"].values():
        for out in stage["outs"]:
            root = project / out["path"]
            paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
            for path in paths:
                relative = path.relative_to(project).as_posix()
                if "/wandb/" not in f"/{relative}":
                    files[relative] = path.read_bytes()
    return files


@pytest.mark.slow
def test_push_then_clone_and_pull_restores_everything_byte_for_byte(pipeline: dict[str, Any]) -> None:
    project = pipeline["project"]
    run(["git", "add", "-A"], cwd=project)
    run(["git", *GIT_IDENTITY, "commit", "-q", "-m", "Results"], cwd=project)
    dvc(project, "push")
    clone = project.parent / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], cwd=project.parent)
    assert not (clone / "data").exists() and not (clone / "pipeline").exists()
    dvc(clone, "pull")
    original = tracked_files(project)
    assert len(original) > 40 and tracked_files(clone) == original
    assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
    pipeline["clone"] = clone


@pytest.mark.slow
def test_a_corrupted_data_file_is_detected_and_refused(pipeline: dict[str, Any]) -> None:
    clone = pipeline.get("clone")
    if clone is None:
        pytest.skip("needs the clone of test_push_then_clone_and_pull_restores_everything_byte_for_byte")
    data = clone / "data" / DATASET / "train.bin"
    original = data.read_bytes()
    data.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    status = dvc(clone, "status").stdout
    assert f"prepare_{DATASET.split('_')[0]}" in status and "modified" in status
    elsewhere = clone.parent / "corrupt-run"  # not under runs/: a stray run would be a change to compare's deps
    train = run(
        [PYTHON, "-m", "my_paper.train", f"experiment={EXPERIMENT}", "trainer=smoke", f"run.dir={elsewhere}"],
        cwd=clone,
        env=project_env(clone),
        check=False,
    )
    assert train.returncode != 0
    assert f"data/{DATASET}/train.bin is corrupt" in train.stderr and "dvc checkout" in train.stderr
    assert not (elsewhere / "metrics.json").exists()
    dvc(clone, "checkout", "--force")
    assert data.read_bytes() == original
    assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
