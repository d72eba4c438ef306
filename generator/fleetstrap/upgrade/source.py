"""Template sources for updates: the bundled mirror (default), a local template repo, or a remote URL.

copier's 3-way merge needs the old and the new template version from one git repo, and it reads the old
one from the `_src_path` recorded in each answers file (`fleetstrap` for the bundled templates: no machine path is
committed). So update always resolves a source here and points the answers files at it before merging.

The bundled mirror only holds the versions installed on this machine. A repo rendered by an older release
elsewhere gets that release's templates once (`ensure_release_templates`) from where fleetstrap is installed from:
a package index (as pip would), a directory of wheels, a single wheel file, or fleetstrap's git repository (its
`vX.Y.Z` tag). Once fetched, a release stays in the local mirror and later updates need no network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.version import InvalidVersion, Version

from fleetstrap import gitrepo, output
from fleetstrap.errors import GitError, RemoteError, RemoteGitError, UserError
from fleetstrap.redact import redact
from fleetstrap.render import BUNDLED_SOURCE, TemplateSource, ensure_template_mirror, ensure_template_release

TEMPLATE_INDEX_ENV = "FLEETSTRAP_TEMPLATE_INDEX"
_WHEEL_TEMPLATES = "fleetstrap/_data/templates/"


@dataclass(frozen=True)
class ResolvedSource:
    """A template repo on local disk, the target ref in it, and what to record as `_src_path`."""

    local: str  # a local git repo copier reads
    ref: str  # the target ref (a tag, normally)
    commit: str  # the target ref's commit sha
    record_url: str  # recorded in answers files after updating
    label: str  # for messages (credentials redacted)

    def template_source(self) -> TemplateSource:
        return TemplateSource(self.local, self.ref)


def git(cwd: Path, *args: str, check: bool = True, text_input: str | None = None) -> str:
    """git in a scratch repo of update (no hooks, no signing: the user's config must not change a merge)."""
    return gitrepo.run(cwd, "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false", *args,
                       env=gitrepo.scratch_env(), check=check, text_input=text_input)


def rev_commit(repo: Path, ref: str) -> str | None:
    """The commit a ref (tag, branch, sha, or a `git describe` string) names in `repo`, or None."""
    return git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False).strip() or None


def parse_version(ref: str) -> Version | None:
    try:
        return Version(ref)
    except InvalidVersion:
        pass
    # A describe string v1.2.0-3-gabc: what copier calls 1.2.0.post3.dev0+abc; the tag part suffices here.
    head = ref.rsplit("-", 2)[0] if ref.count("-") >= 2 else ref
    try:
        return Version(head)
    except InvalidVersion:
        return None


def latest_tag(repo: Path) -> str | None:
    tags = [t for t in git(repo, "tag", "--list").split() if parse_version(t) is not None]
    if not tags:
        return None
    finals = [t for t in tags if not parse_version(t).is_prerelease] or tags  # type: ignore[union-attr]
    return max(finals, key=lambda t: parse_version(t))  # type: ignore[arg-type,return-value]


def _resolve_ref(repo: Path, to: str, label: str) -> tuple[str, str]:
    for candidate in (to, f"v{to}"):
        sha = rev_commit(repo, candidate)
        if sha:
            return candidate, sha
    raise UserError(f"template ref {to!r} not found in {label}", hint="list the available tags with git tag")


def _is_local_repo(text: str) -> Path | None:
    if "://" in text or text.startswith("git@"):
        return None
    path = Path(text).expanduser()
    return path.resolve() if path.is_dir() else None


