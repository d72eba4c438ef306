"""A throwaway git repo holding a copy of the fleet repo's files: where a command's changes are staged, outside
the work tree, before they land (writer.py) in one step with their commit.

copier refuses to update a dirty tree, and a fleet has many components: merging them one after another in
the user's repo would need a commit between each. In the workspace every component gets its own commit
(which also gives the per-component diffs for --pretend), and only the final result lands in the repo.
`add` renders its new component here and re-renders the fleet here; `update` merges here; the gate validates
the workspace, so nothing unvalidated ever reaches the work tree.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from fleetstrap import gitrepo
from fleetstrap.writer import Change


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """git in a scratch repo (no hooks, no signing: the user's config must not change a merge)."""
    return gitrepo.run(cwd, "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false", *args,
                       env=gitrepo.scratch_env(), check=check)


@dataclass(frozen=True)
class FileChange:
    status: str  # A, M or D
    path: str


def _tracked_and_untracked(root: Path) -> list[str]:
    out = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted({p for p in out.split("\0") if p})


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    if src.is_symlink():
        dst.symlink_to(src.readlink())
    else:
        shutil.copy2(src, dst)


class Workspace:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = ""

    @classmethod
    def create(cls, root: Path, path: Path) -> Workspace:
        """Copy the working tree of `root` (tracked + untracked, not ignored) and commit it as the base."""
        ws = cls(path)
        path.mkdir(parents=True, exist_ok=True)
        for rel in _tracked_and_untracked(root):
            src = root / rel
            if src.is_symlink() or src.is_file():
                _copy(src, path / rel)
        git(path, "init", "-q", "-b", "main")
        ws.base = ws.commit("base")
        return ws

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "--no-verify", "-m", message)
        return git(self.path, "rev-parse", "HEAD").strip()

    def staged_changes(self) -> list[FileChange]:
        """Changes in the working tree since HEAD (stages everything)."""
        git(self.path, "add", "-A")
        return self._parse(git(self.path, "diff", "--cached", "--name-status", "-z", "--no-renames", "HEAD"))

    def changes(self, since: str, until: str = "HEAD") -> list[FileChange]:
        return self._parse(git(self.path, "diff", "--name-status", "-z", "--no-renames", since, until))

    @staticmethod
    def _parse(raw: str) -> list[FileChange]:
        parts = [p for p in raw.split("\0") if p]
        return [FileChange(parts[i][0], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]

    def diff(self, since: str, until: str = "HEAD") -> str:
        return git(self.path, "diff", "--no-color", "--no-renames", "--no-ext-diff", since, until)

    def show_bytes(self, rev: str, rel: str) -> bytes | None:
        return gitrepo.read_blob(self.path, rev, rel, gitrepo.scratch_env())

    def show(self, rev: str, rel: str) -> str | None:
        """Text of a file at a revision; None when absent there or not UTF-8 text."""
        raw = self.show_bytes(rev, rel)
        try:
            return raw.decode("utf-8") if raw is not None else None
        except UnicodeDecodeError:
            return None

    def files(self) -> list[str]:
        return [p for p in git(self.path, "ls-files", "-z").split("\0") if p]

    def read(self, rel: str) -> str | None:
        p = self.path / rel
        if not p.is_file():
            return None
        try:
            return p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            return None

    def write(self, rel: str, text: str | None) -> None:
        p = self.path / rel
        if text is None:
            p.unlink(missing_ok=True)
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode("utf-8"))

    def staged(self) -> list[Change]:
        """Every change since the base, as the writer lands it (commits what is in the working tree first)."""
        self.commit("staged")
        return [Change(ch.path, None if ch.status == "D" else self.path / ch.path) for ch in self.changes(self.base)]
