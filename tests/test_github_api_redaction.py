"""A GitHub API failure keeps the token out of everything the user or a log could see.

A hostile (or just chatty) server echoes the request's Authorization header into its error body and headers; the
error fleetstrap raises must still carry the cause (`raise ... from`), but no message, repr, cause or context in
its chain, no formatted traceback and no log line may hold the token."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
import traceback
from collections.abc import Iterator

import pytest

from fleetstrap.errors import GitHubError
from fleetstrap.publish.auth import Token
from fleetstrap.publish.github_api import ApiSettings, GitHubApi

TOKEN = "ghp_" + "L3ak" * 9


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with an error that repeats the credentials it was sent."""

    def _answer(self) -> None:
        auth = self.headers.get("Authorization", "")
        rate_limited = "/rate" in self.path
        status = 403 if rate_limited else 422
        body = json.dumps({"message": f"Validation Failed for {auth}", "errors": [{"message": f"bad {auth}"}],
                           "documentation_url": f"https://example.test/{auth}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Echo", auth)
        if rate_limited:
            self.send_header("X-RateLimit-Remaining", "0")
            self.send_header("X-RateLimit-Reset", str(int(time.time()) + 3600))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen


@pytest.mark.parametrize("path", ["/repos/acme/fleet", "/rate/acme/fleet"])
def test_a_failing_request_never_leaks_its_token(server: str, path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = GitHubApi(Token(TOKEN, "GH_TOKEN"), f"{server}/api/v3", ApiSettings(0, 0, max_rate_limit_wait=1))
    with pytest.raises(GitHubError) as info:
        api.raw("POST /repos/acme/fleet", "POST", path, {"name": "fleet"})
    err = info.value
    chain = _chain(err)
    assert err.__cause__ is not None  # the cause is kept (`raise ... from`), only redacted
    texts = [str(e) for e in chain] + [repr(e) for e in chain] + [str(getattr(e, "hint", "")) for e in chain]
    texts += traceback.format_exception(err)
    texts += [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    assert [t for t in texts if TOKEN in t] == []
    assert "422" in str(err) or "rate limit" in str(err)
