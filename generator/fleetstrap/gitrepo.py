"""Local git with GitPython: init, commit when something changed. No network here (see publish)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fleetstrap.errors import UserError

DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class Author:
    name: str
    email: str


def _git_module() -> ModuleType:
    import git  # lazy: GitPython spawns git on import checks

    return git


def default_author(path: Path | None = None) -> Author:
    """From git config (repo, then global), else a neutral fleetstrap identity."""
    git = _git_module()
    try:
        reader = git.Repo(path).config_reader() if path and (path / ".git").exists() else git.GitConfigParser(
            [str(Path.home() / ".gitconfig")], read_only=True
        )
        name = reader.get_value("user", "name", "")
        email = reader.get_value("user", "email", "")
    except Exception:  # no config at all is normal on CI machines
        name = email = ""
    return Author(str(name) or "fleetstrap", str(email) or "fleetstrap@localhost")


def ensure_repo(path: Path, branch: str = DEFAULT_BRANCH) -> Any:
    git = _git_module()
    if (path / ".git").exists():
        return git.Repo(path)
    repo = git.Repo.init(path, initial_branch=branch)
    return repo


def ensure_commit(path: Path, message: str, author: Author | None = None, branch: str = DEFAULT_BRANCH) -> str | None:
    """Stage everything and commit. Returns the new sha, or None when there was nothing to commit."""
    git = _git_module()
    repo = ensure_repo(path, branch)
    repo.git.add("-A")
    has_head = repo.head.is_valid()
    if has_head and not repo.index.diff("HEAD"):
        return None
    if not has_head and not list(repo.index.entries):
        return None
    who = author or default_author(path)
    actor = git.Actor(who.name, who.email)
    try:
        commit = repo.index.commit(message, author=actor, committer=actor)
    except Exception as exc:
        raise UserError(f"git commit failed in {path}: {type(exc).__name__}") from exc
    return str(commit.hexsha)


def is_dirty(path: Path) -> bool:
    git = _git_module()
    repo = git.Repo(path)
    return bool(repo.is_dirty(untracked_files=True))
