"""The pull-request step: open one pull request for a pushed branch, labelled, and close the ones it supersedes.

Used by `fleetstrap update --pr` (fleetstrap.update.pr builds the branch). Idempotent: `find_pull` first; an
existing pull request for the branch is left alone, so a re-run writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


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
