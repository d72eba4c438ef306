"""Template sources for updates: the bundled mirror (default), a local template repo, or a remote URL.

copier's 3-way merge needs the old and the new template version from one git repo, and it reads the old
one from the `_src_path` recorded in each answers file, which is a path on whichever machine rendered it.
So update always resolves a source here and points the answers files at it before merging.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from fleetstrap.errors import RemoteError, UserError
from fleetstrap.redact import redact
from fleetstrap.render import TemplateSource, ensure_template_mirror


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


def git_env() -> dict[str, str]:
    """A fixed identity and no system config or prompts: scratch repos must not depend on the machine."""
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "fleetstrap",
        "GIT_AUTHOR_EMAIL": "fleetstrap@localhost",
        "GIT_COMMITTER_NAME": "fleetstrap",
        "GIT_COMMITTER_EMAIL": "fleetstrap@localhost",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }


def git(cwd: Path, *args: str, check: bool = True, text_input: str | None = None) -> str:
    res = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false", *args],
        cwd=cwd, env=git_env(), capture_output=True, text=True, check=False, input=text_input,
    )
    if check and res.returncode != 0:
        raise UserError(f"git {args[0]} failed in {cwd}: {_last_line(res.stderr)}")
    return res.stdout


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return redact(lines[-1]) if lines else ""


def rev_commit(repo: Path, ref: str) -> str | None:
    """The commit a ref (tag, branch, sha, or a `git describe` string) names in `repo`, or None."""
    res = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"{ref}^{{commit}}"],
        cwd=repo, env=git_env(), capture_output=True, text=True, check=False,
    )
    return res.stdout.strip() or None if res.returncode == 0 else None


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


def ensure_source(template: str | None, to: str | None, workdir: Path) -> ResolvedSource:
    """Resolve where templates come from. `workdir` holds a clone of a remote template for this run."""
    if template is None:
        bundled = ensure_template_mirror()
        repo = Path(bundled.url)
        if to:
            ref, sha = _resolve_ref(repo, to, "the bundled templates")
        else:
            ref, found = bundled.ref, rev_commit(repo, bundled.ref)
            if found is None:
                raise UserError(f"the bundled template mirror lacks its own tag {bundled.ref}")
            sha = found
        if not sha:
            raise UserError(f"the bundled template mirror lacks its own tag {bundled.ref}")
        return ResolvedSource(str(repo), ref, sha, str(repo), f"bundled templates {ref}")
    label = redact(template)
    local = _is_local_repo(template)
    if local is not None:
        if rev_commit(local, "HEAD") is None:
            raise UserError(f"--template {label} is not a git repository with commits (copier needs tags)")
        repo, record = local, str(local)
    else:
        repo = workdir / "template"
        res = subprocess.run(["git", "clone", "-q", "--no-checkout", template, str(repo)],
                             env=git_env(), capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RemoteError(f"cannot clone template repo {label}: {_last_line(res.stderr) or 'git clone failed'}")
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
