import random
from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package }}.train.checkpoint import (
    CheckpointError,
    config_hash,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

CONFIG = {"seed": 0, "trainer": {"lr": 0.1}, "run": {"dir": "a"}}


def state(step: int, config: dict = CONFIG) -> dict:
    return {"config": config, "config_hash": config_hash(config), "step": step, "weights": torch.arange(4.0) * step}


def test_rng_roundtrip_restores_every_library() -> None:
    saved = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(saved)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_roundtrip_through_weights_only_load(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, {**state(1), "rng": rng_state()})
    loaded = load_checkpoint(tmp_path, CONFIG)
    assert loaded is not None and loaded["step"] == 1
    set_rng_state(loaded["rng"])  # everything survived weights_only=True


def test_previous_checkpoint_is_kept(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "prev.pt"]
    assert torch.load(tmp_path / "prev.pt", weights_only=True)["step"] == 1


def test_no_checkpoint_means_fresh_start(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path, CONFIG) is None


def test_truncated_last_falls_back_to_prev(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    loaded = load_checkpoint(tmp_path, CONFIG)
    assert loaded is not None and loaded["step"] == 1
    assert "unreadable" in caplog.text


def test_crash_between_renames_uses_prev(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    (tmp_path / "last.pt").rename(tmp_path / "prev.pt")  # the moment after the first rename
    assert load_checkpoint(tmp_path, CONFIG)["step"] == 2


def test_killed_between_the_renames_of_a_save_resumes_from_the_new_checkpoint(tmp_path: Path) -> None:
    """The third save wrote last.pt.next whole and moved last.pt to prev.pt, then died: step 3 is the newest."""
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    (tmp_path / "side").mkdir()
    save_checkpoint(tmp_path / "side", state(3))
    (tmp_path / "side" / "last.pt").replace(tmp_path / "last.pt.next")
    (tmp_path / "side").rmdir()
    (tmp_path / "last.pt").replace(tmp_path / "prev.pt")
    assert load_checkpoint(tmp_path, CONFIG)["step"] == 3
    save_checkpoint(tmp_path, state(4))  # the resumed run's next save installs as usual
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "prev.pt"]
    assert load_checkpoint(tmp_path, CONFIG)["step"] == 4


def test_all_unreadable_is_an_error_not_a_silent_restart(tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"no readable checkpoint .* refusing to restart silently"):
        load_checkpoint(tmp_path, CONFIG)


def test_checkpoint_of_another_config_names_the_keys(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, state(1))
    other = {**CONFIG, "trainer": {"lr": 0.5}}
    with pytest.raises(CheckpointError, match=r"different config \(trainer.lr: 0.1 -> 0.5\)"):
        load_checkpoint(tmp_path, other)
    # run.* keys don't change results: still the same experiment
    assert load_checkpoint(tmp_path, {**CONFIG, "run": {"dir": "b"}}) is not None


def test_foreign_file_is_rejected(tmp_path: Path) -> None:
    torch.save({"model": {}}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path, CONFIG)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    torch.save({"format_version": 1, "evil": Path("x")}, tmp_path / "last.pt")  # arbitrary class: weights_only says no
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        load_checkpoint(tmp_path, CONFIG)
