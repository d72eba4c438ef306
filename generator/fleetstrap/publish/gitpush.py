"""The git half of push: local commit on main, a clean remote URL, history check, fast-forward push."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fleetstrap import gitrepo
from fleetstrap.errors import RemoteError, UserError
from fleetstrap.redact import redact

Relation = Literal["empty", "same", "fast-forward", "behind", "unknown"]


@dataclass(frozen=True)
class LocalState:
    has_git: bool
    head: str | None
    branch: str | None
    dirty: bool


def _git() -> Any:
    import git

    return git


def read_local(root: Path) -> LocalState:
    if not (root / ".git").exists():
        return LocalState(has_git=False, head=None, branch=None, dirty=True)
    repo = _git().Repo(root)
    head = repo.head.commit.hexsha if repo.head.is_valid() else None
    try:
        branch = repo.active_branch.name
    except TypeError:  # detached HEAD
        branch = None
    return LocalState(has_git=True, head=head, branch=branch, dirty=bool(repo.is_dirty(untracked_files=True)))


def ensure_branch(root: Path, branch: str) -> bool:
    """Put HEAD on `branch`. Renames the current branch when `branch` doesn't exist yet. True if changed."""
    repo = gitrepo.ensure_repo(root, branch)
    try:
        current = repo.active_branch.name
    except TypeError as exc:
        raise UserError(f"{root} has a detached HEAD; check out a branch first") from exc
    if current == branch:
        return False
    if branch in [h.name for h in repo.heads]:
        raise UserError(f"{root} is on branch {current}, not {branch}; check out {branch} first")
    repo.git.branch("-m", current, branch)
    return True


def ensure_commit(root: Path, branch: str, message: str) -> str | None:
    return gitrepo.ensure_commit(root, message, branch=branch)


def ensure_remote(root: Path, name: str, url: str) -> Literal["created", "updated", "in place"]:
    repo = _git().Repo(root)
    for remote in repo.remotes:
        if remote.name == name:
            urls = list(remote.urls)
            if urls == [url]:
                return "in place"
            repo.git.remote("set-url", name, url)
            return "updated"
    repo.git.remote("add", name, url)
    return "created"


def _run(root: Path, env: dict[str, str], what: str, url: str, *args: str) -> str:
    git = _git()
    repo = git.Repo(root) if (root / ".git").exists() else None
    runner = repo.git if repo is not None else git.Git(str(root))
    try:
        return str(runner.execute(["git", *args], env=env, kill_after_timeout=300))
    except git.GitCommandError as exc:
        raise RemoteError(_explain(what, url, str(exc.stderr or ""))) from None
    # `from None`: GitPython's exception text holds the whole command and stderr; ours is enough.


def _explain(what: str, url: str, stderr: str) -> str:
    text = redact(stderr)
    low = text.lower()
    if any(s in low for s in ("authentication failed", "could not read username", "401", "403",
                              "permission denied", "invalid username or password")):
        return f"{what} {url} failed: authentication refused (check the token or key)"
    if any(s in low for s in ("could not resolve host", "connection refused", "timed out", "unable to connect")):
        return f"{what} {url} failed: remote unreachable"
    if "host key verification failed" in low:
        return f"{what} {url} failed: ssh host key not trusted (pass --known-hosts)"
    if "non-fast-forward" in low or "rejected" in low:
        return f"{what} {url} was rejected: the remote has commits that are not in the local branch"
    if "repository not found" in low or "not found" in low or "does not appear to be a git repository" in low:
        return f"{what} {url} failed: repository not found"
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "git failed")
    return f"{what} {url} failed: {last.removeprefix('fatal: ')}"


def read_remote_head(root: Path, url: str, branch: str, env: dict[str, str]) -> str | None:
    out = _run(root, env, "reading", url, "ls-remote", "--", url, f"refs/heads/{branch}")
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def has_object(root: Path, sha: str) -> bool:
    if not (root / ".git").exists():
        return False
    repo = _git().Repo(root)
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
    except _git().GitCommandError:
        return False
    return True


def fetch(root: Path, remote: str, url: str, branch: str, env: dict[str, str]) -> None:
    _run(root, env, "fetching from", url, "fetch", "--no-tags", remote,
         f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}")


def relation(root: Path, local: str | None, remote: str | None, url: str, branch: str) -> Relation:
    """How the remote branch relates to ours. Raises on unrelated or diverged history (never force)."""
    if remote is None:
        return "empty"
    if local == remote:
        return "same"
    if not has_object(root, remote):
        return "unknown"
    if local is None:
        raise RemoteError(f"{url} already has a {branch} branch with history that is not ours; refusing to push",
                          hint="push to a new or empty repository, or clone it and copy the fleet in")
    repo = _git().Repo(root)
    base = repo.merge_base(local, remote)
    if not base:
        raise RemoteError(f"{url} branch {branch} holds unrelated history; refusing to push (never forced)",
                          hint="push to a new or empty repository, or merge that history first")
    if base[0].hexsha == remote:
        return "fast-forward"
    if base[0].hexsha == local:
        return "behind"
    raise RemoteError(f"{url} branch {branch} has diverged from the local branch; refusing to push",
                      hint=f"pull and merge {branch} first; fleetstrap never force-pushes")


def push(root: Path, remote: str, url: str, branch: str, env: dict[str, str]) -> None:
    _run(root, env, "pushing to", url, "push", "--set-upstream", "--", remote, f"HEAD:refs/heads/{branch}")
