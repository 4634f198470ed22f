"""tiny-shakespeare (Karpathy, 2015, "The Unreasonable Effectiveness of Recurrent Neural Networks") and its twin.

Real data: the 1,115,394-byte `input.txt` of char-rnn is downloaded once into `<root>/shakespeare/`, checked
against its sha256 (the value TensorFlow Datasets also pins), and encoded character by character as in
nanoGPT: the vocabulary is the sorted set of characters (65 of them), the first 90 % of the text is the
training split and the last 10 % the validation split, stored as little-endian uint16 `train.bin` / `val.bin`
beside `meta.json` (`itos`: the vocabulary) and `manifest.json` (data/files.py).

Synthetic twin (`synthetic=True`, in `<root>/shakespeare_synthetic/`): a "play" over the same 65-character
alphabet, generated in well under a second without a network, with structure a character model can learn
at every scale: speeches open with a speaker name in capitals and a colon on its own line, lines are
capitalised and end in punctuation, a blank line separates speeches, speakers alternate within a scene,
and words come from a fixed vocabulary through a sparse first-order Markov chain (each word has five
possible successors with Zipf weights). A character bigram model already falls well below log(65) nats and
a Transformer has word- and phrase-level structure left to learn. The whole alphabet is the vocabulary,
so models see the real vocabulary size (65) even though `$`, `&` and `3` never occur.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .files import (
    MANIFEST,
    DataError,
    atomic_write_bytes,
    atomic_write_json,
    download,
    is_prepared,
    keep_prepared,
    prepare_command,
    read_manifest,
    sha256_file,
    verify,
    write_manifest,
)
from .types import TextData

log = logging.getLogger(__name__)

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
# sha256 of that file (1,115,394 bytes); the same value is pinned in tensorflow/datasets'
# url_checksums/tiny_shakespeare.txt. A module constant, so tests can point it at a local file.
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"  # pragma: allowlist secret
ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # tiny-shakespeare's 65, sorted
FILES = ("input.txt", "train.bin", "val.bin", "meta.json")
TOKEN_DTYPE = np.dtype("<u2")  # uint16 as in nanoGPT: any vocabulary below 65,536 characters

# The twin's cast and vocabulary: a fixed list, so every seed plays with the same words.
SPEAKERS = (
    "FIRST CITIZEN", "SECOND CITIZEN", "MENENIUS", "CORIOLANUS", "ROMEO", "JULIET", "NURSE", "FRIAR LAURENCE",
    "KING RICHARD", "QUEEN ELIZABETH", "GLOUCESTER", "BUCKINGHAM", "DUKE VINCENTIO", "ISABELLA", "PETRUCHIO",
    "KATHARINA",
)  # fmt: skip
WORDS = (
    "the", "a", "my", "thy", "his", "her", "our", "your", "this", "that", "no", "all", "I", "thou", "he", "she",
    "we", "you", "they", "it", "me", "thee", "him", "us", "them", "is", "art", "be", "hath", "have", "shall",
    "will", "would", "must", "may", "do", "doth", "did", "speak", "hear", "love", "know", "see", "come", "go",
    "stay", "die", "live", "swear", "give", "take", "make", "tell", "fear", "weep", "sleep", "lord", "king",
    "queen", "crown", "heart", "death", "life", "night", "day", "blood", "grace", "honour", "sword",
    "tongue", "eyes", "hand", "soul", "heaven", "earth", "war", "peace", "time", "world", "name", "word",
    "father", "mother", "son", "brother", "friend", "enemy", "sweet", "good", "noble", "gentle", "fair", "foul",
    "true", "false", "dead", "young", "old", "poor", "proud", "royal", "dear", "and", "but", "or", "nor", "if",
    "for", "of", "to", "in", "with", "from", "by", "upon", "against", "not", "now", "then", "here", "there",
    "yet", "so", "too", "well", "o", "ay", "nay", "alas", "is't", "o'er", "ne'er", "e'en", "good-morrow",
    "farewell", "methinks", "prithee", "anon", "hence", "whence", "wherefore",
)  # fmt: skip
SUCCESSORS = 5  # out-degree of each word in the Markov chain: enough variety, still learnable


@dataclass
class ShakespeareConfig:
    """Which tiny-shakespeare to load; `root` is set to `${paths.data_dir}` by configs/data/shakespeare.yaml."""

    name: str = "shakespeare"
    root: str = "data"  # prepared data goes to <root>/shakespeare (real) or <root>/shakespeare_synthetic
    synthetic: bool = False  # the offline twin: same alphabet, learnable structure, generated in < 1 s
    val_fraction: float = 0.1  # the last 10 % of the text is validation, as in nanoGPT
    synthetic_chars: int = 1_115_394  # twin length: as long as the real text (smoke runs use 200_000)
    seed: int = 0  # twin generator seed, not the run seed: every run sees the same text


Config = ShakespeareConfig  # the schema data/prepare.py builds from the command line


# ---------------------------------------------------------------------------------------------------
# Synthetic twin
# ---------------------------------------------------------------------------------------------------


def generate_synthetic(num_chars: int, seed: int) -> str:
    """A deterministic play of exactly `num_chars` characters over `ALPHABET` (see the module docstring).

    Every draw goes through `random.Random.random()`, the one method whose sequence Python guarantees not
    to change across versions (`choice`, `sample` and `randint` carry no such promise), so the twin is the
    same text on every Python and platform. One draw per word keeps a million characters under a second.
    """
    if num_chars < 1:
        raise ValueError(f"synthetic_chars must be positive, got {num_chars}")
    uniform = random.Random(seed).random

    def integer(low: int, high: int) -> int:  # uniform in [low, high]
        return low + int(uniform() * (high - low + 1))

    def pick(options: Sequence[str]) -> str:
        return options[integer(0, len(options) - 1)]

    vocab = sorted(set(WORDS))
    chain = {}  # word -> its SUCCESSORS distinct possible next words, most likely first
    for word in vocab:
        pool = list(vocab)
        chain[word] = [pool.pop(integer(0, len(pool) - 1)) for _ in range(SUCCESSORS)]
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(SUCCESSORS)))  # Zipf weights
    ends, stops = ",,,;:.", ".!?"  # within a speech lines mostly continue; a speech ends with a full stop

    parts: list[str] = []
    length = 0
    word = pick(vocab)
    while length < num_chars:
        cast = list(SPEAKERS)
        cast = [cast.pop(integer(0, len(cast) - 1)) for _ in range(integer(2, 3))]  # a scene: 2-3 speakers
        for turn in range(integer(4, 10)):
            lines = []
            num_lines = integer(1, 4)
            for line in range(num_lines):
                words = []
                for _ in range(integer(3, 9)):
                    word = chain[word][bisect.bisect(cumulative, uniform() * cumulative[-1])]
                    words.append(word)
                text = " ".join(words)
                lines.append(text[0].upper() + text[1:] + pick(stops if line == num_lines - 1 else ends))
            speech = f"{cast[turn % len(cast)]}:\n" + "\n".join(lines) + "\n\n"  # speakers take turns
            parts.append(speech)
            length += len(speech)
    return "".join(parts)[:num_chars]


# ---------------------------------------------------------------------------------------------------
# Prepare and load
# ---------------------------------------------------------------------------------------------------


def dataset_dir(cfg: ShakespeareConfig) -> Path:
    return Path(cfg.root) / ("shakespeare_synthetic" if cfg.synthetic else "shakespeare")


def _params(cfg: ShakespeareConfig) -> dict[str, float | int]:
    """The settings that shape the prepared files: a different value means "prepare again"."""
    if not cfg.synthetic:
        return {"val_fraction": cfg.val_fraction}
    return {"val_fraction": cfg.val_fraction, "synthetic_chars": cfg.synthetic_chars, "seed": cfg.seed}


def _command(cfg: ShakespeareConfig) -> str:
    """The command that recreates `dataset_dir(cfg)`, quoted in error messages."""
    return prepare_command("shakespeare", cfg.synthetic, dataset_dir(cfg), _params(cfg))


def _check(cfg: ShakespeareConfig) -> None:
    if not 0 < cfg.val_fraction < 1:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {cfg.val_fraction}")
    if cfg.synthetic_chars < 2:
        raise ValueError(f"data.synthetic_chars must be at least 2 (one per split), got {cfg.synthetic_chars}")


def _real_text(cfg: ShakespeareConfig) -> str:
    """The verified real `input.txt`: downloaded if absent, refused if it differs from `SHA256`."""
    path = dataset_dir(cfg) / "input.txt"
    if not path.is_file():
        log.info("downloading %s", URL)
        download(URL, path, SHA256)
    actual = sha256_file(path)
    if actual != SHA256:
        raise DataError(
            f"{path} is not tiny-shakespeare: sha256 {actual}, expected {SHA256}; "
            f"delete it and run `{_command(cfg)}` to download it again"
        )
    return path.read_text(encoding="utf-8")


def encode(text: str, vocab: str) -> np.ndarray:
    """Token ids of `text` under a sorted `vocab` (one id per character), as `TOKEN_DTYPE`.

    Vectorised: characters become code points, and `searchsorted` finds each one in the sorted vocabulary.
    """
    if len(vocab) > np.iinfo(TOKEN_DTYPE).max + 1:
        raise ValueError(f"a vocabulary of {len(vocab)} characters does not fit in {TOKEN_DTYPE}")
    points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")  # (N,) one code point per character
    table = np.frombuffer(vocab.encode("utf-32-le"), dtype="<u4")  # (V,) sorted
    ids = np.searchsorted(table, points)
    unknown = (ids == len(table)) | (table[np.minimum(ids, len(table) - 1)] != points)
    if unknown.any():
        raise ValueError(f"character {text[int(np.argmax(unknown))]!r} is not in the vocabulary")
    return ids.astype(TOKEN_DTYPE)


def prepare(cfg: ShakespeareConfig) -> Path:
    """Make `dataset_dir(cfg)` hold the verified text, its encoded splits and a manifest; no-op if it does.

    Real: download once (sha256-checked) and encode. Synthetic: generate and encode. A corrupt or
    half-written directory is rebuilt (a corrupt real `input.txt` is an error: it cannot be regenerated).
    """
    _check(cfg)
    directory = dataset_dir(cfg)
    params = _params(cfg)
    if is_prepared(directory, params):
        log.info("%s is up to date", directory)
        return directory
    keep_prepared(directory, params)  # another size of the twin: never written over
    if cfg.synthetic:
        log.info("generating the synthetic tiny-shakespeare twin (%s) in %s", params, directory)
        text, vocab, source = generate_synthetic(cfg.synthetic_chars, cfg.seed), ALPHABET, f"synthetic:{__name__}"
        atomic_write_bytes(directory / "input.txt", text.encode("utf-8"))
    else:
        text = _real_text(cfg)
        vocab, source = "".join(sorted(set(text))), URL
    ids = encode(text, vocab)
    num_train = int(len(ids) * (1 - cfg.val_fraction))  # nanoGPT: the first 90 % trains, the rest validates
    atomic_write_bytes(directory / "train.bin", ids[:num_train].tobytes())
    atomic_write_bytes(directory / "val.bin", ids[num_train:].tobytes())
    atomic_write_json(directory / "meta.json", {"itos": list(vocab), "vocab_size": len(vocab)})
    write_manifest(directory, FILES, dataset="shakespeare", source=source, synthetic=cfg.synthetic, params=params)
    log.info(
        "%s: %d characters, vocabulary %d, %d train / %d val tokens",
        directory,
        len(text),
        len(vocab),
        num_train,
        len(ids) - num_train,
    )
    return directory


def load(cfg: ShakespeareConfig) -> TextData:
    """The encoded splits as int64 tensors, prepared first if missing and always verified against the manifest.

    Unlike `prepare`, a corrupt directory is an error here, not silently rebuilt.
    """
    _check(cfg)
    directory = dataset_dir(cfg)
    if not (directory / MANIFEST).is_file() or read_manifest(directory).params != _params(cfg):
        prepare(cfg)
    verify(directory, hint=_command(cfg))
    train, val = (
        np.fromfile(directory / name, dtype=TOKEN_DTYPE).astype(np.int64) for name in ("train.bin", "val.bin")
    )
    vocab = json.loads((directory / "meta.json").read_text(encoding="utf-8"))["itos"]
    return TextData(train=torch.from_numpy(train), val=torch.from_numpy(val), vocab=tuple(vocab))


def input_files(cfg: ShakespeareConfig) -> list[Path]:
    """The files a run reads, for the environment record and DVC dependencies."""
    directory = dataset_dir(cfg)
    return [directory / name for name in ("train.bin", "val.bin", "meta.json", MANIFEST)]
