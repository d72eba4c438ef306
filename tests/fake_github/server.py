# ruff: noqa: ARG001  (route handlers share one signature; most ignore some arguments)
"""FakeGitHub: GitHub's REST API (the operations push uses) plus git smart HTTP, on loopback.

Every request and every response is checked against the trimmed OpenAPI description; a mismatch is
recorded in `violations` (tests assert it stays empty). State is kept in plain dicts the tests inspect:
repos, deploy keys, Actions secrets (decrypted with the repo's libsodium keypair), variables, branch
protection, rulesets, environments. Faults can be injected: any status for the next matching request, rate limits.

Git pushes to a repo are checked like GitHub does (a pre-receive hook, see prereceive.py): classic protection
(GH006; repo admins pass unless enforce_admins) and active branch rulesets (GH013; bypass actors pass).
Git is served over HTTP only, so a deploy key is simulated: basic auth with user `x-deploy-key` and the
key's base64 blob as password; read-only keys can't push, read-write keys count as the `DeployKey` actor.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from nacl.public import PrivateKey, SealedBox

from .spec import Operation, Spec

API_PREFIX = "/api/v3"
_PRERECEIVE = Path(__file__).with_name("prereceive.py")
DEPLOY_KEY_USER = "x-deploy-key"
PLAN_GATE = "Upgrade to GitHub Pro or make this repository public to enable this feature."
_DOCS = "https://docs.github.com/rest"


@dataclass
class TokenInfo:
    login: str
    scopes: str | None = "repo, workflow"  # None: a fine-grained token (no X-OAuth-Scopes header)
    admin: bool = True


@dataclass(frozen=True)
class Pusher:
    """Who talks to the git endpoint: a token's user, or a deploy key of the repository."""

    login: str
    admin: bool = False
    deploy_key: dict[str, Any] | None = None


