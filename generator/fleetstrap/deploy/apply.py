"""Running promote / rollback / resume: read the state, build the change, write it (commit or pull request).

The writers are chosen once, where the command starts: `CheckoutWriter` commits in the user's checkout through the
repository writer (writer.py; `--dry-run`: the recording one), `PullRequestWriter` commits in a temporary worktree
off the default branch, pushes a `fleetstrap/...` branch (never the default branch) and opens the pull request
through the forge layer's `BranchPublisher` (publish/pullrequest.py, shared with update --pr; `--dry-run`: the
recording forge, which pushes and opens nothing).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from fleetstrap import gitrepo, trace
from fleetstrap.answers import FleetAnswers
from fleetstrap.bootstrap.kube import KubeClient, connect
from fleetstrap.deploy import BRANCH_PREFIX, DeployChange, build_promotion, build_resume, build_rollback
from fleetstrap.deploy.running import running_versions
from fleetstrap.deploy.state import ServiceState, check_fleet_repo, is_production, read_service_state
from fleetstrap.errors import DeployError, GitError, RemoteGitError, UserError
from fleetstrap.publish.pullrequest import BranchPublisher, Forge, Proposal, PrOptions, PublishAction, choose_forge
from fleetstrap.repo import load_fleet_answers
from fleetstrap.transaction import checkpoint
from fleetstrap.writer import Change, RepoWriter, open_writer

Outcome = Literal["up-to-date", "committed", "would commit", "opened", "exists", "closed", "pushed"]
_VERB = {"promote": "promotes", "rollback": "rolls back", "resume": "resumes the image automation of"}
_OUTCOME: dict[PublishAction, Outcome] = {"exists": "exists", "closed": "closed", "opened": "opened",
                                          "pushed": "pushed", "would open": "would commit",
                                          "would push": "would commit"}
Connector = Callable[[Path | None, str | None], KubeClient]


@dataclass(frozen=True)
class WaitOptions:
    """rollback --wait: push the commit to the fleet branch, then wait for the environment's clusters."""

    remote_name: str = "origin"
    kubeconfig: Path | None = None
    context: str | None = None
    timeout: float = 300.0
    interval: float = 2.0


@dataclass(frozen=True)
class DeployRequest:
    root: Path
    action: Literal["promote", "rollback", "resume"]
    service: str
    env: str
    from_env: str | None = None  # promote --from
    version: str | None = None  # promote --version, rollback --to
    force: bool = False  # promote: allow skipping environments
    dry_run: bool = False
    pr: PrOptions | None = None
    clusters: bool = False  # promote to production: read what the clusters run for the pull request body
    kubeconfig: Path | None = None
    wait: WaitOptions | None = None


@dataclass(frozen=True)
class DeployReport:
    change: DeployChange
    outcome: Outcome
    commit: str | None = None
    branch: str | None = None
    url: str | None = None
    journal: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()  # --wait: what each cluster runs now


class Writer(Protocol):
    def base_rev(self) -> str: ...
    def write(self, change: DeployChange) -> DeployReport: ...


def build_change(request: DeployRequest, state: ServiceState,
                 where: tuple[tuple[str, str, str], ...] = ()) -> DeployChange:
    if request.action == "promote":
        return build_promotion(state, request.env, from_env=request.from_env, version=request.version,
                               force=request.force, where=where)
    if request.action == "rollback":
        return build_rollback(state, request.env, to=request.version)
    return build_resume(state, request.env)


def run_deploy(request: DeployRequest, connector: Connector = connect) -> DeployReport:
    """Read, build and write the change inside the transaction (writer.py): the repository locked from the read
    to the commit, signals handled, a detached HEAD refused when committing in the checkout."""
    root = request.root.resolve()
    check_fleet_repo(root)
    in_checkout = request.pr is None
    forge = choose_forge(dry_run=request.dry_run)
    with open_writer(root, request.action, commit=in_checkout, dry_run=request.dry_run and in_checkout) as repo:
        return _run_deploy(request, root, repo, forge, connector)


def _run_deploy(request: DeployRequest, root: Path, repo: RepoWriter, forge: Forge,
                connector: Connector) -> DeployReport:
    answers = load_fleet_answers(root)
    if not (root / ".git").exists():
        raise DeployError(f"{root} is not a git repository: promote and rollback read its history")
    if gitrepo.is_dirty(root):
        raise DeployError(f"{root} has uncommitted changes; commit or stash them first "
                          f"({', '.join(gitrepo.dirty_paths(root)[:3])})")
    if request.wait is not None and (request.pr is not None or request.dry_run):
        raise DeployError("--wait waits for the commit on the branch the clusters follow: not with --pr (the "
                          "change lands when the pull request is merged) or --dry-run")
    if request.wait is not None:
        branch = gitrepo.read_local(root).branch
        if branch != answers.branch:
            raise DeployError(f"--wait pushes to {answers.branch}, which the clusters follow; {root} is on "
                              f"{branch or 'a detached HEAD'}")
    writer: Writer
    if request.pr is not None:
        writer = PullRequestWriter(root, request.pr, answers.branch, forge)
    else:
        writer = CheckoutWriter(repo)
    state = read_service_state(root, request.service, writer.base_rev())
    checkpoint("read")
    where: tuple[tuple[str, str, str], ...] = ()
    if request.action == "promote" and request.clusters and is_production(answers, request.env):
        state.env(request.env)  # unknown names are refused before any cluster is asked
        with trace.stage("deploy.clusters"):
            where = running_versions(answers, request.service, request.kubeconfig, connector)
    change = build_change(request, state, where)
    report = DeployReport(change, "up-to-date") if change.up_to_date else writer.write(change)
    if request.wait is not None:
        report = _push_and_wait(root, answers, report, request.wait, connector)
    return report


