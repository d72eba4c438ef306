"""The transaction every command that changes a repository runs in: a lock, signal handling, and the checks a
commit needs. The writes themselves land through `writer.py`.

- The lock: `flock` on a file in the repository's `.git` (beside the destination for a repo not made yet) that
  records the holder (pid, host, command, start). The kernel drops an flock when its process dies, so a lock left
  by a killed process is recovered by the next command without guessing from pids; the record only names the
  holder to a second command, which exits 1.
- Signals: SIGTERM (CI runners, `timeout`, `kill`) raises `Terminated` in the main thread, SIGINT raises
  KeyboardInterrupt, so every `finally` and restore runs and the CLI exits 143 / 130. While changes land in the
  work tree and are committed (`deferred_signals`), both wait: the repository is exactly as before or exactly
  complete, never between.
- `checkpoint(step)`: a named moment of a command. For the fault suite only, `FLEETSTRAP_TEST_PAUSE_AT=<step>`
  and `FLEETSTRAP_TEST_PAUSE_FILE=<path>` make the process write that file at the step and wait there for a
  signal, so a test interrupts at an exact moment without sleeping.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from fleetstrap.errors import DestinationError, LockedError, Terminated, UserError

LOCK_FILE = "fleetstrap.lock"
_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_PAUSE_AT = "FLEETSTRAP_TEST_PAUSE_AT"
_PAUSE_FILE = "FLEETSTRAP_TEST_PAUSE_FILE"
_PAUSE_LIMIT = 120.0  # a test that never signals must not hang the suite for ever


# ---------------------------------------------------------------- signals


def _terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGTERM raises `Terminated`, SIGINT KeyboardInterrupt, for the duration (main thread only: Python runs
    handlers there, and a library caller's thread keeps its process's handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_term = signal.signal(signal.SIGTERM, _terminated)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then act: the landing of a change is never cut in two.
    Child processes (git) inherit the mask, so they finish too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def checkpoint(step: str) -> None:
    """A named moment of a command (see the module doc): a no-op unless the fault suite asks to pause here.

    Paused, the process waits until a signal arrives (raised out of the wait, or delivered when a deferred
    block ends) or the test removes the marker file (the command then goes on)."""
    if os.environ.get(_PAUSE_AT) != step:
        return
    marker = Path(os.environ.get(_PAUSE_FILE) or "")
    if not marker.name:
        return
    marker.write_text(f"{os.getpid()} {step}\n", encoding="utf-8")
    deadline = time.monotonic() + _PAUSE_LIMIT
    blocked = bool(signal.pthread_sigmask(signal.SIG_BLOCK, set()) & _SIGNALS)
    while time.monotonic() < deadline and marker.exists():
        if blocked and signal.sigpending() & _SIGNALS:
            return
        time.sleep(0.01)


# ---------------------------------------------------------------- the lock


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    started: str

    def describe(self) -> str:
        return f"`fleetstrap {self.command}` (pid {self.pid} on {self.host}, since {self.started})"


def lock_path(root: Path) -> Path:
    """Inside the repository's `.git` directory (never the work tree); beside the destination when there is no
    repository yet (init) or `.git` is a worktree's file."""
    git_dir = root / ".git"
    if git_dir.is_dir():
        return git_dir / LOCK_FILE
    return root.parent / f".{root.name}.{LOCK_FILE}"


def _read_holder(fd: int) -> Holder | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = json.loads(os.read(fd, 4096).decode("utf-8"))
        return Holder(int(raw["pid"]), str(raw["host"]), str(raw["command"]), str(raw["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def repo_lock(root: Path, command: str) -> Iterator[Holder]:
    """Hold the repository's lock for the block; a second command gets LockedError naming this one."""
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            who = holder.describe() if holder else "another fleetstrap command"
            raise LockedError(f"{root} is locked by {who}; wait for it to finish",
                              hint=f"the lock is {path}; it is released when that process ends") from exc
        # The holder before us may have removed the file after we opened it: then ours is a lock on nothing.
        try:
            same = path.stat().st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    me = Holder(os.getpid(), socket.gethostname(), command,
                datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me.__dict__).encode("utf-8"))
        yield me
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # before the unlock: a waiter that opened it re-checks the inode
        os.close(fd)


# ---------------------------------------------------------------- what a commit needs


def check_branch(root: Path) -> str:
    """The branch a committing command commits on; a detached HEAD is refused, as push refuses it."""
    from fleetstrap import gitrepo

    state = gitrepo.read_local(root)
    if state.has_git and state.branch is None:
        raise UserError(f"{root} has a detached HEAD; check out a branch first (fleetstrap commits only on a branch)")
    return state.branch or ""


def check_git_dir(root: Path) -> None:
    """A `.git` that git does not read as this directory's repository (empty, half-copied, a worktree file
    pointing nowhere) is the user's to fix, not a bug."""
    from fleetstrap import gitrepo
    from fleetstrap.errors import GitError

    git_dir = root / ".git"
    if not (git_dir.exists() or git_dir.is_symlink()):
        return
    problem = DestinationError(f"{git_dir} is not a git repository (empty or broken); repair or remove it")
    try:
        top = gitrepo.run(root, "rev-parse", "--show-toplevel").strip()
    except GitError as exc:
        raise problem from exc
    if Path(top).resolve() != root.resolve():  # git skipped it and found a repository above
        raise problem