def ensure_source(template: str | None, to: str | None, workdir: Path,
                  index: str | None = None) -> ResolvedSource:
    """Resolve where templates come from. `workdir` holds a clone of a remote template for this run."""
    if template is None:
        bundled = ensure_template_mirror()
        repo = Path(bundled.url)
        if to:
            if rev_commit(repo, to) is None and rev_commit(repo, f"v{to}") is None:
                ensure_release_templates(to if to.startswith("v") else f"v{to}", index)
            ref, sha = _resolve_ref(repo, to, "the bundled templates")
        else:
            ref, found = bundled.ref, rev_commit(repo, bundled.ref)
            if found is None:
                raise UserError(f"the bundled template mirror lacks its own tag {bundled.ref}")
            sha = found
        if not sha:
            raise UserError(f"the bundled template mirror lacks its own tag {bundled.ref}")
        return ResolvedSource(str(repo), ref, sha, BUNDLED_SOURCE, f"bundled templates {ref}")
    label = redact(template)
    local = _is_local_repo(template)
    if local is not None:
        if rev_commit(local, "HEAD") is None:
            raise UserError(f"--template {label} is not a git repository with commits (copier needs tags)")
        repo, record = local, str(local)
    else:
        repo = workdir / "template"
        try:
            git(workdir, "clone", "-q", "--no-checkout", template, str(repo))
        except GitError as exc:
            raise RemoteGitError(f"cannot clone template repo {label}: {exc}") from exc
        record = template
    if to:
        ref, sha = _resolve_ref(repo, to, label)
    else:
        tag = latest_tag(repo)
        if tag is None:
            raise UserError(f"template repo {label} has no version tags; pass --to REF")
        ref, found = tag, rev_commit(repo, tag)
        assert found is not None
        sha = found
    return ResolvedSource(str(repo), ref, sha, record, f"{label} {ref}")


# ---------------------------------------------------------------- older releases from the package index


def release_version(ref: str) -> str | None:
    """`X.Y.Z` when `ref` is a release tag `vX.Y.Z`; None for dev builds (`+N.g<digest>`), describe strings
    and other refs: only releases exist on an index, and a dev build's templates exist nowhere else."""
    if not ref.startswith("v"):
        return None
    try:
        version = Version(ref[1:])
    except InvalidVersion:
        return None
    return None if version.local is not None else ref[1:]


def wheel_file(index: str) -> Path | None:
    """The wheel `index` names (a path or file:// URL ending in .whl), else None."""
    local = index.removeprefix("file://")
    if "://" in local or not local.endswith(".whl"):
        return None
    return Path(local).expanduser()


def git_source(index: str) -> str | None:
    """The clone URL of a `git+URL` template source (pip's VCS form; a trailing `@ref` or `#fragment` is
    dropped: the release tag decides what is checked out), else None."""
    if not index.startswith("git+"):
        return None
    url = index[len("git+"):].split("#", 1)[0]
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("https", "http", "ssh", "file"):
        raise UserError(f"{TEMPLATE_INDEX_ENV}: {redact(index)!r} must be git+https://, git+ssh:// or git+file://")
    host_and_path, at, ref = rest.rpartition("@")
    if at and "/" in host_and_path and "/" not in ref and ":" not in ref:
        rest = host_and_path  # `...repo.git@v0.1.0`: a ref, not the user of an ssh URL (that comes before a '/')
    return f"{scheme}://{rest}"


def pip_index_args(index: str | None) -> list[str]:
    """pip options for a template index: a directory of wheels (or file:// URL) is used alone, offline;
    a URL replaces the index. None: the user's own pip configuration decides (PIP_INDEX_URL, pip.conf)."""
    if not index:
        return []
    local = index.removeprefix("file://")
    if "://" not in local and Path(local).expanduser().is_dir():
        return ["--no-index", "--find-links", str(Path(local).expanduser())]
    if index.startswith(("https://", "http://")):
        return ["--index-url", index]
    raise UserError(f"{TEMPLATE_INDEX_ENV} must be a package index URL, a directory of wheels, a wheel (file or "
                    f"URL) or git+URL of fleetstrap's repository (got {redact(index)!r})")


def _pip_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    picked = (errors or lines or ["pip failed"])[0].removeprefix("ERROR:").strip()
    return redact(picked)[:300]


def _hint(version: str) -> str:
    return (f"pass --template with a template git repo holding v{version}, or --template-index "
            f"(or {TEMPLATE_INDEX_ENV}) with an index, a wheel, or git+URL of fleetstrap's repository that has it")


