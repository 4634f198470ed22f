"""Atomic writes, streamed hashes, manifests and their verification (data/files.py)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.data import files
from {{ cookiecutter.package }}.data.files import (
    MANIFEST,
    DataError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_writer,
    download,
    file_hash,
    is_prepared,
    read_manifest,
    sha256_file,
    verify,
    write_manifest,
)


def leftovers(directory: Path) -> list[str]:
    """Temp files an atomic write might leave behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def make_dataset(directory: Path) -> dict[str, bytes]:
    """Two files in a nested layout plus their manifest."""
    contents = {"a.bin": bytes(range(256)) * 10, "sub/b.txt": b"hello\n"}
    for name, data in contents.items():
        atomic_write_bytes(directory / name, data)
    write_manifest(directory, contents, dataset="toy", source="test", synthetic=True, params={"n": 1})
    return contents


# ---------------------------------------------------------------------------------------------------
# Hashing and atomic writes
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1 << 20, (1 << 20) + 7])  # empty, tiny, one chunk, chunk boundary
def test_streamed_hash_equals_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert file_hash(path, "md5") == hashlib.md5(data).hexdigest()


def test_atomic_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "f.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"new content"
    assert leftovers(path.parent) == []


def test_atomic_write_respects_umask(tmp_path: Path) -> None:
    if os.name == "nt":
        pytest.skip("POSIX permissions")
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_failure_mid_write_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"complete old version")
    with pytest.raises(RuntimeError, match="disk full"), atomic_writer(path) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"complete old version"
    assert leftovers(tmp_path) == []


def test_failure_mid_write_leaves_nothing_when_new(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_writer(tmp_path / "new.bin") as f:
        f.write(b"partial")
        raise KeyboardInterrupt  # Ctrl-C is a BaseException: the temp file must still go
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_atomic_json_is_canonical(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    atomic_write_json(tmp_path / "b.json", {"a": [1, 2], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.json").read_text().endswith("}\n")


# ---------------------------------------------------------------------------------------------------
# Download (file:// URLs exercise the real code path offline)
# ---------------------------------------------------------------------------------------------------


def test_download_verifies_hash(tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_bytes(b"the published bytes")
    target = tmp_path / "cache" / "copy.txt"
    download(source.as_uri(), target, hashlib.sha256(b"the published bytes").hexdigest())
    assert target.read_bytes() == b"the published bytes"


def test_download_with_wrong_hash_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_bytes(b"tampered bytes")
    target = tmp_path / "cache" / "copy.txt"
    with pytest.raises(DataError, match=r"download of .* has md5 .*, expected 0{32}") as error:
        download(source.as_uri(), target, "0" * 32, algorithm="md5")
    assert "\n" not in str(error.value)
    assert list(target.parent.iterdir()) == []


def test_unreachable_download_is_a_data_error(tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere.txt").as_uri()
    with pytest.raises(DataError, match=r"could not download file://.*nowhere\.txt .*put a copy at"):
        download(missing, tmp_path / "copy.txt", "0" * 64)
    assert not (tmp_path / "copy.txt").exists()


# ---------------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------------


def test_manifest_roundtrip(tmp_path: Path) -> None:
    contents = make_dataset(tmp_path)
    manifest = read_manifest(tmp_path)
    assert (manifest.dataset, manifest.source, manifest.synthetic) == ("toy", "test", True)
    assert manifest.params == {"n": 1}
    assert set(manifest.files) == set(contents)
    for name, data in contents.items():
        assert manifest.files[name].sha256 == hashlib.sha256(data).hexdigest()
        assert manifest.files[name].bytes == len(data)
    assert verify(tmp_path) == manifest
    raw = json.loads((tmp_path / MANIFEST).read_text())
    assert raw["files"]["a.bin"] == {"bytes": 2560, "sha256": hashlib.sha256(contents["a.bin"]).hexdigest()}


def test_manifest_is_deterministic(tmp_path: Path) -> None:
    make_dataset(tmp_path / "x")
    make_dataset(tmp_path / "y")
    assert (tmp_path / "x" / MANIFEST).read_bytes() == (tmp_path / "y" / MANIFEST).read_bytes()


def test_flipped_byte_is_detected_with_a_clear_message(tmp_path: Path) -> None:
    contents = make_dataset(tmp_path)
    data = bytearray(contents["a.bin"])
    data[1234] ^= 0x01
    (tmp_path / "a.bin").write_bytes(data)
    expected, actual = hashlib.sha256(contents["a.bin"]).hexdigest(), hashlib.sha256(data).hexdigest()
    with pytest.raises(DataError) as error:
        verify(tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "a.bin") in message and expected in message and actual in message
    assert "dvc checkout" in message
    assert f"data.prepare toy --synthetic --root {tmp_path.parent} n=1`" in message  # the command that rebuilds it
    assert not is_prepared(tmp_path, {"n": 1})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "sub" / "b.txt").unlink()
    with pytest.raises(DataError, match=r"b\.txt is missing \(expected sha256 [0-9a-f]{64}\).*prepare toy"):
        verify(tmp_path)


def test_missing_manifest_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"manifest\.json is missing: .* never fully prepared; run `prep x`"):
        verify(tmp_path, hint="prep x")


def test_unreadable_or_old_manifest_is_a_data_error(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps({**manifest, "version": 0}))
    with pytest.raises(DataError, match="format version 0, expected 1"):
        verify(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(DataError, match="is unreadable"):
        verify(tmp_path)


def test_manifest_cannot_point_outside_its_directory(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["files"]["../escape"] = manifest["files"].pop("a.bin")
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="relative paths inside the directory"):
        verify(tmp_path)


def test_is_prepared_compares_params(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    assert is_prepared(tmp_path, {"n": 1})
    assert not is_prepared(tmp_path, {"n": 2})
    assert not is_prepared(tmp_path / "absent", {"n": 1})