def _push_and_wait(root: Path, answers: FleetAnswers, report: DeployReport, options: WaitOptions,
                   connector: Connector) -> DeployReport:
    from fleetstrap.deploy.wait import WaitRequest, wait_rolled_back
    from fleetstrap.publish.auth import remote_of

    remote = remote_of(root, options.remote_name)
    if remote is None:
        raise DeployError(f"--wait pushes the commit, but {root} has no git remote {options.remote_name!r}")
    sha = gitrepo.head_sha(root) or ""
    with trace.stage("deploy.push"):
        try:
            gitrepo.push(root, remote, answers.branch)  # fast-forward only, never forced
        except GitError as exc:
            raise RemoteGitError(f"{exc.message}; the rollback is committed locally ({sha[:12]})",
                           hint="a protected branch takes it as a pull request: rerun with --pr instead of "
                                "--wait") from exc
    journal = (*report.journal, f"pushed {sha[:12]} to {answers.branch} on {remote.url}")
    change = report.change
    with trace.stage("deploy.wait"):
        lines = wait_rolled_back(answers, WaitRequest(change.service, change.env, change.target, sha, answers.branch,
                                                      options.kubeconfig, options.context, options.timeout,
                                                      options.interval), connector)
    return replace(report, journal=journal, clusters=lines)


def _write_files(root: Path, change: DeployChange) -> None:
    for f in change.files:
        path = root / f.path
        if path.read_text(encoding="utf-8") != f.before:
            raise DeployError(f"{f.path} changed while fleetstrap was working; run the command again")
    for f in change.files:
        (root / f.path).write_text(f.after, encoding="utf-8")


class CheckoutWriter:
    """Commits the change on the checked-out branch (the push is the user's: their branch, their review), through
    the repository writer: staged outside the work tree, landed with its commit in one step. With the recording
    writer (--dry-run) it only says what would be committed."""

    def __init__(self, repo: RepoWriter) -> None:
        self.repo = repo

    def base_rev(self) -> str:
        return "HEAD"

    def write(self, change: DeployChange) -> DeployReport:
        root = self.repo.root
        for f in change.files:
            if (root / f.path).read_text(encoding="utf-8") != f.before:
                raise DeployError(f"{f.path} changed while fleetstrap was working; run the command again")
        with tempfile.TemporaryDirectory(prefix="fleetstrap-deploy-") as tmp:
            staged = []
            for f in change.files:
                (Path(tmp) / f.path).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / f.path).write_text(f.after, encoding="utf-8")
                staged.append(Change(f.path, Path(tmp) / f.path))
            landing = self.repo.land(staged, change.message, author=gitrepo.default_author(root))
        if landing.journal:
            return DeployReport(change, "would commit", journal=landing.journal)
        return DeployReport(change, "committed" if landing.commit else "up-to-date", landing.commit)


class PullRequestWriter:
    """The change on its own branch off the default branch, pushed, and a pull request on GitHub (other remotes:
    the branch), through the forge layer's one "publish a branch as a pull request" (`BranchPublisher`). An
    existing pull request from the same branch is left alone; an open one from an older branch of the same
    service and environment is closed as superseded. A dry run is the recording forge, chosen by the caller."""

    def __init__(self, root: Path, options: PrOptions, default_branch: str, forge: Forge) -> None:
        self.publisher = BranchPublisher(root, options, default_branch, forge)

    def base_rev(self) -> str:
        local = self.publisher.base_rev()
        if local is None:
            base = self.publisher.base
            raise DeployError(f"no local branch {base} (the default branch) to start the pull request from",
                              hint=f"git fetch origin {base}:{base}")
        return local

    def write(self, change: DeployChange) -> DeployReport:
        root = self.publisher.root

        def make(wt: Path) -> Proposal:
            _write_files(wt, change)
            gitrepo.ensure_commit(wt, change.message, gitrepo.default_author(root))
            return Proposal(change.title, change.body, superseded_because=f"which {_VERB[change.action]} "
                            f"{change.service} in {change.env} to {change.target}")

        try:
            published = self.publisher.publish(change.branch, BRANCH_PREFIX, change.supersedes, make)
        except UserError as exc:
            if exc.message.startswith("refusing to push"):
                raise DeployError(exc.message) from exc
            raise
        outcome = _OUTCOME[published.action]
        return DeployReport(change, outcome, published.commit, change.branch, published.url, published.journal)
