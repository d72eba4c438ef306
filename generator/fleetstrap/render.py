"""Render: copier side effects. Templates come from a versioned git source so copier can 3-way merge later.

The bundled templates are not a git repo inside a wheel, so a local mirror is built on demand:
one git repository under the user's cache dir, one commit + tag per template content (`v<release>`, or
`v<dev version>+t<digest>` for a development build). Rendering always goes through it, so every answers file
records a `_commit` naming exactly the templates it came from, and `_src_path: fleetstrap` (not the mirror's path).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetstrap import __version__, copier_adapter, gitrepo, output
from fleetstrap._version import is_development, tree_digest
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


# What answers files record as copier's `_src_path` for the bundled templates: a name, not the mirror's path on the
# machine that rendered (a committed file holds no machine path). `update` points copier at the mirror itself.
BUNDLED_SOURCE = "fleetstrap"


def _tree_digest(root: Path) -> str:
    return tree_digest(root)


def _git(cwd: Path, *args: str, index_file: Path | None = None) -> str:
    try:
        return gitrepo.run(cwd, *args, env=gitrepo.scratch_env(index_file)).strip()
    except GitError as exc:  # the mirror is fleetstrap's own repo: a failure there is a bug, not bad input
        raise TemplateError(f"{exc} (in the template mirror)") from exc


def ensure_template_mirror(src: Path | None = None, version: str = __version__) -> TemplateSource:
    """Idempotently add the bundled templates to the local mirror under a tag that names their content.

    A release tags `v<version>`; a development build `v<public version>+t<template digest>`, so the tag says
    exactly which templates a fleet came from. A tag, once made, never moves: another fleetstrap installed on the
    machine (another version, another checkout) adds its own tag and changes nothing of this one's. A release
    version whose tag already holds other content (a build that called itself that release) gets the digest tag.
    """
    src = src or templates_dir()
    digest = _tree_digest(src)
    with _locked_mirror() as mirror:
        return _ensure_mirror_locked(src, digest, mirror, version)


def mirror_tag(version: str, digest: str) -> str:
    """The tag of templates with content `digest` shipped by fleetstrap `version`."""
    if is_development(version):
        return f"v{version.split('+')[0]}+t{digest}"
    return f"v{version}"


@contextlib.contextmanager
def _locked_mirror() -> Iterator[Path]:
    mirror = cache_dir("template-mirror")
    mirror.parent.mkdir(parents=True, exist_ok=True)
    # Two fleetstrap processes may build the mirror at once (CI workers, a user's two shells).
    with (mirror.parent / "template-mirror.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield mirror


# "<digest> <tag>" lines: the tags made (or checked) by this code, whose content is that digest. (The
# `fleetstrap-digests` file of older fleetstrap versions is not read: those versions moved tags.)
_MARKER = "fleetstrap-tags"


def _read_digests(mirror: Path) -> dict[str, str]:
    marker = mirror / ".git" / _MARKER
    return dict(line.split(" ", 1) for line in marker.read_text().splitlines()) if marker.exists() else {}


def _record_digest(mirror: Path, digest: str, tag: str) -> None:
    with (mirror / ".git" / _MARKER).open("a", encoding="utf-8") as fh:
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
        tree = _add_tree(mirror, src)
        commit = _git(mirror, "commit-tree", tree, "-m", f"fleetstrap templates {version} ({digest}), released")
        _git(mirror, "tag", tag, commit)
        if digest not in _read_digests(mirror):
            # Installing that release here later maps to this tag instead of a new commit.
            _record_digest(mirror, digest, tag)
    return TemplateSource(str(mirror), tag)


def _add_tree(mirror: Path, src: Path) -> str:
    """The tree object of `src` in the mirror, through a private index: the mirror's branch and working tree are
    never touched, so concurrent installs cannot see each other's half-written content."""
    index = mirror / ".git" / f"fleetstrap-{os.getpid()}.index"
    try:
        _git(src, f"--git-dir={mirror / '.git'}", f"--work-tree={src}", "add", "-A", index_file=index)
        return _git(mirror, "write-tree", index_file=index)
    finally:
        index.unlink(missing_ok=True)


def _tag_tree(mirror: Path, ref: str) -> str:
    """The tree a ref points at, or "" when there is no such ref."""
    return gitrepo.run(mirror, "rev-parse", "-q", "--verify", f"{ref}^{{tree}}", env=gitrepo.scratch_env(),
                       check=False).strip()


def _ensure_mirror_locked(src: Path, digest: str, mirror: Path, version: str) -> TemplateSource:
    tag = mirror_tag(version, digest)
    if _read_digests(mirror).get(digest) == tag:
        return TemplateSource(str(mirror), tag)
    mirror.mkdir(parents=True, exist_ok=True)
    if not (mirror / ".git").exists():
        _git(mirror, "init", "-q", "-b", "main")
    tree = _add_tree(mirror, src)
    existing = _tag_tree(mirror, tag)
    if existing and existing != tree:
        tag = f"v{version.split('+')[0]}+t{digest}"  # the version's tag holds other templates: keep it as it is
        existing = _tag_tree(mirror, tag)
    if not existing:
        commit = _git(mirror, "commit-tree", tree, "-m", f"fleetstrap templates {version} ({digest})")
        _git(mirror, "tag", tag, commit)
        if not _tag_tree(mirror, "refs/heads/main"):
            # A new mirror: `main` (a HEAD for clones) is the first content added; renders use the tags.
            _git(mirror, "update-ref", "refs/heads/main", commit)
            _git(mirror, "read-tree", "--reset", "-u", "main")
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
    if source.url == str(cache_dir("template-mirror")):
        record_bundled_source(dest / component.answers_file)


def record_bundled_source(answers_file: Path) -> None:
    """copier records the mirror's path as `_src_path`; the committed file names the bundled templates instead."""
    lines = answers_file.read_text(encoding="utf-8").splitlines(keepends=True)
    answers_file.write_text("".join(f"_src_path: {BUNDLED_SOURCE}\n" if ln.startswith("_src_path:") else ln
                                    for ln in lines), encoding="utf-8")


def render_components(components: tuple[Component, ...] | list[Component], dest: Path,
                      source: TemplateSource | None = None) -> None:
    source = source or ensure_template_mirror()
    with copier_adapter.shared_template(source.url, source.ref) as template:
        for c in components:
            render_component(c, dest, source, shared=template)


def warn_unpublished(fleetstrap_pip: str, source: TemplateSource) -> None:
    """A fleet's workflows install the fleetstrap that rendered it unless `fleetstrap_pip` says otherwise; no index
    serves a development build, so say so where the fleet is made rather than in its first CI run."""
    if fleetstrap_pip or not is_development(__version__) or source.url != str(cache_dir("template-mirror")):
        return
    output.warn(f"fleetstrap {__version__} is a development build that no package index serves: the fleet's "
                f"workflows pip install 'fleetstrap[validate]=={source.ref.removeprefix('v')}' and fail until the "
                "answer fleetstrap_pip names one they can install (a git URL, a wheel URL, or --index-url URL "
                "with a requirement), e.g. --data 'fleetstrap_pip=fleetstrap[validate]@git+https://HOST/OWNER/"
                "fleetstrap.git'")


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
