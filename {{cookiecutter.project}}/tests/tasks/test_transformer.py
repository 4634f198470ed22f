"""LanguageModelTask: windows and targets, determinism, fixed evaluation, and that training learns."""

from __future__ import annotations

import math

import pytest
import torch

from {{ cookiecutter.package }}.data.types import TextData
from {{ cookiecutter.package }}.models.transformer import TransformerConfig
from {{ cookiecutter.package }}.tasks.transformer import LanguageModelTask

VOCAB = tuple("abcdefgh")


def markov_text(n: int, seed: int) -> torch.Tensor:
    """Token ids where each token is followed by one of two tokens, (3 c) % 8 or (3 c + 1) % 8, at random.

    Knowing the previous token leaves 1 bit of uncertainty, so the best loss is ln 2 ≈ 0.693 nats
    (1 bit per character), against ln 8 ≈ 2.079 for a model that has learned nothing.
    """
    g = torch.Generator().manual_seed(seed)
    coins = torch.randint(0, 2, (n,), generator=g)
    ids = [0]
    for coin in coins[1:].tolist():
        ids.append((3 * ids[-1] + coin) % len(VOCAB))
    return torch.tensor(ids)


def text_data(n_train: int = 4000, n_val: int = 1000) -> TextData:
    return TextData(markov_text(n_train, seed=0), markov_text(n_val, seed=1), VOCAB)


def tiny(**overrides) -> TransformerConfig:
    base = dict(vocab_size=65, block_size=16, d_model=32, num_heads=4, num_layers=2, d_ff=64, dropout=0.0)
    return TransformerConfig(**{**base, **overrides})


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_epoch_is_one_pass_over_the_training_text_and_vocab_comes_from_data() -> None:
    task = LanguageModelTask(tiny(), text_data())
    assert task.num_train == (4000 - 16) // 16 == 249
    assert task.cfg.vocab_size == 8 and task.model.head.out_features == 8
    assert task.unit == "tokens"


def test_batch_windows_targets_and_shifts() -> None:
    data = text_data()
    task = LanguageModelTask(tiny(), data)
    indices = torch.tensor([0, 5, 248, 5])
    x, y = task.batch(indices, gen(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    torch.testing.assert_close(y[:, :-1], x[:, 1:])  # targets are the inputs shifted by one
    train = data.train.tolist()
    for i, (xs, ys) in zip(indices.tolist(), zip(x.tolist(), y.tolist(), strict=True), strict=True):
        starts = [s for s in range(16 * i, 16 * (i + 1)) if train[s : s + 16] == xs]
        assert starts, f"window {i} does not start in [{16 * i}, {16 * (i + 1)})"
        assert any(train[s + 1 : s + 17] == ys for s in starts)
    assert task.count((x, y)) == 64


def test_batch_is_determined_by_the_generator() -> None:
    task = LanguageModelTask(tiny(), text_data())
    indices = torch.arange(32)
    first, again, other = task.batch(indices, gen(1)), task.batch(indices, gen(1)), task.batch(indices, gen(2))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    shifts = {tuple(task.batch(torch.tensor([3]), gen(s))[0][0].tolist()) for s in range(20)}
    assert len(shifts) > 5  # random shifts reach many start positions, not one fixed window


def test_evaluate_is_deterministic_and_consistent() -> None:
    torch.manual_seed(0)
    task = LanguageModelTask(tiny(dropout=0.2), text_data(), eval_windows=20, eval_batch_size=8)
    assert task.val_starts.numel() == 20 and task.val_starts[-1] == 1000 - 16 - 1  # evenly spaced to the end
    task.model.train()
    first, again = task.evaluate(task.model), task.evaluate(task.model)
    assert first == again  # eval mode: dropout off, fixed windows
    assert task.model.training  # the mode is restored
    assert set(first) == {"val/loss", "val/bpc", "val/acc"}
    assert first["val/bpc"] == pytest.approx(first["val/loss"] / math.log(2))
    assert 0.0 <= first["val/acc"] <= 1.0
    # The cap only ever shortens the list; a short split gives fewer, non-overlapping windows.
    assert LanguageModelTask(tiny(), text_data(), eval_windows=10_000).val_starts.numel() == (1000 - 1) // 16


def test_example_batch_is_fixed() -> None:
    task = LanguageModelTask(tiny(), text_data())
    x, _ = task.example_batch(4)
    assert torch.equal(x, task.example_batch(4)[0])
    torch.testing.assert_close(x[1], text_data().train[16:32])


def test_rejects_a_bidirectional_model_and_too_little_text() -> None:
    with pytest.raises(ValueError, match="causal"):
        LanguageModelTask(tiny(causal=False), text_data())
    with pytest.raises(ValueError, match="training split"):
        LanguageModelTask(tiny(), text_data(n_train=20))
    with pytest.raises(ValueError, match="validation split"):
        LanguageModelTask(tiny(), text_data(n_val=16))


def test_training_learns_the_markov_chain() -> None:
    """A few hundred AdamW steps take the loss from ln 8 to near the entropy floor of ln 2."""
    torch.manual_seed(0)
    task = LanguageModelTask(tiny(), text_data(), eval_windows=60)
    initial = task.evaluate(task.model)
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=1e-2)
    step = 0
    for epoch in range(12):  # 12 epochs x 7 steps of 32 windows
        order = torch.randperm(task.num_train, generator=gen(epoch))
        for indices in order.split(32)[:-1]:
            loss, metrics = task.loss(task.model, task.batch(indices, gen(1000 + step)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    final = task.evaluate(task.model)
    assert initial["val/loss"] > 1.9  # about ln 8 = 2.08 at initialisation
    assert final["val/loss"] < 0.80  # floor ln 2 = 0.69
    assert final["val/bpc"] < 1.15 and "train/acc" in metrics
