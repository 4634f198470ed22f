"""Files that can be trusted: streamed hashes, crash-safe writes and a manifest per prepared dataset.

Every prepared dataset directory holds a `manifest.json` written last, after all of its files:

    {"dataset": "cifar10", "source": "https://...", "synthetic": false, "params": {}, "version": 1,
     "files": {"train_images.npy": {"bytes": 153600128, "sha256": "..."}, ...}}

It holds nothing that depends on where the directory lives, so equal data gives an equal manifest and a
moved directory still verifies.

`verify(directory)` rehashes every listed file and raises `DataError` with one line that names the file,
both hashes and the fix. It always hashes and never trusts (size, mtime): those miss bit rot, a file edited
in place at the same size, or a copy tool that preserves timestamps, while hashing all of CIFAR-10
(184 MB) takes 0.1-0.5 s, so every training run can afford to check its inputs. Because the manifest is
written after the files, a directory without one was never finished.

Writes are atomic (temp file in the same directory, flush, fsync, `os.replace`, fsync the directory), so a
crash or Ctrl-C leaves the old file or the new one, never a truncated mix that a later run would read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import sys
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

MANIFEST = "manifest.json"
PACKAGE = __name__.split(".")[0]
MANIFEST_VERSION = 1  # bump when the manifest layout changes; older manifests then fail verification


class WriteError(OSError):
    """Writing a file failed (disk full, a file-size limit, a file where a folder should be); names the file."""

    def __str__(self) -> str:
        return str(self.strerror)


class DataError(ValueError):
    """A dataset file is missing, corrupt, or differs from what its manifest or source promises."""


# ---------------------------------------------------------------------------------------------------
# Hashing and atomic writes
# ---------------------------------------------------------------------------------------------------


def file_hash(path: Path | str, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in `chunk_size` blocks so memory stays flat for any file size.

    `algorithm` is any `hashlib` name; md5 only to check archives whose publishers list md5 (CIFAR-10).
    """
    digest = hashlib.new(algorithm, usedforsecurity=False)  # md5 would be refused on FIPS systems otherwise
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file (streamed); the hash every manifest records."""
    return file_hash(path, "sha256")


def fsync_dir(directory: Path | str) -> None:
    """Make a rename in `directory` durable: the new entry survives a power cut only once the directory is synced."""
    if os.name == "nt":  # Windows cannot open a directory; NTFS journals renames itself
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path | str) -> Iterator[IO[bytes]]:
    """Open a binary file that appears at `path` only if the `with` block finishes without an exception.

    Use it to stream large outputs (`np.save`, a download) without holding them in memory:

        with atomic_writer("data/x.npy") as f:
            np.save(f, array)

    The temp file sits beside `path` (a rename across filesystems would not be atomic) and is created with
    `open(..., "xb")`, so it gets the usual permissions from the umask, unlike `tempfile.mkstemp`'s 0600.
    """
    path = Path(path)
    blocking = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise WriteError(errno.ENOTDIR, f"cannot write {path}: {blocking} is a file, expected a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:  # also KeyboardInterrupt: never leave a temp file behind
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):  # a full disk, a file-size limit
            raise WriteError(err.errno, f"cannot write {path}: {err.strerror or err}") from err
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` so that readers, and a crash, see the old file or the new one, never a mix."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    """`atomic_write_bytes` for UTF-8 text (newlines written as given, on every OS)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: Any) -> None:
    """JSON with sorted keys, two-space indent and a trailing newline: equal content, equal bytes."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def download(url: str, path: Path | str, digest: str, algorithm: str = "sha256", timeout: float = 60.0) -> Path:
    """Stream `url` into `path`, hashing on the way; the file appears only if its hash equals `digest`.

    Any URL scheme `urllib` knows works, including `file://` (tests use it to exercise this path offline).
    A progress bar is shown when stderr is a terminal.

    Raises:
        DataError: the server cannot be reached, or the downloaded bytes do not hash to `digest` (nothing is
            left at `path` then).
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn  # only when downloading

    path = Path(path)
    hasher = hashlib.new(algorithm, usedforsecurity=False)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except OSError as error:  # URLError, HTTPError, timeouts: say what failed and what else works
        raise DataError(f"could not download {url} ({error}); check the network, or put a copy at {path}") from error
    with (
        response,
        Progress(
            "{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            disable=not sys.stderr.isatty(),
            transient=True,
        ) as progress,
        atomic_writer(path) as f,
    ):
        total = int(response.headers.get("Content-Length") or 0) or None
        task = progress.add_task(f"downloading {path.name}", total=total)
        while block := response.read(1 << 20):
            hasher.update(block)
            f.write(block)
            progress.advance(task, len(block))
        actual = hasher.hexdigest()
        if actual != digest:  # raising inside the block discards the temp file
            raise DataError(
                f"download of {url} has {algorithm} {actual}, expected {digest}: the transfer was corrupted or "
                f"the file changed upstream; try again, or put a copy you trust at {path} after checking it"
            )
    return path


# ---------------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """What a prepared dataset directory must contain, and how it was made."""

    dataset: str  # e.g. "cifar10"
    source: str  # where the data came from: a URL, or "synthetic:<module>" for a generated twin
    synthetic: bool
    params: dict[str, Any]  # config fields that shape the files; a different value means "prepare again"
    files: dict[str, FileRecord] = field(default_factory=dict)  # name relative to the directory -> record
    version: int = MANIFEST_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Manifest:
        files = {name: FileRecord(**record) for name, record in obj["files"].items()}
        return cls(**{**obj, "files": files})


