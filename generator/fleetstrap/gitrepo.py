"""The one git layer: every git command fleetstrap runs on a repo goes through here, failing with one GitError.

Local state with GitPython (init, commit, branches, remotes); network commands (ls-remote, fetch, push) run
`git` with credentials only in that process's environment (see `publish.auth.git_env`): never on a command
line, never in .git/config. The template mirror (render) and copier's own clones are not repos of the user.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from fleetstrap.errors import GitError, RemoteGitError, UserError
from fleetstrap.redact import redact

DEFAULT_BRANCH = "main"
Relation = Literal["empty", "same", "fast-forward", "behind", "unknown"]


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True)
class LocalState:
    has_git: bool
    head: str | None
    branch: str | None
    dirty: bool


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


# ---------------------------------------------------------------- local state


def ensure_repo(path: Path, branch: str = DEFAULT_BRANCH) -> Any:
    git = _git_module()
    if (path / ".git").exists():
        return git.Repo(path)
    return git.Repo.init(path, initial_branch=branch)


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
        raise GitError(f"git commit failed in {path}: {type(exc).__name__}") from exc
    return str(commit.hexsha)


def commit_paths(root: Path, paths: list[str], message: str, author: Author | None = None,
                 branch: str = DEFAULT_BRANCH) -> str | None:
    """Commit exactly `paths` (added, changed or deleted) and nothing else: the user's other files, tracked
    changes or untracked secrets, stay out of the commit. None when those paths hold no change.

    No hooks and no signing, like every fleetstrap commit (GitPython's); the author is also the committer."""
    if not (root / ".git").exists():
        run(root, "init", "-q", "-b", branch)
    who = author or default_author(root)
    env = {"GIT_AUTHOR_NAME": who.name, "GIT_AUTHOR_EMAIL": who.email,
           "GIT_COMMITTER_NAME": who.name, "GIT_COMMITTER_EMAIL": who.email}
    # A path the repo's .gitignore excludes stays out, as `git add -A` would leave it.
    ignored = set(run(root, "check-ignore", "--stdin", "-z", text_input="\0".join(paths), check=False).split("\0"))
    paths = [p for p in paths if p not in ignored]
    if paths:
        run(root, "--literal-pathspecs", "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul",
            text_input="\0".join(paths))
    has_head = bool(run(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip())
    staged = run(root, "diff", "--cached", "--name-only", *(["HEAD"] if has_head else []))
    if not has_head:
        staged = run(root, "ls-files", "--cached")
    if not staged.strip():
        return None
    run(root, "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", "commit", "-q", "--no-verify",
        "-m", message, env=env)
    return run(root, "rev-parse", "HEAD").strip()


def unstage(root: Path, paths: list[str]) -> None:
    """Take `paths` out of the index again (back to HEAD), after a landing that did not finish."""
    if not paths or not (root / ".git").exists():
        return
    spec = "\0".join(paths)
    if run(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip():
        run(root, "--literal-pathspecs", "reset", "-q", "--pathspec-from-file=-", "--pathspec-file-nul",
            text_input=spec, check=False)
    else:  # no commit yet: nothing to reset to, so out of the index
        run(root, "--literal-pathspecs", "rm", "-q", "-r", "--cached", "--ignore-unmatch", "--pathspec-from-file=-",
            "--pathspec-file-nul", text_input=spec, check=False)


def ensure_branch(root: Path, branch: str) -> bool:
    """Put HEAD on `branch`. Renames the current branch when `branch` doesn't exist yet. True if changed."""
    repo = ensure_repo(root, branch)
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


def ensure_remote(root: Path, name: str, url: str) -> Literal["created", "updated", "in place"]:
    repo = _git_module().Repo(root)
    for remote in repo.remotes:
        if remote.name == name:
            if list(remote.urls) == [url]:
                return "in place"
            repo.git.remote("set-url", name, url)
            return "updated"
    repo.git.remote("add", name, url)
    return "created"


def restore(root: Path) -> None:
    """Back to the last commit exactly: tracked files reset, untracked files removed."""
    repo = _git_module().Repo(root)
    repo.git.reset("--hard", "HEAD")
    repo.git.clean("-fdq")


def is_dirty(path: Path) -> bool:
    return bool(_git_module().Repo(path).is_dirty(untracked_files=True))


def read_local(root: Path) -> LocalState:
    if not (root / ".git").exists():
        return LocalState(has_git=False, head=None, branch=None, dirty=True)
    repo = _git_module().Repo(root)
    head = repo.head.commit.hexsha if repo.head.is_valid() else None
    try:
        branch = repo.active_branch.name
    except TypeError:  # detached HEAD
        branch = None
    return LocalState(has_git=True, head=head, branch=branch, dirty=bool(repo.is_dirty(untracked_files=True)))


def head_sha(root: Path) -> str | None:
    return read_local(root).head


def dirty_paths(root: Path) -> list[str]:
    return [line[3:] for line in run(root, "status", "--porcelain").splitlines() if line.strip()]


def remote_url(root: Path, remote: str) -> str | None:
    try:
        return run(root, "remote", "get-url", remote).strip() or None
    except GitError:
        return None


def has_object(root: Path, sha: str) -> bool:
    if not (root / ".git").exists():
        return False
    try:
        run(root, "cat-file", "-e", f"{sha}^{{commit}}")
    except GitError:
        return False
    return True


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    try:
        run(root, "merge-base", "--is-ancestor", older, newer)
    except GitError:
        return False
    return True


# ---------------------------------------------------------------- running git


def scratch_env(index_file: Path | None = None) -> dict[str, str]:
    """For fleetstrap's own scratch repos (template mirror, update workspaces): a fixed identity and no system
    config, so they never depend on the machine."""
    return {
        **({"GIT_INDEX_FILE": str(index_file)} if index_file else {}),
        "GIT_AUTHOR_NAME": "fleetstrap",
        "GIT_AUTHOR_EMAIL": "fleetstrap@localhost",
        "GIT_COMMITTER_NAME": "fleetstrap",
        "GIT_COMMITTER_EMAIL": "fleetstrap@localhost",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def run(root: Path, *args: str, env: Mapping[str, str] | None = None, url: str | None = None,
        timeout: float = 300.0, check: bool = True, text_input: str | None = None) -> str:
    """Run one git command in `root` (which may not be a repo yet); no prompts, ever.

    `env` holds the command's credentials (`publish.auth.git_env`) or `scratch_env()`; `url` names the remote in
    errors. With check=False a failure returns "". Output is decoded with surrogateescape, so binary content
    survives (`read_blob`)."""
    full = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    failure = GitError if url is None else RemoteGitError  # only a command against a remote is a remote's failure
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=timeout, env=full, check=False,
                              input=text_input.encode() if text_input is not None else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise failure(f"git {args[0]} failed: {type(exc).__name__}") from exc
    if done.returncode != 0:
        if not check:
            return ""
        # Our one line, not git's whole stderr: it may echo a URL or a header.
        raise failure(explain(args[0], url, done.stderr.decode("utf-8", "replace")))
    return done.stdout.decode("utf-8", "surrogateescape")


def read_blob(root: Path, rev: str, rel: str, env: Mapping[str, str] | None = None) -> bytes | None:
    """A file's bytes at a revision; None when it is not there."""
    try:
        return run(root, "cat-file", "blob", f"{rev}:{rel}", env=env).encode("utf-8", "surrogateescape")
    except GitError:
        return None


_WHAT = {"ls-remote": "reading", "fetch": "fetching from", "push": "pushing to"}


def explain(command: str, url: str | None, stderr: str) -> str:
    text = redact(stderr)
    low = text.lower()
    what = f"{_WHAT.get(command, 'git ' + command)} {url}" if url else f"git {command}"
    if url is not None:
        if any(s in low for s in ("authentication failed", "could not read username", "401", "403",
                                  "permission denied", "invalid username or password")):
            return f"{what} failed: authentication refused (check the token or key)"
        if any(s in low for s in ("could not resolve host", "connection refused", "timed out", "unable to connect")):
            return f"{what} failed: remote unreachable"
        if "host key verification failed" in low:
            return f"{what} failed: ssh host key not trusted (pass --known-hosts)"
        if "non-fast-forward" in low or "rejected" in low:
            return f"{what} was rejected: the remote has commits that are not in the local branch"
        if "repository not found" in low or "not found" in low or "does not appear to be a git repository" in low:
            return f"{what} failed: repository not found"
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "git failed")
    return f"{what} failed: {last.removeprefix('fatal: ')}"


# ---------------------------------------------------------------- remotes (network)


@dataclass(frozen=True)
class Remote:
    """Where a network command goes: the remote's name in the repo (or its URL when it has none), its URL, and
    the environment carrying its credentials (`publish.auth.git_env`)."""

    name: str
    url: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


def remote_head(root: Path, remote: Remote, branch: str) -> str | None:
    """The branch's sha on the remote; None when the branch is not there."""
    out = run(root, "ls-remote", "--", remote.url, f"refs/heads/{branch}", env=remote.env, url=remote.url,
              timeout=60)
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def fetch(root: Path, remote: Remote, branch: str) -> None:
    run(root, "fetch", "--no-tags", remote.name, f"+refs/heads/{branch}:refs/remotes/{remote.name}/{branch}",
        env=remote.env, url=remote.url)


def push(root: Path, remote: Remote, branch: str) -> None:
    """Push HEAD to the branch: fast-forward only, never forced."""
    run(root, "push", "--set-upstream", "--", remote.name, f"HEAD:refs/heads/{branch}", env=remote.env,
        url=remote.url)


def relation(root: Path, local: str | None, remote: str | None, url: str, branch: str) -> Relation:
    """How the remote branch relates to ours. Raises on unrelated or diverged history (never force)."""
    if remote is None:
        return "empty"
    if local == remote:
        return "same"
    if not has_object(root, remote):
        return "unknown"
    if local is None:
        raise RemoteGitError(f"{url} already has a {branch} branch with history that is not ours; refusing to push",
                       hint="push to a new or empty repository, or clone it and copy the fleet in")
    try:
        base = run(root, "merge-base", local, remote).strip()
    except GitError:
        base = ""
    if not base:
        raise RemoteGitError(f"{url} branch {branch} holds unrelated history; refusing to push (never forced)",
                       hint="push to a new or empty repository, or merge that history first")
    if base == remote:
        return "fast-forward"
    if base == local:
        return "behind"
    raise RemoteGitError(f"{url} branch {branch} has diverged from the local branch; refusing to push",
                   hint=f"pull and merge {branch} first; fleetstrap never force-pushes")
