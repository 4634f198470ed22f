"""tiny-shakespeare: the synthetic twin is learnable text over the real alphabet; the real path checks its hash."""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package }}.data import shakespeare
from {{ cookiecutter.package }}.data.files import MANIFEST, DataError, read_manifest
from {{ cookiecutter.package }}.data.shakespeare import (
    ALPHABET,
    ShakespeareConfig,
    encode,
    generate_synthetic,
    input_files,
    load,
    prepare,
)

SMOKE_CHARS = 200_000


def synthetic(root: Path, **overrides: object) -> ShakespeareConfig:
    return ShakespeareConfig(root=str(root), synthetic=True, **{"synthetic_chars": SMOKE_CHARS, **overrides})


def bigram_cross_entropy(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> float:
    """Validation cross-entropy (nats/char) of a count-based bigram model with add-one smoothing."""
    counts = torch.ones(vocab_size, vocab_size)
    counts.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1), accumulate=True)
    log_probs = (counts / counts.sum(1, keepdim=True)).log()
    return -log_probs[val[:-1], val[1:]].mean().item()


# ---------------------------------------------------------------------------------------------------
# Synthetic twin
# ---------------------------------------------------------------------------------------------------


def test_alphabet_is_tiny_shakespeares() -> None:
    assert len(ALPHABET) == 65 and list(ALPHABET) == sorted(set(ALPHABET))


def test_twin_text_looks_like_a_play() -> None:
    text = generate_synthetic(20_000, seed=0)
    assert len(text) == 20_000
    assert set(text) <= set(ALPHABET)
    speeches = [s for s in text.split("\n\n")[:-1] if s]  # the last one may be cut off
    for speech in speeches:
        speaker, *lines = speech.split("\n")
        assert speaker in {f"{name}:" for name in shakespeare.SPEAKERS}
        assert lines and all(line[0].isupper() and line[-1] in ",;:.!?" for line in lines)
        assert lines[-1][-1] in ".!?"


def test_twin_is_deterministic(tmp_path: Path) -> None:
    assert generate_synthetic(5_000, seed=0) == generate_synthetic(5_000, seed=0)
    assert generate_synthetic(5_000, seed=0) != generate_synthetic(5_000, seed=1)
    names = ("input.txt", "train.bin", "val.bin", "meta.json", MANIFEST)
    first, second = prepare(synthetic(tmp_path / "a")), prepare(synthetic(tmp_path / "b"))
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)


def test_twin_generation_is_fast() -> None:
    """Smoke-size twins take well under a second of CPU time (CPU time: other processes don't inflate it)."""
    start = time.process_time()
    generate_synthetic(SMOKE_CHARS, seed=0)
    assert time.process_time() - start < 1.0


def test_twin_splits_vocab_and_roundtrip(tmp_path: Path) -> None:
    data = load(synthetic(tmp_path))
    assert data.vocab == tuple(ALPHABET) and data.vocab_size == 65
    assert (len(data.train), len(data.val)) == (180_000, 20_000)  # the last 10 % validates
    assert data.train.dtype == torch.int64 and int(data.train.min()) >= 0 and int(data.train.max()) < 65
    text = (tmp_path / "shakespeare_synthetic" / "input.txt").read_text(encoding="utf-8")
    assert data.decode(data.train) + data.decode(data.val) == text
    assert data.decode(data.encode("ROMEO:\nO sweet love!\n")) == "ROMEO:\nO sweet love!\n"
    assert [p.name for p in input_files(synthetic(tmp_path))] == ["train.bin", "val.bin", "meta.json", MANIFEST]


def test_twin_is_learnable(tmp_path: Path) -> None:
    """A bigram model is already far below the uniform log(65) nats; a unigram one is not as good."""
    data = load(synthetic(tmp_path))
    bigram = bigram_cross_entropy(data.train, data.val, data.vocab_size)
    counts = torch.bincount(data.train, minlength=data.vocab_size).float() + 1
    unigram = -(counts / counts.sum()).log()[data.val].mean().item()
    assert bigram < 0.6 * math.log(65)
    assert bigram < unigram - 0.5


