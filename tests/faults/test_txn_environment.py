"""Issue 23 class 7: the machine refusing a write (read-only filesystem, full disk, read-only cache directory) is
the user's environment, not a bug: exit 1, one line naming the path and the OS reason, nothing left behind, the
repository exactly as before. Real filesystems: small tmpfs mounts, which need root (skipped with the reason
otherwise)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetstrap.cli import run
from support.deploy import fleet_repo, release, rendered
from support.txn import env_for, fleetstrap, leftovers, state

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


def _mount(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    _mount(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)])
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def read_only(where: Path) -> None:
    _mount(["mount", "-o", "remount,ro", str(where)])


def fill(where: Path, leave: int = 0) -> None:
    """Take every free block but `leave` bytes: writes fail with ENOSPC from there on."""
    filler = where / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as fh:
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()
    if leave:
        with filler.open("r+b") as fh:
            fh.truncate(max(0, filler.stat().st_size - leave))


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("starter") / "fleet"
    assert run(["-q", "init", "-b", "starter", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = fleet_repo(rendered("flux", "monorepo", False), tmp_path_factory.mktemp("released") / "fleet")
    assert release(root, "0.2.0") is not None
    return root


def _refused(done_code: int, err: str, reason: str, path: Path) -> None:
    assert done_code == 1, err
    assert "internal error" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and reason in lines[0] and str(path) in lines[0], err
    assert "Traceback" not in err


# ---------------------------------------------------------------- read-only filesystem


@pytest.mark.parametrize("args", [("add", "service", "alpha"), ("add", "cluster", "edge-1", "-e", "dev"),
                                  ("add", "monitoring")])
def test_add_on_a_read_only_filesystem(starter: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    with tmpfs(tmp_path / "mnt", "64m") as mnt:
        root = Path(shutil.copytree(starter, mnt / "fleet", symlinks=True))
        before = state(root)
        read_only(mnt)
        done = fleetstrap(*args, "-C", str(root), env=env_for(tmp_path / "tmp"))
        _refused(done.code, done.err, "Read-only file system", root)
        assert state(root) == before


def test_promote_on_a_read_only_filesystem(released: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "64m") as mnt:
        root = Path(shutil.copytree(released, mnt / "fleet", symlinks=True))
        before = state(root)
        read_only(mnt)
        done = fleetstrap("promote", "hello", "--to", "staging", "-C", str(root), env=env_for(tmp_path / "tmp"))
        _refused(done.code, done.err, "Read-only file system", root)
        assert state(root) == before


def test_init_into_a_read_only_filesystem(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        read_only(mnt)
        done = fleetstrap("init", "-b", "starter", str(mnt / "fleet"), env=env_for(tmp_path / "tmp"))
        _refused(done.code, done.err, "Read-only file system", mnt)
        assert list(mnt.iterdir()) == []


# ---------------------------------------------------------------- full filesystem


def test_init_into_a_full_filesystem_leaves_nothing(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "256k") as mnt:
        done = fleetstrap("init", "-b", "starter", str(mnt / "fleet"), env=env_for(tmp_path / "tmp"))
        _refused(done.code, done.err, "No space left on device", mnt)
        assert list(mnt.iterdir()) == []
        assert leftovers(tmp=tmp_path / "tmp") == []


# leave: 0 fails at the lock; a few pages get the lock and some files in, and the landing is undone.
@pytest.mark.parametrize(("args", "leave"), [(("add", "service", "alpha"), 0),
                                             (("add", "service", "alpha"), 16384),
                                             (("add", "cluster", "edge-1", "-e", "dev"), 8192)])
def test_add_on_a_full_filesystem_puts_everything_back(starter: Path, tmp_path: Path, args: tuple[str, ...],
                                                       leave: int) -> None:
    with tmpfs(tmp_path / "mnt", "64m") as mnt:
        root = Path(shutil.copytree(starter, mnt / "fleet", symlinks=True))
        before = state(root)
        fill(mnt, leave)
        done = fleetstrap(*args, "-C", str(root), env=env_for(tmp_path / "tmp"))
        _refused(done.code, done.err, "No space left on device", root)
        (mnt / "filler").unlink()  # room for git status to look
        assert state(root) == before
        assert leftovers(root, tmp=tmp_path / "tmp") == []


@pytest.mark.parametrize("leave", [0, 8192])
def test_promote_on_a_full_filesystem_puts_everything_back(released: Path, tmp_path: Path, leave: int) -> None:
    with tmpfs(tmp_path / "mnt", "64m") as mnt:
        root = Path(shutil.copytree(released, mnt / "fleet", symlinks=True))
        before = state(root)
        fill(mnt, leave)
        done = fleetstrap("promote", "hello", "--to", "staging", "-C", str(root), env=env_for(tmp_path / "tmp"))
        _refused(done.code, done.err, "No space left on device", root)
        (mnt / "filler").unlink()
        assert state(root) == before
        assert leftovers(root, tmp=tmp_path / "tmp") == []


# ---------------------------------------------------------------- read-only cache directory


@pytest.mark.parametrize("populated", [False, True], ids=["empty", "with-mirror"])
def test_a_read_only_cache_directory_is_named(tmp_path: Path, populated: bool) -> None:
    with tmpfs(tmp_path / "cache", "64m") as cache:
        if populated:
            shutil.copytree(os.environ["FLEETSTRAP_CACHE_DIR"], cache / "fleetstrap", symlinks=True,
                            dirs_exist_ok=True)
        read_only(cache)
        dest = tmp_path / "fleet"
        done = fleetstrap("init", "-b", "starter", str(dest),
                          env=env_for(tmp_path / "tmp", FLEETSTRAP_CACHE_DIR=str(cache / "fleetstrap")))
        _refused(done.code, done.err, "Read-only file system", cache)
        assert not dest.exists()
        assert leftovers(tmp_path, tmp=tmp_path / "tmp") == []
