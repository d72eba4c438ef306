"""`fleetstrap update --pr`: the template update on its own branch, pushed, as a pull request.

Flow: what is available (check-update) → nothing: done, no branch → else the forge layer's one "publish a branch
as a pull request" (publish/pullrequest.py `BranchPublisher`, shared with `promote --pr`) with the branch
`fleetstrap/update-v<to>`: already on the remote with its pull request: done, nothing written → else the update
runs in its temporary worktree off the default branch (the user's checkout is never touched), is committed
(conflict markers included), pushed to that branch only, and GitHub gets a pull request (draft on conflicts) that
closes the one it supersedes. Any other git remote gets the branch and a line saying what to open. `--pretend`
is the recording forge: the same run, nothing pushed or opened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fleetstrap import gitrepo, output
from fleetstrap.errors import ConflictError, UserError
from fleetstrap.publish.github_api import ApiSettings
from fleetstrap.publish.pullrequest import (
    BranchPublisher,
    Forge,
    Proposal,
    PrOptions,
    PublishAction,
    _github_repo,  # noqa: F401 (tests read it here)
    choose_forge,
)
from fleetstrap.repo import load_fleet
from fleetstrap.transaction import checkpoint, handle_signals, repo_lock
from fleetstrap.update import check_updates
from fleetstrap.upgrade.engine import (
    UpdateConflictError,
    UpdateReport,
    UpdateRequest,
    build_commit_message,
    run_update,
)
from fleetstrap.upgrade.protect import conflict_spans
from fleetstrap.writer import open_writer

BRANCH_PREFIX = "fleetstrap/update-"
Action = Literal["up-to-date"] | PublishAction
# The template changelog for the versions crossed, as markdown (empty: none). fleetstrap.changelog provides it
# once it ships; until then the section is left out.
Changelog = Callable[[Sequence[tuple[str, str]], str], str]


def no_changelog(components: Sequence[tuple[str, str]], target: str) -> str:  # noqa: ARG001 (the hook's shape)
    return ""


@dataclass(frozen=True)
class PrRequest:
    root: Path
    template: str | None = None
    to: str | None = None
    template_index: str | None = None
    remote_name: str = "origin"
    github_url: str = "https://github.com"
    token_env: str | None = None
    api: ApiSettings = field(default_factory=ApiSettings)
    changelog: Changelog = no_changelog
    pretend: bool = False  # the recording forge: nothing pushed, no pull request


@dataclass(frozen=True)
class PrReport:
    action: Action
    target: str
    branch: str | None = None
    url: str | None = None  # the pull request
    conflicts: tuple[str, ...] = ()
    journal: tuple[str, ...] = ()


def branch_for(target: str) -> str:
    return f"{BRANCH_PREFIX}v{target.removeprefix('v')}"


# ---------------------------------------------------------------- the pull request text


def _statuses(wt: Path, base: str) -> dict[str, str]:
    out = gitrepo.run(wt, "diff", "--name-status", "--no-renames", "-z", base, "HEAD")
    parts = [p for p in out.split("\0") if p]
    return {parts[i + 1]: parts[i][0] for i in range(0, len(parts) - 1, 2)}


def _hunks(wt: Path, path: str) -> list[str]:
    try:
        text = (wt / path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [f"lines {start}-{end}" for start, end in conflict_spans(text)]


def build_title(report: UpdateReport) -> str:
    olds = sorted({u.from_version for u in report.updated if u.from_version})
    return f"fleetstrap: update templates {', '.join(olds)} → {report.target}"


def build_body(report: UpdateReport, statuses: dict[str, str], hunks: dict[str, list[str]], base: str,
               changelog: str) -> str:
    kinds = (("A", "added"), ("M", "changed"), ("D", "removed"))
    comps = [u for u in report.updated if u.name != "migrations"]
    lines = [f"Updates {len(comps)} component(s) of this repository to the fleetstrap templates "
             f"**{report.target}** with copier's 3-way merge: changes people made are kept.", ""]
    if report.conflicts:
        lines += ["> [!WARNING]",
                  f"> {len(report.conflicts)} file(s) have conflicts. They are committed with their `<<<<<<<` "
                  "markers, so validation fails until someone resolves them on this branch; this pull request "
                  "stays a draft until then.", "", "### Conflicts", ""]
        lines += [f"- `{p}`" + (f": {', '.join(hunks.get(p, []))}" if hunks.get(p) else "")
                  for p in report.conflicts]
        lines.append("")
    lines += ["### Components", ""]
    for u in comps:
        lines.append(f"- **{u.name}** `{u.from_version}` → `{u.to_version}`" + ("" if u.files else ": version only"))
        for code, word in kinds:
            paths = [p for p in u.files if statuses.get(p) == code]
            if paths:
                lines.append(f"  - {word}: " + ", ".join(f"`{p}`" for p in paths))
    lines.append("")
    if report.migrations:
        lines += ["### Migrations applied", "", *[f"- {m}" for m in report.migrations], ""]
    if changelog.strip():
        lines += ["### Changelog", "", changelog.strip(), ""]
    lines += [f"Bot-owned lines (image tags written by Flux image automation or Argo CD Image Updater) were kept "
              f"as they are on `{base}`.", "",
              "<sub>Opened by `fleetstrap update --pr`; re-runs leave it alone until a newer template version "
              "supersedes it.</sub>"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the flow


def open_update_pr(request: PrRequest) -> PrReport:
    """Raises ConflictError (exit 2) after the draft pull request (or branch) is up, when conflicts remain.
    `pretend`: the recording forge, which pushes and opens nothing (the update still runs, in the temporary
    worktree, so the report says what the pull request would hold).

    Under the repository's lock (the temporary worktree is registered in its .git), signals handled so the
    worktree is removed on SIGINT/SIGTERM."""
    root = request.root.resolve()
    forge = choose_forge(dry_run=request.pretend)
    with handle_signals(), repo_lock(root, "update --pr"):
        return _open_update_pr(request, root, forge)


def _open_update_pr(request: PrRequest, root: Path, forge: Forge) -> PrReport:
    repo = load_fleet(root)
    if gitrepo.is_dirty(root):
        raise UserError(f"{root} has uncommitted changes; commit or stash them before updating")
    check = check_updates(root, template=request.template, to=request.to)
    if not check.update_available:
        return PrReport("up-to-date", check.target)
    branch = branch_for(check.target)
    options = PrOptions(request.remote_name, request.github_url, request.token_env, request.api)
    publisher = BranchPublisher(root, options, repo.answers.branch, forge)
    made: list[tuple[UpdateReport, tuple[str, ...]]] = []

    def make(wt: Path) -> Proposal:
        start = publisher.base_rev() or "HEAD"
        report, conflicts = _update_and_commit(request, wt, check.target)
        made.append((report, conflicts))
        body = build_body(report, _statuses(wt, start), {p: _hunks(wt, p) for p in conflicts}, publisher.base,
                          request.changelog([(u.name, u.from_version) for u in report.updated], report.target))
        return Proposal(build_title(report), body, draft=bool(conflicts))

    published = publisher.publish(branch, BRANCH_PREFIX, BRANCH_PREFIX, make)
    if not made:  # the branch is there already, with its pull request (or on a plain git remote)
        return PrReport(published.action, check.target, branch, published.url)
    if published.action == "pushed":
        output.info(f"open a pull request from {branch} into {publisher.base} on {publisher.remote.url}")
    conflicts = made[0][1]
    result = PrReport(published.action, check.target, branch, published.url, conflicts, published.journal)
    if conflicts and not request.pretend:
        where = published.url or f"branch {branch}"
        raise PrConflictError(f"the update left {len(conflicts)} conflicted file(s), committed with their markers "
                              f"to {where}: {', '.join(conflicts)}", report=result)
    return result


class PrConflictError(ConflictError):
    """The draft pull request (or branch) is up, and its files need a person: exit 2."""

    def __init__(self, message: str, *, report: PrReport) -> None:
        super().__init__(message, paths=report.conflicts,
                         hint="resolve the <<<<<<< markers on the branch; validation passes again after that")
        self.report = report


def _update_and_commit(request: PrRequest, wt: Path, target: str) -> tuple[UpdateReport, tuple[str, ...]]:
    update = UpdateRequest(wt, to=request.to or target, template=request.template,
                           template_index=request.template_index, commit=True,
                           validate=False)  # the repo's own validate workflow runs on the pull request
    try:
        # Our own worktree, detached on purpose: the commit goes to the pull request's branch by the push.
        with open_writer(wt, "update --pr", commit=True, detached_ok=True) as writer:
            report = run_update(update, writer)
        checkpoint("commit")
    except UpdateConflictError as exc:
        report = exc.report
        message = build_commit_message(report.updated, report.target) + "\nConflicts left with markers:\n" + \
            "".join(f"- {p}\n" for p in report.conflicts)
        gitrepo.ensure_commit(wt, message)
        return report, report.conflicts
    if report.commit is None:
        raise UserError(f"update to {target} changed nothing although check-update reported it available")
    return report, ()
