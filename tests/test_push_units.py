"""Pure pieces of push: token sources, the git environment, workflow needs, key storage."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetstrap.errors import UserError
from fleetstrap.publish import keys
from fleetstrap.publish.auth import basic_credentials, build_ssh_command, clean_url, git_env, resolve_token
from fleetstrap.publish.github_api import api_base_for
from fleetstrap.publish.workflows import read_workflow_needs
from fleetstrap.redact import redact
from gitservers import make_fleet


def test_token_precedence_and_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_TOKEN", "gh-token-value-1")
    monkeypatch.setenv("GITHUB_TOKEN", "github-token-value-2")
    monkeypatch.setenv("MINE", "my-token-value-3")
    assert resolve_token("MINE").source == "$MINE"  # type: ignore[union-attr]
    tok = resolve_token(None)
    assert tok is not None and tok.source == "$GH_TOKEN" and "gh-token-value-1" not in repr(tok)
    assert redact("x gh-token-value-1 y") == "x *** y"
    assert resolve_token(None, allow_defaults=False) is None
    monkeypatch.delenv("MINE")
    with pytest.raises(UserError, match="MINE"):
        resolve_token("MINE")


def test_git_env_carries_the_token_only_as_a_scoped_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    tok = resolve_token("T") if os.environ.get("T") else None
    assert tok is None
    monkeypatch.setenv("T", "secret-token-abc")
    tok = resolve_token("T")
    env = git_env("https://ghe.example.com/o/r.git", tok)
    assert env["GIT_CONFIG_COUNT"] == "3"  # appended after the caller's own entry
    assert env["GIT_CONFIG_KEY_2"] == "http.https://ghe.example.com/.extraHeader"
    assert env["GIT_CONFIG_VALUE_2"] == f"Authorization: Basic {basic_credentials('secret-token-abc')}"
    assert env["GIT_CONFIG_KEY_1"] == "credential.helper" and env["GIT_TERMINAL_PROMPT"] == "0"
    assert "secret-token-abc" not in " ".join(env.values())


def test_clean_url_and_api_base() -> None:
    assert clean_url("https://u:p@github.com/o/r.git") == "https://github.com/o/r.git"
    assert clean_url("ssh://git@github.com/o/r.git") == "ssh://git@github.com/o/r.git"
    assert api_base_for("https://github.com") == "https://api.github.com"
    assert api_base_for("https://ghe.example.com/") == "https://ghe.example.com/api/v3"
    assert "IdentitiesOnly=yes" in build_ssh_command("/k", "/kh")


def test_workflow_needs(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "f")
    (fleet / ".github" / "workflows" / "release.yaml").write_text(
        "on: {push: {tags: ['v*']}}\njobs:\n  release:\n    environment: {name: production}\n"
        "    runs-on: x\n    steps: [{run: 'echo ${{ secrets.GITOPS_TOKEN }} ${{ secrets.GITHUB_TOKEN }}'}]\n")
    needs = read_workflow_needs(fleet)
    assert needs.checks == ("validate", "Build images")  # release runs on tags only: not a PR check
    assert needs.skipped_checks == ("matrix-test",)
    assert needs.secrets == ("GITOPS_TOKEN", "REGISTRY_PASSWORD")
    assert needs.variables == ("REGISTRY",)
    assert needs.environments == ("staging", "production")


def test_deploy_keys_are_private_and_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSTRAP_CONFIG_DIR", str(tmp_path / "cfg"))
    key, made = keys.ensure_deploy_key("o", "r", "dev")
    again, made_again = keys.ensure_deploy_key("o", "r", "dev")
    assert made and not made_again and again.public == key.public
    assert key.private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert key.public.startswith("ssh-ed25519 ")
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.path.parent.stat().st_mode) == 0o700
    assert key.path == tmp_path / "cfg" / "keys" / "o" / "r" / "dev"
    assert "PRIVATE" not in repr(key)
    key.path.chmod(0o644)
    with pytest.raises(UserError, match="chmod 600"):
        keys.load_deploy_key("o", "r", "dev")
    with pytest.raises(UserError):
        keys.deploy_key_path("o", "../x", "dev")
