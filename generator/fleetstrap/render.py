"""Render: copier side effects. Templates come from a versioned git source so copier can 3-way merge later.

The bundled templates are not a git repo inside a wheel, so a local mirror is built on demand:
one git repository under the user's cache dir, one commit + tag `v<fleetstrap version>` per template
content. Rendering always goes through it, so every answers file records a `_commit` copier can update from.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetstrap import __version__, copier_adapter, gitrepo
from fleetstrap.cache import cache_dir
from fleetstrap.copier_adapter import SharedTemplate
from fleetstrap.errors import DestinationError, GitError, TemplateError
from fleetstrap.plan import Component
from fleetstrap.resources import templates_dir


@dataclass(frozen=True)
class TemplateSource:
    """Where copier reads the templates: a git URL/path and a ref (tag)."""

    url: str
    ref: str


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(p.relative_to(root).as_posix().encode())
            h.update(b"\0")
            h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()[:12]


def _git(cwd: Path, *args: str, index_file: Path | None = None) -> str:
    try:
        return gitrepo.run(cwd, *args, env=gitrepo.scratch_env(index_file)).strip()
    except GitError as exc:  # the mirror is fleetstrap's own repo: a failure there is a bug, not bad input
        raise TemplateError(f"{exc} (in the template mirror)") from exc


def ensure_template_mirror(src: Path | None = None, version: str = __version__) -> TemplateSource:
    """Idempotently commit the bundled templates into the local mirror and tag them.

    A release tags `v<version>`; when the same version's content changed (a source checkout),
    the tag gets a local suffix `+<n>.g<digest>` so earlier renders keep their exact base for merges.
    """
    src = src or templates_dir()
    digest = _tree_digest(src)
    with _locked_mirror() as mirror:
        return _ensure_mirror_locked(src, digest, mirror, version)


@contextlib.contextmanager
def _locked_mirror() -> Iterator[Path]:
    mirror = cache_dir("template-mirror")
    mirror.parent.mkdir(parents=True, exist_ok=True)
    # Two fleetstrap processes may build the mirror at once (CI workers, a user's two shells).
    with (mirror.parent / "template-mirror.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield mirror


def _read_digests(mirror: Path) -> dict[str, str]:
    marker = mirror / ".git" / "fleetstrap-digests"
    return dict(line.split(" ", 1) for line in marker.read_text().splitlines()) if marker.exists() else {}


def _record_digest(mirror: Path, digest: str, tag: str) -> None:
    with (mirror / ".git" / "fleetstrap-digests").open("a", encoding="utf-8") as fh:
        fh.write(f"{digest} {tag}\n")


def ensure_template_release(src: Path, version: str) -> TemplateSource:
    """Idempotently add another release's templates (e.g. unpacked from its wheel) to the mirror as `v<version>`.

    The commit has no parent and no branch: `main`, its working tree and the tags of installed versions stay
    as they are, so the installed version remains what renders use and copier's "latest tag" is unchanged.
    copier clones every tag, so a merge can still use this one as its base.
    """
    tag = f"v{version}"
    digest = _tree_digest(src)
    with _locked_mirror() as mirror:
        if not (mirror / ".git").exists():
            mirror.mkdir(parents=True, exist_ok=True)
            _git(mirror, "init", "-q", "-b", "main")
        if tag in _git(mirror, "tag", "--list", tag).split():
            return TemplateSource(str(mirror), tag)  # added before (or installed here): never fetched again
        index = mirror / ".git" / f"fleetstrap-release-{os.getpid()}.index"
        try:
            _git(src, f"--git-dir={mirror / '.git'}", f"--work-tree={src}", "add", "-A", index_file=index)
            tree = _git(mirror, "write-tree", index_file=index)
        finally:
            index.unlink(missing_ok=True)
        commit = _git(mirror, "commit-tree", tree, "-m", f"fleetstrap templates {version} ({digest}), released")
        _git(mirror, "tag", tag, commit)
        if digest not in _read_digests(mirror):
            # Installing that release here later maps to this tag instead of a new commit.
            _record_digest(mirror, digest, tag)
    return TemplateSource(str(mirror), tag)


def _ensure_mirror_locked(src: Path, digest: str, mirror: Path, version: str) -> TemplateSource:
    known = _read_digests(mirror)
    if digest in known:
        return TemplateSource(str(mirror), known[digest])
    mirror.mkdir(parents=True, exist_ok=True)
    if not (mirror / ".git").exists():
        _git(mirror, "init", "-q", "-b", "main")
    for child in mirror.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(src, mirror, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _git(mirror, "add", "-A")
    _git(mirror, "commit", "-q", "--allow-empty", "-m", f"fleetstrap templates {version} ({digest})")
    tags = set(_git(mirror, "tag", "--list").split())
    tag = f"v{version}"
    if tag in tags:
        # A numbered local label, so copier (PEP 440) orders successive dev builds: +2.g… > +1.g… > none.
        builds = sum(1 for t in tags if t.startswith(f"v{version}+"))
        tag = f"v{version}+{builds + 1}.g{digest}"
    _git(mirror, "tag", "-f", tag)
    _record_digest(mirror, digest, tag)
    return TemplateSource(str(mirror), tag)


def render_component(component: Component, dest: Path, source: TemplateSource, *, overwrite: bool = True,
                     shared: SharedTemplate | None = None) -> None:
    """Render one unit into `dest` (a repo root), recording its answers file.

    `shared` (from `copier_adapter.shared_template`) reuses one template clone across the components of a run:
    that saves a git clone and a config parse per component (most of copier's per-render cost).
    """
    target = copier_adapter.Target(dest, component.answers_file, plain_data(component.data_dict()), component.name)
    copier_adapter.copy(target, source.url, source.ref, overwrite=overwrite, shared=shared)


def render_components(components: tuple[Component, ...] | list[Component], dest: Path,
                      source: TemplateSource | None = None) -> None:
    source = source or ensure_template_mirror()
    with copier_adapter.shared_template(source.url, source.ref) as template:
        for c in components:
            render_component(c, dest, source, shared=template)


def plain_data(value: Any) -> Any:
    """Tuples (from frozen values) to lists, recursively: copier stores answers as plain YAML."""
    if isinstance(value, tuple | list):
        return [plain_data(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def staging_dir(dest: Path) -> Iterator[Path]:
    """A temporary directory beside `dest`, removed on any error or Ctrl-C."""
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.fleetstrap-", dir=parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_destination(dest: Path, *, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise DestinationError(f"destination {dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise DestinationError(f"destination {dest} is not empty (use --force to render into it)")


def promote(tmp: Path, dest: Path) -> None:
    """Move a fully rendered tree into place: a rename when dest is absent or empty."""
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    if not dest.exists():
        tmp.rename(dest)
        return
    # --force into a non-empty directory: copy over, keeping what the template does not own.
    for item in tmp.iterdir():
        target = dest / item.name
        if item.is_dir():
            if item.name == ".git" and target.exists():
                continue
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