def test_prepare_is_idempotent_and_follows_params(tmp_path: Path) -> None:
    directory = prepare(synthetic(tmp_path))
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    prepare(synthetic(tmp_path))
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps
    # Another split of the twin would change what DVC and earlier runs read: kept, with the way out named.
    with pytest.raises(DataError, match=r"so it is kept, not replaced by one with val_fraction=0.2"):
        load(synthetic(tmp_path, val_fraction=0.2))
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps
    data = load(synthetic(tmp_path / "elsewhere", val_fraction=0.2))
    assert (len(data.train), len(data.val)) == (160_000, 40_000)
    assert read_manifest(tmp_path / "elsewhere" / directory.name).params["val_fraction"] == 0.2


def test_bad_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data.val_fraction must be in \(0, 1\), got 1.0"):
        load(synthetic(tmp_path, val_fraction=1.0))


def test_encode_rejects_unknown_characters() -> None:
    np.testing.assert_array_equal(encode("ba\n", "\nab"), [2, 1, 0])
    with pytest.raises(ValueError, match="character 'z' is not in the vocabulary"):
        encode("abz", "\nab")


# ---------------------------------------------------------------------------------------------------
# Real path: a local text where the cache expects input.txt, or served from a file:// URL
# ---------------------------------------------------------------------------------------------------

REAL_TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 20


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make `REAL_TEXT` the published file: its sha256 becomes the expected one."""
    monkeypatch.setattr(shakespeare, "SHA256", hashlib.sha256(REAL_TEXT.encode()).hexdigest())
    return REAL_TEXT


def test_real_path_uses_the_cached_file(tmp_path: Path, pinned: str) -> None:
    cache = tmp_path / "shakespeare" / "input.txt"
    cache.parent.mkdir()
    cache.write_text(pinned, encoding="utf-8")
    cfg = ShakespeareConfig(root=str(tmp_path))
    data = load(cfg)
    vocab = sorted(set(pinned))
    assert data.vocab == tuple(vocab)
    n = int(len(pinned) * 0.9)
    assert data.decode(data.train) == pinned[:n] and data.decode(data.val) == pinned[n:]
    meta = json.loads((tmp_path / "shakespeare" / "meta.json").read_text())
    assert meta == {"itos": vocab, "vocab_size": len(vocab)}
    manifest = read_manifest(tmp_path / "shakespeare")
    assert (manifest.source, manifest.synthetic) == (shakespeare.URL, False)
    assert manifest.files["input.txt"].sha256 == shakespeare.SHA256


def test_real_path_downloads(tmp_path: Path, pinned: str, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "server" / "input.txt"
    served.parent.mkdir()
    served.write_text(pinned, encoding="utf-8")
    monkeypatch.setattr(shakespeare, "URL", served.as_uri())
    data = load(ShakespeareConfig(root=str(tmp_path / "data")))
    assert (tmp_path / "data" / "shakespeare" / "input.txt").read_text(encoding="utf-8") == pinned
    assert len(data.train) + len(data.val) == len(pinned)


def test_real_path_rejects_a_wrong_file(tmp_path: Path, pinned: str) -> None:
    cache = tmp_path / "shakespeare" / "input.txt"
    cache.parent.mkdir()
    cache.write_text(pinned.replace("speak", "spaek"), encoding="utf-8")
    with pytest.raises(DataError) as error:
        prepare(ShakespeareConfig(root=str(tmp_path)))
    message = str(error.value)
    assert "\n" not in message
    assert f"{cache} is not tiny-shakespeare" in message and shakespeare.SHA256 in message
    assert hashlib.sha256(cache.read_bytes()).hexdigest() in message and "delete it" in message
    assert not (tmp_path / "shakespeare" / "train.bin").exists()


def test_real_path_rejects_a_corrupt_download(tmp_path: Path, pinned: str, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "server" / "input.txt"
    served.parent.mkdir()
    served.write_text(pinned[:-1], encoding="utf-8")  # truncated
    monkeypatch.setattr(shakespeare, "URL", served.as_uri())
    with pytest.raises(DataError, match=r"has sha256 [0-9a-f]{64}, expected " + shakespeare.SHA256):
        prepare(ShakespeareConfig(root=str(tmp_path / "data")))
    assert not (tmp_path / "data" / "shakespeare" / "input.txt").exists()
