"""push_repo: preflight everything (token, scopes, history, key conflicts) before the first change, then
ensure each piece idempotently. Shaped like Flux's bootstrap: a runner holding its clients, whose `run()` lists
its `ensure_*` steps. In a dry run the same steps run against recording clients (publish.clients)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetstrap import gitrepo, output, trace
from fleetstrap.answer_schema import PLACEHOLDER_OWNERS
from fleetstrap.answers import FleetAnswers
from fleetstrap.errors import GitHubError, RemoteError, UserError
from fleetstrap.gitrepo import Remote
from fleetstrap.publish import keys, rules
from fleetstrap.publish.auth import Token, clean_url, git_env, has_credentials, resolve_token
from fleetstrap.publish.clients import (
    GitHubReads,
    JournaledGit,
    JournaledGitHub,
    JournaledKeys,
    OfflineGitHub,
    RecordingGit,
    RecordingGitHub,
    RecordingKeys,
)
from fleetstrap.publish.github_api import GitHubApi
from fleetstrap.publish.workflows import WorkflowNeeds, read_workflow_needs
from fleetstrap.push import DEFAULT_ENVIRONMENTS, PushReport, PushRequest
from fleetstrap.repo import load_fleet_answers


@dataclass
class Outcome:
    """What happened (or, in a dry run, what would happen); `journal` lists every git operation and API write."""

    dry_run: bool
    journal: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    in_place: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    private_keys: list[tuple[str, str]] = field(default_factory=list)

    def changed(self, what: str, *, existed: bool) -> None:
        (self.updated if existed else self.created).append(what)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        output.warn(message)

    def report(self, *, repo_url: str, remote_url: str, branch: str, commit: str | None) -> PushReport:
        return PushReport(repo_url=repo_url, remote_url=remote_url, branch=branch, commit=commit,
                          dry_run=self.dry_run, created=tuple(self.created), updated=tuple(self.updated),
                          in_place=tuple(self.in_place), planned=tuple(self.journal),
                          warnings=tuple(self.warnings), private_keys=tuple(self.private_keys))


@dataclass(frozen=True)
class RepoState:
    """What preflight found on GitHub: everything the steps compare against."""

    owner: str
    name: str
    org: bool
    repo: dict[str, Any] | None  # None: to be created
    key_titles: tuple[tuple[str, str], ...]  # (cluster, title)
    existing_keys: tuple[dict[str, Any], ...]
    secret_values: tuple[tuple[str, str], ...] = field(repr=False)
    environments: tuple[str, ...]
    reviewers: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class PushClients:
    """Every write of a push: git, keys, and GitHub's (given the API once connected)."""

    git: RecordingGit
    keys: RecordingKeys
    github: Callable[[GitHubApi | None], RecordingGitHub]


def choose_clients(journal: list[str], *, dry_run: bool) -> PushClients:
    """The journaled (real) clients, or for a dry run the recording ones: chosen once, where push starts."""
    if dry_run:
        return PushClients(RecordingGit(journal), RecordingKeys(journal), lambda _api: RecordingGitHub(journal))
    return PushClients(JournaledGit(journal), JournaledKeys(journal),
                       lambda api: JournaledGitHub(journal, api) if api is not None else RecordingGitHub(journal))


def push_repo(request: PushRequest) -> PushReport:
    root = request.path.resolve()
    if not root.is_dir():
        raise UserError(f"{request.path} is not a directory")
    fleet = load_fleet_answers(root)
    needs = read_workflow_needs(root)
    out = Outcome(request.dry_run)
    clients = choose_clients(out.journal, dry_run=request.dry_run)
    with trace.stage("push", dry_run=request.dry_run, generic=bool(request.remote)):
        if request.remote:
            return GitPublisher(request, root, out, clients).run()
        return GitHubPublisher(request, root, fleet, needs, out, clients).run()


