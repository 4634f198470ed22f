"""CIFAR-10: the synthetic twin carries learnable, augmentation-proof signal; the real path converts and checks.

The real download cannot run offline, so a tiny archive in CIFAR-10's own on-disk format (python pickles
inside `cifar-10-python.tar.gz`) is served from a `file://` URL: everything from the download on is the
real code path.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from {{ cookiecutter.package }}.data import cifar10
from {{ cookiecutter.package }}.data.cifar10 import (
    SYNTHETIC_CLASSES,
    CIFAR10Config,
    generate_synthetic,
    input_files,
    load,
    prepare,
    stratified_subset,
)
from {{ cookiecutter.package }}.data.files import MANIFEST, DataError, read_manifest

SMOKE = {"num_train": 2000, "num_test": 500}


def synthetic(root: Path, **overrides: int) -> CIFAR10Config:
    return CIFAR10Config(root=str(root), synthetic=True, **{**SMOKE, **overrides})


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------------------------------
# Synthetic twin
# ---------------------------------------------------------------------------------------------------


def test_twin_has_cifar_shapes_and_balanced_classes(tmp_path: Path) -> None:
    data = load(synthetic(tmp_path))
    assert data.train_images.shape == (2000, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (500, 3, 32, 32) and data.test_images.dtype == torch.uint8
    assert data.train_labels.dtype == torch.int64 and data.test_labels.dtype == torch.int64
    assert data.classes == SYNTHETIC_CLASSES and len(data.classes) == 10
    assert torch.bincount(data.train_labels).tolist() == [200] * 10
    assert torch.bincount(data.test_labels).tolist() == [50] * 10
    assert 0.15 < data.train_images.float().std().item() / 255 < 0.35  # CIFAR-10's pixel std is 0.25
    assert [p.name for p in input_files(synthetic(tmp_path))] == [
        "train_images.npy",
        "train_labels.npy",
        "test_images.npy",
        "test_labels.npy",
        "meta.json",
        MANIFEST,
    ]


def test_twin_is_byte_identical_across_calls(tmp_path: Path) -> None:
    first = file_bytes(prepare(synthetic(tmp_path / "a")))
    second = file_bytes(prepare(synthetic(tmp_path / "b")))
    assert first == second
    assert read_manifest(tmp_path / "a" / "cifar10_synthetic").params == {**SMOKE, "seed": 0}
    other_seed = file_bytes(prepare(synthetic(tmp_path / "c", seed=1)))
    assert other_seed["train_images.npy"] != first["train_images.npy"]


def test_twin_prefix_property_and_disjoint_splits() -> None:
    small_x, small_y = generate_synthetic(1500, seed=0, split="train")
    large_x, large_y = generate_synthetic(2500, seed=0, split="train")
    np.testing.assert_array_equal(small_x, large_x[:1500])
    np.testing.assert_array_equal(small_y, large_y[:1500])
    test_x, _ = generate_synthetic(1500, seed=0, split="test")
    assert (test_x != small_x).any(axis=(1, 2, 3)).all()  # no test image repeats a training image


def test_twin_generation_is_fast() -> None:
    """Smoke-size twins take well under a second of CPU time (CPU time: other processes don't inflate it)."""
    start = time.process_time()
    generate_synthetic(SMOKE["num_train"] + SMOKE["num_test"], seed=0, split="train")
    assert time.process_time() - start < 1.0


def nearest_centroid_accuracy(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor
) -> float:
    """Accuracy of classifying each test image by the closest class-mean image (a linear pixel classifier)."""
    flat_train, flat_test = train_x.flatten(1).float(), test_x.flatten(1).float()
    centroids = torch.stack([flat_train[train_y == c].mean(0) for c in range(10)])  # (10, 3072)
    return (torch.cdist(flat_test, centroids).argmin(1) == test_y).float().mean().item()


def crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Naive reference augmentation, one image at a time: reflect-pad, random crop back to 32 x 32, random flip."""
    padded = F.pad(images.float(), (padding,) * 4, mode="reflect").to(torch.uint8)  # (B, 3, 40, 40)
    out = torch.empty_like(images)
    for i in range(len(images)):
        dy, dx = torch.randint(0, 2 * padding + 1, (2,), generator=generator).tolist()
        crop = padded[i, :, dy : dy + 32, dx : dx + 32]
        out[i] = crop.flip(-1) if torch.rand((), generator=generator) < 0.5 else crop
    return out


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma in all three channels (ITU-R 601 weights), as uint8."""
    luma = torch.einsum("c,bchw->bhw", torch.tensor([0.299, 0.587, 0.114]), images.float())
    return luma.round().clamp(0, 255).to(torch.uint8)[:, None].expand(-1, 3, -1, -1)


def test_twin_carries_signal_that_survives_augmentation(tmp_path: Path) -> None:
    """A pixel-level classifier is weak (only a colour cue), a tiny CNN trained with crop, flip and
    grayscale learns the spatial classes in seconds, and keeps them on augmented and grayscale test images."""
    data = load(synthetic(tmp_path))
    centroid = nearest_centroid_accuracy(data.train_images, data.train_labels, data.test_images, data.test_labels)
    assert 0.15 < centroid < 0.5

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    augmented = torch.cat([crop_flip(data.train_images, generator), grayscale(data.train_images[::2])])
    labels = torch.cat([data.train_labels, data.train_labels[::2]])
    for _ in range(5):  # about 3 s on one CPU core; reaches about 85 % on clean test images
        for batch in torch.randperm(len(labels), generator=generator).split(100):
            loss = F.cross_entropy(model(augmented[batch].float() / 255 - 0.5), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def accuracy(images: torch.Tensor) -> float:
        return (model(images.float() / 255 - 0.5).argmax(1) == data.test_labels).float().mean().item()

    assert accuracy(data.test_images) > 0.6
    assert accuracy(crop_flip(data.test_images, generator)) > 0.6
    assert accuracy(grayscale(data.test_images)) > 0.5


# ---------------------------------------------------------------------------------------------------
# Prepare / load behaviour
# ---------------------------------------------------------------------------------------------------


def test_prepare_is_idempotent_and_follows_params(tmp_path: Path) -> None:
    directory = prepare(synthetic(tmp_path))
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    assert prepare(synthetic(tmp_path)) == directory
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps  # nothing rewritten
    data = load(synthetic(tmp_path, num_train=1000))  # smaller: read as a prefix, the directory untouched
    assert len(data.train_labels) == 1000
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps
    np.testing.assert_array_equal(data.train_images, generate_synthetic(1000, 0, "train")[0])
    data = load(synthetic(tmp_path, num_train=3000))  # larger: grown in place, the old twin its prefix
    assert len(data.train_labels) == 3000
    assert read_manifest(directory).params["num_train"] == 3000


def test_a_twin_is_never_replaced_by_another_one_nor_grown_under_dvc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another seed would change what earlier runs read; under DVC even growing would make its stages stale."""
    monkeypatch.chdir(tmp_path)
    directory = prepare(synthetic(tmp_path))
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    with pytest.raises(
        DataError, match=r"seed=0 \(earlier runs read it\), so it is kept, not replaced by one with .*seed=1"
    ):
        load(synthetic(tmp_path, seed=1))
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare_cifar10:\n    outs:\n    - path: cifar10_synthetic\n      md5: x.dir\n"
    )
    with pytest.raises(DataError, match=r"\(DVC tracks it\), so it is kept, not replaced by one with num_train=3000"):
        load(synthetic(tmp_path, num_train=3000))
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps
    data = load(synthetic(tmp_path / "elsewhere", num_train=3000))  # under another root: its own twin
    assert len(data.train_labels) == 3000


def test_load_refuses_corrupt_data_and_prepare_repairs_it(tmp_path: Path) -> None:
    directory = prepare(synthetic(tmp_path))
    original = (directory / "train_images.npy").read_bytes()
    corrupt = bytearray(original)
    corrupt[-1] ^= 0xFF
    (directory / "train_images.npy").write_bytes(corrupt)
    with pytest.raises(DataError, match=r"train_images\.npy is corrupt: sha256 .*dvc checkout.*--synthetic"):
        load(synthetic(tmp_path))
    prepare(synthetic(tmp_path))
    assert (directory / "train_images.npy").read_bytes() == original


def test_stratified_subset_is_balanced_nested_and_fixed() -> None:
    labels = np.repeat(np.arange(10), [50, 50, 50, 50, 50, 50, 50, 50, 50, 5])  # class 9 is rare
    subset = stratified_subset(labels, 95, seed=0)
    assert np.bincount(labels[subset], minlength=10).tolist() == [10] * 9 + [5]  # the rare class runs out
    assert np.all(np.diff(subset) > 0)
    np.testing.assert_array_equal(subset, stratified_subset(labels, 95, seed=0))
    assert set(stratified_subset(labels, 40, seed=0)) <= set(subset)  # smaller subsets are nested
    assert not np.array_equal(subset, stratified_subset(labels, 95, seed=1))
    with pytest.raises(ValueError, match=r"subset size must be in \[1, 455\], got 456"):
        stratified_subset(labels, 456, seed=0)


def test_bad_sizes_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.num_train must be a positive number of images or null, got 0"):
        load(synthetic(tmp_path, num_train=0))


# ---------------------------------------------------------------------------------------------------
# Real path on a tiny fake archive
# ---------------------------------------------------------------------------------------------------

FAKE_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def fake_archive(directory: Path, per_batch: int = 20) -> tuple[Path, dict[str, np.ndarray], dict[str, str]]:
    """A cifar-10-python.tar.gz in the published layout; returns (archive, expected arrays, md5 of members)."""
    rng = np.random.default_rng(0)
    members, md5, arrays = {}, {}, {"train_images": [], "train_labels": [], "test_images": [], "test_labels": []}
    for name in [*cifar10.TRAIN_BATCHES, "test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)  # rows: 1024 R, 1024 G, 1024 B
        labels = [int(i) for i in rng.integers(0, 10, per_batch)]
        members[name] = pickle.dumps({"batch_label": name, "data": data, "labels": labels, "filenames": []})
        split = "test" if name == "test_batch" else "train"
        arrays[f"{split}_images"].append(data.reshape(-1, 3, 32, 32))
        arrays[f"{split}_labels"].append(np.array(labels, dtype=np.int64))
    members["batches.meta"] = pickle.dumps({"label_names": FAKE_CLASSES, "num_vis": 3072})
    archive = directory / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{cifar10.BATCH_DIR}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
            md5[name] = hashlib.md5(payload).hexdigest()
    return archive, {key: np.concatenate(value) for key, value in arrays.items()}, md5


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """Point the module's URL and published hashes at a fake archive; return the arrays it holds."""
    (tmp_path / "server").mkdir()
    archive, arrays, md5 = fake_archive(tmp_path / "server")
    monkeypatch.setattr(cifar10, "URL", archive.as_uri())
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    monkeypatch.setattr(cifar10, "RAW_MD5", md5)
    return arrays


def test_real_path_downloads_checks_and_converts(tmp_path: Path, served: dict[str, np.ndarray]) -> None:
    cfg = CIFAR10Config(root=str(tmp_path / "data"))
    directory = prepare(cfg)
    assert directory == tmp_path / "data" / "cifar10"
    assert (tmp_path / "data" / "raw" / "cifar10" / "cifar-10-python.tar.gz").is_file()  # the download is cached
    assert sorted(p.name for p in directory.iterdir()) == sorted([*cifar10.FILES, MANIFEST])  # only what runs read
    manifest = read_manifest(directory)
    assert (manifest.source, manifest.synthetic, manifest.params) == (cifar10.URL, False, {})
    assert set(manifest.files) == set(cifar10.FILES)

    data = load(cfg)
    for key, expected in served.items():
        np.testing.assert_array_equal(getattr(data, key).numpy(), expected)
    assert data.classes == tuple(FAKE_CLASSES)
    assert data.train_images.shape == (100, 3, 32, 32) and data.train_labels.dtype == torch.int64

    subset = load(CIFAR10Config(root=str(tmp_path / "data"), num_train=30, num_test=10))
    keep = stratified_subset(served["train_labels"], 30, seed=0)
    np.testing.assert_array_equal(subset.train_images.numpy(), served["train_images"][keep])
    assert len(subset.test_labels) == 10
    with pytest.raises(ValueError, match=r"data\.num_train=101 exceeds the 100 train images"):
        load(CIFAR10Config(root=str(tmp_path / "data"), num_train=101))


def test_corrupt_download_is_rejected(
    tmp_path: Path, served: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", "0" * 32)
    with pytest.raises(DataError, match=r"has md5 [0-9a-f]{32}, expected 0{32}"):
        prepare(CIFAR10Config(root=str(tmp_path / "data")))
    assert not (tmp_path / "data" / "raw" / "cifar10" / "cifar-10-python.tar.gz").exists()


@pytest.mark.parametrize("damage", ["random bytes", "cut short"])
def test_a_cached_archive_is_checked_like_a_download(tmp_path: Path, served: dict, damage: str) -> None:
    """The download error says to put a copy at the archive's path: that copy gets the md5 check too."""
    raw = tmp_path / "data" / "raw" / "cifar10"
    raw.mkdir(parents=True)
    published = Path(cifar10.URL.removeprefix("file://")).read_bytes()
    bad = b"\x00not a tarball" * 64 if damage == "random bytes" else published[: len(published) // 2]
    (raw / "cifar-10-python.tar.gz").write_bytes(bad)
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz is not the published CIFAR-10 archive: md5 \w{32}"):
        prepare(CIFAR10Config(root=str(tmp_path / "data")))
    assert not (raw / cifar10.BATCH_DIR).exists()


def test_corrupt_extracted_batch_is_rejected_before_unpickling(tmp_path: Path, served: dict[str, np.ndarray]) -> None:
    cfg = CIFAR10Config(root=str(tmp_path / "data"))
    prepare(cfg)
    batch = tmp_path / "data" / "raw" / "cifar10" / cifar10.BATCH_DIR / "data_batch_3"
    payload = bytearray(batch.read_bytes())
    payload[100] ^= 0x01
    batch.write_bytes(payload)
    (tmp_path / "data" / "cifar10" / MANIFEST).unlink()  # force a rebuild from the raw files
    with pytest.raises(DataError, match=r"data_batch_3 is corrupt: md5 \w{32}, the published md5 is .*prepare cifar10"):
        prepare(cfg)


def test_published_md5s_match_torchvision() -> None:
    """Our copy of the published checksums agrees with torchvision's independent one."""
    from torchvision.datasets import CIFAR10

    published = dict(CIFAR10.train_list + CIFAR10.test_list) | {CIFAR10.meta["filename"]: CIFAR10.meta["md5"]}
    assert published == cifar10.RAW_MD5
    assert (CIFAR10.url, CIFAR10.tgz_md5, CIFAR10.base_folder) == (cifar10.URL, cifar10.ARCHIVE_MD5, cifar10.BATCH_DIR)
