"""push_repo: preflight everything (token, scopes, history, key conflicts) before the first change, then
ensure each piece idempotently. In dry-run the same code path records each write instead of doing it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from fleetstrap import gitrepo, output, trace
from fleetstrap.errors import RemoteError, UserError

from . import DEFAULT_ENVIRONMENTS, PushReport, PushRequest, gitpush, keys, rules
from .auth import Token, clean_url, git_env, has_credentials, resolve_token
from .github_api import ApiSettings, GitHubApi
from .workflows import FleetInfo, WorkflowNeeds, read_fleet, read_workflow_needs

T = TypeVar("T")


@dataclass
class Recorder:
    """Collects what happened (or, in dry-run, what would happen)."""

    dry_run: bool
    planned: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    in_place: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    private_keys: list[tuple[str, str]] = field(default_factory=list)

    def change(self, op: str, fn: Callable[[], T]) -> T | None:
        self.planned.append(op)
        if self.dry_run:
            return None
        return fn()

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        output.warn(message)

    def report(self, *, repo_url: str, remote_url: str, branch: str, commit: str | None) -> PushReport:
        return PushReport(repo_url=repo_url, remote_url=remote_url, branch=branch, commit=commit,
                          dry_run=self.dry_run, created=tuple(self.created), updated=tuple(self.updated),
                          in_place=tuple(self.in_place), planned=tuple(self.planned),
                          warnings=tuple(self.warnings), private_keys=tuple(self.private_keys))


def push_repo(request: PushRequest) -> PushReport:
    root = request.path.resolve()
    if not root.is_dir():
        raise UserError(f"{request.path} is not a directory")
    fleet = read_fleet(root)
    needs = read_workflow_needs(root)
    rec = Recorder(request.dry_run)
    with trace.stage("push", dry_run=request.dry_run, generic=bool(request.remote)):
        if request.remote:
            return _push_generic(request, root, rec)
        return _push_github(request, root, fleet, needs, rec)


# ---------------------------------------------------------------- git, shared by both paths
@dataclass(frozen=True)
class GitTarget:
    url: str  # clean
    env: dict[str, str] = field(repr=False)


def _preflight_history(request: PushRequest, root: Path, target: GitTarget, rec: Recorder,
                       *, remote_exists: bool) -> gitpush.Relation:
    if not remote_exists:
        return "empty"
    local = gitpush.read_local(root)
    with output.progress(f"reading {target.url}"), trace.stage("git.ls-remote"):
        remote = gitpush.read_remote_head(root, target.url, request.branch, target.env)
    rel = gitpush.relation(root, local.head, remote, target.url, request.branch)
    if rel == "unknown":
        if rec.dry_run or not local.has_git:
            if not local.has_git:
                # No local history at all, but the remote has some: it can't contain ours.
                raise RemoteError(f"{target.url} branch {request.branch} holds history that is not ours; "
                                  "refusing to push", hint="push to a new or empty repository")
            rec.planned.append(f"git fetch {request.remote_name} {request.branch} (to compare history)")
            return rel
        _ensure_origin(request, root, target, rec)
        with output.progress(f"fetching {target.url}"), trace.stage("git.fetch"):
            gitpush.fetch(root, request.remote_name, target.url, request.branch, target.env)
        rel = gitpush.relation(root, local.head, remote, target.url, request.branch)
    if rel == "behind" and local.dirty:
        raise RemoteError(f"{target.url} branch {request.branch} is ahead of the local branch; "
                          "pull it before publishing new changes")
    return rel


def _ensure_origin(request: PushRequest, root: Path, target: GitTarget, rec: Recorder) -> None:
    if rec.dry_run:
        return
    state = gitpush.ensure_remote(root, request.remote_name, target.url)
    if state != "in place":
        what = f"git remote {request.remote_name} -> {target.url}"
        (rec.created if state == "created" else rec.updated).append(what)


def _apply_git(request: PushRequest, root: Path, target: GitTarget, rel: gitpush.Relation,
               rec: Recorder) -> str | None:
    local = gitpush.read_local(root)
    with trace.stage("git.commit"):
        if not local.has_git:
            rec.change(f"git init -b {request.branch}", lambda: gitrepo.ensure_repo(root, request.branch))
        elif local.branch != request.branch:
            rec.change(f"git branch -m {local.branch} {request.branch}",
                       lambda: gitpush.ensure_branch(root, request.branch))
        sha: str | None = None
        if local.dirty or local.head is None:
            sha = rec.change(f"git add -A && git commit -m {request.message!r}",
                             lambda: gitpush.ensure_commit(root, request.branch, request.message))
        if sha:
            rec.created.append(f"commit {sha[:12]}")
        elif not rec.dry_run:
            rec.in_place.append("commit (nothing to commit)")
    head = gitpush.read_local(root).head if (root / ".git").exists() else None
    if rec.dry_run:
        rec.planned.append(f"git remote {request.remote_name} -> {target.url} (set if different)")
    else:
        _ensure_origin(request, root, target, rec)
    if rel == "same" and not sha:
        rec.in_place.append(f"{request.branch} pushed (remote up to date)")
        return head
    if rel == "behind" and not sha:
        rec.in_place.append(f"{request.branch} (remote already contains this commit)")
        return head
    if head is None and not rec.dry_run:
        raise UserError(f"{root} has nothing to commit and no commit to push")

    def do_push() -> None:
        with output.progress(f"pushing {request.branch} to {target.url}"), trace.stage("git.push"):
            gitpush.push(root, request.remote_name, target.url, request.branch, target.env)

    rec.change(f"git push {request.remote_name} HEAD:refs/heads/{request.branch} (no force)", do_push)
    if not rec.dry_run:
        rec.created.append(f"pushed {request.branch} to {target.url}")
    return head


def _push_generic(request: PushRequest, root: Path, rec: Recorder) -> PushReport:
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
    target = GitTarget(url, git_env(url, token, ssh_key=None if https else ssh_key,
                                    known_hosts=None if https else known))
    with trace.stage("git.preflight"):
        rel = _preflight_history(request, root, target, rec, remote_exists=True)
    head = _apply_git(request, root, target, rel, rec)
    return rec.report(repo_url=url, remote_url=url, branch=request.branch, commit=head)


# ---------------------------------------------------------------- GitHub
@dataclass(frozen=True)
class Plan:
    owner: str
    name: str
    org: bool
    repo: dict[str, Any] | None  # None: to be created
    key_titles: tuple[tuple[str, str], ...]  # (cluster, title)
    existing_keys: tuple[dict[str, Any], ...]
    secret_values: tuple[tuple[str, str], ...] = field(repr=False)
    environments: tuple[str, ...]
    reviewers: tuple[dict[str, Any], ...]


def _push_github(request: PushRequest, root: Path, fleet: FleetInfo, needs: WorkflowNeeds,
                 rec: Recorder) -> PushReport:
    owner = request.owner or fleet.owner
    name = request.repo or fleet.fleet_name
    web = request.github_url.rstrip("/")
    host = urlsplit(web).netloc or "github.com"
    token = resolve_token(request.token_env, host=host)
    secret_values = _secret_values(request)
    _check_release_key_inputs(request, fleet, needs)
    if token is None:
        if not request.dry_run:
            raise UserError("no GitHub token: set GH_TOKEN or GITHUB_TOKEN, pass --token-env NAME, "
                            "or log in with `gh auth login`")
        rec.warn("no GitHub token: listing the plan for a repository that does not exist yet")
        api = None
    else:
        api = GitHubApi(token, ApiSettings(github_url=web,
                                           seconds_between_requests=request.seconds_between_requests,
                                           seconds_between_writes=request.seconds_between_writes,
                                           max_rate_limit_wait=request.max_rate_limit_wait))
    with trace.stage("github.preflight"), output.progress("checking the token and the repository"):
        plan = _preflight(request, fleet, needs, api, owner, name, secret_values)
    clone_url = str(plan.repo["clone_url"]) if plan.repo else f"{web}/{owner}/{name}.git"
    target = GitTarget(clone_url, git_env(clone_url, token) if token else {})
    with trace.stage("git.preflight"):
        rel = _preflight_history(request, root, target, rec, remote_exists=plan.repo is not None)

    # ---- changes start here; everything that could refuse has been checked above
    repo = plan.repo
    with trace.stage("github.repository"):
        if repo is None:
            path = f"/orgs/{owner}/repos" if plan.org else "/user/repos"
            vis = "private" if request.private else "public"
            with output.progress(f"creating {owner}/{name}"):
                repo = rec.change(f"POST {path} (create {vis} repository {owner}/{name})",
                                  _later(api, "create_repo", owner, name, org=plan.org, private=request.private))
            rec.created.append(f"repository {owner}/{name}")
            if repo is not None:
                clone_url = str(repo["clone_url"])
                target = GitTarget(clone_url, git_env(clone_url, token))
        else:
            rec.in_place.append(f"repository {owner}/{name}")
    head = _apply_git(request, root, target, rel, rec)
    with trace.stage("github.deploy_keys"), output.progress("deploy keys"):
        _ensure_keys(request, api, plan, fleet, rec)
    secret_names = api.secret_names(plan.owner, plan.name) if api and plan.repo else set()
    if keys.RELEASE_KEY_SECRET in needs.secrets:
        with trace.stage("github.release_key"), output.progress("release workflow deploy key"):
            _ensure_release_key(request, api, plan, secret_names, rec)
    with trace.stage("github.secrets"), output.progress("Actions secrets and variables"):
        _ensure_secrets(api, plan, needs, secret_names, rec)
        _ensure_variables(request, api, plan, fleet, needs, rec)
    with trace.stage("github.environments"), output.progress("environments"):
        _ensure_environments(api, plan, request, rec)
    if request.protect_branch:
        with trace.stage("github.branch_protection"), output.progress("branch ruleset"):
            _ensure_ruleset(request, api, plan, needs, rec)
    html = str(repo["html_url"]) if repo else f"{web}/{owner}/{name}"
    return rec.report(repo_url=html, remote_url=target.url, branch=request.branch, commit=head)


def _later(api: GitHubApi | None, method: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    """A GitHub write to run later (never, in dry-run, where there may be no client)."""
    return lambda: getattr(_require(api), method)(*args, **kwargs)


def _new_key(owner: str, name: str, cluster: str, rotate: bool) -> keys.DeployKey:
    return keys.ensure_deploy_key(owner, name, cluster, rotate=rotate)[0]


def _require(api: GitHubApi | None) -> GitHubApi:
    if api is None:  # only reachable outside dry-run, where a token is mandatory
        raise UserError("no GitHub token")
    return api


def _secret_values(request: PushRequest) -> tuple[tuple[str, str], ...]:
    values = []
    for secret, env_name in request.secrets:
        value = os.environ.get(env_name, "")
        if not value:
            raise UserError(f"environment variable {env_name} (for secret {secret}) is not set or empty")
        from fleetstrap.redact import register_secret

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


def _probe_fine_grained(api: GitHubApi, owner: str, name: str, repo: dict[str, Any]) -> None:
    """Fine-grained tokens have no scope header: probe the permissions push needs with cheap reads."""
    missing = []
    perms = repo.get("permissions") or {}
    if not perms.get("push"):
        missing.append("Contents: write")
    if not perms.get("admin"):
        missing.append("Administration: write")
    base = f"/repos/{quote(owner)}/{quote(name)}"
    for path, perm in ((f"{base}/actions/secrets/public-key", "Secrets: write"),
                       (f"{base}/actions/variables", "Variables: write")):
        try:
            api.raw(f"GET {path}", "GET", path)
        except RemoteError as exc:
            if "(403" in str(exc) or "(404" in str(exc):
                missing.append(perm)
            else:
                raise
    if missing:
        raise RemoteError(f"the token from {api.token.source} lacks permissions on {owner}/{name}: "
                          f"{', '.join(missing)} (Workflows: write is needed too)")


def _preflight(request: PushRequest, fleet: FleetInfo, needs: WorkflowNeeds, api: GitHubApi | None,
               owner: str, name: str, secret_values: tuple[tuple[str, str], ...]) -> Plan:
    titles = tuple((c, f"fleetstrap-{c}") for c in fleet.clusters)
    envs = _environment_names(request, fleet, needs)
    if api is None:
        return Plan(owner, name, org=False, repo=None, key_titles=titles, existing_keys=(),
                    secret_values=secret_values, environments=envs, reviewers=())
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
    if me.scopes is not None:
        private = bool(repo["private"]) if repo else request.private
        _check_scopes(me.scopes, api.token, private=private, workflows=needs.has_workflows)
    elif repo is not None:
        _probe_fine_grained(api, owner, name, repo)
    existing: list[dict[str, Any]] = []
    if repo is not None:
        existing = api.list_keys(owner, name)
        _check_key_conflicts(request, titles, existing, owner, name)
    reviewers = tuple(_resolve_reviewer(api, r) for r in request.reviewers)
    return Plan(owner, name, org=org, repo=repo, key_titles=titles, existing_keys=tuple(existing),
                secret_values=secret_values, environments=envs, reviewers=reviewers)


def _check_key_conflicts(request: PushRequest, titles: tuple[tuple[str, str], ...],
                         existing: list[dict[str, Any]], owner: str, name: str) -> None:
    if request.rotate_keys:
        return
    by_title = {k["title"]: k for k in existing}
    for cluster, title in titles:
        remote = by_title.get(title)
        if remote is None:
            continue
        local = keys.find_deploy_key(owner, name, cluster)
        if local is None or _blob(str(remote["key"])) != local.public_blob:
            where = "no private key is stored here" if local is None else "it differs from the stored key"
            raise RemoteError(f"deploy key {title} already exists on {owner}/{name} and {where}",
                              hint="rerun with --rotate-keys to replace it (the cluster then needs bootstrap)")


def _blob(key: str) -> str:
    return " ".join(key.split()[:2])


def _resolve_reviewer(api: GitHubApi, who: str) -> dict[str, Any]:
    if "/" in who:
        org, slug = who.split("/", 1)
        data = api.raw(f"GET /orgs/{org}/teams/{slug}", "GET", f"/orgs/{quote(org)}/teams/{quote(slug)}",
                       missing_ok=True)
        kind = "Team"
    else:
        data = api.raw(f"GET /users/{who}", "GET", f"/users/{quote(who)}", missing_ok=True)
        kind = "User"
    if data is None:
        raise RemoteError(f"reviewer {who} not found on GitHub")
    return {"type": kind, "id": int(data["id"]), "name": who}


def _environment_names(request: PushRequest, fleet: FleetInfo, needs: WorkflowNeeds) -> tuple[str, ...]:
    if request.environments is not None:
        return request.environments
    names: list[str] = []
    for e in (*needs.environments, *fleet.environments):
        if e not in names:
            names.append(e)
    return tuple(names) or DEFAULT_ENVIRONMENTS


def _ensure_keys(request: PushRequest, api: GitHubApi | None, plan: Plan, fleet: FleetInfo,
                 rec: Recorder) -> None:
    read_only = not fleet.image_automation  # Flux image automation pushes tag bumps with this key
    by_title = {k["title"]: k for k in plan.existing_keys}
    base = f"/repos/{plan.owner}/{plan.name}/keys"
    for cluster, title in plan.key_titles:
        path = keys.deploy_key_path(plan.owner, plan.name, cluster)
        local = None if request.rotate_keys else keys.find_deploy_key(plan.owner, plan.name, cluster)
        if local is None:
            verb = "rotate" if request.rotate_keys else "generate"
            local = rec.change(f"{verb} ed25519 key for {cluster} at {path} (0600)",
                               partial(_new_key, plan.owner, plan.name, cluster, request.rotate_keys))
        remote = by_title.get(title)
        same = local is not None and remote is not None and _blob(str(remote["key"])) == local.public_blob
        if same and remote is not None and bool(remote["read_only"]) == read_only:
            rec.in_place.append(f"deploy key {title}")
        else:
            if remote is not None:
                rec.change(f"DELETE {base}/{remote['id']} (replace deploy key {title})",
                           _later(api, "delete_key", plan.owner, plan.name, int(remote["id"])))
            mode = "read-only" if read_only else "read-write"
            rec.change(f"POST {base} (deploy key {title}, {mode})",
                       _later(api, "create_key", plan.owner, plan.name, title,
                              _blob(local.public) if local else "", read_only))
            (rec.updated if remote is not None else rec.created).append(f"deploy key {title}")
        if request.print_private_keys and local is not None:
            rec.private_keys.append((cluster, local.private))


def _check_release_key_inputs(request: PushRequest, fleet: FleetInfo, needs: WorkflowNeeds) -> None:
    if keys.RELEASE_KEY_SECRET not in needs.secrets:
        return
    if any(name == keys.RELEASE_KEY_SECRET for name, _ in request.secrets):
        raise UserError(f"secret {keys.RELEASE_KEY_SECRET} is managed by push (the release workflow's deploy key); "
                        "drop --secret for it (--rotate-keys replaces it)")
    if any(f"fleetstrap-{cluster}" == keys.RELEASE_KEY_TITLE for cluster in fleet.clusters):
        raise UserError(f"a cluster named 'release' would share deploy key title {keys.RELEASE_KEY_TITLE} "
                        "with the release workflow's key; rename the cluster")


def _ensure_release_key(request: PushRequest, api: GitHubApi | None, plan: Plan, secret_names: set[str],
                        rec: Recorder) -> None:
    """The release workflow's write deploy key: registered read-write, private half only in the secret.

    The secret can't be read back, so the pair is only (re)made when the key or the secret is missing, the
    key is read-only, or --rotate-keys asks for it; an existing key with its secret is left alone."""
    title, secret = keys.RELEASE_KEY_TITLE, keys.RELEASE_KEY_SECRET
    remote = next((k for k in plan.existing_keys if k["title"] == title), None)
    has_secret = secret in secret_names
    if remote is not None and not remote["read_only"] and has_secret and not request.rotate_keys:
        rec.in_place += [f"deploy key {title}", f"secret {secret}"]
        return
    base = f"/repos/{plan.owner}/{plan.name}"
    pair = rec.change(f"generate ed25519 key {title} (in memory only)",
                      partial(keys.build_release_key, plan.owner, plan.name))
    private, public = pair if pair else ("", "")
    if remote is not None:
        rec.change(f"DELETE {base}/keys/{remote['id']} (replace deploy key {title})",
                   _later(api, "delete_key", plan.owner, plan.name, int(remote["id"])))
    rec.change(f"POST {base}/keys (deploy key {title}, read-write)",
               _later(api, "create_key", plan.owner, plan.name, title, _blob(public), False))
    (rec.updated if remote is not None else rec.created).append(f"deploy key {title}")
    rec.change(f"PUT {base}/actions/secrets/{secret} (the key's private half, sealed with the repo key)",
               _later(api, "set_secret", plan.owner, plan.name, secret, private))
    (rec.updated if has_secret else rec.created).append(f"secret {secret}")


def _ensure_secrets(api: GitHubApi | None, plan: Plan, needs: WorkflowNeeds, existing: set[str],
                    rec: Recorder) -> None:
    given = dict(plan.secret_values)
    managed = {keys.RELEASE_KEY_SECRET} if keys.RELEASE_KEY_SECRET in needs.secrets else set()
    for secret in sorted((set(needs.secrets) | set(given)) - managed):
        if secret in given:
            rec.change(f"PUT /repos/{plan.owner}/{plan.name}/actions/secrets/{secret} (sealed with the repo key)",
                       _later(api, "set_secret", plan.owner, plan.name, secret, given[secret]))
            (rec.updated if secret in existing else rec.created).append(f"secret {secret}")
        elif secret in existing:
            rec.in_place.append(f"secret {secret}")
        else:
            rec.warn(f"the workflows use secret {secret}, which is not set: pass --secret {secret}=ENV_VAR")


def _ensure_variables(request: PushRequest, api: GitHubApi | None, plan: Plan, fleet: FleetInfo,
                      needs: WorkflowNeeds, rec: Recorder) -> None:
    existing = api.variables(plan.owner, plan.name) if api and plan.repo else {}
    given = dict(request.variables)
    base = f"/repos/{plan.owner}/{plan.name}/actions/variables"
    for var in sorted(set(needs.variables) | set(given)):
        # A variable named after a fleet answer (vars.REGISTRY -> registry) takes that answer's value.
        value = given.get(var)
        if value is None:
            answer = fleet.answer(var.lower())
            value = None if answer is None or isinstance(answer, dict | list) else str(answer)
        if value is None:
            if var not in existing:
                rec.warn(f"the workflows use variable {var}, which has no value: pass --var {var}=VALUE")
            continue
        if existing.get(var) == value:
            rec.in_place.append(f"variable {var}")
            continue
        exists = var in existing
        op = f"PATCH {base}/{var}" if exists else f"POST {base} ({var})"
        rec.change(op, _later(api, "set_variable", plan.owner, plan.name, var, value, exists=exists))
        (rec.updated if exists else rec.created).append(f"variable {var}")


def _ensure_environments(api: GitHubApi | None, plan: Plan, request: PushRequest, rec: Recorder) -> None:
    protected = [e for e in plan.environments if e in request.reviewer_environments]
    if plan.reviewers and not protected and plan.environments:
        protected = [plan.environments[-1]]  # the last stage of the promotion order
    for env in plan.environments:
        path = f"/repos/{quote(plan.owner)}/{quote(plan.name)}/environments/{quote(env, safe='')}"
        current = (api.raw(f"GET environments/{env}", "GET", path, missing_ok=True)
                   if api and plan.repo else None)
        wanted = sorted((r["type"], r["id"]) for r in plan.reviewers) if env in protected else []
        have = sorted(_reviewers_of(current)) if current else []
        if current is not None and (not wanted or have == wanted):
            # Settings someone added by hand (wait timers, branch policies) are left alone.
            rec.in_place.append(f"environment {env}")
            continue
        body: dict[str, Any] = {}
        if wanted:
            body["reviewers"] = [{"type": t, "id": i} for t, i in wanted]
        who = f" with reviewers {', '.join(r['name'] for r in plan.reviewers)}" if wanted else ""
        rec.change(f"PUT {path}{who}", _later(api, "raw", f"PUT environments/{env}", "PUT", path, body))
        (rec.updated if current is not None else rec.created).append(f"environment {env}")


def _reviewers_of(env: dict[str, Any]) -> list[tuple[str, int]]:
    out = []
    for rule in env.get("protection_rules") or []:
        if rule.get("type") == "required_reviewers":
            for r in rule.get("reviewers") or []:
                rev = r.get("reviewer") or {}
                out.append((str(r.get("type")), int(rev.get("id", 0))))
    return out


def _ensure_ruleset(request: PushRequest, api: GitHubApi | None, plan: Plan, needs: WorkflowNeeds,
                   rec: Recorder) -> None:
    """Protect the branch with the `fleetstrap <branch>` ruleset (deploy keys and admins bypass it).

    Classic protection left by an earlier fleetstrap run would still reject the deploy-key pushes (both apply,
    and deploy keys can't bypass classic protection): when everything it sets can be carried into the ruleset
    (checks, review count), the ruleset takes it over and it is deleted; otherwise it is left and warned about,
    so nothing configured by hand is lost."""
    branch, owner, name = request.branch, plan.owner, plan.name
    checks = _required_checks(needs, rec)
    base = f"/repos/{quote(owner)}/{quote(name)}"
    default = str(plan.repo.get("default_branch") or branch) if plan.repo else None
    label = f"ruleset '{rules.ruleset_name(branch)}' on {branch}"
    unavailable = (f"rulesets are not available for {owner}/{name} (private repositories need GitHub Pro, Team "
                   f"or Enterprise); {branch} is not protected")
    classic_path = f"{base}/branches/{quote(branch)}/protection"
    try:
        if api is None or plan.repo is None:  # a repository created by this run has no rules yet
            _write_ruleset(api, plan, None, rules.build_ruleset(branch, default, checks, request.required_approvals),
                           label, rec)
            return
        summaries = api.rulesets(owner, name)
        classic_raw = api.raw(f"GET {classic_path}", "GET", classic_path, missing_ok=True)
    except RemoteError as exc:
        if "(403" in str(exc) or "(404" in str(exc):  # private repositories on free plans have neither
            rec.warn(f"{unavailable}: {exc}")
            return
        raise
    if summaries is None:
        rec.warn(unavailable)
        return
    classic = rules.read_classic(classic_raw) if classic_raw is not None else None
    carry = classic if classic is not None and classic.replaceable else rules.ClassicProtection((), 0, ())
    wanted = rules.build_ruleset(branch, default, [*checks, *(c for c in carry.checks if c not in checks)],
                                 max(request.required_approvals, carry.approvals))
    summary = next((r for r in summaries if r.get("name") == wanted["name"]
                    and r.get("source_type", "Repository") == "Repository"), None)
    current = api.ruleset(owner, name, int(summary["id"])) if summary else None
    try:
        _write_ruleset(api, plan, current, wanted, label, rec)
    except RemoteError as exc:
        if "(403" in str(exc) or "(404" in str(exc):
            rec.warn(f"{unavailable}: {exc}")
            return
        raise
    if classic is None:
        return
    if classic.replaceable:
        rec.change(f"DELETE {classic_path} (classic protection, replaced by {label})",
                   _later(api, "raw", f"DELETE {classic_path}", "DELETE", classic_path))
        rec.updated.append(f"classic branch protection on {branch} (moved into the ruleset)")
    else:
        rec.warn(f"classic branch protection on {branch} sets {', '.join(classic.blocking)}, which fleetstrap does "
                 "not carry into its ruleset; left alone, but it rejects the deploy-key pushes of Flux image "
                 "automation and the release workflow: move those settings into a ruleset and delete it")


def _required_checks(needs: WorkflowNeeds, rec: Recorder) -> list[str]:
    for skipped in needs.skipped_checks:
        rec.warn(f"job {skipped!r} is not made a required check: its name is only known at run time")
    for workflow, jobs in needs.path_filtered:
        rec.warn(f"jobs of workflow {workflow} ({', '.join(jobs)}) are not made required checks: it runs only "
                 "when its paths change, and a required check that never reports blocks the pull request")
    return list(needs.checks)


def _write_ruleset(api: GitHubApi | None, plan: Plan, current: dict[str, Any] | None, wanted: dict[str, Any],
                   label: str, rec: Recorder) -> None:
    base = f"/repos/{quote(plan.owner)}/{quote(plan.name)}/rulesets"
    if current is None:
        checks = ", ".join(rules.required_checks(wanted)) or "none"
        rec.change(f"POST {base} ({label}; required checks: {checks}; deploy keys and admins bypass)",
                   _later(api, "create_ruleset", plan.owner, plan.name, wanted))
        rec.created.append(label)
        return
    merged = rules.merge_ruleset(current, wanted)
    if merged == rules.body_of(current):
        rec.in_place.append(label)
    else:
        rid = int(current["id"])
        rec.change(f"PUT {base}/{rid} ({label}: add what is missing)",
                   _later(api, "update_ruleset", plan.owner, plan.name, rid, merged))
        rec.updated.append(label)
    if current.get("enforcement") != "active":
        rec.warn(f"{label} has enforcement {current.get('enforcement')!r}; left as it is")
