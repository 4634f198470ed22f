"""`python -m {{ cookiecutter.package }}.ablate`: defaults from configs/, the sweep it launches, what it refuses, and
one real smoke ablation (2 variants x 2 seeds) from the command line to the four comparison files."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.ablate import (
    DEFAULT_SEEDS,
    AblationError,
    main,
    parse_seeds,
    plan,
    resolve,
    sweep_command,
    variants_of,
)
from {{ cookiecutter.package }}.config import CONFIG_DIR, run_dir_of

from helpers import PROJECT_ROOT, find_run, run_cli

PKG = "{{ cookiecutter.package }}"
# experiment, its model, and the metric an ablation of it is judged on by default
EXPERIMENTS = [
{%- if cookiecutter.__transformer %}
    ("transformer_shakespeare", "transformer", "val/loss"),
{%- endif %}
{%- if cookiecutter.__vit %}
    ("vit_cifar10", "vit", "test/acc"),
{%- endif %}
{%- if cookiecutter.__simclr %}
    ("simclr_cifar10", "simclr", "knn/acc"),
{%- endif %}
]
EXPERIMENT, MODEL, METRIC = EXPERIMENTS[0]
LISTED = ", ".join(sorted(e[0] for e in EXPERIMENTS))  # how an error lists the experiments
# the cheapest pair of the first baseline, for the end-to-end run
{%- if cookiecutter.__transformer %}
SMOKE_VARIANTS = ("full", "no_attention")
{%- elif cookiecutter.__vit %}
SMOKE_VARIANTS = ("full", "gap")
{%- else %}
SMOKE_VARIANTS = ("full", "weak_aug")
{%- endif %}


def write_finished(run_dir: Path) -> None:
    """What marks a run finished for the planner: its metrics.json."""
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text("{}")


@pytest.mark.parametrize(("experiment", "model", "metric"), EXPERIMENTS, ids=[e[0] for e in EXPERIMENTS])
def test_defaults_are_every_ablation_of_the_model_and_its_headline_metric(
    experiment: str, model: str, metric: str
) -> None:
    ablation = resolve([f"experiment={experiment}", "trainer=smoke"])
    files = {path.stem for path in (CONFIG_DIR / "ablation").glob(f"{model}_*.yaml")}
    assert ablation.model == model
    assert {v.option for v in ablation.variants} == files and len(files) >= 2
    assert "full" in {v.name for v in ablation.variants}
    assert ablation.seeds == tuple(range(DEFAULT_SEEDS))
    assert ablation.metrics == (metric,)
    assert ablation.root == Path("runs") / experiment
    assert ablation.overrides == (f"experiment={experiment}", "trainer=smoke")


def test_variants_are_named_by_file_suffix_or_variant_key_in_the_order_given() -> None:
    available = variants_of(MODEL)
    first, last = available[0], available[-1]
    ablation = resolve([f"experiment={EXPERIMENT}"], variants=f"{last.name},{first.short},{last.short}")
    assert [v.option for v in ablation.variants] == [last.option, first.option]  # a repeat counts once
    assert all(v.option == f"{MODEL}_{v.short}" for v in available)


def test_a_model_config_override_keeps_the_models_ablations() -> None:
    # model=<config> picks a preset of the same model (e.g. vit_b16 extends base_vit): same ablation files
    for path in sorted((CONFIG_DIR / "model").glob("*.yaml")):
        if f"base_{MODEL}" in path.read_text():
            assert resolve([f"experiment={EXPERIMENT}", f"model={path.stem}"]).model == MODEL


@pytest.mark.parametrize(("text", "seeds"), [("3", (0, 1, 2)), ("0,2,5", (0, 2, 5)), ("7,1", (7, 1)), ("2", (0, 1))])
def test_seeds_are_a_count_or_a_list(text: str, seeds: tuple[int, ...]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["1", "0", "5,5", "x", "1.5", ""])
def test_fewer_than_two_distinct_seeds_are_refused(text: str) -> None:
    with pytest.raises(AblationError, match="--seeds"):
        parse_seeds(text)


def test_the_sweep_is_one_multirun_of_variants_times_seeds_with_every_override(tmp_path: Path) -> None:
    ablation = resolve(
        [f"experiment={EXPERIMENT}", "trainer=smoke", "trainer.lr=0.01", f"paths.runs_dir={tmp_path}"],
        variants=",".join(SMOKE_VARIANTS),
        seeds="0,1,4",
        launcher="slurm",
    )
    [(variants, seeds)] = plan(ablation)
    command = sweep_command(ablation, variants, seeds)
    assert command[1:4] == ["-m", f"{PKG}.train", "-m"]
    assert command[4:] == [
        f"experiment={EXPERIMENT}",
        "trainer=smoke",
        "trainer.lr=0.01",
        f"paths.runs_dir={tmp_path}",
        "hydra/launcher=slurm",
        f"ablation={MODEL}_{SMOKE_VARIANTS[0]},{MODEL}_{SMOKE_VARIANTS[1]}",
        "seed=0,1,4",
    ]


def test_finished_runs_of_the_same_config_are_kept_and_only_missing_runs_train(tmp_path: Path) -> None:
    overrides = [f"experiment={EXPERIMENT}", f"paths.runs_dir={tmp_path}"]
    a, b = SMOKE_VARIANTS
    ablation = resolve(overrides, variants=f"{a},{b}", seeds="3")
    va = ablation.variants[0]
    assert ablation.root == tmp_path / EXPERIMENT
    assert [(tuple(v.name for v in vs), s) for vs, s in plan(ablation)] == [((a, b), (0, 1, 2))]
    # Each variant's folder is the one its training run will claim (repro/rundir.py's rule, not a copy of it).
    for variant in ablation.variants:
        assert ablation.run_dir(variant, 1) == run_dir_of([*overrides, f"ablation={variant.option}", "seed=1"])
        assert variant.setting.startswith(f"{variant.name}-")

    write_finished(ablation.run_dir(va, 0))
    write_finished(ablation.run_dir(va, 1))
    # the missing runs only, grouped into as few products as possible
    assert [(tuple(v.name for v in vs), s) for vs, s in plan(ablation)] == [((a,), (2,)), ((b,), (0, 1, 2))]
    retrain = resolve([*overrides, "run.overwrite=true"], variants=f"{a},{b}", seeds="3")
    assert [(tuple(v.name for v in vs), s) for vs, s in plan(retrain)] == [((a, b), (0, 1, 2))]

    # Other settings are other folders: nothing finished is reused for them, nothing is refused.
    faster = resolve([*overrides, "trainer.lr=0.5"], variants=f"{a},{b}", seeds="3")
    assert {v.setting for v in faster.variants}.isdisjoint(v.setting for v in ablation.variants)
    assert [(tuple(v.name for v in vs), s) for vs, s in plan(faster)] == [((a, b), (0, 1, 2))]
    # Runs of other commands in the same folder (a README run, a sweep over trainer.lr) change nothing.
    write_finished(tmp_path / EXPERIMENT / "other-0123abcd" / "seed_0")
    assert [(tuple(v.name for v in vs), s) for vs, s in plan(ablation)] == [((a,), (2,)), ((b,), (0, 1, 2))]
    with pytest.raises(AblationError, match=r"^trainer.learning_rate=0.5: .* \(did you mean trainer.lr\?[^\n]*$"):
        resolve([*overrides, "trainer.learning_rate=0.5"], variants=f"{a},{b}", seeds="3")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["trainer=smoke"], f"no experiment=<name> given; expected one of: {LISTED}"),
        (["experiment=nope"], f"experiment=nope is unknown; expected one of: {LISTED}"),
        ([f"experiment={EXPERIMENT}", "--variants", "full,nope"], "unknown variant nope of model"),
        ([f"experiment={EXPERIMENT}", "--variants", "full"], "at least 2 variants, got 1 (full)"),
        ([f"experiment={EXPERIMENT}", "seed=0,1"], "use --seeds"),
        ([f"experiment={EXPERIMENT}", "ablation=x"], "use --variants"),
        ([f"experiment={EXPERIMENT}", "--seeds", "1"], "expected at least 2"),
        ([f"experiment={EXPERIMENT}", "--baseline", "nope"], "--baseline nope is not one of the chosen variants"),
        ([f"experiment={EXPERIMENT}", "--launcher", "slurm", "hydra/launcher=slurm"], "both given"),
        ([f"experiment={EXPERIMENT}", "--metric", "val/losss"], "--metric val/losss is not in the metrics.json"),
        ([f"experiment={EXPERIMENT}", "run.name=mine"], "run.name= would put every variant and seed into one folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert expected in err


def test_unknown_variant_lists_the_available_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([f"experiment={EXPERIMENT}", "--variants", "nope,full"]) == 2
    listed = capsys.readouterr().err.rsplit("expected names from: ", 1)[1].strip().split(", ")
    assert listed == [v.short for v in variants_of(MODEL)]


def test_dry_run_prints_the_training_command_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [f"experiment={EXPERIMENT}", f"paths.runs_dir={tmp_path}", "--variants", ",".join(SMOKE_VARIANTS)]
    assert main([*argv, "--seeds", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == (
        f"python -m {PKG}.train -m experiment={EXPERIMENT} paths.runs_dir={tmp_path} "
        f"ablation={MODEL}_{SMOKE_VARIANTS[0]},{MODEL}_{SMOKE_VARIANTS[1]} seed=0,1"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_ablate_commands_in_the_docs_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = re.compile(rf"^python -m {PKG}\.ablate (.+)$", re.MULTILINE)
    pages = [(PROJECT_ROOT / name).read_text() for name in ("README.md", "docs/ablations.md")]
    commands = [command for page in pages for command in pattern.findall(page)]
    assert commands, "docs/ablations.md shows the command"
    for command in commands:
        assert main([*shlex.split(command), f"paths.runs_dir={tmp_path}", "--dry-run"]) == 0, command
        assert f"python -m {PKG}.train -m" in capsys.readouterr().out


@pytest.mark.slow
def test_one_command_trains_every_variant_and_seed_then_writes_the_comparison(tmp_path: Path) -> None:
    args = [f"{PKG}.ablate", f"experiment={EXPERIMENT}", "trainer=smoke", "tracker=none"]
    args += ["--variants", ",".join(SMOKE_VARIANTS), "--seeds", "2"]
    result = run_cli(args, tmp_path)
    root = tmp_path / "runs" / EXPERIMENT
    for name in ("comparison.md", "comparison.tex", "comparison.json", "comparison.png"):
        assert (root / name).stat().st_size > 0, name
    report = json.loads((root / "comparison.json").read_text())
    assert set(report["variants"]) == set(SMOKE_VARIANTS)
    assert report["seeds"] == [0, 1] and report["metric"] == METRIC and report["baseline"] == "full"
    assert [(p["a"], p["b"]) for p in report["pairs"]] == [(SMOKE_VARIANTS[1], "full")]
    for variant in SMOKE_VARIANTS:
        for seed in (0, 1):
            metrics = json.loads((find_run(tmp_path / "runs", EXPERIMENT, variant, seed) / "metrics.json").read_text())
            assert report["variants"][variant]["values"][str(seed)] == metrics[METRIC]
    assert f"$ python -m {PKG}.train -m experiment={EXPERIMENT}" in result.stdout
    assert "paired tests" in result.stdout and SMOKE_VARIANTS[1] in result.stdout  # the printed tables

    # The same command again finds every run finished: it trains nothing and compares the same runs.
    metrics = find_run(tmp_path / "runs", EXPERIMENT) / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    again = run_cli(args, tmp_path)
    assert "$ python" not in again.stdout and "paired tests" in again.stdout
    assert metrics.stat().st_mtime_ns == stamp
    assert json.loads((root / "comparison.json").read_text())["variants"] == report["variants"]
    # Other settings are other runs: the whole sweep is planned again, the finished runs stay untouched.
    other = run_cli([*args[:4], "trainer.lr=1e-5", *args[4:], "--dry-run"], tmp_path)
    assert other.stdout.strip().startswith(f"python -m {PKG}.train -m experiment={EXPERIMENT}")
    assert "trainer.lr=1e-5" in other.stdout and metrics.stat().st_mtime_ns == stamp
