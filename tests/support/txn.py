"""The fault suite's tools (tests/faults/test_txn_*.py): run fleetstrap as its own process, stop it at a named
moment (transaction.checkpoint: the process writes a marker file there and waits), signal it, and compare the
repository's exact state before and after."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Only a guard against a hang: the tests wait for the marker (a condition), never for a length of time.
_MARKER_LIMIT = 600.0


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str

    def error_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.startswith("error:")]


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    """The test process's environment (isolated cache, git identity) with TMPDIR of our own: the command's
    scratch directories must be gone when it ends, and this is where they would be left."""
    tmp.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), "NO_COLOR": "1", **extra}


def fleetstrap(*args: str, env: dict[str, str], cwd: Path | None = None) -> Done:
    done = subprocess.run([sys.executable, "-m", "fleetstrap", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, check=False, timeout=_MARKER_LIMIT)
    return Done(done.returncode, done.stdout, done.stderr)


class Paused:
    """A fleetstrap process stopped at `step` (FLEETSTRAP_TEST_PAUSE_AT), holding whatever it holds there."""

    def __init__(self, args: tuple[str, ...], step: str, env: dict[str, str], marker: Path) -> None:
        self.marker = marker
        marker.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "fleetstrap", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**env, "FLEETSTRAP_TEST_PAUSE_AT": step,
                                          "FLEETSTRAP_TEST_PAUSE_FILE": str(marker)})
        deadline = time.monotonic() + _MARKER_LIMIT
        while not marker.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _, err = self.proc.communicate()
                raise AssertionError(f"fleetstrap {' '.join(args)} never reached {step} "
                                     f"(exit {self.proc.returncode}): {err[-2000:]}")
            time.sleep(0.02)

    def signal(self, signum: int) -> Done:
        self.proc.send_signal(signum)
        return self._wait()

    def resume(self) -> Done:
        self.marker.unlink()
        return self._wait()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=_MARKER_LIMIT)

    def _wait(self) -> Done:
        out, err = self.proc.communicate(timeout=_MARKER_LIMIT)
        return Done(self.proc.returncode, out, err)


def git(root: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=check).stdout


@dataclass(frozen=True)
class RepoState:
    head: str
    branch: str
    status: str  # git status --porcelain, untracked and ignored included
    files: dict[str, str]  # every path outside .git -> sha256 of its bytes (or of a link's target)
    git_entries: tuple[str, ...]  # what sits directly in .git (no lock, no worktree left)


def state(root: Path) -> RepoState:
    files: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] == ".git" or (p.is_dir() and not p.is_symlink()):
            continue
        data = str(p.readlink()).encode() if p.is_symlink() else p.read_bytes()
        files[rel.as_posix()] = hashlib.sha256(data).hexdigest()
    head = git(root, "rev-parse", "--verify", "-q", "HEAD").strip() if (root / ".git").exists() else ""
    branch = git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False).strip() if head else ""
    status = git(root, "status", "--porcelain", "--untracked-files=all", "--ignored") if head else ""
    entries = tuple(sorted(p.name for p in (root / ".git").iterdir())) if (root / ".git").is_dir() else ()
    return RepoState(head, branch, status, files, entries)


def leftovers(*dirs: Path, tmp: Path | None = None) -> list[str]:
    """Staging directories, half-landed files (`.NAME.fleetstrap-*`) and locks fleetstrap may leave in these
    directories (recursive, .git included), and everything left in the TMPDIR given to the command."""
    found: list[str] = []
    for d in dirs:
        if d.exists():
            found += [str(p) for p in d.rglob("*") if ".fleetstrap-" in p.name or p.name.endswith("fleetstrap.lock")]
    if tmp is not None and tmp.exists():
        found += [str(p) for p in tmp.iterdir()]
    return found


def one_line_error(done: Done, *words: str) -> None:
    assert "Traceback" not in done.err, done.err
    lines = done.error_lines()
    assert len(lines) == 1, done.err
    for w in words:
        assert w in lines[0], done.err


def existing_repo(tmp_path: Path) -> Path:
    """A user's repository with history and a file of their own (NOTES.md), for init --force into it."""
    dest = tmp_path / "existing"
    dest.mkdir()
    git(dest, "init", "-q", "-b", "main")
    (dest / "NOTES.md").write_text("ours\n")
    git(dest, "add", "NOTES.md")
    git(dest, "commit", "-q", "-m", "our history")
    return dest