@dataclass
class FakeRepo:
    owner: str
    name: str
    id: int
    private: bool
    bare: Path
    keys: dict[int, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # name -> decrypted value
    variables: dict[str, str] = field(default_factory=dict)
    protection: dict[str, Any] | None = None
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    rulesets: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> ruleset as POSTed/PUT
    # number -> {number, id, title, body, head, base, draft, state, labels: [str], comments: [str]}
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    plan_gated: bool = False  # a private repo on a free plan: no protection, no rulesets (403)
    secret_key: PrivateKey = field(default_factory=PrivateKey.generate)

    def head(self, branch: str = "main") -> str | None:
        done = subprocess.run(["git", "-C", str(self.bare), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
                              capture_output=True, text=True, check=False)
        return done.stdout.strip() or None

    def log(self, branch: str = "main") -> list[str]:
        done = subprocess.run(["git", "-C", str(self.bare), "rev-list", f"refs/heads/{branch}"],
                              capture_output=True, text=True, check=False)
        return done.stdout.split()


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


class FakeGitHub:
    def __init__(self, root: Path, spec: Spec | None = None) -> None:
        self.root = root
        self.spec = spec or Spec()
        self.git_root = root / "git"
        self.git_root.mkdir(parents=True, exist_ok=True)
        self.users: dict[str, dict[str, Any]] = {}
        self.teams: dict[tuple[str, str], int] = {}
        self.tokens: dict[str, TokenInfo] = {}
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.violations: list[str] = []
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) for API calls
        self.git_logins: list[str] = []
        self.faults: list[Fault] = []
        self.free_plan: set[str] = set()  # owners whose private repos get neither protection nor rulesets
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.api = self.url + API_PREFIX
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-github", daemon=True)

    # ---------------------------------------------------------------- lifecycle and setup
    def start(self) -> FakeGitHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    def add_user(self, login: str, *, org: bool = False) -> None:
        self.users[login] = {"id": next(self._ids), "type": "Organization" if org else "User"}

    def add_team(self, org: str, slug: str) -> int:
        self.teams[(org, slug)] = next(self._ids)
        return self.teams[(org, slug)]

    def add_token(self, token: str, login: str, scopes: str | None = "repo, workflow") -> None:
        self.tokens[token] = TokenInfo(login, scopes)

    def create_repo(self, owner: str, name: str, *, private: bool = True) -> FakeRepo:
        bare = self.git_root / owner / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
        subprocess.run(["git", "-C", str(bare), "config", "http.receivepack", "true"], check=True)
        hook = bare / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{_PRERECEIVE}'\n", encoding="utf-8")
        hook.chmod(0o755)
        repo = FakeRepo(owner, name, next(self._ids), private, bare, plan_gated=private and owner in self.free_plan)
        self.repos[(owner.lower(), name.lower())] = repo
        return repo

    def repo(self, owner: str, name: str) -> FakeRepo | None:
        return self.repos.get((owner.lower(), name.lower()))

    def fail(self, method: str, path_regex: str, status: int, message: str, *, times: int = 1,
             headers: dict[str, str] | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        body: dict[str, Any] = {"message": message, "documentation_url": _DOCS}
        if errors is not None:
            body["errors"] = errors
        self.faults.append(Fault(method, re.compile(path_regex), status, body, headers or {}, times))

    def rate_limit(self, *, reset_in: float, times: int = 1) -> None:
        reset = int(time.time() + reset_in) + 1
        self.fail(".*", ".*", 403, "API rate limit exceeded for user ID 1.", times=times,
                  headers={"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
                           "X-RateLimit-Reset": str(reset), "X-RateLimit-Resource": "core"})

    def writes(self) -> list[tuple[str, str, int]]:
        return [r for r in self.requests if r[0] in {"POST", "PUT", "PATCH", "DELETE"}]

    # ---------------------------------------------------------------- objects
    def _obj(self, schema: str, **overlay: Any) -> dict[str, Any]:
        obj = self.spec.synth(self.spec.schema(schema))
        assert isinstance(obj, dict)
        obj.update(overlay)
        return obj

    def user_obj(self, login: str, schema: str = "simple-user") -> dict[str, Any]:
        info = self.users[login]
        return self._obj(schema, login=login, id=info["id"], type=info["type"], url=f"{self.api}/users/{login}",
                         html_url=f"{self.url}/{login}")

    def repo_obj(self, r: FakeRepo, token: TokenInfo) -> dict[str, Any]:
        full = f"{r.owner}/{r.name}"
        admin = token.admin
        return self._obj(
            "full-repository", id=r.id, name=r.name, full_name=full, private=r.private,
            visibility="private" if r.private else "public", owner=self.user_obj(r.owner),
            html_url=f"{self.url}/{full}", url=f"{self.api}/repos/{full}", clone_url=f"{self.url}/{full}.git",
            default_branch="main", permissions={"admin": admin, "maintain": admin, "push": True, "triage": True,
                                                "pull": True})

    # ---------------------------------------------------------------- API
    def handle_api(self, method: str, path: str, query: dict[str, list[str]], body: Any,
                   token: TokenInfo) -> tuple[int, Any, dict[str, str]]:
        found = self.spec.find(method, path)
        assert found is not None
        op, params = found
        p = {k: unquote(v) for k, v in params.items()}
        key = (method, op.template)
        handler = _ROUTES.get(key)
        if handler is None:
            self.violations.append(f"no fake implementation for {method} {op.template}")
            return 501, {"message": "not implemented", "documentation_url": _DOCS}, {}
        return handler(self, p, query, body, token)


def _err(status: int, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"message": message, "documentation_url": _DOCS}, {}


def _get_user(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    return 200, gh.user_obj(t.login, "private-user") | {"user_view_type": "private"}, {}


def _get_users(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    if p["username"] not in gh.users:
        return _err(404, "Not Found")
    return 200, gh.user_obj(p["username"], "public-user") | {"user_view_type": "public"}, {}


def _get_team(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    tid = gh.teams.get((p["org"], p["team_slug"]))
    if tid is None:
        return _err(404, "Not Found")
    org = gh._obj("team-organization", login=p["org"], id=gh.users[p["org"]]["id"])
    return 200, gh._obj("team-full", id=tid, slug=p["team_slug"], name=p["team_slug"], organization=org), {}


def _create_repo(gh: FakeGitHub, owner: str, b: dict[str, Any], t: TokenInfo) -> Any:
    if gh.repo(owner, b["name"]) is not None:
        return 422, {"message": "Repository creation failed.", "documentation_url": _DOCS,
                     "errors": [{"resource": "Repository", "code": "custom", "field": "name",
                                 "message": "name already exists on this account"}]}, {}
    r = gh.create_repo(owner, b["name"], private=bool(b.get("private", False)))
    return 201, gh.repo_obj(r, t), {}


def _post_user_repos(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    return _create_repo(gh, t.login, b, t)


def _post_org_repos(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    if gh.users.get(p["org"], {}).get("type") != "Organization":
        return _err(404, "Not Found")
    return _create_repo(gh, p["org"], b, t)


def _repo_or_404(gh: FakeGitHub, p: dict[str, str]) -> FakeRepo | None:
    return gh.repo(p["owner"], p["repo"])


def _get_repo(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    return _err(404, "Not Found") if r is None else (200, gh.repo_obj(r, t), {})


def _key_obj(gh: FakeGitHub, r: FakeRepo, k: dict[str, Any]) -> dict[str, Any]:
    return gh._obj("deploy-key", id=k["id"], key=k["key"], title=k["title"], read_only=k["read_only"],
                   url=f"{gh.api}/repos/{r.owner}/{r.name}/keys/{k['id']}", verified=True,
                   created_at="2024-01-01T00:00:00Z", enabled=True, added_by=None, last_used=None)


def _get_keys(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    return 200, [_key_obj(gh, r, k) for k in r.keys.values()], {}


def _post_key(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    blob = " ".join(str(b["key"]).split()[:2])
    for repo in gh.repos.values():  # GitHub: a deploy key may be used by one repository only
        if any(k["key"] == blob for k in repo.keys.values()):
            return 422, {"message": "Validation Failed", "documentation_url": _DOCS,
                         "errors": [{"resource": "PublicKey", "code": "custom", "field": "key",
                                     "message": "key is already in use"}]}, {}
    kid = next(gh._ids)
    r.keys[kid] = {"id": kid, "key": blob, "title": b.get("title", ""), "read_only": bool(b.get("read_only", False))}
    return 201, _key_obj(gh, r, r.keys[kid]), {}


def _delete_key(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None or int(p["key_id"]) not in r.keys:
        return _err(404, "Not Found")
    del r.keys[int(p["key_id"])]
    return 204, None, {}


def _get_secrets(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    items = [{"name": n, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}
             for n in sorted(r.secrets)]
    return 200, {"total_count": len(items), "secrets": items}, {}


def _get_public_key(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    pub = base64.b64encode(bytes(r.secret_key.public_key)).decode()
    return 200, {"key_id": f"key-{r.id}", "key": pub}, {}


def _put_secret(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    if b.get("key_id") != f"key-{r.id}":
        return _err(422, "Bad key_id")
    try:
        value = SealedBox(r.secret_key).decrypt(base64.b64decode(b["encrypted_value"])).decode()
    except Exception:
        return _err(422, "encrypted_value could not be decrypted")
    existed = p["secret_name"] in r.secrets
    r.secrets[p["secret_name"]] = value
    return (204, None, {}) if existed else (201, {}, {})


def _get_variables(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    items = [{"name": n, "value": v, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}
             for n, v in sorted(r.variables.items())]
    return 200, {"total_count": len(items), "variables": items}, {}


def _post_variable(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    if b["name"] in r.variables:
        return _err(409, "Already exists")
    r.variables[b["name"]] = b["value"]
    return 201, {}, {}


def _patch_variable(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None or p["name"] not in r.variables:
        return _err(404, "Not Found")
    r.variables[p["name"]] = b["value"]
    return 204, None, {}


def _protection_base(gh: FakeGitHub, p: dict[str, str]) -> str:
    return f"{gh.api}/repos/{p['owner']}/{p['repo']}/branches/{p['branch']}/protection"


def _protection_obj(gh: FakeGitHub, p: dict[str, str], prot: dict[str, Any], schema: str) -> dict[str, Any]:
    base = _protection_base(gh, p)
    out = gh._obj(schema, url=base)
    rsc = prot.get("required_status_checks")
    if rsc is not None:
        contexts = list(rsc.get("contexts") or []) + [c["context"] for c in rsc.get("checks") or []]
        out["required_status_checks"] = {
            "url": f"{base}/required_status_checks", "contexts_url": f"{base}/required_status_checks/contexts",
            "strict": bool(rsc.get("strict")), "contexts": contexts,
            "checks": [{"context": c, "app_id": None} for c in contexts]}
    out["enforce_admins"] = {"url": f"{base}/enforce_admins", "enabled": bool(prot.get("enforce_admins"))}
    reviews = prot.get("required_pull_request_reviews")
    if reviews:
        out["required_pull_request_reviews"] = {
            "url": f"{base}/required_pull_request_reviews", "dismiss_stale_reviews": False,
            "require_code_owner_reviews": False,
            "required_approving_review_count": int(reviews.get("required_approving_review_count") or 1)}
    out["allow_force_pushes"] = {"enabled": bool(prot.get("allow_force_pushes"))}
    out["allow_deletions"] = {"enabled": bool(prot.get("allow_deletions"))}
    return out


def _get_protection(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None or r.head(p["branch"]) is None:
        return _err(404, "Branch not found")
    if r.plan_gated:
        return _err(403, PLAN_GATE)
    if r.protection is None:
        return _err(404, "Branch not protected")
    return 200, _protection_obj(gh, p, r.protection, "branch-protection"), {}


def _put_protection(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None or r.head(p["branch"]) is None:
        return _err(404, "Branch not found")
    r.protection = b
    return 200, _protection_obj(gh, p, b, "protected-branch"), {}


def _post_contexts(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None or r.protection is None or r.protection.get("required_status_checks") is None:
        return _err(404, "Required status checks not enabled")
    rsc = r.protection["required_status_checks"]
    contexts = list(rsc.get("contexts") or [])
    contexts += [c for c in b["contexts"] if c not in contexts]
    rsc["contexts"] = contexts
    return 200, contexts, {}


def _delete_protection(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None or r.head(p["branch"]) is None:
        return _err(404, "Branch not found")
    if r.plan_gated:
        return _err(403, PLAN_GATE)
    if r.protection is None:
        return _err(404, "Branch not protected")
    r.protection = None
    return 204, None, {}


def _ruleset_problems(b: dict[str, Any]) -> list[str]:
    """What GitHub answers 422 for, beyond the schema (which the validator checks)."""
    problems = []
    for actor in b.get("bypass_actors") or []:
        if actor["actor_type"] == "DeployKey" and (actor.get("actor_id") is not None
                                                    or actor.get("bypass_mode") == "pull_request"):
            problems.append("DeployKey bypass actors take no actor_id and no pull_request bypass mode")
        if actor["actor_type"] in {"RepositoryRole", "Team", "User", "Integration"} and actor.get("actor_id") is None:
            problems.append(f"{actor['actor_type']} bypass actors need an actor_id")
    return problems


def _ruleset_obj(gh: FakeGitHub, r: FakeRepo, rs: dict[str, Any], *, full: bool) -> dict[str, Any]:
    links = {"self": {"href": f"{gh.api}/repos/{r.owner}/{r.name}/rulesets/{rs['id']}"},
             "html": {"href": f"{gh.url}/{r.owner}/{r.name}/rules/{rs['id']}"}}
    out = gh._obj("repository-ruleset", id=rs["id"], name=rs["name"], target=rs.get("target", "branch"),
                  source_type="Repository", source=f"{r.owner}/{r.name}", enforcement=rs["enforcement"],
                  node_id=f"RRS_{rs['id']}", _links=links, created_at="2024-01-01T00:00:00Z",
                  updated_at="2024-01-01T00:00:00Z")
    if full:  # the list answers summaries; GET by id the whole ruleset
        actors = [{"actor_id": a.get("actor_id"), "actor_type": a["actor_type"],
                   "bypass_mode": a.get("bypass_mode", "always")} for a in rs.get("bypass_actors") or []]
        out.update(bypass_actors=actors,
                   conditions=rs.get("conditions") or {"ref_name": {"include": [], "exclude": []}},
                   rules=rs.get("rules") or [], current_user_can_bypass="always")
    return out


def _gated(gh: FakeGitHub, p: dict[str, str]) -> tuple[FakeRepo | None, Any]:
    r = _repo_or_404(gh, p)
    if r is None:
        return None, _err(404, "Not Found")
    if r.plan_gated:
        return None, _err(403, PLAN_GATE)
    return r, None


def _get_rulesets(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r, fail = _gated(gh, p)
    if r is None:
        return fail
    return 200, [_ruleset_obj(gh, r, rs, full=False) for rs in r.rulesets.values()], {}


def _post_ruleset(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r, fail = _gated(gh, p)
    if r is None:
        return fail
    problems = _ruleset_problems(b)
    if any(rs["name"] == b["name"] for rs in r.rulesets.values()):
        problems.append("Name must be unique")
    if problems:
        return 422, {"message": "Validation Failed", "documentation_url": _DOCS, "errors": problems}, {}
    rid = next(gh._ids)
    r.rulesets[rid] = {**b, "id": rid, "target": b.get("target", "branch")}
    return 201, _ruleset_obj(gh, r, r.rulesets[rid], full=True), {}


def _get_ruleset(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r, fail = _gated(gh, p)
    if r is None:
        return fail
    rs = r.rulesets.get(int(p["ruleset_id"]))
    return _err(404, "Not Found") if rs is None else (200, _ruleset_obj(gh, r, rs, full=True), {})


def _put_ruleset(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r, fail = _gated(gh, p)
    if r is None:
        return fail
    rid = int(p["ruleset_id"])
    if rid not in r.rulesets:
        return _err(404, "Not Found")
    problems = _ruleset_problems(b)
    if problems:
        return 422, {"message": "Validation Failed", "documentation_url": _DOCS, "errors": problems}, {}
    r.rulesets[rid] = {**r.rulesets[rid], **b}
    return 200, _ruleset_obj(gh, r, r.rulesets[rid], full=True), {}


def _env_obj(gh: FakeGitHub, r: FakeRepo, name: str) -> dict[str, Any]:
    env = r.environments[name]
    rules = []
    if env["reviewers"]:
        revs = []
        for rv in env["reviewers"]:
            if rv["type"] == "User":
                login = next(k for k, v in gh.users.items() if v["id"] == rv["id"])
                revs.append({"type": "User", "reviewer": gh.user_obj(login)})
            else:
                slug = next(k[1] for k, v in gh.teams.items() if v == rv["id"])
                revs.append({"type": "Team", "reviewer": gh._obj("team", id=rv["id"], slug=slug, name=slug)})
        rules.append({"id": 1, "node_id": "x", "type": "required_reviewers", "prevent_self_review": False,
                      "reviewers": revs})
    return gh._obj("environment", id=env["id"], name=name, protection_rules=rules,
                   url=f"{gh.api}/repos/{r.owner}/{r.name}/environments/{name}",
                   html_url=f"{gh.url}/{r.owner}/{r.name}/deployments/activity_log?environments_filter={name}")


def _get_env(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None or p["environment_name"] not in r.environments:
        return _err(404, "Not Found")
    return 200, _env_obj(gh, r, p["environment_name"]), {}


def _put_env(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    name = p["environment_name"]
    old = r.environments.get(name, {"id": next(gh._ids)})
    r.environments[name] = {"id": old["id"], "reviewers": list((b or {}).get("reviewers") or [])}
    return 200, _env_obj(gh, r, name), {}


# ---------------------------------------------------------------- pull requests (update --pr)
def _pr_obj(gh: FakeGitHub, r: FakeRepo, pr: dict[str, Any], schema: str) -> dict[str, Any]:
    full = f"{r.owner}/{r.name}"

    def ref(branch: str) -> dict[str, Any]:
        base = gh.spec.synth(gh.spec.schema(schema))["head"]
        return base | {"ref": branch, "label": f"{r.owner}:{branch}", "sha": r.head(branch) or "0" * 40,
                       "user": gh.user_obj(r.owner)}

    labels = [gh._obj("label", id=i + 1, name=name, url=f"{gh.api}/repos/{full}/labels/{name}", description="",
                      color="ededed") | {"default": False} for i, name in enumerate(pr["labels"])]
    return gh._obj(schema, id=pr["id"], number=pr["number"], title=pr["title"], body=pr["body"],
                   state=pr["state"], draft=pr["draft"], locked=False, merged_at=None, closed_at=None,
                   html_url=f"{gh.url}/{full}/pull/{pr['number']}", url=f"{gh.api}/repos/{full}/pulls/{pr['number']}",
                   head=ref(pr["head"]), base=ref(pr["base"]), labels=labels, user=gh.user_obj(r.owner))


def _get_pulls(gh: FakeGitHub, p: dict[str, str], q: dict[str, list[str]], b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    state = (q.get("state") or ["open"])[0]
    head = (q.get("head") or [""])[0]
    out = [pr for pr in r.pulls.values() if state in ("all", pr["state"])
           and (not head or head == f"{r.owner}:{pr['head']}")]
    return 200, [_pr_obj(gh, r, pr, "pull-request-simple") for pr in sorted(out, key=lambda x: -x["number"])], {}


def _post_pull(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    if r is None:
        return _err(404, "Not Found")
    head, base = str(b["head"]), str(b["base"])
    if r.head(head) is None or r.head(base) is None:
        return 422, {"message": "Validation Failed", "documentation_url": _DOCS,
                     "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}]}, {}
    if any(pr["head"] == head and pr["state"] == "open" for pr in r.pulls.values()):
        return 422, {"message": "Validation Failed", "documentation_url": _DOCS,
                     "errors": [{"resource": "PullRequest", "code": "custom",
                                 "message": f"A pull request already exists for {r.owner}:{head}."}]}, {}
    number = len(r.pulls) + 1
    r.pulls[number] = {"number": number, "id": next(gh._ids), "title": b["title"], "body": b.get("body") or "",
                       "head": head, "base": base, "draft": bool(b.get("draft", False)), "state": "open",
                       "labels": [], "comments": []}
    return 201, _pr_obj(gh, r, r.pulls[number], "pull-request"), {}


def _patch_pull(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    pr = r.pulls.get(int(p["pull_number"])) if r is not None else None
    if r is None or pr is None:
        return _err(404, "Not Found")
    for k in ("title", "body", "state"):
        if k in b:
            pr[k] = b[k]
    return 200, _pr_obj(gh, r, pr, "pull-request"), {}


def _post_labels(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    pr = r.pulls.get(int(p["issue_number"])) if r is not None else None
    if r is None or pr is None:
        return _err(404, "Not Found")
    names = b.get("labels", []) if isinstance(b, dict) else b
    for name in names:
        if isinstance(name, str) and name not in pr["labels"]:
            pr["labels"].append(name)
    return 200, [gh._obj("label", id=i + 1, name=n) | {"default": False} for i, n in enumerate(pr["labels"])], {}


def _post_comment(gh: FakeGitHub, p: dict[str, str], q: Any, b: Any, t: TokenInfo) -> Any:
    r = _repo_or_404(gh, p)
    pr = r.pulls.get(int(p["issue_number"])) if r is not None else None
    if r is None or pr is None:
        return _err(404, "Not Found")
    pr["comments"].append(str(b["body"]))
    full = f"{r.owner}/{r.name}"
    cid = next(gh._ids)
    return 201, gh._obj("issue-comment", id=cid, body=b["body"], user=gh.user_obj(r.owner),
                        html_url=f"{gh.url}/{full}/pull/{pr['number']}#issuecomment-{cid}",
                        issue_url=f"{gh.api}/repos/{full}/issues/{pr['number']}",
                        url=f"{gh.api}/repos/{full}/issues/comments/{cid}"), {}


_ROUTES: dict[tuple[str, str], Any] = {
    ("GET", "/user"): _get_user,
    ("GET", "/users/{username}"): _get_users,
    ("GET", "/orgs/{org}/teams/{team_slug}"): _get_team,
    ("POST", "/user/repos"): _post_user_repos,
    ("POST", "/orgs/{org}/repos"): _post_org_repos,
    ("GET", "/repos/{owner}/{repo}"): _get_repo,
    ("GET", "/repos/{owner}/{repo}/keys"): _get_keys,
    ("POST", "/repos/{owner}/{repo}/keys"): _post_key,
    ("DELETE", "/repos/{owner}/{repo}/keys/{key_id}"): _delete_key,
    ("GET", "/repos/{owner}/{repo}/actions/secrets"): _get_secrets,
    ("GET", "/repos/{owner}/{repo}/actions/secrets/public-key"): _get_public_key,
    ("PUT", "/repos/{owner}/{repo}/actions/secrets/{secret_name}"): _put_secret,
    ("GET", "/repos/{owner}/{repo}/actions/variables"): _get_variables,
    ("POST", "/repos/{owner}/{repo}/actions/variables"): _post_variable,
    ("PATCH", "/repos/{owner}/{repo}/actions/variables/{name}"): _patch_variable,
    ("GET", "/repos/{owner}/{repo}/branches/{branch}/protection"): _get_protection,
    ("PUT", "/repos/{owner}/{repo}/branches/{branch}/protection"): _put_protection,
    ("POST", "/repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks/contexts"): _post_contexts,
    ("DELETE", "/repos/{owner}/{repo}/branches/{branch}/protection"): _delete_protection,
    ("GET", "/repos/{owner}/{repo}/rulesets"): _get_rulesets,
    ("POST", "/repos/{owner}/{repo}/rulesets"): _post_ruleset,
    ("GET", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"): _get_ruleset,
    ("PUT", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"): _put_ruleset,
    ("GET", "/repos/{owner}/{repo}/environments/{environment_name}"): _get_env,
    ("PUT", "/repos/{owner}/{repo}/environments/{environment_name}"): _put_env,
    ("GET", "/repos/{owner}/{repo}/pulls"): _get_pulls,
    ("POST", "/repos/{owner}/{repo}/pulls"): _post_pull,
    ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}"): _patch_pull,
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"): _post_labels,
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): _post_comment,
}


# ---------------------------------------------------------------- push rules
def _ref_matches(patterns: list[str], ref: str, default: str) -> bool:
    for pat in patterns:
        if pat == "~ALL" or (pat == "~DEFAULT_BRANCH" and ref == f"refs/heads/{default}") or fnmatch(ref, pat):
            return True
    return False


def _bypasses(rs: dict[str, Any], pusher: Pusher) -> bool:
    for actor in rs.get("bypass_actors") or []:
        if actor.get("bypass_mode", "always") == "pull_request":
            continue  # only for merges of pull requests, not for direct pushes
        if actor["actor_type"] == "DeployKey" and pusher.deploy_key is not None:
            return True
        if actor["actor_type"] == "RepositoryRole" and actor.get("actor_id") == 5 and pusher.admin:
            return True
    return False


def push_policy(repo: FakeRepo, pusher: Pusher, default: str = "main") -> dict[str, list[dict[str, Any]]]:
    """The rules a push by `pusher` must pass, per ref (see prereceive.py); bypassed rules are left out."""
    policy: dict[str, list[dict[str, Any]]] = {}
    ref = f"refs/heads/{default}"
    prot = repo.protection
    if prot is not None and not (pusher.admin and not prot.get("enforce_admins")):
        rsc = prot.get("required_status_checks") or {}
        contexts = list(rsc.get("contexts") or []) + [c["context"] for c in rsc.get("checks") or []]
        always = [f'Required status check "{c}" is expected.' for c in contexts]
        reviews = prot.get("required_pull_request_reviews") or {}
        if reviews:
            always.insert(0, f"At least {reviews.get('required_approving_review_count', 1)} approving review is "
                             "required by reviewers with write access.")
        policy.setdefault(ref, []).append({
            "code": "GH006", "header": f"Protected branch update failed for {ref}.", "always": always,
            "deletion": None if prot.get("allow_deletions") else "Cannot delete this protected branch.",
            "non_fast_forward": None if prot.get("allow_force_pushes") else "Cannot force-push to this branch."})
    for rs in repo.rulesets.values():
        cond = (rs.get("conditions") or {}).get("ref_name") or {}
        if (rs.get("enforcement") != "active" or rs.get("target", "branch") != "branch" or _bypasses(rs, pusher)
                or not _ref_matches(cond.get("include") or [], ref, default)
                or _ref_matches(cond.get("exclude") or [], ref, default)):
            continue
        rule: dict[str, Any] = {"code": "GH013", "header": f"Repository rule violations found for {ref}.",
                                "always": [], "deletion": None, "non_fast_forward": None}
        for r in rs.get("rules") or []:
            params = r.get("parameters") or {}
            if r["type"] == "pull_request":
                rule["always"].append("Changes must be made through a pull request.")
            elif r["type"] == "required_status_checks":
                rule["always"] += [f'Required status check "{c["context"]}" is expected.'
                                   for c in params.get("required_status_checks") or []]
            elif r["type"] == "deletion":
                rule["deletion"] = "Cannot delete this branch"
            elif r["type"] == "non_fast_forward":
                rule["non_fast_forward"] = "Cannot force-push to this branch"
        policy.setdefault(ref, []).append(rule)
    return policy


# ---------------------------------------------------------------- validation
def _check_request(gh: FakeGitHub, op: Operation, params: dict[str, str], query: dict[str, list[str]],
                   body: Any, raw: bytes) -> list[str]:
    problems: list[str] = []
    where = f"{op.method} {op.template}"
    for prm in op.op.get("parameters") or []:
        prm = gh.spec.resolve(prm)
        if prm["in"] == "path":
            value: Any = unquote(params[prm["name"]])
        elif prm["in"] == "query" and prm["name"] in query:
            value = query[prm["name"]][0]
        else:
            if prm.get("required") and prm["in"] == "query":
                problems.append(f"{where}: missing query parameter {prm['name']}")
            continue
        schema = gh.spec.resolve(prm.get("schema") or {})
        if schema.get("type") == "integer":
            try:
                value = int(value)
            except ValueError:
                problems.append(f"{where}: parameter {prm['name']} is not an integer")
                continue
        problems += [f"{where} parameter {prm['name']}: {e}" for e in gh.spec.errors(prm.get("schema") or {}, value)]
    rb = op.op.get("requestBody")
    if rb is None:
        if raw.strip():
            problems.append(f"{where}: a body was sent to an operation that takes none")
    elif body is None:
        if rb.get("required"):
            problems.append(f"{where}: required JSON body missing")
    else:
        schema = rb["content"]["application/json"]["schema"]
        problems += [f"{where} request body {e}" for e in gh.spec.errors(schema, body)]
    return problems


def _check_response(gh: FakeGitHub, op: Operation, status: int, body: Any, rate_limited: bool) -> list[str]:
    where = f"{op.method} {op.template} -> {status}"
    responses = op.op["responses"]
    resp = responses.get(str(status))
    if resp is None:
        # GitHub may answer any operation with 401 (bad credentials), 404 (missing or hidden resource;
        # not always declared) or a rate-limit 403.
        # A plan gate (protection, rulesets on a free private repo) is a 403 the description doesn't declare.
        plan_gate = status == 403 and isinstance(body, dict) and body.get("message") == PLAN_GATE
        if status in (401, 404) or (status == 403 and (rate_limited or plan_gate)):
            return [f"{where} {e}" for e in gh.spec.errors(gh.spec.schema("basic-error"), body)]
        return [f"{where}: status not declared for this operation"]
    resp = gh.spec.resolve(resp)
    content = (resp.get("content") or {}).get("application/json")
    if content is None:
        return [] if body is None else [f"{where}: body sent for a response without content"]
    return [f"{where} response {e}" for e in gh.spec.errors(content["schema"], body)]


# ---------------------------------------------------------------- HTTP
def _handler(gh: FakeGitHub) -> type[BaseHTTPRequestHandler]:  # noqa: C901
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:  # quiet
            return

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)

        def _route(self) -> None:
            raw = self._body()
            parts = urlsplit(self.path)
            if parts.path.startswith(API_PREFIX + "/") or parts.path == API_PREFIX:
                self._api(parts.path[len(API_PREFIX):] or "/", parse_qs(parts.query), raw)
            elif ".git/" in parts.path:
                self._git(parts.path, parts.query, raw)
            else:
                self._send(404, b"not found", {"Content-Type": "text/plain"})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _route

        # ---- REST
        def _api(self, path: str, query: dict[str, list[str]], raw: bytes) -> None:
            method = self.command
            found = gh.spec.find(method, path)
            if found is None:
                gh.violations.append(f"{method} {path}: not an operation of the trimmed OpenAPI subset")
                return self._json(404, {"message": "Not Found", "documentation_url": _DOCS}, {})
            op, params = found
            body: Any = None
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    gh.violations.append(f"{method} {path}: body is not JSON")
            with gh._lock:
                gh.violations.extend(_check_request(gh, op, params, query, body, raw))
                status, out, headers = self._dispatch(method, path, query, body)
                gh.requests.append((method, path, status))
                rate_limited = headers.get("X-RateLimit-Remaining") == "0"
                gh.violations.extend(_check_response(gh, op, status, out, rate_limited))
            self._json(status, out, headers)

        def _dispatch(self, method: str, path: str, query: dict[str, list[str]],
                      body: Any) -> tuple[int, Any, dict[str, str]]:
            for fault in gh.faults:
                if fault.times > 0 and re.fullmatch(fault.method, method) and fault.path.search(path):
                    fault.times -= 1
                    return fault.status, fault.body, dict(fault.headers)
            auth = self.headers.get("Authorization", "")
            token = gh.tokens.get(auth.split(" ", 1)[1].strip()) if " " in auth else None
            if token is None:
                return 401, {"message": "Bad credentials", "documentation_url": _DOCS}, {}
            status, out, headers = gh.handle_api(method, path, query, body, token)
            if token.scopes is not None:
                headers = {**headers, "X-OAuth-Scopes": token.scopes}
            return status, out, headers

        def _json(self, status: int, out: Any, headers: dict[str, str]) -> None:
            payload = b"" if out is None else json.dumps(out).encode()
            hdrs = {"Content-Type": "application/json; charset=utf-8", **headers} if out is not None else headers
            self._send(status, payload, hdrs)

        # ---- git smart HTTP through git http-backend (CGI)
        def _git(self, path: str, query: str, raw: bytes) -> None:
            owner = path.strip("/").split("/")[0]
            name = path.strip("/").split("/")[1].removesuffix(".git")
            repo = gh.repo(owner, name)
            pusher = self._git_pusher(repo)
            if pusher is None:
                return self._send(401, b"authentication required",
                                  {"WWW-Authenticate": 'Basic realm="fake GitHub"', "Content-Type": "text/plain"})
            if repo is None:
                return self._send(404, b"Repository not found.", {"Content-Type": "text/plain"})
            writing = path.endswith("/git-receive-pack") or "service=git-receive-pack" in query
            if writing and pusher.deploy_key is not None and pusher.deploy_key["read_only"]:
                return self._send(403, b"ERROR: The key you are authenticating with has been marked as read only.",
                                  {"Content-Type": "text/plain"})
            gh.git_logins.append(pusher.login)
            env = {"GIT_PROJECT_ROOT": str(gh.git_root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
                   "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": pusher.login,
                   "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                   "CONTENT_LENGTH": str(len(raw)), "PATH": "/usr/bin:/bin:/usr/local/bin",
                   "FAKE_GH_POLICY": json.dumps(push_policy(repo, pusher))}
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            done = subprocess.run(["git", "http-backend"], input=raw, env=env, capture_output=True, timeout=120,
                                  check=False)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            status, headers = 200, {}
            for line in head.decode("latin-1").split("\r\n"):
                k, _, v = line.partition(":")
                if k.lower() == "status":
                    status = int(v.strip().split()[0])
                elif k:
                    headers[k.strip()] = v.strip()
            self._send(status, payload, headers)

        def _git_pusher(self, repo: FakeRepo | None) -> Pusher | None:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Basic "):
                return None
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
            if user == DEPLOY_KEY_USER:
                key = next((k for k in (repo.keys.values() if repo else ())
                            if k["key"].split()[1] == password), None)
                return None if key is None else Pusher(f"deploy-key:{key['title']}", deploy_key=key)
            info = gh.tokens.get(password)
            return Pusher(info.login, admin=info.admin) if info is not None and user else None

    return Handler
