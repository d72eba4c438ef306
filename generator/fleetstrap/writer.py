"""The one writer layer: every change a command makes to a repository's work tree and history lands here.

A command stages its changes outside the work tree (a `Workspace`, a staging directory), validates them there,
and hands them to a `RepoWriter` chosen once, where the command starts (`open_writer`):

- `WorkTreeWriter` lands the changes in one step with their one commit, inside the transaction
  (transaction.py: the repository's lock, signals deferred while landing). Only the paths the command wrote are
  committed. Any error during the landing puts every one of those paths back as it was: the repository is
  exactly as before or exactly complete.
- `RecordingWriter` is every dry run (`--dry-run`, `--pretend`): it records what would be written and committed
  and touches nothing.

The forge (a branch pushed as a pull request) and the cluster have their own journaled and recording clients
(`publish/clients.py`, `bootstrapper.py`), chosen the same way, once.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fleetstrap import gitrepo
from fleetstrap.errors import EXIT_BUG, FleetstrapError, GitError, UserError, environment_refusal
from fleetstrap.gitrepo import Author
from fleetstrap.transaction import (
    check_branch,
    check_git_dir,
    checkpoint,
    deferred_signals,
    handle_signals,
    repo_lock,
)


@dataclass(frozen=True)
class Change:
    """One path of the repository (posix, relative) and the staged file it becomes; None: it is deleted."""

    path: str
    source: Path | None


@dataclass(frozen=True)
class Landing:
    paths: tuple[str, ...]  # what was (or would be) written or deleted
    commit: str | None = None
    journal: tuple[str, ...] = ()


class RepoWriter(Protocol):
    root: Path

    def land(self, changes: Sequence[Change], message: str | None, *, author: Author | None = None,
             branch: str = gitrepo.DEFAULT_BRANCH) -> Landing:
        """Write the changes into the work tree and, with a message, commit exactly those paths."""
        ...

    def place(self, staged: Path, dest: Path) -> None:
        """Move a complete staged repository (made by init) to `dest`, which is absent or empty."""
        ...


# ---------------------------------------------------------------- the real writer


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()


def _prune_empty_dirs(start: Path, stop: Path) -> None:
    d = start
    while d != stop and d.is_dir() and not any(d.iterdir()):
        d.rmdir()
        d = d.parent


def _aside(path: Path) -> Path:
    return path.parent / f".{path.name}.fleetstrap-old"


class _Landing:
    """The paths of one landing: each old file is renamed aside (no byte written, so a full disk cannot stop
    the way back) before its new one is renamed in; undo renames them back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: list[tuple[Path, bool]] = []  # (target, had an old file aside)

    def write(self, change: Change) -> None:
        target = self.root / change.path
        if target.is_dir() and not target.is_symlink():
            raise UserError(f"{target} is a directory; fleetstrap would write a file there")
        new = None
        if change.source is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            new = target.parent / f".{target.name}.fleetstrap-new"
            _remove(new)
            try:
                if change.source.is_symlink():
                    new.symlink_to(change.source.readlink())
                else:
                    shutil.copy2(change.source, new)
            except BaseException:  # a full disk mid-copy: no half-written file stays behind
                _remove(new)
                _prune_empty_dirs(target.parent, self.root)
                raise
        had = target.is_symlink() or target.exists()
        if had:
            target.replace(_aside(target))
        self.done.append((target, had))
        if new is not None:
            new.replace(target)
        else:
            _prune_empty_dirs(target.parent, self.root)

    def finish(self) -> None:
        for target, had in self.done:
            if had:
                _remove(_aside(target))

    def undo(self) -> None:
        for target, had in reversed(self.done):
            _remove(target)
            new = target.parent / f".{target.name}.fleetstrap-new"
            _remove(new)
            if had:
                target.parent.mkdir(parents=True, exist_ok=True)
                _aside(target).replace(target)
            else:
                _prune_empty_dirs(target.parent, self.root)


class WorkTreeWriter:
    """Lands changes in the work tree of `root` and commits them (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def land(self, changes: Sequence[Change], message: str | None, *, author: Author | None = None,
             branch: str = gitrepo.DEFAULT_BRANCH) -> Landing:
        paths = [c.path for c in changes]
        with deferred_signals():
            checkpoint("land")
            landing = _Landing(self.root)
            try:
                for change in changes:
                    landing.write(change)
                sha = gitrepo.commit_paths(self.root, paths, message, author, branch) if message else None
            except BaseException:
                landing.undo()
                gitrepo.unstage(self.root, paths)
                raise
            landing.finish()
        return Landing(tuple(paths), sha)

    def place(self, staged: Path, dest: Path) -> None:
        with deferred_signals():
            checkpoint("land")
            if dest.is_dir() and not any(dest.iterdir()):
                dest.rmdir()
            staged.rename(dest)


class RecordingWriter:
    """Every dry run: what would be written and committed, in a journal; nothing is touched."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.journal: list[str] = []

    def land(self, changes: Sequence[Change], message: str | None, *, author: Author | None = None,  # noqa: ARG002
             branch: str = gitrepo.DEFAULT_BRANCH) -> Landing:  # noqa: ARG002 (the writer's shape)
        lines = [f"would {'delete' if c.source is None else 'write'} {c.path}" for c in changes]
        if message:
            lines.append(f"would commit: {message.splitlines()[0]}")
        self.journal += lines
        return Landing(tuple(c.path for c in changes), None, tuple(lines))

    def place(self, staged: Path, dest: Path) -> None:  # noqa: ARG002 (the writer's shape)
        self.journal.append(f"would create {dest}")


@contextlib.contextmanager
def open_writer(root: Path, command: str, *, commit: bool, dry_run: bool = False,
                detached_ok: bool = False) -> Iterator[RepoWriter]:
    """The writer for one command on the repository at `root`, chosen once.

    The real writer comes inside the transaction: SIGINT/SIGTERM handled, the repository locked for the whole
    block (reads included, so nothing changes between what the command read and what it lands), a broken `.git`
    refused, and, for a committing command, a detached HEAD refused. The OS refusing a write (read-only, no
    permission, disk full) leaves as a one-line user error naming the path. `detached_ok` is for fleetstrap's own
    temporary worktrees (update --pr), never the user's checkout."""
    if dry_run:
        yield RecordingWriter(root)
        return
    try:
        with handle_signals(), repo_lock(root, command):
            check_git_dir(root)
            if commit and not detached_ok and (root / ".git").exists():
                check_branch(root)
            yield WorkTreeWriter(root)
    except Exception as exc:
        # Ours already say what they are; git's own failures (a full disk when writing objects) get the path.
        ours = isinstance(exc, FleetstrapError) and exc.exit_code != EXIT_BUG and not isinstance(exc, GitError)
        refusal = None if ours else environment_refusal(exc, root)
        if refusal is not None:
            raise refusal from exc
        raise