# ---------------------------------------------------------------- git, shared by both publishers
class GitPublisher:
    """Publish to any git remote: commit, check history, push (fast-forward only)."""

    def __init__(self, request: PushRequest, root: Path, out: Outcome, clients: PushClients) -> None:
        self.request = request
        self.root = root
        self.out = out
        self.git = clients.git

    def run(self) -> PushReport:
        target = self.resolve_target()
        with trace.stage("git.preflight"):
            rel = self.ensure_history_compared(target, remote_exists=True)
        head = self.ensure_pushed(target, rel)
        return self.out.report(repo_url=target.url, remote_url=target.url, branch=self.request.branch, commit=head)

    def resolve_target(self) -> Remote:
        request = self.request
        url = request.remote or ""
        if has_credentials(url):
            raise UserError("--remote URL must not contain credentials; pass a token with --token-env NAME")
        url = clean_url(url)
        https = url.startswith(("https://", "http://"))
        # Only an explicitly named token goes to a generic remote: GH_TOKEN must never leak to another host.
        token = resolve_token(request.token_env, allow_defaults=False) if https else None
        if request.token_env and not https:
            raise UserError("--token-env only works with an https remote; use --ssh-key for ssh")
        ssh_key = str(request.ssh_key) if request.ssh_key else None
        if ssh_key and not Path(ssh_key).is_file():
            raise UserError(f"ssh key {ssh_key} does not exist")
        known = str(request.known_hosts) if request.known_hosts else None
        return Remote(request.remote_name, url, git_env(url, token, ssh_key=None if https else ssh_key,
                                                        known_hosts=None if https else known))

    def ensure_history_compared(self, target: Remote, *, remote_exists: bool) -> gitrepo.Relation:
        """How the local branch relates to the remote's; refuses unrelated or diverged history. Sets the remote
        and fetches its branch when the remote's commit is not known here (both idempotent)."""
        request, root = self.request, self.root
        if not remote_exists:
            return "empty"
        local = gitrepo.read_local(root)
        with output.progress(f"reading {target.url}"), trace.stage("git.ls-remote"):
            remote = gitrepo.remote_head(root, target, request.branch)
        rel = gitrepo.relation(root, local.head, remote, target.url, request.branch)
        if rel == "unknown":
            if not local.has_git:
                # No local history at all, but the remote has some: it can't contain ours.
                raise RemoteError(f"{target.url} branch {request.branch} holds history that is not ours; "
                                  "refusing to push", hint="push to a new or empty repository")
            self.ensure_origin(target)
            with output.progress(f"fetching {target.url}"), trace.stage("git.fetch"):
                self.git.fetch(root, target, request.branch)
            rel = gitrepo.relation(root, local.head, remote, target.url, request.branch)
        if rel == "behind" and local.dirty:
            raise RemoteError(f"{target.url} branch {request.branch} is ahead of the local branch; "
                              "pull it before publishing new changes")
        return rel

    def ensure_origin(self, target: Remote) -> None:
        state = self.git.set_remote(self.root, self.request.remote_name, target.url)
        if state != "in place":
            self.out.changed(f"git remote {self.request.remote_name} -> {target.url}", existed=state == "updated")

    def ensure_committed(self) -> str | None:
        request, root = self.request, self.root
        local = gitrepo.read_local(root)
        with trace.stage("git.commit"):
            if not local.has_git:
                self.git.init(root, request.branch)
            elif local.branch != request.branch:
                self.git.rename_branch(root, str(local.branch), request.branch)
            sha = self.git.commit(root, request.message, request.branch) if local.dirty or local.head is None \
                else None
        if sha:
            self.out.created.append(f"commit {sha[:12]}")
        else:
            self.out.in_place.append("commit (nothing to commit)")
        return sha

    def ensure_pushed(self, target: Remote, rel: gitrepo.Relation) -> str | None:
        request = self.request
        sha = self.ensure_committed()
        head = sha or gitrepo.read_local(self.root).head
        self.ensure_origin(target)
        if rel == "same" and not sha:
            self.out.in_place.append(f"{request.branch} pushed (remote up to date)")
            return head
        if rel == "behind" and not sha:
            self.out.in_place.append(f"{request.branch} (remote already contains this commit)")
            return head
        if head is None:
            raise UserError(f"{self.root} has nothing to commit and no commit to push")
        with output.progress(f"pushing {request.branch} to {target.url}"), trace.stage("git.push"):
            self.git.push(self.root, target, request.branch)
        self.out.created.append(f"pushed {request.branch} to {target.url}")
        return head


