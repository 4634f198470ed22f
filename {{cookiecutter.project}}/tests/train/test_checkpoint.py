import random
from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package }}.train.checkpoint import (
    CheckpointError,
    config_hash,
    load_checkpoint,
    prefix_sha256,
    rng_state,
    save_checkpoint,
    set_rng_state,
    state_digest,
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
    with pytest.raises(CheckpointError, match=r"no intact checkpoint .* refusing to restart silently"):
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
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        load_checkpoint(tmp_path, CONFIG)


def big_state(step: int) -> dict:
    """A checkpoint mostly made of tensor bytes, like a real one: damage anywhere lands in data."""
    weights = torch.Generator().manual_seed(step)
    return {**state(step), "weights": torch.randn(64, 256, generator=weights), "progress": {"step": step}}


@pytest.mark.parametrize("where", [0.3, 0.5, 0.7, 0.9])
def test_damaged_bytes_inside_the_last_checkpoint_fall_back_to_the_previous_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: float
) -> None:
    """XOR of 4 KiB in the middle of last.pt: torch.load would read it without a word; the digest does not."""
    save_checkpoint(tmp_path, big_state(1))
    save_checkpoint(tmp_path, big_state(2))
    last = tmp_path / "last.pt"
    data = bytearray(last.read_bytes())
    start = int(len(data) * where)
    data[start : start + 4096] = bytes(b ^ 0xA5 for b in data[start : start + 4096])
    last.write_bytes(bytes(data))
    loaded = load_checkpoint(tmp_path, CONFIG)
    assert loaded is not None and loaded["step"] == 1 and torch.equal(loaded["weights"], big_state(1)["weights"])
    assert "last.pt" in caplog.text and "prev.pt" in caplog.text  # the warning names both files


def test_the_digest_sees_every_value_and_nothing_else() -> None:
    base = big_state(1)
    assert state_digest(base) == state_digest(big_state(1))  # a pure function of the content
    flipped = {**base, "weights": base["weights"].clone()}
    flipped["weights"][3, 7] += 1e-6
    for other in (flipped, {**base, "step": 2}, {**base, "weights": base["weights"].double()}, {**base, "x": None}):
        assert state_digest(other) != state_digest(base)


def test_a_damaged_metrics_log_falls_back_to_a_checkpoint_that_vouches_for_less(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_bytes(b'{"step": 1}\n')
    vouch = lambda n: {"metrics_offset": n, "metrics_sha256": prefix_sha256(log, n)}  # noqa: E731
    save_checkpoint(tmp_path, {**big_state(1), "progress": vouch(12)})
    log.write_bytes(b'{"step": 1}\n{"step": 2}\n')
    save_checkpoint(tmp_path, {**big_state(2), "progress": vouch(24)})
    assert load_checkpoint(tmp_path, CONFIG, metrics_log=log)["step"] == 2
    log.write_bytes(b'{"step": 1}\n{"step": 9}\n')  # damage after the first checkpoint's part of the log
    assert load_checkpoint(tmp_path, CONFIG, metrics_log=log)["step"] == 1
    log.write_bytes(b'{"step": 7}\n{"step": 9}\n')  # and before it: nothing left to trust
    with pytest.raises(CheckpointError, match=r"no intact checkpoint .*metrics.jsonl is not what it recorded"):
        load_checkpoint(tmp_path, CONFIG, metrics_log=log)
