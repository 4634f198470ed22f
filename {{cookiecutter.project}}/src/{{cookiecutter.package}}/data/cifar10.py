"""CIFAR-10 (Krizhevsky, 2009, "Learning Multiple Layers of Features from Tiny Images") and its synthetic twin.

Real data: the python-pickle archive is streamed into `<root>/raw/cifar10/` with its published md5 checked
on the way (data/files.py:download) and kept there as a cache, outside the prepared directory so that a DVC
output `<root>/cifar10` holds only what runs read. The md5 of every extracted batch is checked again
before it is unpickled (pickle runs code, so only the bytes the publisher listed are ever loaded), and the
batches become four `.npy` arrays beside a `meta.json` and a `manifest.json`. `.npy` rather than `.npz` or
`.pt`: zip containers embed timestamps, so equal data would give different bytes and DVC would see a change
on every rebuild.

Synthetic twin (`synthetic=True`, in `<root>/cifar10_synthetic/`): the same shapes and dtypes (uint8 NCHW,
32 x 32 x 3, int64 labels, 10 balanced classes), made in seconds without a network. Each class is a
texture family whose identity lives in its *spatial structure*, so it survives the augmentations the
baselines use (random (resized) crops, horizontal flips, colour jitter, grayscale):

    stripes_horizontal, stripes_vertical   gratings at 0 / 90 degrees
    stripes_diagonal                       45 or 135 degrees (one class: a flip turns one into the other)
    checker, checker_diagonal              products of two gratings, axis-aligned or at 45 degrees
    rings                                  concentric rings around a random centre
    spokes                                 eight alternating sectors (cos 4*theta) around a random centre
    dots                                   a lattice of bright spots
    disc                                   one filled disc of random radius
    zigzag                                 horizontal stripes bent into a zigzag

Every image draws its own centre, period (3.5-7 px), phase, small rotation (up to 11 degrees), polarity,
contrast, mean colour and noise level. Only the mean colour carries a weak class cue (a class hue mixed with
a random colour), so pixel-level classifiers stay near 30 % while a tiny three-layer CNN reaches 85-90 % in
a few epochs, also on cropped, flipped or grayscale test images (tests/data/test_cifar10.py checks this).

The generator uses only +, -, *, /, sqrt and floor (triangle waves instead of sines, a rational rotation
instead of cos/sin): those are correctly rounded in IEEE arithmetic, so with the same numpy the bytes are
the same on every machine, not only on the one that made them. Images come in chunks of 1,000 with their
own seeds, so a smaller twin is a prefix of a larger one.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .files import (
    MANIFEST,
    DataError,
    atomic_write_json,
    atomic_writer,
    download,
    file_hash,
    is_prepared,
    keep_prepared,
    prepare_command,
    read_manifest,
    verify,
    write_manifest,
)
from .types import ImageData

log = logging.getLogger(__name__)

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# published with the dataset; checked while downloading
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"  # pragma: allowlist secret
BATCH_DIR = "cifar-10-batches-py"  # what the archive extracts to
# md5 of each extracted file, as published with the dataset (identical to torchvision's CIFAR10 lists).
RAW_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",  # pragma: allowlist secret
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",  # pragma: allowlist secret
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",  # pragma: allowlist secret
    "data_batch_4": "634d18415352ddfa80567beed471001a",  # pragma: allowlist secret
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",  # pragma: allowlist secret
    "test_batch": "40351d587109b95175f43aff81a1287e",  # pragma: allowlist secret
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",  # pragma: allowlist secret
}
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
SPLITS = ("train", "test")
ARRAYS = tuple(f"{split}_{kind}.npy" for split in SPLITS for kind in ("images", "labels"))
FILES = (*ARRAYS, "meta.json")
NUM_TRAIN, NUM_TEST, SIZE = 50_000, 10_000, 32

SYNTHETIC_CLASSES = (
    "stripes_horizontal",
    "stripes_vertical",
    "stripes_diagonal",
    "checker",
    "checker_diagonal",
    "rings",
    "spokes",
    "dots",
    "disc",
    "zigzag",
)
CHUNK = 1_000  # images per independently seeded chunk (a multiple of the 10 classes)


@dataclass
class CIFAR10Config:
    """Which CIFAR-10 to load; `root` is set to `${paths.data_dir}` by configs/data/cifar10.yaml."""

    name: str = "cifar10"
    root: str = "data"  # prepared data goes to <root>/cifar10 (real) or <root>/cifar10_synthetic
    synthetic: bool = False  # the offline twin: same shapes, real signal, generated in seconds
    num_train: int | None = None  # real: stratified subset size; synthetic: twin size. None: 50,000
    num_test: int | None = None  # likewise for the test split. None: 10,000
    seed: int = 0  # data seed (twin generator, subset order), not the run seed: every run sees the same data


Config = CIFAR10Config  # the schema data/prepare.py builds from the command line


# ---------------------------------------------------------------------------------------------------
# Synthetic twin
# ---------------------------------------------------------------------------------------------------


def _wave(t: np.ndarray) -> np.ndarray:
    """Triangle wave with period 1 and range [-1, 1]: 1 at integers, -1 halfway between."""
    return 1 - 4 * np.abs(t - np.floor(t + 0.5))


def _patterns(label: int, x: np.ndarray, y: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """The texture of class `label` for n images.

    Args:
        label: class index into `SYNTHETIC_CLASSES`.
        x, y: (n, H, W) pixel coordinates relative to each image's centre, already rotated.
        params: per-image parameters, each (n, 1, 1): period, phase1, phase2, diagonal (+-1), radius.

    Returns:
        (n, H, W) float32 in [-1, 1].
    """
    period, phase1, phase2 = params["period"], params["phase1"], params["phase2"]
    diag = np.float32(np.sqrt(0.5))  # projection onto a 45-degree axis keeps the period in pixels
    name = SYNTHETIC_CLASSES[label]
    if name == "stripes_horizontal":
        return _wave(y / period + phase1)
    if name == "stripes_vertical":
        return _wave(x / period + phase1)
    if name == "stripes_diagonal":
        return _wave(diag * (x + params["diagonal"] * y) / period + phase1)
    if name == "checker":
        return _wave(x / period + phase1) * _wave(y / period + phase2)
    if name == "checker_diagonal":
        return _wave(diag * (x + y) / period + phase1) * _wave(diag * (x - y) / period + phase2)
    if name == "rings":
        return _wave(np.sqrt(x * x + y * y) / period + phase1)
    if name == "spokes":
        x2, y2 = x * x, y * y
        r4 = (x2 + y2) ** 2
        cos4 = (x2 * x2 - 6 * x2 * y2 + y2 * y2) / (r4 + 1)  # cos(4 theta), damped to 0 at the centre
        return np.clip(2 * cos4, -1, 1)  # sharpen the sectors
    if name == "dots":
        both = _wave(x / period + phase1) + _wave(y / period + phase2)  # in [-2, 2], 2 at lattice points
        return np.clip(2 * both - 3, -1, 1)  # bright diamond-shaped spots where both waves are high
    if name == "disc":
        return np.clip((params["radius"] - np.sqrt(x * x + y * y)) / 1.5, -1, 1)  # 1.5 px soft edge
    if name == "zigzag":
        zig = np.abs(x / (2 * period) - np.floor(x / (2 * period) + 0.5))  # (n, H, W) in [0, 0.5]
        return _wave((y + 2 * period * zig) / period + phase1)
    raise ValueError(f"unknown synthetic class {label}")


def _class_colors() -> np.ndarray:
    """(10, 3) float32: one fully saturated colour per class, hues evenly spaced around the HSV wheel."""
    h6 = 6 * np.arange(len(SYNTHETIC_CLASSES), dtype=np.float32) / len(SYNTHETIC_CLASSES)  # hue in [0, 6)
    rgb = np.stack([np.abs(h6 - 3) - 1, 2 - np.abs(h6 - 2), 2 - np.abs(h6 - 4)], axis=1)  # HSV -> RGB, S = V = 1
    return np.clip(rgb, 0, 1)


def _chunk(seed: int, split: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk `index` of a split: (CHUNK, 3, 32, 32) uint8 images and (CHUNK,) int64 labels, from its own seed.

    A chunk is always generated whole, so its content does not depend on how much of it is kept.
    """
    rng = np.random.default_rng([seed, split, index])
    num_classes = len(SYNTHETIC_CLASSES)
    n = CHUNK
    # Consecutive runs of 10 images hold each class once, so every prefix is balanced to within one image.
    labels = rng.permuted(np.tile(np.arange(num_classes), (n // num_classes, 1)), axis=1).ravel().astype(np.int64)

    def uniform(low: float, high: float, *shape: int) -> np.ndarray:
        return (low + (high - low) * rng.random((n, *shape))).astype(np.float32)

    centre = uniform(6, 26, 2)  # (n, 2): x, y of the pattern's centre
    t = uniform(-0.1, 0.1)  # tan(angle / 2): rotation by up to +-11.4 degrees
    cos, sin = (1 - t * t) / (1 + t * t), 2 * t / (1 + t * t)  # exact rational form, no trig calls
    params = {
        "period": uniform(3.5, 7.0),
        "phase1": uniform(0, 1),
        "phase2": uniform(0, 1),
        "diagonal": np.where(rng.random(n) < 0.5, -1, 1).astype(np.float32),
        "radius": uniform(5, 12),
    }
    params = {k: v[:, None, None] for k, v in params.items()}  # (n, 1, 1) to broadcast over pixels
    polarity = np.where(rng.random(n) < 0.5, -1, 1).astype(np.float32)
    contrast = uniform(0.15, 0.45)  # pattern amplitude in [0, 1] intensity units
    mix = uniform(0.0, 0.6)  # weight of the class colour in the mean colour: a weak cue
    mean_color = mix[:, None] * _class_colors()[labels] + (1 - mix[:, None]) * uniform(0, 1, 3)  # (n, 3)
    gain = uniform(0.75, 1.0, 3)  # (n, 3) per-channel amplitude: the pattern is mostly luminance
    noise_level = uniform(0.0, 0.12)

    coords = np.arange(SIZE, dtype=np.float32) + 0.5  # pixel centres
    dx = coords[None, None, :] - centre[:, 0, None, None]  # (n, 1, W)
    dy = coords[None, :, None] - centre[:, 1, None, None]  # (n, H, 1)
    c, s = cos[:, None, None], sin[:, None, None]
    x, y = c * dx - s * dy, s * dx + c * dy  # (n, H, W) rotated coordinates
    pattern = np.empty((n, SIZE, SIZE), dtype=np.float32)
    for label in range(num_classes):
        rows = labels == label
        pattern[rows] = _patterns(label, x[rows], y[rows], {k: v[rows] for k, v in params.items()})
    pattern *= (polarity * contrast)[:, None, None]

    noise = rng.random((n, 3, SIZE, SIZE), dtype=np.float32) + rng.random((n, 3, SIZE, SIZE), dtype=np.float32) - 1
    images = (
        0.2
        + 0.6 * mean_color[:, :, None, None]  # keep the mean away from 0 and 1 so the pattern is not clipped
        + gain[:, :, None, None] * pattern[:, None]  # (n, 3, H, W)
        + noise_level[:, None, None, None] * noise  # triangular noise in [-level, level]
    )
    return np.floor(np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8), labels


def generate_synthetic(num_images: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic twin of one split.

    Args:
        num_images: how many images; the first k of a larger twin equal a twin of size k.
        seed: the data seed.
        split: "train" or "test" (independent streams, so no test image repeats a training image).

    Returns:
        images (num_images, 3, 32, 32) uint8 and labels (num_images,) int64; class counts differ by at most 1.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be positive, got {num_images}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    chunks = [_chunk(seed, SPLITS.index(split), index) for index in range(-(-num_images // CHUNK))]  # ceil
    images = np.concatenate([c[0] for c in chunks])[:num_images]
    labels = np.concatenate([c[1] for c in chunks])[:num_images]
    return images, labels


# ---------------------------------------------------------------------------------------------------
# Real data: download, check, convert
# ---------------------------------------------------------------------------------------------------


def fetch(raw_dir: Path) -> None:
    """Download the archive (md5-checked, kept as a cache) and extract it into `raw_dir/cifar-10-batches-py`.

    Extraction goes to a temporary folder that is renamed into place, so an interrupted run never leaves a
    half-extracted batch directory behind.
    """
    archive = raw_dir / URL.rsplit("/", 1)[1]
    if not archive.is_file():
        log.info("downloading %s", URL)
        download(URL, archive, ARCHIVE_MD5, algorithm="md5")  # the publisher lists md5 only
    else:  # a cached or hand-placed copy gets the same check as a download
        actual = file_hash(archive, "md5")
        if actual != ARCHIVE_MD5:
            raise DataError(
                f"{archive} is not the published CIFAR-10 archive: md5 {actual}, expected {ARCHIVE_MD5}; "
                f"delete it to download it again, or put the published file there"
            )
    log.info("extracting %s", archive)
    with tempfile.TemporaryDirectory(dir=raw_dir) as tmp, tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):  # refuses links and paths outside `tmp` (Python >= 3.10.12)
            tar.extractall(tmp, filter="data")
        else:  # the archive's md5 was checked above, so its content is the published one
            tar.extractall(tmp)
        os.replace(Path(tmp) / BATCH_DIR, raw_dir / BATCH_DIR)


def read_raw(raw_dir: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Check the extracted batches against `RAW_MD5`, then unpickle them.

    Args:
        raw_dir: the directory holding `cifar-10-batches-py/`.

    Returns:
        ({"train_images": (N, 3, 32, 32) uint8, "train_labels": (N,) int64, "test_images", "test_labels"},
        class names in label order).

    Raises:
        DataError: a batch is missing or its md5 differs (checked before unpickling: pickle runs code).
    """
    batch_dir = raw_dir / BATCH_DIR
    for name, expected in RAW_MD5.items():
        path = batch_dir / name
        command = prepare_command("cifar10", False, raw_dir.parents[1] / "cifar10", {})  # raw_dir: <root>/raw/cifar10
        fix = f"delete {raw_dir} and run `{command}` to download it again"
        if not path.is_file():
            raise DataError(f"{path} is missing from the CIFAR-10 download; {fix}")
        actual = file_hash(path, "md5")
        if actual != expected:
            raise DataError(f"{path} is corrupt: md5 {actual}, the published md5 is {expected}; {fix}")

    def unpickle(name: str) -> dict:
        with open(batch_dir / name, "rb") as f:
            return pickle.load(f, encoding="latin1")  # written by Python 2: byte strings -> str

    arrays = {}
    for split, names in (("train", TRAIN_BATCHES), ("test", ("test_batch",))):
        batches = [unpickle(name) for name in names]
        # Each row holds 1024 red, then 1024 green, then 1024 blue values: already channel-first.
        arrays[f"{split}_images"] = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, SIZE, SIZE)
        arrays[f"{split}_labels"] = np.concatenate([b["labels"] for b in batches]).astype(np.int64)
    return arrays, tuple(unpickle("batches.meta")["label_names"])


# ---------------------------------------------------------------------------------------------------
# Prepare and load
# ---------------------------------------------------------------------------------------------------


def dataset_dir(cfg: CIFAR10Config) -> Path:
    return Path(cfg.root) / ("cifar10_synthetic" if cfg.synthetic else "cifar10")


def _params(cfg: CIFAR10Config) -> dict[str, int]:
    """The settings that shape the prepared files (the real files are always the full dataset)."""
    if not cfg.synthetic:
        return {}
    return {"num_train": cfg.num_train or NUM_TRAIN, "num_test": cfg.num_test or NUM_TEST, "seed": cfg.seed}


def _command(cfg: CIFAR10Config) -> str:
    """The command that recreates `dataset_dir(cfg)`, quoted in error messages."""
    return prepare_command("cifar10", cfg.synthetic, dataset_dir(cfg), _params(cfg))


def _check(cfg: CIFAR10Config) -> None:
    for key in ("num_train", "num_test"):
        value = getattr(cfg, key)
        if value is not None and value < 1:
            raise ValueError(f"data.{key} must be a positive number of images or null, got {value}")


def prepare(cfg: CIFAR10Config) -> Path:
    """Make `dataset_dir(cfg)` hold verified arrays and a manifest; do nothing if it already does.

    Real: download (once, cached in `<root>/raw/cifar10`), check and convert. Synthetic: generate. A corrupt or
    half-written directory is rebuilt. Returns the directory.
    """
    _check(cfg)
    directory = dataset_dir(cfg)
    params = _params(cfg)
    if is_prepared(directory, params):
        log.info("%s is up to date", directory)
        return directory
    keep_prepared(directory, params, grows=serves)  # another twin: only grown in place, and not under DVC
    if cfg.synthetic:
        log.info("generating the synthetic CIFAR-10 twin (%s) in %s", params, directory)
        arrays = {}
        for split in SPLITS:
            images, labels = generate_synthetic(params[f"num_{split}"], cfg.seed, split)
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
        classes, source = SYNTHETIC_CLASSES, f"synthetic:{__name__}"
    else:
        raw_dir = Path(cfg.root) / "raw" / "cifar10"
        if not (raw_dir / BATCH_DIR).is_dir():
            fetch(raw_dir)
        log.info("converting %s to arrays", raw_dir / BATCH_DIR)
        arrays, classes = read_raw(raw_dir)
        source = URL
    for name, array in arrays.items():
        with atomic_writer(directory / f"{name}.npy") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_json(directory / "meta.json", {"classes": list(classes)})
    write_manifest(directory, FILES, dataset="cifar10", source=source, synthetic=cfg.synthetic, params=params)
    return directory


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of n examples whose class counts are as equal as possible; a fixed order, so smaller is a prefix.

    Each class's indices are shuffled with `seed`; then classes take turns (the first of every class, then
    the second of every class, ...) and the first n are kept. A class that runs out simply drops out.

    Args:
        labels: (N,) class of every example.
        n: subset size, 1 <= n <= N.
        seed: the data seed.

    Returns:
        (n,) int64 indices into `labels`, sorted ascending (a subset, not a reordering).
    """
    if not 1 <= n <= len(labels):
        raise ValueError(f"subset size must be in [1, {len(labels)}], got {n}")
    rng = np.random.default_rng(seed)
    rank = np.empty(len(labels), dtype=np.int64)  # position of each example within its shuffled class
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[rng.permutation(members)] = np.arange(len(members))
    order = np.lexsort((labels, rank))  # by rank, then by class: round-robin over classes
    return np.sort(order[:n])


def serves(prepared: dict[str, int], wanted: dict[str, int]) -> bool:
    """Whether a directory prepared with params `prepared` holds the data that params `wanted` ask for.

    A synthetic twin also serves every smaller twin of the same seed, whose images are its prefix: so one
    prepared twin (the DVC stage makes the largest any experiment asks for) serves the ViT's and SimCLR's
    smoke sizes alike, and neither rewrites the directory that DVC tracks.
    """
    if prepared == wanted:
        return True
    sizes = ("num_train", "num_test")
    return (
        bool(wanted)  # the real data has no params: only an exact match serves it (above)
        and prepared.keys() == wanted.keys()
        and prepared["seed"] == wanted["seed"]
        and all(prepared[key] >= wanted[key] for key in sizes)
    )


def load(cfg: CIFAR10Config) -> ImageData:
    """The dataset as whole tensors, prepared first if missing and always verified against its manifest.

    Unlike `prepare`, a corrupt directory is an error here, not silently rebuilt: a training run should
    never quietly train on data other than what DVC and the manifest recorded. A synthetic twin larger than
    asked for is read as its prefix, which equals the smaller twin byte for byte (see `serves`).
    """
    _check(cfg)
    directory = dataset_dir(cfg)
    if not (directory / MANIFEST).is_file() or not serves(read_manifest(directory).params, _params(cfg)):
        prepare(cfg)
    verify(directory, hint=_command(cfg))
    splits = []
    for split in SPLITS:
        images = np.load(directory / f"{split}_images.npy", allow_pickle=False)  # (N, 3, 32, 32) uint8
        labels = np.load(directory / f"{split}_labels.npy", allow_pickle=False)  # (N,) int64
        n = getattr(cfg, f"num_{split}")
        if cfg.synthetic:
            n = _params(cfg)[f"num_{split}"]
            images, labels = images[:n], labels[:n]  # the twin of size n: a prefix of any larger one
        elif n is not None:
            if n > len(labels):
                raise ValueError(f"data.num_{split}={n} exceeds the {len(labels)} {split} images in {directory}")
            keep = stratified_subset(labels, n, cfg.seed)
            images, labels = images[keep], labels[keep]
        splits += [torch.from_numpy(images), torch.from_numpy(labels)]
    classes = json.loads((directory / "meta.json").read_text(encoding="utf-8"))["classes"]
    return ImageData(*splits, classes=tuple(classes))


def input_files(cfg: CIFAR10Config) -> list[Path]:
    """The files a run reads, for the environment record and DVC dependencies."""
    directory = dataset_dir(cfg)
    return [directory / name for name in (*FILES, MANIFEST)]