def write_manifest(
    directory: Path | str,
    files: Iterable[str],
    *,
    dataset: str,
    source: str,
    synthetic: bool,
    params: dict[str, Any],
) -> Manifest:
    """Hash `files` (names relative to `directory`) and write `directory/manifest.json`, last and atomically.

    Call it only after every file is in place: its presence is what marks the directory as finished.
    """
    directory = Path(directory)
    records = {}
    for name in sorted(files):
        _check_name(name)
        path = directory / name
        records[name] = FileRecord(sha256=sha256_file(path), bytes=path.stat().st_size)
    manifest = Manifest(dataset, source, synthetic, dict(params), records)
    atomic_write_json(directory / MANIFEST, manifest.to_json())
    return manifest


def prepare_command(dataset: str, synthetic: bool, directory: Path | str, params: dict[str, Any]) -> str:
    """The shell command (data/prepare.py) that recreates a prepared dataset `directory` from scratch."""
    words = ["python -m", f"{PACKAGE}.data.prepare", dataset, *(["--synthetic"] if synthetic else [])]
    words += ["--root", str(Path(directory).parent), *(f"{key}={value}" for key, value in params.items())]
    return " ".join(words)


def read_manifest(directory: Path | str, hint: str | None = None) -> Manifest:
    """Load `directory/manifest.json`; `hint` is the command that prepares the directory, for the error."""
    directory = Path(directory)
    path = directory / MANIFEST
    fix = f"run `{hint}`" if hint else f"prepare it again (`dvc repro` or `python -m {PACKAGE}.data.prepare <dataset>`)"
    if not path.is_file():
        raise DataError(f"{path} is missing: {directory} was never fully prepared; {fix}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        version = obj.get("version")
        manifest = Manifest.from_json(obj) if version == MANIFEST_VERSION else None
        for name in manifest.files if manifest else ():
            _check_name(name)
    except (AttributeError, KeyError, TypeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise DataError(f"{path} is unreadable ({error}); delete {directory} and {fix}") from error
    if manifest is None:
        raise DataError(f"{path} has format version {version!r}, expected {MANIFEST_VERSION}; {fix}")
    return manifest


def verify(directory: Path | str, hint: str | None = None) -> Manifest:
    """Recheck every file of a prepared dataset against its manifest; return the manifest if all match.

    Args:
        directory: a directory that `write_manifest` finished.
        hint: the command that prepares it, quoted when the manifest itself is missing or unreadable
            (otherwise the command is rebuilt from the manifest).

    Raises:
        DataError: one line naming the first missing or changed file, the expected and actual sha256, and
            how to restore it.
    """
    directory = Path(directory)
    manifest = read_manifest(directory, hint)
    command = prepare_command(manifest.dataset, manifest.synthetic, directory, manifest.params)
    fix = (
        f"restore it with `dvc checkout --force {directory}` if DVC tracks it, "
        f"or delete {directory} and run `{command}`"
    )
    for name, record in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise DataError(f"{path} is missing (expected sha256 {record.sha256}); {fix}")
        actual = sha256_file(path)
        if actual != record.sha256:
            raise DataError(
                f"{path} is corrupt: sha256 {actual} ({path.stat().st_size} bytes), "
                f"manifest expects {record.sha256} ({record.bytes} bytes); {fix}"
            )
    return manifest


def is_prepared(directory: Path | str, params: dict[str, Any]) -> bool:
    """True when `directory` verifies and was made with exactly `params`: preparing again would change nothing.

    A corrupt or half-written directory is reported as not prepared, so `prepare()` rebuilds it; `load()`
    calls `verify` itself and fails loudly instead.
    """
    try:
        manifest = verify(directory)
    except DataError:
        return False
    return manifest.params == params


def keep_prepared(
    directory: Path | str, params: dict[str, Any], grows: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None
) -> None:
    """Refuse to replace a dataset that verifies but was prepared with other params (a twin of another size).

    Earlier runs read such a directory, and DVC may track it: writing another dataset over it would change
    what later runs train on and make every DVC stage after it stale. Two cases may go ahead: a corrupt or
    half-written directory (`prepare()` rebuilds it as before), and a dataset that `grows` into a larger one
    whose prefix is the old one, byte for byte (a synthetic twin), while DVC does not track the directory.

    Raises:
        DataError: one line naming the directory, both sets of params and where to prepare instead.
    """
    try:
        manifest = verify(directory)
    except DataError:
        return
    if manifest.params == params:
        return
    tracked = _tracked_by_dvc(Path(directory))
    if grows is not None and grows(params, manifest.params) and not tracked:
        return  # what earlier runs read stays the prefix of the larger twin
    shown = ", ".join(f"{key}={value}" for key, value in params.items()) or "the real data"
    kept = ", ".join(f"{key}={value}" for key, value in manifest.params.items()) or "the real data"
    readers = "DVC tracks it" if tracked else "earlier runs read it"
    raise DataError(
        f"{directory} holds a dataset prepared with {kept} ({readers}), so it is kept, not replaced by one with "
        f"{shown}: prepare that under another root (--root DIR, or data.root=DIR for a run), or remove {directory} "
        "first"
    )


def _tracked_by_dvc(directory: Path) -> bool:
    """Whether a DVC file of the project (run from its root) records `directory` as an output."""
    from ..repro.dvc import tracked_outputs  # only when a dataset is about to be replaced

    root = Path.cwd()
    relative = Path(os.path.relpath(directory.resolve(), root.resolve())).as_posix()
    return any(output["path"] == relative for output in tracked_outputs(root))


def _check_name(name: str) -> None:
    """Manifest entries are plain relative paths inside the directory (no absolute paths, no `..`)."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"manifest file names must be relative paths inside the directory, got {name!r}")
