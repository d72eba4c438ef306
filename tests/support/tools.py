"""Real tools the suite builds or needs: one cache, one lock, one rule for skipping.

Builds that take minutes (cargo, the Go-built control plane and collector) live under the user cache directory,
keyed by what determines their output (versions, component lists), so a warm machine reuses them and CI on a
fresh machine builds each once. pytest-xdist runs two workers: every build holds a file lock so they never build
the same thing twice at once.

Skipping: a contributor's machine without cargo or go skips these tests with the reason; CI (CI=true) never
skips them, because a skipped proof there would look like a passed one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TOOL_CACHE_ENV = "FLEETSTRAP_TOOL_CACHE"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Skip the calling test with `reason`, or fail it in CI where every tool must be present."""
    if in_ci():
        pytest.fail(f"CI must not skip: {reason}", pytrace=False)
    pytest.skip(reason)


def require_command(name: str, hint: str) -> str:
    """The path of executable `name`; skip (fail in CI) with `hint` when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed ({hint})")
        raise AssertionError("unreachable")  # pytest.skip/fail raise; this keeps type checkers honest
    return path


def tool_cache_root() -> Path:
    """Where built tools are kept: $FLEETSTRAP_TOOL_CACHE, else <user cache dir>/fleetstrap-tools.

    Deliberately not FLEETSTRAP_CACHE_DIR: the suite isolates that one per run, and these builds must outlive runs.
    """
    explicit = os.environ.get(TOOL_CACHE_ENV)
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "fleetstrap-tools"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_key(*parts: str) -> str:
    """A short stable key from the inputs that determine a build's output."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def tool_dir(name: str, key: str) -> Path:
    """The cache directory of one build of `name` (created); its content is the caller's."""
    path = tool_cache_root() / f"{name}-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def build_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock for building `name` (across processes: xdist workers, .ci/run's prebuild)."""
    lock_path = tool_cache_root() / f".{name}.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM (the way a kubelet stops a container), then SIGKILL if it is still running after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)