# ---------------------------------------------------------------- GitHub


def check_fleet_identity(fleet: FleetAnswers, owner: str, name: str) -> None:
    """The repository the fleet points at (Flux/Argo CD git URL, images, deploy keys) is the one pushed to: refuse a
    placeholder owner and flags that name another repository than the answers."""
    if owner.lower() in PLACEHOLDER_OWNERS:
        raise UserError(f"the fleet's owner is the placeholder {owner!r}; render it for yours",
                        hint="fleetstrap init --force --blueprint NAME --data owner=YOURS DEST")
    for what, flag, answer in (("owner", owner, fleet.owner), ("repository", name, fleet.fleet_name)):
        if flag.lower() != answer.lower():
            raise UserError(f"--{'repo' if what == 'repository' else what} {flag} differs from the fleet's {what} "
                            f"answer {answer!r} (its git URL, images and deploy keys point at "
                            f"{fleet.owner}/{fleet.fleet_name})",
                            hint=f"push with the answer's {what}, or render the fleet again with "
                                 f"--data {'fleet_name' if what == 'repository' else 'owner'}={flag}")


class GitHubPublisher(GitPublisher):
    """Publish to GitHub: the repository, then git, then deploy keys, secrets, variables, environments, rules."""

    def __init__(self, request: PushRequest, root: Path, fleet: FleetAnswers, needs: WorkflowNeeds,
                 out: Outcome, clients: PushClients) -> None:
        super().__init__(request, root, out, clients)
        self.fleet = fleet
        self.needs = needs
        self.owner = request.owner or fleet.owner
        self.name = request.repo or fleet.fleet_name
        check_fleet_identity(fleet, self.owner, self.name)
        self.web = request.github_url.rstrip("/")
        self.token = resolve_token(request.token_env, host=urlsplit(self.web).netloc or "github.com")
        self.api = self._connect(self.token)
        self.reads: GitHubReads = self.api if self.api is not None else OfflineGitHub(self.owner)
        self.writes = clients.github(self.api)
        self.keys = clients.keys

    def _connect(self, token: Token | None) -> GitHubApi | None:
        request = self.request
        if token is None:
            if not request.dry_run:
                raise UserError("no GitHub token: set GH_TOKEN or GITHUB_TOKEN, pass --token-env NAME, "
                                "or log in with `gh auth login`")
            self.out.warn("no GitHub token: listing the plan for a repository that does not exist yet")
            return None
        return GitHubApi(token, self.web, request.api)

    def run(self) -> PushReport:
        request = self.request
        secret_values = _secret_values(request)
        self.check_release_key_inputs()
        with trace.stage("github.preflight"), output.progress("checking the token and the repository"):
            state = self.check_github(secret_values)
        clone_url = str(state.repo["clone_url"]) if state.repo else f"{self.web}/{self.owner}/{self.name}.git"
        with trace.stage("git.preflight"):
            rel = self.ensure_history_compared(self.target(clone_url), remote_exists=state.repo is not None)
        # ---- changes start here; everything that could refuse has been checked above
        with trace.stage("github.repository"):
            repo = self.ensure_repository(state)
        target = self.target(str(repo["clone_url"]) if repo else clone_url)
        head = self.ensure_pushed(target, rel)
        with trace.stage("github.deploy_keys"), output.progress("deploy keys"):
            self.ensure_deploy_keys(state)
        secret_names = self.reads.secret_names(self.owner, self.name) if state.repo else set()
        if keys.RELEASE_KEY_SECRET in self.needs.secrets:
            with trace.stage("github.release_key"), output.progress("release workflow deploy key"):
                self.ensure_release_key(state, secret_names)
        with trace.stage("github.secrets"), output.progress("Actions secrets and variables"):
            self.ensure_secrets(state, secret_names)
            self.ensure_variables(state)
        with trace.stage("github.environments"), output.progress("environments"):
            self.ensure_environments(state)
        if request.protect_branch:
            with trace.stage("github.branch_protection"), output.progress("branch ruleset"):
                self.ensure_ruleset(state)
        html = str(repo["html_url"]) if repo else f"{self.web}/{self.owner}/{self.name}"
        return self.out.report(repo_url=html, remote_url=target.url, branch=request.branch, commit=head)

    def target(self, clone_url: str) -> Remote:
        return Remote(self.request.remote_name, clone_url, git_env(clone_url, self.token) if self.token else {})

    # ---------------------------------------------------------------- preflight
    def check_github(self, secret_values: tuple[tuple[str, str], ...]) -> RepoState:
        api, owner, name, request = self.reads, self.owner, self.name, self.request
        titles = tuple((c.name, f"fleetstrap-{c.name}") for c in self.fleet.clusters)
        envs = self.build_environment_names()
        me = api.me()
        repo = api.get_repo(owner, name)
        org = False
        if repo is None and owner.lower() != me.login.lower():
            kind = api.owner_type(owner)
            if kind is None:
                raise RemoteError(f"GitHub owner {owner} does not exist")
            if kind != "Organization":
                raise RemoteError(f"cannot create a repository for user {owner}: the token belongs to {me.login}")
            org = True
        if me.scopes is not None and self.token is not None:
            private = bool(repo["private"]) if repo else request.private
            _check_scopes(me.scopes, self.token, private=private, workflows=self.needs.has_workflows)
        elif repo is not None:
            self.check_fine_grained(repo)
        existing: list[dict[str, Any]] = []
        if repo is not None:
            existing = api.list_keys(owner, name)
            self.check_key_conflicts(titles, existing)
        reviewers = tuple(self.resolve_reviewer(r) for r in request.reviewers)
        return RepoState(owner, name, org=org, repo=repo, key_titles=titles, existing_keys=tuple(existing),
                         secret_values=secret_values, environments=envs, reviewers=reviewers)

    def check_fine_grained(self, repo: dict[str, Any]) -> None:
        """Fine-grained tokens have no scope header: probe the permissions push needs with cheap reads."""
        missing = []
        perms = repo.get("permissions") or {}
        if not perms.get("push"):
            missing.append("Contents: write")
        if not perms.get("admin"):
            missing.append("Administration: write")
        for area, perm in (("actions/secrets/public-key", "Secrets: write"), ("actions/variables", "Variables: write")):
            try:
                self.reads.check_can_read(self.owner, self.name, area)
            except GitHubError as exc:
                if exc.status in (403, 404):
                    missing.append(perm)
                else:
                    raise
        if missing:
            source = self.token.source if self.token else "(none)"
            raise RemoteError(f"the token from {source} lacks permissions on {self.owner}/{self.name}: "
                              f"{', '.join(missing)} (Workflows: write is needed too)")

    def check_key_conflicts(self, titles: tuple[tuple[str, str], ...], existing: list[dict[str, Any]]) -> None:
        if self.request.rotate_keys:
            return
        by_title = {k["title"]: k for k in existing}
        for cluster, title in titles:
            remote = by_title.get(title)
            if remote is None:
                continue
            local = keys.find_deploy_key(self.owner, self.name, cluster)
            if local is None or _blob(str(remote["key"])) != local.public_blob:
                where = "no private key is stored here" if local is None else "it differs from the stored key"
                raise RemoteError(f"deploy key {title} already exists on {self.owner}/{self.name} and {where}",
                                  hint="rerun with --rotate-keys to replace it (the cluster then needs bootstrap)")

    def check_release_key_inputs(self) -> None:
        if keys.RELEASE_KEY_SECRET not in self.needs.secrets:
            return
        if any(name == keys.RELEASE_KEY_SECRET for name, _ in self.request.secrets):
            raise UserError(f"secret {keys.RELEASE_KEY_SECRET} is managed by push (the release workflow's deploy "
                            "key); drop --secret for it (--rotate-keys replaces it)")
        if any(f"fleetstrap-{c.name}" == keys.RELEASE_KEY_TITLE for c in self.fleet.clusters):
            raise UserError(f"a cluster named 'release' would share deploy key title {keys.RELEASE_KEY_TITLE} "
                            "with the release workflow's key; rename the cluster")

    def resolve_reviewer(self, who: str) -> dict[str, Any]:
        if "/" in who:
            org, slug = who.split("/", 1)
            data, kind = self.reads.team(org, slug), "Team"
        else:
            data, kind = self.reads.user(who), "User"
        if data is None:
            raise RemoteError(f"reviewer {who} not found on GitHub")
        return {"type": kind, "id": int(data["id"]), "name": who}

    def build_environment_names(self) -> tuple[str, ...]:
        if self.request.environments is not None:
            return self.request.environments
        names: list[str] = []
        for e in (*self.needs.environments, *self.fleet.environments):
            if e not in names:
                names.append(e)
        return tuple(names) or DEFAULT_ENVIRONMENTS

    # ---------------------------------------------------------------- steps
    def ensure_repository(self, state: RepoState) -> dict[str, Any] | None:
        if state.repo is not None:
            self.out.in_place.append(f"repository {self.owner}/{self.name}")
            return state.repo
        with output.progress(f"creating {self.owner}/{self.name}"):
            repo = self.writes.create_repo(self.owner, self.name, org=state.org, private=self.request.private)
        self.out.created.append(f"repository {self.owner}/{self.name}")
        return repo

    def ensure_deploy_keys(self, state: RepoState) -> None:
        read_only = not self.fleet.image_automation  # Flux image automation pushes tag bumps with this key
        by_title = {k["title"]: k for k in state.existing_keys}
        for cluster, title in state.key_titles:
            local = None if self.request.rotate_keys else keys.find_deploy_key(self.owner, self.name, cluster)
            if local is None:
                local = self.keys.new_deploy_key(self.owner, self.name, cluster, rotate=self.request.rotate_keys)
            remote = by_title.get(title)
            same = local is not None and remote is not None and _blob(str(remote["key"])) == local.public_blob
            if same and remote is not None and bool(remote["read_only"]) == read_only:
                self.out.in_place.append(f"deploy key {title}")
            else:
                if remote is not None:
                    self.writes.delete_key(self.owner, self.name, int(remote["id"]))
                self.writes.create_key(self.owner, self.name, title, _blob(local.public) if local else "", read_only)
                self.out.changed(f"deploy key {title}", existed=remote is not None)
            if self.request.print_private_keys and local is not None:
                self.out.private_keys.append((cluster, local.private))

    def ensure_release_key(self, state: RepoState, secret_names: set[str]) -> None:
        """The release workflow's write deploy key: registered read-write, private half only in the secret.

        The secret can't be read back, so the pair is only (re)made when the key or the secret is missing, the
        key is read-only, or --rotate-keys asks for it; an existing key with its secret is left alone."""
        title, secret = keys.RELEASE_KEY_TITLE, keys.RELEASE_KEY_SECRET
        remote = next((k for k in state.existing_keys if k["title"] == title), None)
        has_secret = secret in secret_names
        if remote is not None and not remote["read_only"] and has_secret and not self.request.rotate_keys:
            self.out.in_place += [f"deploy key {title}", f"secret {secret}"]
            return
        private, public = self.keys.new_release_key(self.owner, self.name)
        if remote is not None:
            self.writes.delete_key(self.owner, self.name, int(remote["id"]))
        self.writes.create_key(self.owner, self.name, title, _blob(public), False)
        self.out.changed(f"deploy key {title}", existed=remote is not None)
        self.writes.set_secret(self.owner, self.name, secret, private)
        self.out.changed(f"secret {secret}", existed=has_secret)

    def ensure_secrets(self, state: RepoState, existing: set[str]) -> None:
        given = dict(state.secret_values)
        managed = {keys.RELEASE_KEY_SECRET} if keys.RELEASE_KEY_SECRET in self.needs.secrets else set()
        for secret in sorted((set(self.needs.secrets) | set(given)) - managed):
            if secret in given:
                self.writes.set_secret(self.owner, self.name, secret, given[secret])
                self.out.changed(f"secret {secret}", existed=secret in existing)
            elif secret in existing:
                self.out.in_place.append(f"secret {secret}")
            else:
                self.out.warn(f"the workflows use secret {secret}, which is not set: pass --secret {secret}=ENV_VAR")

    def ensure_variables(self, state: RepoState) -> None:
        existing = self.reads.variables(self.owner, self.name) if state.repo else {}
        given = dict(self.request.variables)
        answers = self.fleet.to_mapping()
        for var in sorted(set(self.needs.variables) | set(given)):
            # A variable named after a fleet answer (vars.REGISTRY -> registry) takes that answer's value.
            value = given.get(var)
            if value is None:
                answer = answers.get(var.lower())
                value = None if answer is None or isinstance(answer, dict | list) else str(answer)
            if value is None:
                if var not in existing:
                    self.out.warn(f"the workflows use variable {var}, which has no value: pass --var {var}=VALUE")
                continue
            if existing.get(var) == value:
                self.out.in_place.append(f"variable {var}")
                continue
            exists = var in existing
            self.writes.set_variable(self.owner, self.name, var, value, exists=exists)
            self.out.changed(f"variable {var}", existed=exists)

    def ensure_environments(self, state: RepoState) -> None:
        protected = [e for e in state.environments if e in self.request.reviewer_environments]
        if state.reviewers and not protected and state.environments:
            protected = [state.environments[-1]]  # the last stage of the promotion order
        for env in state.environments:
            current = self.reads.environment(self.owner, self.name, env) if state.repo else None
            wanted = sorted((r["type"], r["id"]) for r in state.reviewers) if env in protected else []
            have = sorted(_reviewers_of(current)) if current else []
            if current is not None and (not wanted or have == wanted):
                # Settings someone added by hand (wait timers, branch policies) are left alone.
                self.out.in_place.append(f"environment {env}")
                continue
            body: dict[str, Any] = {}
            if wanted:
                body["reviewers"] = [{"type": t, "id": i} for t, i in wanted]
            self.writes.put_environment(self.owner, self.name, env, body)
            self.out.changed(f"environment {env}", existed=current is not None)

    def ensure_ruleset(self, state: RepoState) -> None:
        """Protect the branch with the `fleetstrap <branch>` ruleset (deploy keys and admins bypass it).

        Classic protection left by an earlier fleetstrap run would still reject the deploy-key pushes (both
        apply, and deploy keys can't bypass classic protection): when everything it sets can be carried into the
        ruleset (checks, review count), the ruleset takes it over and it is deleted; otherwise it is left and
        warned about, so nothing configured by hand is lost."""
        branch, owner, name = self.request.branch, self.owner, self.name
        self.report_unrequired_checks()
        checks = list(self.needs.checks)
        default = str(state.repo.get("default_branch") or branch) if state.repo else None
        label = f"ruleset '{rules.ruleset_name(branch)}' on {branch}"
        unavailable = (f"rulesets are not available for {owner}/{name} (private repositories need GitHub Pro, Team "
                       f"or Enterprise); {branch} is not protected")
        try:
            if state.repo is None:  # a repository created by this run has no rules yet
                self.write_ruleset(None, rules.build_ruleset(branch, default, checks,
                                                             self.request.required_approvals), label)
                return
            summaries = self.reads.rulesets(owner, name)
            classic_raw = self.reads.classic_protection(owner, name, branch)
        except GitHubError as exc:
            if exc.status in (403, 404):  # private repositories on free plans have neither
                self.out.warn(f"{unavailable}: {exc}")
                return
            raise
        if summaries is None:
            self.out.warn(unavailable)
            return
        classic = rules.read_classic(classic_raw) if classic_raw is not None else None
        carry = classic if classic is not None and classic.replaceable else rules.ClassicProtection((), 0, ())
        wanted = rules.build_ruleset(branch, default, [*checks, *(c for c in carry.checks if c not in checks)],
                                     max(self.request.required_approvals, carry.approvals))
        summary = next((r for r in summaries if r.get("name") == wanted["name"]
                        and r.get("source_type", "Repository") == "Repository"), None)
        current = self.reads.ruleset(owner, name, int(summary["id"])) if summary else None
        try:
            self.write_ruleset(current, wanted, label)
        except GitHubError as exc:
            if exc.status in (403, 404):
                self.out.warn(f"{unavailable}: {exc}")
                return
            raise
        if classic is None:
            return
        if classic.replaceable:
            self.writes.delete_classic_protection(owner, name, branch)
            self.out.updated.append(f"classic branch protection on {branch} (moved into the ruleset)")
        else:
            self.out.warn(f"classic branch protection on {branch} sets {', '.join(classic.blocking)}, which "
                          "fleetstrap does not carry into its ruleset; left alone, but it rejects the deploy-key "
                          "pushes of Flux image automation and the release workflow: move those settings into a "
                          "ruleset and delete it")

    def report_unrequired_checks(self) -> None:
        """Say which jobs are not made required checks, and why (the checks themselves: `needs.checks`)."""
        for skipped in self.needs.skipped_checks:
            self.out.warn(f"job {skipped!r} is not made a required check: its name is only known at run time")
        for workflow, jobs in self.needs.path_filtered:
            self.out.warn(f"jobs of workflow {workflow} ({', '.join(jobs)}) are not made required checks: it runs "
                          "only when its paths change, and a required check that never reports blocks the pull "
                          "request")

    def write_ruleset(self, current: dict[str, Any] | None, wanted: dict[str, Any], label: str) -> None:
        if current is None:
            self.writes.create_ruleset(self.owner, self.name, wanted)
            self.out.created.append(label)
            return
        merged = rules.merge_ruleset(current, wanted)
        if merged == rules.body_of(current):
            self.out.in_place.append(label)
        else:
            self.writes.update_ruleset(self.owner, self.name, int(current["id"]), merged)
            self.out.updated.append(label)
        if current.get("enforcement") != "active":
            self.out.warn(f"{label} has enforcement {current.get('enforcement')!r}; left as it is")


