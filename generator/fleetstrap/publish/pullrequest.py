"""The forge layer's one "publish a branch as a pull request", used by `fleetstrap update --pr` and
`promote/rollback/resume --pr` alike (`BranchPublisher`):

resolve the remote and its credentials (`resolve_remote`: the git `Remote` plus the GitHub repository) → the
default branch (GitHub's, else the fleet's) → the branch already there with its pull request: done, nothing
written → else a temporary git worktree off the default branch, where the command makes its commit → push with a
lease (our branch only) → the worktree removed and pruned → one pull request, labelled `LABEL`, that closes the
ones it supersedes (other remotes: the branch).

The side effects on the forge (push, pull request) go through a `Forge`, chosen once by the command with
`choose_forge(dry_run=...)`: `RealForge` does them, `RecordingForge` (every dry run) only journals them. The
token reaches git only through one process's environment; it is never written to a file, the git config, the
pull request or the output."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from fleetstrap import gitrepo, trace
from fleetstrap.errors import GitError, RemoteError, UserError
from fleetstrap.publish.auth import Token, clean_url, git_env, has_credentials, resolve_token
from fleetstrap.publish.github_api import ApiSettings, GitHubApi
from fleetstrap.redact import redact

LABEL = "fleetstrap"  # every pull request fleetstrap opens carries it


@dataclass(frozen=True)
class PrOptions:
    """Where `--pr` publishes: the git remote, the GitHub (Enterprise) it must be on for a pull request, the
    environment variable holding the token, the API's pacing."""

    remote_name: str = "origin"
    github_url: str = "https://github.com"
    token_env: str | None = None
    api: ApiSettings = field(default_factory=ApiSettings)


@dataclass(frozen=True)
class PrRemote:
    """The one git `Remote` (clean URL, credentials in its environment only), and the GitHub repository for the
    pull request when the remote is on the GitHub at `github_url`."""

    git: gitrepo.Remote
    github: tuple[str, str] | None  # (owner, name)
    token: Token | None = field(repr=False)

    @property
    def url(self) -> str:
        return self.git.url


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


def resolve_remote(root: Path, remote_name: str, github_url: str, token_env: str | None) -> PrRemote:
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
    return PrRemote(gitrepo.Remote(url, url, git_env(url, token if https else None)), github, token)


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


# ---------------------------------------------------------------- the forge's side effects: real and recording


class Forge(Protocol):
    def push(self, wt: Path, remote: PrRemote, branch: str, lease: str | None, journal: list[str]) -> str | None:
        """Push the worktree's HEAD to `branch` (our branch only; with a lease when it exists); the pushed sha."""
        ...

    def open_pull_request(self, api: PullRequestApi, spec: PullRequestSpec, journal: list[str]) -> str | None:
        """The pull request's URL (None: none was opened)."""
        ...


class RealForge:
    def push(self, wt: Path, remote: PrRemote, branch: str, lease: str | None, journal: list[str]) -> str | None:
        args = [f"--force-with-lease=refs/heads/{branch}:{lease}"] if lease else []
        gitrepo.run(wt, "push", *args, "--", remote.url, f"HEAD:refs/heads/{branch}", env=remote.git.env,
                    url=remote.url)
        journal.append(f"pushed {branch} to {remote.url}")
        return gitrepo.head_sha(wt)

    def open_pull_request(self, api: PullRequestApi, spec: PullRequestSpec, journal: list[str]) -> str | None:
        return ensure_pull_request(api, spec, journal).url


class RecordingForge:
    """Every dry run: says what would be pushed and opened, does neither."""

    def push(self, wt: Path, remote: PrRemote, branch: str, lease: str | None,  # noqa: ARG002 (the shape)
             journal: list[str]) -> str | None:
        journal.append(f"would push {branch} to {remote.url}")
        return None

    def open_pull_request(self, api: PullRequestApi, spec: PullRequestSpec,  # noqa: ARG002 (the shape)
                          journal: list[str]) -> str | None:
        journal.append(f"would open {'a draft' if spec.draft else 'a'} pull request from {spec.head} into "
                       f"{spec.base}: {spec.title}")
        return None


def choose_forge(*, dry_run: bool) -> Forge:
    """Chosen once, where the command starts (like writer.open_writer)."""
    return RecordingForge() if dry_run else RealForge()


# ---------------------------------------------------------------- publish a branch as a pull request


@dataclass(frozen=True)
class Proposal:
    """What the command's commit proposes, made in the worktree: the pull request's text."""

    title: str
    body: str
    draft: bool = False
    superseded_because: str = "which updates to newer templates"


