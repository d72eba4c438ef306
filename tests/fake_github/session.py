"""What every test against the fake GitHub shares: the server with its standard accounts, and the proof that the
token leaked nowhere (files, .git, logs, output) once the test is done."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleetstrap.publish.auth import basic_credentials
from gitservers import files_containing

from .server import FakeGitHub
from .spec import Spec


@contextmanager
def fake_github(root: Path, spec: Spec, token: str, teams: tuple[str, ...] = ()) -> Iterator[FakeGitHub]:
    """The fake with org `acme` (and `teams` in it) and user `octo` owning `token`; after the test, every request
    and response must have matched GitHub's OpenAPI description."""
    server = FakeGitHub(root, spec).start()
    server.add_user("octo")
    server.add_user("acme", org=True)
    for team in teams:
        server.add_team("acme", team)
    server.add_token(token, "octo")
    try:
        yield server
    finally:
        server.stop()
    assert server.violations == [], "requests or responses outside GitHub's OpenAPI description"


@contextmanager
def token_in_env_only(tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                      capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """GH_TOKEN set for the test (GITHUB_TOKEN unset); afterwards the token, raw or as basic credentials, is in no
    file under `tmp_path` (repos, .git and the fake's bare repos included), no log line and no output."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FLEETSTRAP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GH_TOKEN", token)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    yield
    out = capsys.readouterr()
    for needle in (token, basic_credentials(token)):
        assert files_containing(tmp_path, [needle]) == []
        assert needle not in caplog.text
        assert needle not in out.out and needle not in out.err
