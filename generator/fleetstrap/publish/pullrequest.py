"""The forge layer's pull requests: where a pull-request branch goes (`resolve_remote`, one `Remote`), and the
pull-request step: open one pull request for a pushed branch, labelled `LABEL`, and close the ones it supersedes.

Used by `fleetstrap update --pr` and `promote/rollback/resume --pr` alike. Idempotent: `find_pull` first; an
existing pull request for the branch is left alone, so a re-run writes nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from fleetstrap import gitrepo
from fleetstrap.errors import UserError
from fleetstrap.publish.auth import Token, clean_url, git_env, has_credentials, resolve_token

LABEL = "fleetstrap"  # every pull request fleetstrap opens carries it


@dataclass(frozen=True)
class Remote:
    url: str  # clean
    env: dict[str, str] = field(repr=False)
    github: tuple[str, str] | None  # (owner, name) when the remote is on the GitHub at github_url
    token: Token | None = field(repr=False)


def _github_repo(url: str, github_url: str) -> tuple[str, str] | None:
    """owner/name when `url` (https or scp-like ssh) points at the GitHub host of `github_url`."""
    host = urlsplit(github_url).netloc.lower()
    m = re.match(r"^(?:ssh://)?git@([^:/]+)[:/](.+)$", url)
    if m:
        url_host, path = m.group(1).lower(), m.group(2)
    else:
        parts = urlsplit(url)
        url_host, path = parts.netloc.lower().rsplit("@", 1)[-1], parts.path
    bits = [b for b in path.strip("/").removesuffix(".git").split("/") if b]
    if url_host != host or len(bits) < 2:
        return None
    return bits[-2], bits[-1]


def resolve_remote(root: Path, remote_name: str, github_url: str, token_env: str | None) -> Remote:
    """The remote a pull-request branch goes to, its credentials (process environment only) and, when it is on
    the GitHub at `github_url`, the repository for the pull request (also used by promote/rollback --pr)."""
    raw = gitrepo.remote_url(root, remote_name)
    if raw is None:
        raise UserError(f"{root} has no git remote {remote_name!r} to push the branch to",
                        hint="fleetstrap push (GitHub or any git remote) sets it up")
    if has_credentials(raw):
        raise UserError(f"git remote {remote_name} holds credentials in its URL; remove them "
                        "(git remote set-url) and pass the token in GH_TOKEN or --token-env")
    url = clean_url(raw)
    https = url.startswith(("https://", "http://"))
    github = _github_repo(url, github_url)
    if github is not None:
        token = resolve_token(token_env, host=urlsplit(github_url).netloc or "github.com")
        if token is None:
            raise UserError("no GitHub token to open the pull request: set GH_TOKEN or GITHUB_TOKEN, pass "
                            "--token-env NAME, or log in with `gh auth login`")
    else:
        # Only an explicitly named token goes to another host: GH_TOKEN must never leak elsewhere.
        token = resolve_token(token_env, allow_defaults=False) if https else None
    return Remote(url, git_env(url, token if https else None), github, token)


class PullRequestApi(Protocol):
    def pulls(self, owner: str, name: str, *, state: str = "open", head: str | None = None) -> list[dict[str, Any]]: ...
    def create_pull(self, owner: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def update_pull(self, owner: str, name: str, number: int, body: dict[str, Any]) -> None: ...
    def add_labels(self, owner: str, name: str, number: int, labels: list[str]) -> None: ...
    def comment(self, owner: str, name: str, number: int, text: str) -> None: ...


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    state: str  # open | closed
    draft: bool
    merged: bool
    head: str

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> PullRequest:
        head = data.get("head") or {}
        return cls(int(data["number"]), str(data.get("html_url") or ""), str(data.get("state") or ""),
                   bool(data.get("draft")), bool(data.get("merged_at")), str(head.get("ref") or ""))


@dataclass(frozen=True)
class PullRequestSpec:
    owner: str
    name: str
    head: str  # the branch, in the same repository
    base: str
    title: str
    body: str
    draft: bool
    label: str
    supersedes_prefix: str  # open pull requests from other branches with this prefix are closed
    superseded_because: str = "which updates to newer templates"  # the closing comment's reason


def find_pull(api: PullRequestApi, owner: str, name: str, branch: str) -> PullRequest | None:
    """The newest pull request (any state) from `branch` of this repository."""
    found = api.pulls(owner, name, state="all", head=f"{owner}:{branch}")
    return PullRequest.from_api(found[0]) if found else None


def ensure_pull_request(api: PullRequestApi, spec: PullRequestSpec, journal: list[str]) -> PullRequest:
    """Open the pull request (draft when asked), label it, then close what it supersedes with a link to it."""
    created = PullRequest.from_api(api.create_pull(spec.owner, spec.name, {
        "title": spec.title, "body": spec.body, "head": spec.head, "base": spec.base, "draft": spec.draft,
        "maintainer_can_modify": False,
    }))
    journal.append(f"opened {'draft ' if spec.draft else ''}pull request #{created.number} {created.url}")
    api.add_labels(spec.owner, spec.name, created.number, [spec.label])
    for old in api.pulls(spec.owner, spec.name, state="open"):
        pr = PullRequest.from_api(old)
        if pr.number == created.number or not pr.head.startswith(spec.supersedes_prefix) or pr.head == spec.head:
            continue
        api.comment(spec.owner, spec.name, pr.number,
                    f"Superseded by #{created.number} ({created.url}), {spec.superseded_because}.")
        api.update_pull(spec.owner, spec.name, pr.number, {"state": "closed"})
        journal.append(f"closed superseded pull request #{pr.number}")
    return created
