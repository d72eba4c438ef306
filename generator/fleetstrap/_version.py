"""The version a build calls itself: the release named in `__init__.py` only when the build IS that release.

A build from a checkout that is not the release's tag (or has changes) is a development version that says so:
`<next patch>.dev<commits>+t<template digest>`, e.g. `0.1.1.dev412+t3f0c9a1b2c4d`. The local part names the
exact template content, so a fleet rendered by a development build records which templates it came from.

Standalone on purpose: hatchling loads this file by path to version the wheel (pyproject `[tool.hatch.version]`,
source "code"), before fleetstrap is importable; an sdist carries the computed version in PKG-INFO, which hatchling
reads instead. At run time `fleetstrap.__version__` comes from here too: from the source tree when running from a
checkout (editable install), else from the installed distribution's metadata.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

_PKG = Path(__file__).resolve().parent
_DECLARED = re.compile(r'^__version__ = "(?P<v>[^"]+)"$', re.M)
_DIGEST_LEN = 12


def tree_digest(root: Path) -> str:
    """Content digest of a template tree (paths and bytes; caches left out): the mirror's key and the local part
    of a development version."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            h.update(p.relative_to(root).as_posix().encode())
            h.update(b"\0")
            h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()[:_DIGEST_LEN]


def declared(pkg: Path = _PKG) -> str:
    """The release `__init__.py` names (the one place a release sets its version)."""
    m = _DECLARED.search((pkg / "__init__.py").read_text(encoding="utf-8"))
    if m is None:
        raise RuntimeError(f"{pkg / '__init__.py'} has no __version__ line")
    return m.group("v")


def _git(root: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False,
                             timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def _next_patch(release: str) -> str:
    parts = release.split("+")[0].split(".")
    nums = [int(re.match(r"\d+", p).group(0)) if re.match(r"\d+", p) else 0 for p in parts[:3]]  # type: ignore[union-attr]
    nums += [0] * (3 - len(nums))
    return f"{nums[0]}.{nums[1]}.{nums[2] + 1}"


def development_version(release: str, commits: int, digest: str) -> str:
    return f"{_next_patch(release)}.dev{commits}+t{digest}"


def is_development(version: str) -> bool:
    return ".dev" in version or "+" in version


def source_version(root: Path, release: str | None = None) -> str:
    """The version of a build from the source tree at `root` (a checkout, or a copy of one).

    A release only when git says HEAD is the tag `v<release>` and nothing under generator/, templates/ or
    blueprints/ differs from it. A tree that is not a git checkout (an unpacked copy) keeps the declared version:
    there is nothing to tell it from the release.
    """
    release = release or declared(root / "generator" / "fleetstrap")
    if not (root / ".git").exists():
        return release
    tagged = _git(root, "tag", "--points-at", "HEAD")
    if tagged is not None and f"v{release}" in tagged.split() and _git(
            root, "status", "--porcelain", "--untracked-files=no", "--", "generator", "templates", "blueprints") == "":
        return release
    count = _git(root, "rev-list", "--count", "HEAD")
    return development_version(release, int(count) if count and count.isdigit() else 0,
                               tree_digest(root / "templates"))


def build_version() -> str:
    """For hatchling: the version of the wheel built from this tree."""
    return source_version(_PKG.parent.parent)


def runtime_version() -> str:
    root = _PKG.parent.parent
    if (root / "pyproject.toml").is_file() and (root / "templates").is_dir():
        return source_version(root)  # a checkout: what a build of it would be called now
    from importlib import metadata

    # The distribution this very package was installed from (another fleetstrap may be earlier on sys.path).
    for dist in metadata.distributions(name="fleetstrap"):
        if Path(str(dist.locate_file("fleetstrap/__init__.py"))).resolve() == _PKG / "__init__.py":
            return dist.version
    return declared()
