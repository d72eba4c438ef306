"""fleetstrap push against a local fake GitHub (REST validated against GitHub's OpenAPI subset + git HTTP)."""

from __future__ import annotations

import base64
import os
import subprocess
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fake_github import FakeGitHub
from fake_github.server import DEPLOY_KEY_USER
from fake_github.session import fake_github, token_in_env_only
from fake_github.spec import Spec
from fleetstrap.cli import run
from fleetstrap.errors import RemoteError, UserError
from fleetstrap.publish import keys
from fleetstrap.publish.auth import basic_credentials
from fleetstrap.publish.github_api import ApiSettings
from fleetstrap.push import PushReport, PushRequest, push_repo
from gitservers import files_containing, make_fleet

TOKEN = "ghp_" + "Q7" * 18
OTHER_TOKEN = "fine-grained-token-0123456789"
SECRET_VALUE = "registry-password-5f2a"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec()


@pytest.fixture
def gh(tmp_path: Path, spec: Spec) -> Iterator[FakeGitHub]:
    with fake_github(tmp_path / "github", spec, TOKEN, teams=("platform",)) as server:
        yield server


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
         capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    monkeypatch.setenv("REG_PW", SECRET_VALUE)
    with token_in_env_only(tmp_path, TOKEN, monkeypatch, caplog, capsys):
        yield


def _request(fleet: Path, gh: FakeGitHub, **kw: Any) -> PushRequest:
    base = PushRequest(path=fleet, github_url=gh.url, api=ApiSettings(seconds_between_requests=0,
                       seconds_between_writes=0, max_rate_limit_wait=5), secrets=(("REGISTRY_PASSWORD", "REG_PW"),))
    return replace(base, **kw)