def fetch_release_templates(version: str, dest: Path, index: str | None = None) -> Path:
    """The templates of fleetstrap `version`, unpacked under `dest`: from a single wheel file, from fleetstrap's
    git repository (`git+URL`, tag v<version>), or from the wheel pip downloads from an index."""
    if index and (wheel := wheel_file(index)) is not None:
        return _templates_from_wheel(_checked_wheel(wheel, version), version, dest)
    if index and (url := git_source(index)) is not None:
        return _templates_from_git(url, version, dest)
    where = f"from {redact(index)}" if index else "from the package index"
    hint = _hint(version)
    wheels = dest / "wheels"
    if index and index.startswith(("https://", "http://")) and index.split("?")[0].endswith(".whl"):
        # One wheel by URL (as a fleet's fleetstrap_pip may name it): that file, if it is this version.
        _checked_wheel_name(PurePosixPath(index.split("?")[0]).name, version)
        what, options = index, []
    else:
        what, options = f"fleetstrap=={version}", pip_index_args(index)
    cmd = [sys.executable, "-m", "pip", "download", what, "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "--no-input", "-q", "-d", str(wheels), *options]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RemoteError(f"template version v{version} is not on this machine and fetching fleetstrap=={version} "
                          f"{where} failed: {_pip_error(res.stderr)}", hint=hint)
    found = sorted(wheels.glob("*.whl"))
    if not found:
        raise RemoteError(f"fetching fleetstrap=={version} {where} gave no wheel", hint=hint)
    return _templates_from_wheel(found[0], version, dest)


def _checked_wheel(wheel: Path, version: str) -> Path:
    """A wheel file given as the template source: it must exist and be fleetstrap `version` (its file name says
    so, as the wheel spec has it: name-version-...)."""
    if not wheel.is_file():
        raise UserError(f"{TEMPLATE_INDEX_ENV}: no wheel file {wheel}")
    _checked_wheel_name(wheel.name, version)
    return wheel


def _checked_wheel_name(name: str, version: str) -> None:
    parts = name.split("-")
    if len(parts) < 3 or parts[0].lower() != "fleetstrap":
        raise UserError(f"{redact(name)} is not a fleetstrap wheel")
    try:
        found = Version(parts[1])
    except InvalidVersion as exc:
        raise UserError(f"{redact(name)} has no version in its name") from exc
    if found != Version(version):
        raise UserError(f"{redact(name)} is fleetstrap {found}, but this fleet was rendered by {version}",
                        hint=_hint(version))


def _templates_from_git(url: str, version: str, dest: Path) -> Path:
    """templates/ of fleetstrap's git repository at tag v<version> (a shallow clone of that tag only)."""
    label = redact(url)
    checkout = dest / "fleetstrap"
    try:
        git(dest, "clone", "-q", "--depth", "1", "--no-tags", "--branch", f"v{version}", url, str(checkout))
    except GitError as exc:
        raise RemoteGitError(f"cannot fetch tag v{version} of {label}: {redact(str(exc))}",
                             hint=_hint(version)) from exc
    out = checkout / "templates"
    if not (out / "copier.yml").is_file():
        raise RemoteError(f"{label} at v{version} has no templates/copier.yml (not fleetstrap's repository?)",
                          hint=_hint(version))
    return out


def _templates_from_wheel(wheel_path: Path, version: str, dest: Path) -> Path:
    hint = _hint(version)
    out = dest / "templates"
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            for info in wheel.infolist():
                if info.is_dir() or not info.filename.startswith(_WHEEL_TEMPLATES):
                    continue
                rel = PurePosixPath(info.filename[len(_WHEEL_TEMPLATES):])
                if rel.is_absolute() or ".." in rel.parts:
                    raise RemoteError(f"the fleetstrap {version} wheel has an unsafe path {info.filename!r}")
                target = out.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wheel.read(info))
                if (info.external_attr >> 16) & 0o111:  # executable template files stay executable
                    target.chmod(0o755)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RemoteError(f"cannot read the fleetstrap {version} wheel: {exc}") from exc
    if not (out / "copier.yml").is_file():
        raise RemoteError(f"the fleetstrap {version} wheel holds no templates ({_WHEEL_TEMPLATES}copier.yml)",
                          hint=hint)
    return out


def ensure_release_templates(ref: str, index: str | None = None) -> str | None:
    """Make the bundled mirror hold release `ref` (`vX.Y.Z`), fetching it from the package index once.

    Returns its commit; None for refs that are not releases (never fetched). `index` defaults to
    $FLEETSTRAP_TEMPLATE_INDEX, else pip's own configuration."""
    version = release_version(ref)
    if version is None:
        return None
    mirror = Path(ensure_template_mirror().url)
    found = rev_commit(mirror, ref)
    if found is not None:
        return found
    index = index if index is not None else os.environ.get(TEMPLATE_INDEX_ENV) or None
    with tempfile.TemporaryDirectory(prefix="fleetstrap-fetch-") as tmp:
        output.step(f"fetching templates {ref} (fleetstrap=={version}) from the package index")
        added = ensure_template_release(fetch_release_templates(version, Path(tmp), index), version)
    return rev_commit(mirror, added.ref)
