"""Optional: fleetstrap push against real GitHub. Skipped unless FLEETSTRAP_LIVE_GITHUB_TOKEN is set.

Dry-run only (reads: token, scopes, owner, repository) unless FLEETSTRAP_LIVE_GITHUB_REPO names a scratch
repository ("owner/name") the test may create and configure; it is left in place for inspection.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetstrap.push import PushRequest, push_repo
from gitservers import files_containing, make_fleet

TOKEN = os.environ.get("FLEETSTRAP_LIVE_GITHUB_TOKEN", "")
pytestmark = [pytest.mark.github,
              pytest.mark.skipif(not TOKEN, reason="set FLEETSTRAP_LIVE_GITHUB_TOKEN to run against GitHub")]


def test_live_push(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSTRAP_CONFIG_DIR", str(tmp_path / "config"))
    scratch = os.environ.get("FLEETSTRAP_LIVE_GITHUB_REPO", "")
    owner, _, name = scratch.partition("/")
    if not owner:
        from github import Auth, Github

        owner = Github(auth=Auth.Token(TOKEN)).get_user().login  # dry run under the token's own account
    fleet = make_fleet(tmp_path / "fleet", owner=owner, name=name or "fleetstrap-live-dry-run")
    request = PushRequest(path=fleet, token_env="FLEETSTRAP_LIVE_GITHUB_TOKEN", dry_run=not scratch)
    report = push_repo(request)
    assert report.planned
    if scratch:
        again = push_repo(request)
        assert again.created == ()
    assert files_containing(tmp_path, [TOKEN]) == []
