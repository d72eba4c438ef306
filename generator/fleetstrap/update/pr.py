"""`fleetstrap update --pr`: the template update on its own branch, pushed, as a pull request.

Flow: what is available (check-update) → nothing: done, no branch → the branch `fleetstrap/update-v<to>` already
on the remote with its pull request: done, nothing written → else the update runs in a temporary git worktree
off the default branch (the user's checkout is never touched), is committed (conflict markers included), pushed
to that branch only, and GitHub gets a pull request (draft on conflicts) that closes the one it supersedes. Any
other git remote gets the branch and a line saying what to open.

The token reaches git only through one process's environment (publish.auth.git_env) and the API client; it is
never written to a file, the git config, the pull request or the output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fleetstrap import gitrepo, output, trace
from fleetstrap.errors import ConflictError, GitError, RemoteError, UserError
from fleetstrap.publish.github_api import ApiSettings, GitHubApi
from fleetstrap.publish.pullrequest import (
    LABEL,
    PullRequestSpec,
    Remote,
    _github_repo,  # noqa: F401 (tests read it here)
    ensure_pull_request,
    find_pull,
    resolve_remote,
)
from fleetstrap.redact import redact
from fleetstrap.repo import load_fleet
from fleetstrap.transaction import checkpoint, handle_signals, repo_lock
from fleetstrap.update import (
    UpdateConflictError,
    UpdateReport,
    UpdateRequest,
    build_commit_message,
    check_updates,
    run_update,
)
from fleetstrap.writer import open_writer

BRANCH_PREFIX = "fleetstrap/update-"
Action = Literal["up-to-date", "exists", "closed", "opened", "pushed"]
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


def _remote(request: PrRequest, root: Path) -> Remote:
    return resolve_remote(root, request.remote_name, request.github_url, request.token_env)


# ---------------------------------------------------------------- the pull request text


def _statuses(wt: Path, base: str) -> dict[str, str]:
    out = gitrepo.run(wt, "diff", "--name-status", "--no-renames", "-z", base, "HEAD")
    parts = [p for p in out.split("\0") if p]
    return {parts[i + 1]: parts[i][0] for i in range(0, len(parts) - 1, 2)}


def _hunks(wt: Path, path: str) -> list[str]:
    try:
        lines = (wt / path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    spans, start = [], None
    for n, line in enumerate(lines, 1):
        if line.startswith("<<<<<<< "):
            start = n
        elif line.startswith(">>>>>>> ") and start is not None:
            spans.append(f"lines {start}-{n}")
            start = None
    return spans


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

    Under the repository's lock (the temporary worktree is registered in its .git), signals handled so the
    worktree is removed on SIGINT/SIGTERM."""
    root = request.root.resolve()
    with handle_signals(), repo_lock(root, "update --pr"):
        return _open_update_pr(request, root)


def _open_update_pr(request: PrRequest, root: Path) -> PrReport:
    repo = load_fleet(root)
    if gitrepo.is_dirty(root):
        raise UserError(f"{root} has uncommitted changes; commit or stash them before updating")
    check = check_updates(root, template=request.template, to=request.to)
    if not check.update_available:
        return PrReport("up-to-date", check.target)
    branch = branch_for(check.target)
    remote = _remote(request, root)
    api = GitHubApi(remote.token, request.github_url, request.api) if remote.github and remote.token else None
    base = repo.answers.branch
    if branch == base or not branch.startswith(BRANCH_PREFIX):  # never the default branch
        raise UserError(f"refusing to push the update to {branch}")
    with trace.stage("update.pr.preflight"):
        if remote.github is not None and api is not None:
            owner, name = remote.github
            data = api.get_repo(owner, name)
            if data is None:
                raise UserError(f"GitHub repository {owner}/{name} (remote {request.remote_name}) does not exist")
            base = str(data.get("default_branch") or base)
        remote_sha = gitrepo.remote_head(root, gitrepo.Remote(remote.url, remote.url, remote.env), branch)
        existing = find_pull(api, *remote.github, branch) if remote.github and api else None
    if existing is not None:
        # Open: it already carries this version. Closed by a person: they said no to this version.
        action: Action = "exists" if existing.state == "open" else "closed"
        return PrReport(action, check.target, branch, existing.url)
    if remote_sha is not None and remote.github is None:
        return PrReport("exists", check.target, branch)
    journal: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fleetstrap-pr-") as tmp:
        wt = Path(tmp) / "wt"
        start = gitrepo.run(root, "rev-parse", "--verify", "-q", f"refs/heads/{base}^{{commit}}", check=False).strip()
        gitrepo.run(root, "worktree", "add", "-q", "--detach", str(wt), start or "HEAD")
        try:
            report, conflicts = _update_and_commit(request, wt, check.target)
            statuses = _statuses(wt, start or "HEAD")
            hunks = {p: _hunks(wt, p) for p in conflicts}
            lease = [f"--force-with-lease=refs/heads/{branch}:{remote_sha}"] if remote_sha else []
            # Our branch only; with a lease when an earlier run left it without a pull request.
            try:
                gitrepo.run(wt, "push", *lease, "--", remote.url, f"HEAD:refs/heads/{branch}", env=remote.env,
                            url=remote.url)
            except GitError as exc:
                if any(p.startswith(".github/workflows/") for p in statuses):
                    raise RemoteError(f"{exc.message} (the update changes workflow files, which GitHub only "
                                      "accepts from a token with the workflow scope or Workflows permission)",
                                      hint="GITHUB_TOKEN never has it: give the fleetstrap-update workflow a "
                                           "GitHub App (FLEETSTRAP_APP_CLIENT_ID) with Workflows: write") from exc
                raise
            journal.append(f"pushed {branch} to {remote.url}")
        finally:
            gitrepo.run(root, "worktree", "remove", "--force", str(wt), check=False)
            gitrepo.run(root, "worktree", "prune", check=False)
    body = build_body(report, statuses, hunks, base,
                      request.changelog([(u.name, u.from_version) for u in report.updated], report.target))
    url = None
    if remote.github is not None and api is not None:
        owner, name = remote.github
        spec = PullRequestSpec(owner, name, branch, base, build_title(report), redact(body), bool(conflicts), LABEL,
                               BRANCH_PREFIX)
        url = ensure_pull_request(api, spec, journal).url
        action = "opened"
    else:
        output.info(f"open a pull request from {branch} into {base} on {remote.url}")
        action = "pushed"
    result = PrReport(action, check.target, branch, url, conflicts, tuple(journal))
    if conflicts:
        where = url or f"branch {branch}"
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
