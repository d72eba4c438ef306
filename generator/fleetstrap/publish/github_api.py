"""The GitHub half of push, through PyGithub. Every call goes through `GitHubApi.call`: rate limits are
waited out up to a bound, and errors become one-line RemoteErrors without a secret in them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from fleetstrap import output
from fleetstrap.errors import GitHubError, UpstreamError
from fleetstrap.redact import redact

from .auth import Token

T = TypeVar("T")

_NOT_FOUND = object()


def api_base_for(github_url: str) -> str:
    """https://github.com -> https://api.github.com; anything else is GitHub Enterprise (/api/v3)."""
    url = github_url.rstrip("/")
    host = urlsplit(url).netloc
    if host in {"github.com", "www.github.com"}:
        return "https://api.github.com"
    if host.startswith("api.") or url.endswith("/api/v3"):
        return url
    return f"{url}/api/v3"


@dataclass(frozen=True)
class ApiSettings:
    """How push paces its GitHub calls (PyGithub's own defaults; tests pass 0) and how long it waits out a rate
    limit before giving up."""

    seconds_between_requests: float = 0.25  # PyGithub's defaults; tests pass 0
    seconds_between_writes: float = 1.0
    max_rate_limit_wait: float = 60.0
    timeout: int = 30


@dataclass(frozen=True)
class Me:
    login: str
    scopes: tuple[str, ...] | None  # None: no X-OAuth-Scopes header (fine-grained or app token)


