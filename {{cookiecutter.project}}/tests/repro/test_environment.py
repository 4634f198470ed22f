import hashlib
import json
import subprocess
from pathlib import Path

import pytest

import {{ cookiecutter.package }}
from {{ cookiecutter.package }}.repro.environment import ENV_ALLOWLIST, collect_environment, git_info

KEYS = {
    "command",
    "argv",
    "started_at",
    "git",
    "python",
    "packages",
    "platform",
    "torch",
    "accelerators",
    "seed",
    "data",
    "env",
}
SECRETS = {
    "WANDB_API_KEY": "wandb-secret-0123456789",  # pragma: allowlist secret
    "AWS_SECRET_ACCESS_KEY": "aws-secret-abcdef",  # pragma: allowlist secret
    "HF_TOKEN": "hf_secret_token_xyz",  # pragma: allowlist secret
    "GITHUB_TOKEN": "ghp_secret_token_123",  # pragma: allowlist secret
}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e.x", *args], cwd=cwd, check=True, capture_output=True
    )


def test_schema_has_every_contract_key(tmp_path: Path) -> None:
    record, _ = collect_environment(seed=3, cwd=tmp_path)
    assert set(record) == KEYS
    assert record["seed"] == 3
    assert record["packages"]["torch"]
    assert {"os", "kernel", "cpu", "cores", "memory_bytes"} <= set(record["platform"])
    assert {"version", "cuda", "cudnn", "deterministic_algorithms", "num_threads"} <= set(record["torch"])
    json.dumps(record)  # JSON-ready


def test_works_outside_git_and_without_gpu_and_says_why(tmp_path: Path) -> None:
    record, diff = collect_environment(cwd=tmp_path)
    assert record["git"] == {"available": False, "reason": f"{tmp_path} is not inside a git repository"}
    assert diff == b""
    if record["accelerators"]["count"] == 0:
        assert record["accelerators"]["reason"]


def test_git_commit_branch_dirty_and_diff(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-qm", "first")
    clean, diff = collect_environment(cwd=tmp_path)
    assert clean["git"]["branch"] == "main" and len(clean["git"]["commit"]) == 40
    assert clean["git"]["dirty"] is False and diff == b"" and clean["git"]["untracked"] == []
    (tmp_path / "a.py").write_text("x = 2\n")
    dirty, diff = collect_environment(cwd=tmp_path)
    assert dirty["git"]["dirty"] is True
    assert b"-x = 1" in diff and b"+x = 2" in diff
    assert dirty["git"]["diff_sha256"] and dirty["git"]["diff_sha256"] != clean["git"]["diff_sha256"]


def test_diff_is_kept_byte_for_byte_and_applies_back(tmp_path: Path) -> None:
    """A Latin-1 file and a CRLF file: the saved diff is git's own bytes, so `git apply` takes it back."""
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "notes.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "win.py").write_bytes(b"a = 1\r\nb = 2\r\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    (tmp_path / "notes.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (tmp_path / "win.py").write_bytes(b"a = 1\r\nb = 3\r\n")
    record, diff = collect_environment(cwd=tmp_path)
    expected = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=tmp_path, capture_output=True, check=True)
    assert diff == expected.stdout and b"b = 3\r\n" in diff
    assert record["git"]["diff_sha256"] == hashlib.sha256(expected.stdout).hexdigest()
    (tmp_path / "saved.diff").write_bytes(diff)
    git(tmp_path, "stash", "-q")  # back to the commit; the saved diff must re-create the run's tree
    git(tmp_path, "apply", "saved.diff")
    assert (tmp_path / "win.py").read_bytes() == b"a = 1\r\nb = 3\r\n"


def test_untracked_files_are_listed_but_ignored_ones_are_not(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / ".gitignore").write_text("runs/\n")
    git(tmp_path, "add", ".gitignore")
    git(tmp_path, "commit", "-qm", "first")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "new_module.py").write_text("y = 1\n")  # imported by a run, never committed
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "out.json").write_text("{}")
    record, _ = collect_environment(cwd=tmp_path / "src")
    assert record["git"]["untracked"] == ["src/new_module.py"]
    assert record["git"]["dirty"] is False  # git's meaning: no tracked file changed


def test_git_is_asked_where_the_code_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's own source when it is in a work tree (an editable install), whatever the cwd."""
    monkeypatch.chdir(tmp_path)  # not a repository
    package = Path({{ cookiecutter.package }}.__file__).resolve().parent
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=package, capture_output=True, text=True)
    info, _ = git_info()
    if top.returncode == 0:
        assert info["available"] is True and info["root"] == top.stdout.strip()
    else:
        assert info == {"available": False, "reason": f"{tmp_path} is not inside a git repository"}


def test_data_inputs_are_hashed(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"abc")
    record, _ = collect_environment(inputs=[data, tmp_path / "gone.bin"], cwd=tmp_path)
    first, missing = record["data"]
    # pragma: allowlist nextline secret
    assert first["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert first["bytes"] == 3
    assert missing["reason"] == "missing"


def test_dvc_hash_recorded_for_tracked_inputs(tmp_path: Path) -> None:
    (tmp_path / "data" / "cifar").mkdir(parents=True)
    data = tmp_path / "data" / "cifar" / "train.npy"
    data.write_bytes(b"x")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n    cmd: x\n    outs:\n    - path: data/cifar\n      md5: abc.dir\n"
    )
    record, _ = collect_environment(inputs=[data], cwd=tmp_path)
    assert record["data"][0]["dvc"] == {"path": "data/cifar", "md5": "abc.dir", "source": "dvc.lock:prepare"}


def test_secrets_never_recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    record, _ = collect_environment(cwd=tmp_path)
    text = json.dumps(record)
    for value in SECRETS.values():
        assert value not in text
    assert record["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert set(record["env"]) <= set(ENV_ALLOWLIST)


def test_packages_match_importlib_metadata_first_on_path_wins() -> None:
    import importlib.metadata

    from {{ cookiecutter.package }}.repro.environment import packages

    expected: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"]:
            expected.setdefault(dist.metadata["Name"].lower(), dist.version)
    assert packages() == dict(sorted(expected.items()))
