import os
import random

import numpy as np
import pytest
import torch

from {{ cookiecutter.package }}.repro.seeding import dataloader_generator, derive_seed, seed_everything, worker_init_fn


def draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), torch.rand(()).item()


def test_same_seed_same_draws_in_every_library() -> None:
    seed_everything(123, deterministic=False, rank=0)
    first = draw()
    seed_everything(123, deterministic=False, rank=0)
    assert draw() == first
    seed_everything(124, deterministic=False, rank=0)
    assert all(a != b for a, b in zip(draw(), first, strict=True))


def test_rank_offset_gives_each_rank_its_own_stream() -> None:
    report0 = seed_everything(7, deterministic=False, rank=0)
    rank0 = draw()
    report1 = seed_everything(7, deterministic=False, rank=1)
    assert (report0.rank_seed, report1.rank_seed) == (7, 8)
    assert draw() != rank0


def test_deterministic_mode_sets_torch_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        report = seed_everything(0, deterministic=True, rank=0)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == report.cublas_workspace_config == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)


def test_missing_pythonhashseed_is_reported(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    report = seed_everything(0, deterministic=False, rank=0)
    assert not report.pythonhashseed_set
    assert "PYTHONHASHSEED is not set" in caplog.text
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    assert seed_everything(0, deterministic=False, rank=0).pythonhashseed_set


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "3", True])
def test_bad_seed_is_a_clear_error(bad: object) -> None:
    with pytest.raises(ValueError, match=r"seed=.* is not valid; expected an integer"):
        seed_everything(bad, deterministic=False)  # type: ignore[arg-type]


def test_dataloader_workers_are_seeded_reproducibly() -> None:
    class Noise(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> tuple[float, float]:
            return float(np.random.rand()), random.random()

    def epoch() -> list[float]:
        loader = torch.utils.data.DataLoader(
            Noise(),
            batch_size=2,
            shuffle=True,
            num_workers=2,
            worker_init_fn=worker_init_fn,
            generator=dataloader_generator(5),
        )
        return [v for a, b in loader for v in (*a.tolist(), *b.tolist())]

    first = epoch()
    assert epoch() == first
    assert len(set(first)) == len(first), "workers must not share one NumPy stream"


def test_derive_seed_separates_nearby_tuples() -> None:
    seeds = {derive_seed(s, e, b) for s in range(3) for e in range(3) for b in range(3)}
    assert len(seeds) == 27
    assert derive_seed(0, 1) != derive_seed(1, 0)
    assert all(0 <= s < 2**63 for s in seeds)
