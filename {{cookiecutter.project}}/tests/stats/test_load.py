"""Reading runs and refusing comparisons that would be unfair: each bad input gives its one-line error."""

from __future__ import annotations

import json
import math

import pytest

from {{ cookiecutter.package }}.stats.load import (
    ComparisonError,
    check_configs,
    check_seeds,
    load_runs,
)

ACC = {"test/acc": 0.9, "test/loss": 0.3}


def test_load_runs_reads_every_seed_and_lists_unfinished_ones(tmp_path, write_run):
    for seed in (0, 1):
        write_run(tmp_path, "full", seed, {**ACC, "model/params": 10}, train_seconds=5.0 + seed)
    (tmp_path / "full" / "seed_2").mkdir()  # started, never finished
    (tmp_path / ".sweeps" / "0").mkdir(parents=True)  # Hydra's sweep bookkeeping is not a variant
    runs = load_runs(tmp_path)
    assert (runs.variants, runs.seeds) == (["full"], [0, 1])
    assert [path.name for path in runs.skipped] == ["seed_2"]
    run = runs.of("full")[1]
    assert (run.seed, run.metrics["model/params"], run.train_seconds) == (1, 10, 6.0)
    assert "seed" not in run.config and "tracker.name" not in run.config and "data.root" not in run.config
    assert run.config["model.pool"] == "cls" and run.config["trainer.betas"] == [0.9, 0.95]
    assert runs.values("test/acc") == {"full": {0: 0.9, 1: 0.9}}


def test_two_directories_for_one_seed_are_an_error_not_a_silent_pick(tmp_path, write_run):
    write_run(tmp_path, "full", 1, ACC)
    (tmp_path / "full" / "seed_1").rename(tmp_path / "full" / "seed_01")
    write_run(tmp_path, "full", 1, {**ACC, "test/acc": 0.1})
    with pytest.raises(ComparisonError, match=r"seed_01 and .*seed_1 both hold seed 1 of 'full'"):
        load_runs(tmp_path)


def test_no_runs_is_an_error(tmp_path):
    with pytest.raises(ComparisonError, match="no finished runs under"):
        load_runs(tmp_path)
    (tmp_path / "full" / "seed_0").mkdir(parents=True)
    with pytest.raises(ComparisonError, match=r"1 unfinished, without metrics\.json"):
        load_runs(tmp_path)
    with pytest.raises(ComparisonError, match="is not a directory"):
        load_runs(tmp_path / "missing")


def test_fewer_than_two_seeds_is_an_error(tmp_path, write_run):
    write_run(tmp_path, "full", 0, ACC)
    write_run(tmp_path, "full", 1, ACC)
    write_run(tmp_path, "gap", 0, ACC, overrides={"model.pool": "gap"}, variant_keys=["model.pool"])
    with pytest.raises(ComparisonError, match=r"at least 2 seeds.*'gap' has 1"):
        check_seeds(load_runs(tmp_path))


def test_unpaired_seeds_name_the_missing_ones_per_variant(tmp_path, write_run):
    for seed in (0, 1, 2):
        write_run(tmp_path, "full", seed, ACC)
    for seed in (0, 1, 3):
        write_run(tmp_path, "gap", seed, ACC, overrides={"model.pool": "gap"}, variant_keys=["model.pool"])
    with pytest.raises(ComparisonError, match="'full' lacks seed 3; 'gap' lacks seed 2"):
        check_seeds(load_runs(tmp_path))


def test_missing_metric_names_the_run_and_the_metrics_it_has(tmp_path, write_run):
    write_run(tmp_path, "full", 0, ACC)
    write_run(tmp_path, "full", 1, {"test/loss": 0.3})
    with pytest.raises(ComparisonError, match=r"full/seed_1 has no metric 'test/acc'; its metrics are: test/loss"):
        load_runs(tmp_path).values("test/acc")


@pytest.mark.parametrize("value", [math.nan, "0.9", None, True])
def test_a_metric_that_is_not_a_finite_number_is_an_error(tmp_path, write_run, value):
    write_run(tmp_path, "full", 0, ACC)
    run_dir = write_run(tmp_path, "full", 1, ACC)
    (run_dir / "metrics.json").write_text(json.dumps({"test/acc": value}))
    with pytest.raises(ComparisonError, match="expected a finite number"):
        load_runs(tmp_path).values("test/acc")


def test_variants_may_differ_in_their_ablation_keys_and_their_children(tmp_path, write_run):
    for seed in (0, 1):
        write_run(tmp_path, "full", seed, ACC, overrides={"tracker.tags": [f"job{seed}"], "data.root": f"/n{seed}"})
        write_run(tmp_path, "gap", seed, ACC, overrides={"model.pool": "gap"}, variant_keys=["model.pool"])
        # Declares the parent key; the difference lies in a child of it.
        write_run(
            tmp_path, "nopos", seed, ACC, overrides={"model.pos_embed.kind": "none"}, variant_keys=["model.pos_embed"]
        )
    runs = load_runs(tmp_path)
    check_seeds(runs)
    check_configs(runs)  # no error: tracker.*, data.root and run.* are bookkeeping


