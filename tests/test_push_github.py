"""fleetstrap push against a local fake GitHub (REST validated against GitHub's OpenAPI subset + git HTTP)."""

from __future__ import annotations

import logging
import subprocess
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fake_github import FakeGitHub
from fake_github.spec import Spec
from fleetstrap.cli import run
from fleetstrap.errors import RemoteError
from fleetstrap.publish import PushReport, PushRequest, keys, push_repo
from fleetstrap.publish.auth import basic_credentials
from gitservers import files_containing, make_fleet

TOKEN = "ghp_" + "Q7" * 18
OTHER_TOKEN = "fine-grained-token-0123456789"
SECRET_VALUE = "registry-password-5f2a"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec()


@pytest.fixture
def gh(tmp_path: Path, spec: Spec) -> Iterator[FakeGitHub]:
    server = FakeGitHub(tmp_path / "github", spec).start()
    server.add_user("octo")
    server.add_user("acme", org=True)
    server.add_team("acme", "platform")
    server.add_token(TOKEN, "octo")
    yield server
    server.stop()
    assert server.violations == [], "requests or responses outside GitHub's OpenAPI description"


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
         capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FLEETSTRAP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("REG_PW", SECRET_VALUE)
    yield
    # After every test: the token is in no file (repo and .git included), no log line, no output.
    out = capsys.readouterr()
    for needle in (TOKEN, basic_credentials(TOKEN)):
        assert files_containing(tmp_path, [needle]) == []
        assert needle not in caplog.text
        assert needle not in out.out and needle not in out.err


def _request(fleet: Path, gh: FakeGitHub, **kw: Any) -> PushRequest:
    base = PushRequest(path=fleet, github_url=gh.url, seconds_between_requests=0, seconds_between_writes=0,
                       max_rate_limit_wait=5, secrets=(("REGISTRY_PASSWORD", "REG_PW"),))
    return replace(base, **kw)


def _head(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


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
    # Required checks: the PR jobs with static names; the matrix job can't be required (warned).
    assert repo.protection is not None
    assert repo.protection["required_status_checks"]["contexts"] == ["validate", "Build images"]
    assert repo.protection["allow_force_pushes"] is False
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


def test_image_automation_gets_a_write_key(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet", image_automation=True)
    push_repo(_request(fleet, gh))
    (key,) = gh.repo("octo", "fleet-infra").keys.values()  # type: ignore[union-attr]
    assert key["read_only"] is False


def test_existing_protection_gets_our_checks_added_not_replaced(gh: FakeGitHub, tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path / "fleet")
    push_repo(_request(fleet, gh))
    repo = gh.repo("octo", "fleet-infra")
    assert repo is not None and repo.protection is not None
    repo.protection["required_status_checks"]["contexts"] = ["manual-check"]
    repo.protection["enforce_admins"] = True
    report = push_repo(_request(fleet, gh))
    assert repo.protection["required_status_checks"]["contexts"] == ["manual-check", "validate", "Build images"]
    assert repo.protection["enforce_admins"] is True
    assert any(u.startswith("branch protection") for u in report.updated)


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
    fleet = make_fleet(tmp_path / "fleet")
    report: PushReport = push_repo(_request(fleet, gh, dry_run=True))
    assert gh.writes() == [] and gh.repo("octo", "fleet-infra") is None
    assert not (fleet / ".git").exists() and not (tmp_path / "config").exists()
    text = "\n".join(report.planned)
    for op in ("POST /user/repos", "git init", "git push", "POST /repos/octo/fleet-infra/keys",
               "actions/secrets/REGISTRY_PASSWORD", "actions/variables", "environments/production",
               "branches/main/protection"):
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
