"""Reading stays inside the repository.

Validate runs in CI on pull requests from people who do not own the machine, so a path the repo names (a
kustomization entry, a values file, a chart, a symlink) is opened only when it resolves, symlinks and `..`
followed, to a place under the repo root. Everything else is a finding and is never opened.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from fleetstrap.boundedyaml import read_bounded_text

# kustomize fetches these (git clone or HTTP GET): `https://…`, `git::…`, `git@host:org/repo`, `ssh://…`,
# `github.com/org/repo//path?ref=x`, `host.example/org/repo`.
_REMOTE = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://|git::|git@|[^/]+@[^/:]+:|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?/)")


def is_remote(entry: str) -> bool:
    """Whether kustomize would fetch `entry` over the network rather than read it from disk."""
    return bool(_REMOTE.match(entry.strip()))


def inside(root: Path, path: Path) -> bool:
    """Whether `path`, every symlink on the way resolved, is `root` or under it (`root` already resolved)."""
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):
        return False
    return real == root or real.is_relative_to(root)


def repo_path(root: Path, rel: str, base: str = "") -> Path | None:
    """`root/base/rel` when it resolves inside the repo, else None (never opened)."""
    if "\0" in rel:
        return None
    path = root / base / PurePosixPath(rel.removeprefix("./"))
    return path if inside(root, path) else None


def read_repo_text(root: Path, rel: str) -> str | None:
    """The text of a repo file, or None when it resolves outside the repo, is missing, too large or not UTF-8."""
    path = repo_path(root, rel)
    if path is None:
        return None
    try:
        return read_bounded_text(path)
    except (OSError, UnicodeDecodeError):
        return None