def test_variants_differing_outside_their_ablation_keys_is_an_error(tmp_path, write_run):
    for seed in (0, 1):
        write_run(tmp_path, "full", seed, ACC)
        write_run(
            tmp_path,
            "gap",
            seed,
            ACC,
            overrides={"model.pool": "gap", "trainer.lr": 0.003},
            variant_keys=["model.pool"],
        )
    with pytest.raises(
        ComparisonError, match=r"'full' and 'gap' differ .*: trainer\.lr \(full: 0\.001, gap: 0\.003\)$"
    ):
        check_configs(load_runs(tmp_path))


def test_a_key_present_in_only_one_variant_counts_as_a_difference(tmp_path, write_run):
    for seed in (0, 1):
        write_run(tmp_path, "full", seed, ACC)
        write_run(tmp_path, "extra", seed, ACC, overrides={"trainer.ema": 0.999})
    with pytest.raises(ComparisonError, match=r"trainer\.ema \(extra: 0\.999, full: '<missing>'\)"):
        check_configs(load_runs(tmp_path))


def test_runs_of_one_variant_must_agree_except_for_the_seed(tmp_path, write_run):
    write_run(tmp_path, "full", 0, ACC)
    write_run(tmp_path, "full", 1, ACC, overrides={"trainer.epochs": 20})
    with pytest.raises(
        ComparisonError, match=r"runs of variant 'full' differ .*trainer\.epochs \(seed_0: 10, seed_1: 20\)"
    ):
        check_configs(load_runs(tmp_path))


def test_a_run_whose_config_contradicts_its_directory_is_an_error(tmp_path, write_run):
    run_dir = write_run(tmp_path, "full", 0, ACC)
    run_dir.rename(tmp_path / "full" / "seed_7")
    with pytest.raises(ComparisonError, match=r"lies in full/seed_7 but its config\.yaml says"):
        load_runs(tmp_path)


def test_a_finished_run_without_config_is_an_error(tmp_path, write_run):
    run_dir = write_run(tmp_path, "full", 0, ACC)
    (run_dir / "config.yaml").unlink()
    with pytest.raises(ComparisonError, match=r"has metrics\.json but no config\.yaml"):
        load_runs(tmp_path)


def test_a_sweep_over_a_key_is_compared_with_labels_that_name_the_key(tmp_path, write_run):
    """`train -m trainer.lr=0.001,0.0003`: two settings of variant full, each folder <variant>-<digest>."""
    for seed in (0, 1):
        for setting, lr in (("full-aaaa1111", 0.001), ("full-bbbb2222", 0.0003)):
            write_run(
                tmp_path, "full", seed, ACC, overrides={"trainer.lr": lr}, override_keys=["trainer.lr"], setting=setting
            )
    runs = load_runs(tmp_path)
    assert runs.variants == ["full trainer.lr=0.0003", "full trainer.lr=0.001"]
    check_seeds(runs)
    check_configs(runs)  # both commands set trainer.lr: the sweep is the comparison
    assert runs.values("test/acc")["full trainer.lr=0.001"] == {0: 0.9, 1: 0.9}


def test_a_key_set_on_one_command_line_only_is_still_refused(tmp_path, write_run):
    """The confound the check exists for: one variant trained with another lr is not a sweep."""
    for seed in (0, 1):
        write_run(tmp_path, "full", seed, ACC, setting="full-aaaa1111")
        write_run(
            tmp_path,
            "gap",
            seed,
            ACC,
            overrides={"model.pool": "gap", "trainer.lr": 0.003},
            variant_keys=["model.pool"],
            override_keys=["trainer.lr"],
            setting="gap-cccc3333",
        )
    with pytest.raises(ComparisonError, match=r"nor both commands set \(override_keys\): trainer\.lr"):
        check_configs(load_runs(tmp_path))


def test_only_the_chosen_settings_and_seeds_are_read(tmp_path, write_run):
    for seed in (0, 1, 2):
        write_run(tmp_path, "full", seed, ACC, setting="full-aaaa1111")
        write_run(tmp_path, "gap", seed, ACC, overrides={"model.pool": "gap"}, setting="gap-dddd4444")
    write_run(tmp_path, "full", 0, ACC, overrides={"trainer.lr": 0.5}, setting="full-eeee5555")  # a README run
    runs = load_runs(tmp_path, ["full-aaaa1111", "gap-dddd4444"], seeds=[0, 1])
    assert (runs.variants, runs.seeds) == (["full", "gap"], [0, 1])
    with pytest.raises(ComparisonError, match=r"has no runs of full-ffff6666; expected folders"):
        load_runs(tmp_path, ["full-aaaa1111", "full-ffff6666"])


def test_a_folder_of_many_settings_says_how_to_pick_some(tmp_path, write_run):
    from {{ cookiecutter.package }}.compare import compare

    for seed in (0, 1):
        for setting, lr in (("full-aaaa1111", 0.001), ("full-bbbb2222", 0.0003)):
            write_run(
                tmp_path, "full", seed, ACC, overrides={"trainer.lr": lr}, override_keys=["trainer.lr"], setting=setting
            )
    write_run(
        tmp_path, "full", 0, ACC, overrides={"trainer.lr": 0.5}, override_keys=["trainer.lr"], setting="full-cccc3333"
    )
    with pytest.raises(
        ComparisonError, match=r"'full trainer.lr=0.5' has 1; to compare some of the 3 settings in .*key=value"
    ):
        compare(tmp_path, ["test/acc"])
    report = compare(tmp_path, ["test/acc"], settings=["full-aaaa1111", "full-bbbb2222"])
    assert sorted(report["variants"]) == ["full trainer.lr=0.0003", "full trainer.lr=0.001"]