PublishAction = Literal["exists", "closed", "opened", "pushed", "would open", "would push"]


@dataclass(frozen=True)
class Published:
    action: PublishAction
    branch: str
    url: str | None = None  # the pull request
    commit: str | None = None  # the pushed commit (None: nothing pushed)
    journal: tuple[str, ...] = ()


class BranchPublisher:
    """Connects once (remote, token, default branch), then publishes branches as pull requests."""

    def __init__(self, root: Path, options: PrOptions, default_branch: str, forge: Forge) -> None:
        self.root = root
        self.forge = forge
        with trace.stage("pr.preflight"):
            self.remote = resolve_remote(root, options.remote_name, options.github_url, options.token_env)
            self.api = (GitHubApi(self.remote.token, options.github_url, options.api)
                        if self.remote.github and self.remote.token else None)
            self.base = default_branch
            if self.remote.github is not None and self.api is not None:
                owner, name = self.remote.github
                data = self.api.get_repo(owner, name)
                if data is None:
                    raise UserError(f"GitHub repository {owner}/{name} (remote {options.remote_name}) does not exist")
                self.base = str(data.get("default_branch") or self.base)

    def base_rev(self) -> str | None:
        """The local default branch's commit (None: no such local branch)."""
        return gitrepo.run(self.root, "rev-parse", "--verify", "-q", f"refs/heads/{self.base}^{{commit}}",
                           check=False).strip() or None

    def publish(self, branch: str, prefix: str, supersedes: str, make: Callable[[Path], Proposal]) -> Published:
        """`make(worktree)` commits the change in a worktree off the default branch; the commit is pushed to
        `branch` (which must start with `prefix`, never the default branch) and proposed as a pull request that
        closes open ones from branches starting with `supersedes`. An existing branch with its pull request
        (open, or closed by a person) is left alone: `make` is not called."""
        if branch == self.base or not branch.startswith(prefix):
            raise UserError(f"refusing to push to {branch}: pull request branches are {prefix}...")
        remote = self.remote
        with trace.stage("pr.existing"):
            remote_sha = gitrepo.remote_head(self.root, remote.git, branch)
            existing = find_pull(self.api, *remote.github, branch) if remote.github and self.api else None
        if existing is not None:
            # Open: it already carries this change. Closed by a person: they said no to it.
            return Published("exists" if existing.state == "open" else "closed", branch, existing.url)
        if remote_sha is not None and remote.github is None:
            return Published("exists", branch)
        journal: list[str] = []
        start = self.base_rev() or "HEAD"
        with tempfile.TemporaryDirectory(prefix="fleetstrap-pr-") as tmp:
            wt = Path(tmp) / "wt"
            gitrepo.run(self.root, "worktree", "add", "-q", "--detach", str(wt), start)
            try:
                proposal = make(wt)
                pushed = self._push(wt, start, branch, remote_sha, journal)
            finally:
                gitrepo.run(self.root, "worktree", "remove", "--force", str(wt), check=False)
                gitrepo.run(self.root, "worktree", "prune", check=False)
        on_github = self._on_github()
        if on_github is None:  # another git remote: the branch is all there is
            return Published("pushed" if pushed else "would push", branch, None, pushed, tuple(journal))
        api, owner, name = on_github
        spec = PullRequestSpec(owner, name, branch, self.base, proposal.title, redact(proposal.body), proposal.draft,
                               LABEL, supersedes, proposal.superseded_because)
        url = self.forge.open_pull_request(api, spec, journal)
        return Published("opened" if url is not None else "would open", branch, url, pushed, tuple(journal))

    def _on_github(self) -> tuple[GitHubApi, str, str] | None:
        """The API and the repository when the remote is on the GitHub fleetstrap talks to."""
        if self.remote.github is None or not self.api:
            return None
        return self.api, *self.remote.github

    def _push(self, wt: Path, start: str, branch: str, lease: str | None, journal: list[str]) -> str | None:
        try:
            return self.forge.push(wt, self.remote, branch, lease, journal)
        except GitError as exc:
            changed = gitrepo.run(wt, "diff", "--name-only", "-z", start, "HEAD", check=False).split("\0")
            if any(p.startswith(".github/workflows/") for p in changed):
                raise RemoteError(f"{exc.message} (the change touches workflow files, which GitHub only accepts "
                                  "from a token with the workflow scope or Workflows permission)",
                                  hint="GITHUB_TOKEN never has it: give the fleetstrap-update workflow a GitHub "
                                       "App (FLEETSTRAP_APP_CLIENT_ID) with Workflows: write") from exc
            raise