def _head(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _rule(ruleset: dict[str, Any], kind: str) -> dict[str, Any] | None:
    rule = next((r for r in ruleset["rules"] if r["type"] == kind), None)
    return None if rule is None else rule.get("parameters", {})


def _raises(fn: Callable[[], Any], match: str) -> RemoteError:
    with pytest.raises(RemoteError, match=match) as info:
        fn()
    text = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert TOKEN not in text and basic_credentials(TOKEN) not in text
    return info.value


def test_create_in_user_account_configures_everything(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet", clusters=("dev", "prod"))
    report = push_repo(_request(fleet, gh, reviewers=("octo", "acme/platform")))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None and repo.private
    assert ("POST", "/user/repos", 201) in gh.requests
    assert repo.log() == [_head(fleet)] == [report.commit]
    assert "repository octo/fleet-infra" in report.created
    assert report.repo_url == f"{gh.url}/octo/fleet-infra"
    # Deploy keys: one per cluster, read-only, matching the private keys stored outside the repo (0600).
    by_title = {k["title"]: k for k in repo.keys.values()}
    assert set(by_title) == {"fleetstrap-dev", "fleetstrap-prod"}
    for cluster in ("dev", "prod"):
        stored = keys.load_deploy_key("octo", "fleet-infra", cluster)
        assert stored.path.stat().st_mode & 0o777 == 0o600
        assert not stored.path.is_relative_to(fleet)
        assert by_title[f"fleetstrap-{cluster}"]["key"] == stored.public_blob
        assert by_title[f"fleetstrap-{cluster}"]["read_only"] is True
        assert files_containing(fleet, [stored.private.splitlines()[1]]) == []
    # The fake decrypted the sealed secret with the repo's private key.
    assert repo.secrets == {"REGISTRY_PASSWORD": SECRET_VALUE}
    assert repo.variables == {"REGISTRY": "ghcr.io/octo"}
    # The branch ruleset: required checks are the PR jobs with static names (the matrix job can't be
    # required: warned); no force push, no deletion; deploy keys and repo admins bypass; no classic protection.
    (ruleset,) = repo.rulesets.values()
    assert (ruleset["name"], ruleset["target"], ruleset["enforcement"]) == ("fleetstrap main", "branch", "active")
    assert ruleset["conditions"] == {"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}}
    assert _rule(ruleset, "required_status_checks") == {
        "strict_required_status_checks_policy": True,
        "required_status_checks": [{"context": "validate"}, {"context": "Build images"}]}
    assert {r["type"] for r in ruleset["rules"]} == {"required_status_checks", "non_fast_forward", "deletion"}
    assert {(a["actor_type"], a["actor_id"], a["bypass_mode"]) for a in ruleset["bypass_actors"]} == {
        ("DeployKey", None, "always"), ("RepositoryRole", 5, "always")}
    assert repo.protection is None
    assert any("matrix-test" in w for w in report.warnings)
    assert set(repo.environments) == {"staging", "production"}
    assert repo.environments["staging"]["reviewers"] == []
    assert {r["type"] for r in repo.environments["production"]["reviewers"]} == {"User", "Team"}
    assert gh.git_logins and set(gh.git_logins) == {"octo"}  # git authenticated with the token via header


def test_rerun_creates_nothing_and_makes_no_commit(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet")
    push_repo(_request(fleet, gh))
    writes = len(gh.writes())
    again = push_repo(_request(fleet, gh, secrets=()))
    assert again.created == () and again.updated == ()
    assert "repository octo/fleet-infra" in again.in_place and "deploy key fleetstrap-dev" in again.in_place
    assert len(gh.writes()) == writes
    assert len(gh.repo("octo", "fleet-infra").log()) == 1  # type: ignore[union-attr]


def test_create_in_organization(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet", owner="acme")
    push_repo(_request(fleet, gh, private=False))
    assert ("POST", "/orgs/acme/repos", 201) in gh.requests
    repo = gh.repo("acme", "fleet-infra")
    assert repo is not None and not repo.private and repo.log() == [_head(fleet)]


def test_other_users_account_is_refused(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.add_user("someone")
    fleet = make_fleet(tmp_path / "fleet", owner="someone")
    _raises(lambda: push_repo(_request(fleet, gh)), "token belongs to octo")
    assert gh.writes() == []


def test_existing_empty_repository_is_reused(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.create_repo("octo", "fleet-infra")
    fleet = make_fleet(tmp_path / "fleet")
    report = push_repo(_request(fleet, gh))
    assert "repository octo/fleet-infra" in report.in_place
    assert not any(r[1] == "/user/repos" for r in gh.requests)
    assert gh.repo("octo", "fleet-infra").log() == [_head(fleet)]  # type: ignore[union-attr]


def _commit_directly(bare: Path, work: Path, text: str, base: Path | None = None) -> None:
    if base is None:
        subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    else:
        subprocess.run(["git", "clone", "-q", str(base), str(work)], check=True)
    (work / "README.md").write_text(text)
    git = ["git", "-C", str(work), "-c", "user.name=x", "-c", "user.email=x@x"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", text], check=True)
    subprocess.run([*git, "push", "-q", str(bare), "HEAD:refs/heads/main"], check=True)


def test_unrelated_history_is_refused_before_any_change(gh: FakeGitHub, tmp_path: Path) -> None:
    repo = gh.create_repo("octo", "fleet-infra")
    _commit_directly(repo.bare, tmp_path / "elsewhere", "someone else's project")
    before = repo.log()
    fleet = make_fleet(tmp_path / "fleet")
    subprocess.run(["git", "init", "-q", "-b", "main", str(fleet)], check=True)
    subprocess.run(["git", "-C", str(fleet), "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q",
                    "--allow-empty", "-m", "ours"], check=True)
    _raises(lambda: push_repo(_request(fleet, gh)), "unrelated history")
    assert repo.log() == before
    assert gh.writes() == [] and repo.keys == {}
    assert not (tmp_path / "config" / "keys").exists()


def test_remote_that_contains_our_history_is_accepted(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet")
    push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None
    _commit_directly(repo.bare, tmp_path / "clone", "a teammate's change", base=repo.bare)
    report = push_repo(_request(fleet, gh))
    assert len(repo.log()) == 2
    assert any("already contains" in s for s in report.in_place)


def test_key_rotation(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet")
    push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None
    old_id, old = next(iter(repo.keys.items()))
    old_private = keys.load_deploy_key("octo", "fleet-infra", "dev").private
    report = push_repo(_request(fleet, gh, rotate_keys=True))
    assert "deploy key fleetstrap-dev" in report.updated
    (new_id, new), = repo.keys.items()
    assert new_id != old_id and new["key"] != old["key"]
    stored = keys.load_deploy_key("octo", "fleet-infra", "dev")
    assert stored.private != old_private and stored.public_blob == new["key"]


def test_foreign_key_with_same_title_needs_rotate(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet")
    push_repo(_request(fleet, gh))
    path = keys.deploy_key_path("octo", "fleet-infra", "dev")
    path.unlink()  # as if pushed from another machine
    writes = len(gh.writes())
    _raises(lambda: push_repo(_request(fleet, gh)), "rotate-keys|fleetstrap-dev")
    assert len(gh.writes()) == writes


def test_image_automation_gets_a_write_key_that_passes_the_ruleset(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet", image_automation=True)
    push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None and repo.rulesets
    (key,) = repo.keys.values()
    assert key["read_only"] is False
    # Flux's ImageUpdateAutomation commit, pushed with the cluster's key straight to main: let through.
    done = _bot_push(gh, tmp_path / "flux", DEPLOY_KEY_USER, key["key"].split()[1])
    assert done.returncode == 0, done.stderr
    assert repo.head() == _head(tmp_path / "flux")




def test_missing_scope_is_named_before_any_change(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.tokens[TOKEN].scopes = "repo"
    fleet = make_fleet(tmp_path / "fleet")
    err = _raises(lambda: push_repo(_request(fleet, gh)), "missing scopes: workflow")
    assert "$GH_TOKEN" in str(err)
    assert gh.writes() == [] and not (fleet / ".git").exists()


def test_fine_grained_token_without_admin_is_named(gh: FakeGitHub, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    gh.create_repo("octo", "fleet-infra")
    gh.add_token(OTHER_TOKEN, "octo", scopes=None)
    gh.tokens[OTHER_TOKEN].admin = False
    monkeypatch.setenv("FG", OTHER_TOKEN)
    fleet = make_fleet(tmp_path / "fleet")
    _raises(lambda: push_repo(_request(fleet, gh, token_env="FG")), "Administration: write")
    assert gh.writes() == []


def test_bad_credentials_401(gh: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_TOKEN", "ghp_" + "x" * 36)
    fleet = make_fleet(tmp_path / "fleet")
    err = _raises(lambda: push_repo(_request(fleet, gh)), r"rejected the token from \$GH_TOKEN \(401")
    assert "ghp_xxxx" not in str(err)


def test_validation_failed_422_is_reported(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.fail("POST", r"^/user/repos$", 422, "Repository creation failed.",
            errors=[{"resource": "Repository", "code": "custom", "field": "name",
                     "message": "name already exists on this account"}])
    fleet = make_fleet(tmp_path / "fleet")
    _raises(lambda: push_repo(_request(fleet, gh)), "422 Repository creation failed.*name already exists")


def test_rate_limit_is_waited_out(gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gh.rate_limit(reset_in=0, times=1)
    fleet = make_fleet(tmp_path / "fleet")
    push_repo(_request(fleet, gh))
    assert gh.repo("octo", "fleet-infra") is not None
    assert "rate limit" in capsys.readouterr().err


def test_rate_limit_beyond_the_bound_fails_clearly(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.rate_limit(reset_in=3600, times=5)
    fleet = make_fleet(tmp_path / "fleet")
    _raises(lambda: push_repo(_request(fleet, gh)), "rate limit exceeded.*resets in")
    assert gh.writes() == []


def test_dry_run_lists_everything_and_changes_nothing(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = _with_release_workflow(make_fleet(tmp_path / "fleet"))
    report: PushReport = push_repo(_request(fleet, gh, dry_run=True))
    assert gh.writes() == [] and gh.repo("octo", "fleet-infra") is None
    assert not (fleet / ".git").exists() and not (tmp_path / "config").exists()
    text = "\n".join(report.planned)
    for op in ("POST /user/repos", "git init", "git push", "POST /repos/octo/fleet-infra/keys",
               "actions/secrets/REGISTRY_PASSWORD", "actions/variables", "environments/production",
               "POST /repos/octo/fleet-infra/rulesets (ruleset 'fleetstrap main' on main",
               "generate ed25519 key fleetstrap-release (in memory only)",
               "POST /repos/octo/fleet-infra/keys (deploy key fleetstrap-release, read-write)",
               "actions/secrets/FLEET_DEPLOY_KEY"):
        assert op in text


def test_cli_push_and_summary(gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = make_fleet(tmp_path / "fleet")
    args = ["push", str(fleet), "--github-url", gh.url, "--secret", "REGISTRY_PASSWORD=REG_PW", "--api-delay", "0"]
    assert run([*args, "--dry-run"]) == 0
    assert "POST /user/repos" in capsys.readouterr().err
    assert run(args) == 0
    err = capsys.readouterr().err
    assert "created repository octo/fleet-infra" in err and f"{gh.url}/octo/fleet-infra" in err
    assert run(["push", str(fleet), "--github-url", gh.url, "--secret", "BROKEN"]) == 1


# ---------------------------------------------------------------- rulesets, bot pushes, the release key
RELEASE_WORKFLOW = """\
name: hello-release
on:
  push:
    tags: ["hello-v*"]
permissions: {}
jobs:
  gitops:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@v4
        with:
          ref: main
          ssh-key: ${{ secrets.FLEET_DEPLOY_KEY }}
      - run: git push origin HEAD:main
"""


def _with_release_workflow(fleet: Path) -> Path:
    (fleet / ".github" / "workflows" / "hello-release.yml").write_text(RELEASE_WORKFLOW, encoding="utf-8")
    return fleet


def _bot_push(gh: FakeGitHub, work: Path, user: str, password: str) -> subprocess.CompletedProcess[str]:
    """Clone main and push one commit straight to it as `user` (a token's user or a deploy key)."""
    header = "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "1",
           "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": header}
    subprocess.run(["git", "clone", "-q", f"{gh.url}/octo/fleet-infra.git", str(work)], env=env, check=True,
                   capture_output=True)
    (work / "apps.txt").write_text(f"bumped from {work.name} by {user}\n", encoding="utf-8")
    git = ["git", "-C", str(work), "-c", "user.name=bot", "-c", "user.email=bot@x"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bump"], check=True)
    return subprocess.run([*git, "push", "origin", "HEAD:main"], env=env, capture_output=True, text=True,
                          check=False)


def _public_blob(private: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private.encode(), None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return " ".join(public.decode().split()[:2])


def test_release_workflow_pushes_with_its_own_write_deploy_key(
        gh: FakeGitHub, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = _with_release_workflow(make_fleet(tmp_path / "fleet"))
    report = push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None
    by_title = {k["title"]: k for k in repo.keys.values()}
    release = by_title["fleetstrap-release"]
    assert release["read_only"] is False and by_title["fleetstrap-dev"]["read_only"] is True
    # The secret (decrypted by the fake) is the private half of the registered key.
    private = repo.secrets["FLEET_DEPLOY_KEY"]
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert _public_blob(private) == release["key"]
    assert {"deploy key fleetstrap-release", "secret FLEET_DEPLOY_KEY"} <= set(report.created)
    assert not any("FLEET_DEPLOY_KEY" in w for w in report.warnings)
    # ... and it is nowhere else: no file (fleet, .git, key store), no log line, no output.
    body = private.splitlines()[2:-1]  # the first body line is the same in every ed25519 key
    out = capsys.readouterr()
    assert files_containing(tmp_path, body) == []
    assert not any(line in caplog.text or line in out.out + out.err for line in body)
    assert not keys.deploy_key_path("octo", "fleet-infra", "release").exists()

    # Re-run: key and secret are left alone (the secret can't be read back; it is only set with a new key).
    writes = len(gh.writes())
    again = push_repo(_request(fleet, gh, secrets=()))
    assert again.created == () and again.updated == () and len(gh.writes()) == writes
    assert {"deploy key fleetstrap-release", "secret FLEET_DEPLOY_KEY", "ruleset 'fleetstrap main' on main"} <= set(
        again.in_place)

    # The gitops job's push with that key goes straight to main ...
    done = _bot_push(gh, tmp_path / "release", DEPLOY_KEY_USER, release["key"].split()[1])
    assert done.returncode == 0, done.stderr
    assert repo.head() == _head(tmp_path / "release")
    # ... a write collaborator's token is stopped by the ruleset (what GITHUB_TOKEN would get) ...
    gh.add_token(OTHER_TOKEN, "octo")
    gh.tokens[OTHER_TOKEN].admin = False
    denied = _bot_push(gh, tmp_path / "collaborator", "x-access-token", OTHER_TOKEN)
    assert denied.returncode != 0
    assert "GH013: Repository rule violations found for refs/heads/main" in denied.stderr
    assert 'Required status check "validate" is expected' in denied.stderr
    # ... and a read-only cluster key can't push at all.
    read_only = _bot_push(gh, tmp_path / "cluster", DEPLOY_KEY_USER, by_title["fleetstrap-dev"]["key"].split()[1])
    assert read_only.returncode != 0 and "read only" in read_only.stderr
    assert repo.head() == _head(tmp_path / "release")


def test_release_key_is_replaced_when_its_secret_is_gone_and_on_rotate(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = _with_release_workflow(make_fleet(tmp_path / "fleet"))
    push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None

    def release_key() -> dict[str, Any]:
        return next(k for k in repo.keys.values() if k["title"] == "fleetstrap-release")

    first = release_key()
    del repo.secrets["FLEET_DEPLOY_KEY"]  # someone deleted it: the key alone is of no use to the workflow
    report = push_repo(_request(fleet, gh))
    second = release_key()
    assert "deploy key fleetstrap-release" in report.updated and "secret FLEET_DEPLOY_KEY" in report.created
    assert second["id"] != first["id"] and _public_blob(repo.secrets["FLEET_DEPLOY_KEY"]) == second["key"]
    old_secret = repo.secrets["FLEET_DEPLOY_KEY"]
    report = push_repo(_request(fleet, gh, rotate_keys=True))
    assert {"deploy key fleetstrap-release", "secret FLEET_DEPLOY_KEY"} <= set(report.updated)
    assert repo.secrets["FLEET_DEPLOY_KEY"] != old_secret
    assert _public_blob(repo.secrets["FLEET_DEPLOY_KEY"]) == release_key()["key"]
    assert [k["title"] for k in repo.keys.values()].count("fleetstrap-release") == 1


def test_release_key_secret_is_not_taken_from_the_command_line(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = _with_release_workflow(make_fleet(tmp_path / "fleet"))
    with pytest.raises(UserError, match="FLEET_DEPLOY_KEY is managed by push"):
        push_repo(_request(fleet, gh, secrets=(("FLEET_DEPLOY_KEY", "REG_PW"),)))
    assert gh.writes() == []


# What fleetstrap before rulesets PUT on .../branches/main/protection.
def _old_fleetstrap_protection(contexts: list[str], approvals: int = 0) -> dict[str, Any]:
    return {"required_status_checks": {"strict": True, "contexts": contexts}, "enforce_admins": False,
            "required_pull_request_reviews": {"required_approving_review_count": approvals} if approvals else None,
            "restrictions": None, "allow_force_pushes": False, "allow_deletions": False}


def test_classic_protection_of_an_earlier_run_moves_into_the_ruleset(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet", image_automation=True)
    push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None
    repo.rulesets.clear()  # as an earlier fleetstrap left it: classic protection, a check added by hand
    repo.protection = _old_fleetstrap_protection(["validate", "Build images", "manual-check"], approvals=1)
    (key,) = repo.keys.values()
    # The problem: deploy keys can't bypass classic protection, Flux's push is rejected.
    blocked = _bot_push(gh, tmp_path / "flux-before", DEPLOY_KEY_USER, key["key"].split()[1])
    assert blocked.returncode != 0 and "GH006: Protected branch update failed for refs/heads/main" in blocked.stderr

    report = push_repo(_request(fleet, gh))
    assert repo.protection is None
    assert "classic branch protection on main (moved into the ruleset)" in report.updated
    (ruleset,) = repo.rulesets.values()
    assert [c["context"] for c in _rule(ruleset, "required_status_checks")["required_status_checks"]] == [  # type: ignore[index]
        "validate", "Build images", "manual-check"]
    assert _rule(ruleset, "pull_request")["required_approving_review_count"] == 1  # type: ignore[index]
    done = _bot_push(gh, tmp_path / "flux-after", DEPLOY_KEY_USER, key["key"].split()[1])
    assert done.returncode == 0, done.stderr


def test_hand_made_classic_protection_is_left_with_a_warning(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet")
    push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None
    repo.protection = {**_old_fleetstrap_protection(["validate"]), "enforce_admins": True}
    report = push_repo(_request(fleet, gh))
    assert repo.protection is not None and repo.protection["enforce_admins"] is True
    assert any("classic branch protection on main sets enforce_admins" in w for w in report.warnings)
    assert "ruleset 'fleetstrap main' on main" in report.in_place


def test_ruleset_edited_by_hand_is_extended_not_replaced(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet")
    push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None
    (ruleset,) = repo.rulesets.values()
    ruleset["enforcement"] = "evaluate"
    ruleset["bypass_actors"] = [a for a in ruleset["bypass_actors"] if a["actor_type"] != "DeployKey"]
    ruleset["rules"].append({"type": "required_linear_history"})
    _rule(ruleset, "required_status_checks")["required_status_checks"].insert(  # type: ignore[index]
        0, {"context": "manual-check"})
    report = push_repo(_request(fleet, gh))
    assert "ruleset 'fleetstrap main' on main" in report.updated
    assert any("enforcement 'evaluate'" in w for w in report.warnings)
    (ruleset,) = repo.rulesets.values()
    assert ruleset["enforcement"] == "evaluate"  # left as set by hand
    assert {"actor_id": None, "actor_type": "DeployKey", "bypass_mode": "always"} in ruleset["bypass_actors"]
    assert {"type": "required_linear_history"} in ruleset["rules"]
    assert [c["context"] for c in _rule(ruleset, "required_status_checks")["required_status_checks"]] == [  # type: ignore[index]
        "manual-check", "validate", "Build images"]
    writes = len(gh.writes())
    again = push_repo(_request(fleet, gh, secrets=()))
    assert "ruleset 'fleetstrap main' on main" in again.in_place and len(gh.writes()) == writes


@pytest.mark.parametrize("existing", [True, False], ids=["existing-repo", "new-repo"])
def test_rulesets_unavailable_on_a_free_private_repo_is_a_warning(gh: FakeGitHub, tmp_path: Path,
                                                                   existing: bool) -> None:
    gh.free_plan.add("octo")
    if existing:
        gh.create_repo("octo", "fleet-infra")
    fleet = make_fleet(tmp_path / "fleet")
    report = push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None and repo.plan_gated and repo.rulesets == {} and repo.log() == [_head(fleet)]
    assert any("rulesets are not available for octo/fleet-infra" in w and "GitHub Pro" in w for w in report.warnings)
    assert not any("ruleset" in c for c in report.created)


# ---------------------------------------------------------------- errors carry their HTTP status
def test_github_errors_carry_the_status_not_just_a_message(gh: FakeGitHub) -> None:
    from fleetstrap.errors import GitHubError
    from fleetstrap.publish.auth import Token
    from fleetstrap.publish.github_api import GitHubApi

    api = GitHubApi(Token(TOKEN, "$GH_TOKEN"), gh.url, ApiSettings(seconds_between_requests=0,
                                                                   seconds_between_writes=0))
    gh.fail("GET", r"^/repos/octo/fleet-infra$", 403, "Resource not accessible by integration")
    with pytest.raises(GitHubError) as info:
        api.get_repo("octo", "fleet-infra")
    assert info.value.status == 403 and isinstance(info.value, RemoteError)
    assert api.get_repo("octo", "fleet-infra") is None  # a 404 where absence is an answer: no error at all


def test_dry_run_without_a_token_records_writes_and_sends_nothing(gh: FakeGitHub, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GH_TOKEN")
    monkeypatch.setenv("PATH", str(tmp_path / "no-gh-here"))  # `gh auth token` must not answer either
    fleet = make_fleet(tmp_path / "fleet")
    report = push_repo(_request(fleet, gh, dry_run=True))
    assert gh.requests == []  # without a token nothing is even read
    assert any(w.startswith("no GitHub token") for w in report.warnings)
    assert report.planned[0] == "POST /user/repos (create private repository octo/fleet-infra)"
    assert any(op.startswith("git push origin HEAD:refs/heads/main") for op in report.planned)
