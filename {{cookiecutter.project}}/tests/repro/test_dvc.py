"""repro/dvc.py: the DVC hash of each input, read from dvc.lock / *.dvc files and the cache's directory listings."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package }}.repro.dvc import cache_dir, dvc_hashes, tracked_outputs


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def fake_tracked_dir(root: Path, files: dict[str, bytes], cache: Path | None = None) -> str:
    """Write data/set/<files>, its .dir listing into the cache, and a dvc.lock naming it; return the .dir hash."""
    for name, content in files.items():
        (root / "data" / "set" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "data" / "set" / name).write_bytes(content)
    listing = json.dumps([{"md5": md5(content), "relpath": name} for name, content in sorted(files.items())])
    digest = md5(listing.encode())
    cache = cache or root / ".dvc" / "cache"
    (cache / "files" / "md5" / digest[:2]).mkdir(parents=True, exist_ok=True)
    (cache / "files" / "md5" / digest[:2] / f"{digest[2:]}.dir").write_text(listing)
    stage = {"cmd": "x", "outs": [{"path": "data/set", "md5": f"{digest}.dir"}]}
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"prepare": stage}}))
    return f"{digest}.dir"


def test_a_file_in_a_tracked_directory_gets_the_directory_hash_and_its_own(tmp_path: Path) -> None:
    digest = fake_tracked_dir(tmp_path, {"a.bin": b"aaa", "sub/b.bin": b"bbb"})
    inputs = [tmp_path / "data" / "set" / "a.bin", tmp_path / "data" / "set" / "sub" / "b.bin"]
    found = dvc_hashes(inputs, tmp_path)
    assert found[str(inputs[0])] == {
        "path": "data/set",
        "md5": digest,
        "source": "dvc.lock:prepare",
        "file_md5": md5(b"aaa"),
        "modified": False,
    }
    assert found[str(inputs[1])]["file_md5"] == md5(b"bbb")


def test_a_file_changed_since_dvc_committed_it_is_marked_modified(tmp_path: Path) -> None:
    fake_tracked_dir(tmp_path, {"a.bin": b"aaa"})
    path = tmp_path / "data" / "set" / "a.bin"
    path.write_bytes(b"aab")
    assert dvc_hashes([path], tmp_path)[str(path)]["modified"] is True


def test_without_the_listing_only_the_directory_hash_is_known(tmp_path: Path) -> None:
    digest = fake_tracked_dir(tmp_path, {"a.bin": b"aaa"})
    shutil.rmtree(tmp_path / ".dvc" / "cache")  # e.g. a fresh clone before `dvc pull`
    path = tmp_path / "data" / "set" / "a.bin"
    assert dvc_hashes([path], tmp_path)[str(path)] == {"path": "data/set", "md5": digest, "source": "dvc.lock:prepare"}


def test_a_cache_dir_set_in_the_config_is_used(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    remote = storage\n[cache]\n    dir = ../shared-cache\n")
    assert cache_dir(tmp_path) == (tmp_path / "shared-cache").resolve()
    fake_tracked_dir(tmp_path, {"a.bin": b"aaa"}, cache=tmp_path / "shared-cache")
    path = tmp_path / "data" / "set" / "a.bin"
    assert dvc_hashes([path], tmp_path)[str(path)]["file_md5"] == md5(b"aaa")


def test_stage_wdir_and_dvc_files_in_subfolders_are_resolved(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text("stages:\n  make:\n    wdir: work\n    cmd: x\n    outs: [out.bin]\n")
    lock = {"schema": "2.0", "stages": {"make": {"cmd": "x", "outs": [{"path": "out.bin", "md5": "1" * 32}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.dvc").write_text(f"outs:\n- md5: {'2' * 32}.dir\n  path: raw\n")
    outputs = {out["path"]: out for out in tracked_outputs(tmp_path)}
    assert outputs["work/out.bin"]["source"] == "dvc.lock:make"
    assert outputs["data/raw"] == {"path": "data/raw", "md5": f"{'2' * 32}.dir", "source": "data/raw.dvc"}


def test_untracked_and_outside_inputs_get_no_entry(tmp_path: Path) -> None:
    fake_tracked_dir(tmp_path, {"a.bin": b"aaa"})
    (tmp_path / "data" / "other.bin").write_bytes(b"x")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.bin"
    outside.write_bytes(b"x")
    assert dvc_hashes([tmp_path / "data" / "other.bin", outside], tmp_path) == {}
    assert dvc_hashes([], tmp_path) == {}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_agrees_with_a_real_dvc_lock(tmp_path: Path) -> None:
    """A stage run by DVC itself: every file's md5 is the one DVC committed, and DVC sees it unchanged."""
    pytest.importorskip("dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}

    def run(*args: str) -> str:
        return subprocess.run(args, cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout

    dvc = (sys.executable, "-m", "dvc")
    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    script = "import pathlib\n\nfolder = pathlib.Path('data/set')\nfolder.mkdir(parents=True)\n"
    (tmp_path / "make.py").write_text(script + "(folder / 'x.txt').write_text('hi')\n")
    stage = {"cmd": f'"{sys.executable}" make.py', "deps": ["make.py"], "outs": ["data/set"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"make": stage}}))
    run(*dvc, "repro", "-q")
    path = tmp_path / "data" / "set" / "x.txt"
    record = dvc_hashes([path], tmp_path)[str(path)]
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert record["md5"] == lock["stages"]["make"]["outs"][0]["md5"]
    assert record["file_md5"] == md5(b"hi") and record["modified"] is False
    path.write_text("changed")
    assert dvc_hashes([path], tmp_path)[str(path)]["modified"] is True
    assert "modified" in run(*dvc, "status")  # DVC agrees