def _blob(key: str) -> str:
    return " ".join(key.split()[:2])


def _secret_values(request: PushRequest) -> tuple[tuple[str, str], ...]:
    from fleetstrap.redact import register_secret

    values = []
    for secret, env_name in request.secrets:
        value = os.environ.get(env_name, "")
        if not value:
            raise UserError(f"environment variable {env_name} (for secret {secret}) is not set or empty")
        register_secret(value)
        values.append((secret, value))
    return tuple(values)


_CLASSIC_NEEDS = {
    "repo": "create and administer a private repository (deploy keys, secrets, branch protection)",
    "workflow": "push files under .github/workflows",
}


def _check_scopes(me_scopes: tuple[str, ...], token: Token, *, private: bool, workflows: bool) -> None:
    have = set(me_scopes)
    missing = []
    if "repo" not in have and (private or "public_repo" not in have):
        missing.append("repo")
    if workflows and "workflow" not in have:
        missing.append("workflow")
    if missing:
        why = "; ".join(f"{m}: {_CLASSIC_NEEDS[m]}" for m in missing)
        raise RemoteError(f"the token from {token.source} is missing scopes: {', '.join(missing)} ({why})",
                          hint=f"gh auth refresh -s {','.join(missing)}, or create a token with those scopes")


def _reviewers_of(env: dict[str, Any]) -> list[tuple[str, int]]:
    out = []
    for rule in env.get("protection_rules") or []:
        if rule.get("type") == "required_reviewers":
            for r in rule.get("reviewers") or []:
                rev = r.get("reviewer") or {}
                out.append((str(r.get("type")), int(rev.get("id", 0))))
    return out