class GitHubApi:
    def __init__(self, token: Token, github_url: str, settings: ApiSettings) -> None:
        from github import Auth, Github

        self.token = token
        self.settings = settings
        self.base = api_base_for(github_url)
        # retry=None: PyGithub would otherwise sleep until a rate limit resets, unbounded.
        self.gh = Github(auth=Auth.Token(token.value), base_url=self.base, timeout=settings.timeout,
                         retry=None, seconds_between_requests=settings.seconds_between_requests,
                         seconds_between_writes=settings.seconds_between_writes, lazy=True)
        self.requester = self.gh.requester

    # ---------------------------------------------------------------- plumbing
    def call(self, what: str, fn: Callable[[], T], *, missing_ok: bool = False) -> T | None:
        from github import GithubException

        for _ in range(4):
            error: GitHubError | None = None
            try:
                return fn()
            except GithubException as exc:
                if missing_ok and exc.status == 404:
                    return None
                wait = _rate_limit_wait(exc)
                if wait is None:
                    error = GitHubError(self._explain(what, exc), status=exc.status)
                elif wait > self.settings.max_rate_limit_wait:
                    error = GitHubError(
                        f"GitHub API rate limit exceeded during {what}; it resets in {int(wait)}s, "
                        f"more than the {int(self.settings.max_rate_limit_wait)}s fleetstrap waits",
                        hint="rerun later; nothing is lost, push is idempotent")
                cause = self._redacted(exc)
            if error is not None:
                # Raised outside the except block, from a redacted copy: PyGithub's exception (its text, headers
                # and traceback) may echo the request's credentials, and an implicit __context__ would keep it.
                raise error from cause
            assert wait is not None  # no error: a rate limit worth waiting for
            output.warn(f"GitHub API rate limit hit during {what}; waiting {wait:.0f}s for the reset")
            time.sleep(wait)
        raise GitHubError(f"GitHub API rate limit still exceeded during {what} after waiting")

    def _redacted(self, exc: Exception) -> UpstreamError:
        """PyGithub's exception as one line of text, every known secret and this client's token taken out."""
        text = redact(f"{type(exc).__name__}: {exc}").replace(self.token.value, "***")
        return UpstreamError(" ".join(text.split())[:2000])

    def _explain(self, what: str, exc: Any) -> str:
        data = exc.data if isinstance(exc.data, dict) else {}
        message = redact(str(data.get("message") or "")).splitlines()[0] if data.get("message") else ""
        if exc.status == 401:
            return f"GitHub rejected the token from {self.token.source} (401 {message or 'Bad credentials'})"
        details = []
        for err in data.get("errors") or []:
            if isinstance(err, dict):
                details.append(str(err.get("message") or f"{err.get('field', '')} {err.get('code', '')}".strip()))
            else:
                details.append(str(err))
        extra = f": {redact('; '.join(details))}" if details else ""
        return f"GitHub API {what} failed ({exc.status} {message}){extra}"

    def raw(self, what: str, method: str, path: str, body: dict[str, Any] | None = None,
            *, missing_ok: bool = False) -> dict[str, Any] | None:
        def run() -> dict[str, Any]:
            _, data = self.requester.requestJsonAndCheck(method, f"{self.base}{path}", input=body)
            return data if isinstance(data, dict) else {}

        return self.call(what, run, missing_ok=missing_ok)

    def raw_list(self, what: str, path: str, *, missing_ok: bool = False) -> list[dict[str, Any]] | None:
        """A GET whose answer is a JSON array (one page of up to 100 items: enough for rulesets)."""
        def run() -> list[dict[str, Any]]:
            _, data = self.requester.requestJsonAndCheck("GET", f"{self.base}{path}", parameters={"per_page": 100})
            return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []

        return self.call(what, run, missing_ok=missing_ok)

    # ---------------------------------------------------------------- reads
    def me(self) -> Me:
        def run() -> Me:
            user = self.gh.get_user()
            login = str(user.login)  # forces GET /user, which carries X-OAuth-Scopes
            scopes = self.gh.oauth_scopes
            return Me(login, None if scopes is None else tuple(s.strip() for s in scopes if s.strip()))

        result = self.call("GET /user", run)
        assert result is not None
        return result

    def owner_type(self, owner: str) -> str | None:
        data = self.user(owner)
        return None if data is None else str(data.get("type"))

    def get_repo(self, owner: str, name: str) -> dict[str, Any] | None:
        return self.raw(f"GET /repos/{owner}/{name}", "GET", f"/repos/{quote(owner)}/{quote(name)}",
                        missing_ok=True)

    def list_keys(self, owner: str, name: str) -> list[dict[str, Any]]:
        repo = f"/repos/{quote(owner)}/{quote(name)}"

        def run() -> list[dict[str, Any]]:
            from github.PaginatedList import PaginatedList
            from github.RepositoryKey import RepositoryKey

            keys = PaginatedList(RepositoryKey, self.requester, f"{self.base}{repo}/keys", None)
            return [{"id": k.id, "title": k.title, "key": k.key, "read_only": k.read_only} for k in keys]

        return self.call(f"GET {repo}/keys", run) or []

    def secret_names(self, owner: str, name: str) -> set[str]:
        repo = self.gh.get_repo(f"{owner}/{name}")
        return self.call("GET actions/secrets", lambda: {s.name for s in repo.get_secrets()}) or set()

    def variables(self, owner: str, name: str) -> dict[str, str]:
        repo = self.gh.get_repo(f"{owner}/{name}")
        return self.call("GET actions/variables",
                         lambda: {v.name: v.value for v in repo.get_variables()}) or {}

    def environment(self, owner: str, name: str, env: str) -> dict[str, Any] | None:
        path = f"/repos/{quote(owner)}/{quote(name)}/environments/{quote(env, safe='')}"
        return self.raw(f"GET environments/{env}", "GET", path, missing_ok=True)

    def classic_protection(self, owner: str, name: str, branch: str) -> dict[str, Any] | None:
        path = f"/repos/{quote(owner)}/{quote(name)}/branches/{quote(branch)}/protection"
        return self.raw(f"GET {path}", "GET", path, missing_ok=True)

    def user(self, login: str) -> dict[str, Any] | None:
        return self.raw(f"GET /users/{login}", "GET", f"/users/{quote(login)}", missing_ok=True)

    def team(self, org: str, slug: str) -> dict[str, Any] | None:
        return self.raw(f"GET /orgs/{org}/teams/{slug}", "GET", f"/orgs/{quote(org)}/teams/{quote(slug)}",
                        missing_ok=True)

    def check_can_read(self, owner: str, name: str, area: str) -> None:
        """GET a cheap endpoint of `area` (actions/secrets/public-key, actions/variables); raises GitHubError."""
        path = f"/repos/{quote(owner)}/{quote(name)}/{area}"
        self.raw(f"GET {path}", "GET", path)

    # ---------------------------------------------------------------- writes
    def put_environment(self, owner: str, name: str, env: str, body: dict[str, Any]) -> None:
        path = f"/repos/{quote(owner)}/{quote(name)}/environments/{quote(env, safe='')}"
        self.raw(f"PUT environments/{env}", "PUT", path, body)

    def delete_classic_protection(self, owner: str, name: str, branch: str) -> None:
        path = f"/repos/{quote(owner)}/{quote(name)}/branches/{quote(branch)}/protection"
        self.raw(f"DELETE {path}", "DELETE", path)

    def create_repo(self, owner: str, name: str, *, org: bool, private: bool) -> dict[str, Any]:
        body = {"name": name, "private": private, "auto_init": False,
                "description": "GitOps fleet repository (generated by fleetstrap)"}
        path = f"/orgs/{quote(owner)}/repos" if org else "/user/repos"
        data = self.raw(f"POST {path}", "POST", path, body)
        assert data is not None
        return data

    def create_key(self, owner: str, name: str, title: str, key: str, read_only: bool) -> None:
        path = f"/repos/{quote(owner)}/{quote(name)}/keys"
        self.raw(f"POST {path}", "POST", path, {"title": title, "key": key, "read_only": read_only})

    def delete_key(self, owner: str, name: str, key_id: int) -> None:
        path = f"/repos/{quote(owner)}/{quote(name)}/keys/{key_id}"
        self.raw(f"DELETE {path}", "DELETE", path)

    def rulesets(self, owner: str, name: str) -> list[dict[str, Any]] | None:
        """The repository's rulesets (summaries, without rules); None when the plan has no rulesets (404)."""
        path = f"/repos/{quote(owner)}/{quote(name)}/rulesets"
        return self.raw_list(f"GET {path}", path, missing_ok=True)

    def ruleset(self, owner: str, name: str, ruleset_id: int) -> dict[str, Any] | None:
        path = f"/repos/{quote(owner)}/{quote(name)}/rulesets/{ruleset_id}"
        return self.raw(f"GET {path}", "GET", path, missing_ok=True)

    def create_ruleset(self, owner: str, name: str, body: dict[str, Any]) -> None:
        path = f"/repos/{quote(owner)}/{quote(name)}/rulesets"
        self.raw(f"POST {path}", "POST", path, body)

    def update_ruleset(self, owner: str, name: str, ruleset_id: int, body: dict[str, Any]) -> None:
        path = f"/repos/{quote(owner)}/{quote(name)}/rulesets/{ruleset_id}"
        self.raw(f"PUT {path}", "PUT", path, body)

    def set_secret(self, owner: str, name: str, secret: str, value: str) -> None:
        # PyGithub fetches the repo public key and seals the value with libsodium (PyNaCl).
        repo = self.gh.get_repo(f"{owner}/{name}")
        self.call(f"PUT actions/secrets/{secret}", lambda: repo.create_secret(secret, value, "actions"))

    def set_variable(self, owner: str, name: str, var: str, value: str, *, exists: bool) -> None:
        base = f"/repos/{quote(owner)}/{quote(name)}/actions/variables"
        if exists:
            self.raw(f"PATCH actions/variables/{var}", "PATCH", f"{base}/{quote(var)}", {"name": var, "value": value})
        else:
            self.raw("POST actions/variables", "POST", base, {"name": var, "value": value})

    # ---------------------------------------------------------------- pull requests (update --pr)
    def pulls(self, owner: str, name: str, *, state: str = "open", head: str | None = None) -> list[dict[str, Any]]:
        """One page (100) of pull requests, newest first; `head` is `owner:branch`."""
        path = f"/repos/{quote(owner)}/{quote(name)}/pulls"
        params: dict[str, Any] = {"state": state, "per_page": 100}
        if head:
            params["head"] = head

        def run() -> list[dict[str, Any]]:
            _, data = self.requester.requestJsonAndCheck("GET", f"{self.base}{path}", parameters=params)
            return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []

        return self.call(f"GET {path}", run) or []

    def create_pull(self, owner: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/repos/{quote(owner)}/{quote(name)}/pulls"
        data = self.raw(f"POST {path}", "POST", path, body)
        assert data is not None
        return data

    def update_pull(self, owner: str, name: str, number: int, body: dict[str, Any]) -> None:
        path = f"/repos/{quote(owner)}/{quote(name)}/pulls/{number}"
        self.raw(f"PATCH {path}", "PATCH", path, body)

    def add_labels(self, owner: str, name: str, number: int, labels: list[str]) -> None:
        path = f"/repos/{quote(owner)}/{quote(name)}/issues/{number}/labels"

        def run() -> None:
            self.requester.requestJsonAndCheck("POST", f"{self.base}{path}", input={"labels": labels})

        self.call(f"POST {path}", run)

    def comment(self, owner: str, name: str, number: int, text: str) -> None:
        path = f"/repos/{quote(owner)}/{quote(name)}/issues/{number}/comments"
        self.raw(f"POST {path}", "POST", path, {"body": text})


def _rate_limit_wait(exc: Any) -> float | None:
    """Seconds to wait when the error is a rate limit (403/429 with reset or retry-after), else None."""
    if exc.status not in (403, 429):
        return None
    headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
    try:
        if headers.get("retry-after"):
            return max(0.0, float(headers["retry-after"]))
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            return max(0.0, float(headers["x-ratelimit-reset"]) - time.time()) + 0.5
    except ValueError:
        return None
    return None
