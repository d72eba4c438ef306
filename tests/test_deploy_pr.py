"""`promote --pr`, `rollback --pr` and `resume --pr` against the fake GitHub (REST checked against GitHub's
OpenAPI description, git over HTTP with GitHub's protected-branch check) and a plain git server: the branch, the
pull request and its body, idempotence, superseding, and the default branch never pushed to."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_github import FakeGitHub
from fake_github.server import FakeRepo
from fake_github.session import fake_github, token_in_env_only
from fake_github.spec import Spec
from fleetstrap.bootstrap.kube import KubeClient
from fleetstrap.deploy.apply import DeployRequest, run_deploy
from fleetstrap.errors import ClusterError
from fleetstrap.publish.github_api import ApiSettings
from fleetstrap.publish.pullrequest import PrOptions
from gitservers import Server, bare_repo, start_git_daemon
from support.commands import cli
from support.deploy import SERVICE, clean, fleet_repo, git, head, release, rendered, tag_of

TOKEN = "ghp_" + "D4" * 18


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec()


@pytest.fixture
def gh(tmp_path: Path, spec: Spec) -> Iterator[FakeGitHub]:
    with fake_github(tmp_path / "github", spec, TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
         capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    with token_in_env_only(tmp_path, TOKEN, monkeypatch, caplog, capsys):
        yield


def _fleet(tmp_path: Path, engine: str = "both") -> Path:
    root = fleet_repo(rendered(engine, "monorepo", True), tmp_path / "fleet")
    for version in ("0.2.0", "0.3.0"):
        release(root, version, by="flux" if engine != "argocd" else "argocd")
    return root


def _on_github(gh: FakeGitHub, root: Path, *, protect: bool = True) -> FakeRepo:
    repo = gh.create_repo("acme", "fleet-infra")
    subprocess.run(["git", "-C", str(root), "push", "-q", str(repo.bare), "main"], check=True, capture_output=True)
    git(root, "remote", "add", "origin", f"{gh.url}/acme/fleet-infra.git")
    if protect:  # GH006 for any push to main, admins included: only pull requests get there
        repo.protection = {"required_status_checks": {"strict": True, "contexts": ["validate"]},
                           "enforce_admins": True, "required_pull_request_reviews": {
                               "required_approving_review_count": 1}, "restrictions": None,
                           "allow_force_pushes": False, "allow_deletions": False}
    return repo


def _pr(capsys: pytest.CaptureFixture[str], gh: FakeGitHub, root: Path, *args: str) -> tuple[int, str, str]:
    return cli(capsys, *args, "-C", str(root), "--pr", "--github-url", gh.url, "--api-delay", "0")


def _show(bare: Path, rev: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(bare), "show", f"{rev}:{path}"], capture_output=True, text=True,
                          check=True).stdout


def _branches(bare: Path) -> list[str]:
    out = git(bare, "for-each-ref", "--format=%(refname:short)", "refs/heads")
    return sorted(out.split())


def test_promote_to_production_opens_a_pull_request_saying_what_runs_where(
        gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _fleet(tmp_path)
    assert cli(capsys, "promote", SERVICE, "--to", "staging", "-C", str(root))[0] == 0
    repo = _on_github(gh, root)
    main = repo.head("main")
    before = head(root)

    code, out, err = _pr(capsys, gh, root, "promote", SERVICE, "--to", "production")

    assert code == 0, err
    (pr,) = repo.pulls.values()
    branch = f"fleetstrap/promote-{SERVICE}-production-0.3.0"
    assert pr["head"] == branch and pr["base"] == "main" and pr["state"] == "open" and pr["labels"] == ["fleetstrap"]
    assert pr["title"] == f"{SERVICE}: promote 0.3.0 from staging to production"
    body = pr["body"]
    assert "### What runs where now (production is a production environment)" in body
    assert "| dev | `0.3.0` | no |" in body and "| staging | `0.3.0` | no |" in body
    assert "| production | `0.1.0` | no |" in body
    assert "The clusters were not asked" in body
    assert "+  tag: 0.3.0" in out and f"{gh.url}/acme/fleet-infra/pull/1" in err
    # The branch holds the change; main on GitHub, the checkout and its branches are untouched.
    assert "tag: 0.3.0 # {\"$imagepolicy\": \"flux-system:hello:tag\"}" in _show(
        repo.bare, branch, f"apps/production/{SERVICE}/values.yaml")
    assert repo.head("main") == main and head(root) == before and clean(root)
    assert _branches(repo.bare) == sorted(["main", branch])
    assert tag_of(root, "production") == "0.1.0"
    assert git(root, "worktree", "list").count("\n") == 0

    writes = list(gh.writes())
    code, _, err = _pr(capsys, gh, root, "promote", SERVICE, "--to", "production")
    assert code == 0 and "already up" in err and gh.writes() == writes and len(repo.pulls) == 1


def test_a_newer_promotion_supersedes_the_open_one(gh: FakeGitHub, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = _fleet(tmp_path)
    repo = _on_github(gh, root)
    assert _pr(capsys, gh, root, "promote", SERVICE, "--to", "staging", "--version", "0.2.0")[0] == 0

    assert _pr(capsys, gh, root, "promote", SERVICE, "--to", "staging")[0] == 0

    old, new = repo.pulls[1], repo.pulls[2]
    assert new["head"] == f"fleetstrap/promote-{SERVICE}-staging-0.3.0" and new["state"] == "open"
    assert old["state"] == "closed"
    assert old["comments"] == [f"Superseded by #2 ({gh.url}/acme/fleet-infra/pull/2), which promotes {SERVICE} in "
                               "staging to 0.3.0."]


def test_rollback_and_resume_as_pull_requests(gh: FakeGitHub, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = _fleet(tmp_path)
    repo = _on_github(gh, root)

    code, _, err = _pr(capsys, gh, root, "rollback", SERVICE, "--env", "dev")

    assert code == 0, err
    (pr,) = repo.pulls.values()
    branch = f"fleetstrap/rollback-{SERVICE}-dev-0.2.0"
    assert pr["head"] == branch and pr["title"] == f"{SERVICE}: roll back dev from 0.3.0 to 0.2.0"
    assert f"Resume with `fleetstrap resume {SERVICE} --env dev`" in pr["body"]
    assert "ImageUpdater hello-dev allows only 0.2.0" in pr["body"]
    pushed = _show(repo.bare, branch, f"apps/dev/{SERVICE}/values.yaml")
    assert "tag: 0.2.0 # fleetstrap-paused imagepolicy flux-system:hello:tag" in pushed
    message = git(repo.bare, "log", "-1", "--format=%B", branch)
    assert "Fleetstrap-Rolled-Back-From: 0.3.0" in message
    assert tag_of(root, "dev") == "0.3.0" and clean(root)

    # Merged (as a person would on GitHub), pulled: resume opens its own pull request.
    git(repo.bare, "update-ref", "refs/heads/main", branch)
    git(root, "pull", "-q", "--ff-only", str(repo.bare), "main")
    code, _, err = _pr(capsys, gh, root, "resume", SERVICE, "--env", "dev")
    assert code == 0, err
    resumed = _show(repo.bare, f"fleetstrap/resume-{SERVICE}-dev", f"apps/dev/{SERVICE}/values.yaml")
    assert 'tag: 0.2.0 # {"$imagepolicy": "flux-system:hello:tag"}' in resumed
    assert "fleetstrap-paused" not in _show(repo.bare, f"fleetstrap/resume-{SERVICE}-dev",
                                            f"argocd/image-updater/{SERVICE}.yaml")


def test_pull_request_mode_refuses_like_commit_mode(gh: FakeGitHub, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = _fleet(tmp_path)
    repo = _on_github(gh, root)
    writes = list(gh.writes())
    for args, needle in ((("promote", SERVICE, "--to", "production", "--version", "0.3.0"), "never ran in staging"),
                         (("promote", SERVICE, "--to", "production", "--from", "dev"), "skips staging"),
                         (("rollback", SERVICE, "--env", "qa"), "unknown environment 'qa'")):
        code, _, err = _pr(capsys, gh, root, *args)
        assert code == 1 and needle in err
    assert repo.pulls == {} and _branches(repo.bare) == ["main"] and gh.writes() == writes


class _Cluster:
    """A cluster running `tag` as the service's Deployment, through the KubeClient seam (None: unreachable)."""

    def __init__(self, tag: str | None) -> None:
        self.tag = tag

    def version(self) -> str:
        if self.tag is None:
            raise ClusterError("connection refused")
        return "1.34"

    def get(self, api_version: str, kind: str, name: str,  # noqa: ARG002 (the seam's shape)
            namespace: str = "") -> dict[str, Any] | None:
        if kind != "Deployment" or (name, namespace) != (SERVICE, SERVICE):
            return None
        return {"spec": {"template": {"spec": {"containers": [
            {"name": "otel-sidecar", "image": "otel/collector:0.1"},
            {"name": SERVICE, "image": f"ghcr.io/acme/{SERVICE}:{self.tag}"}]}}}}


def test_production_body_names_what_each_cluster_runs(gh: FakeGitHub, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = _fleet(tmp_path)
    assert cli(capsys, "promote", SERVICE, "--to", "staging", "-C", str(root))[0] == 0
    repo = _on_github(gh, root)
    running = iter([_Cluster("0.3.0"), _Cluster("0.3.0"), _Cluster(None)])  # dev, staging, prod: in answer order
    asked: list[str | None] = []

    def connector(kubeconfig: Path | None, context: str | None) -> KubeClient:  # noqa: ARG001 (the seam's shape)
        asked.append(context)
        return next(running)  # type: ignore[return-value]

    target = PrOptions(github_url=gh.url, api=ApiSettings(0, 0))
    report = run_deploy(DeployRequest(root, "promote", SERVICE, "production", clusters=True, pr=target), connector)

    assert report.outcome == "opened" and len(asked) == 3
    body = repo.pulls[1]["body"]
    assert "| dev | dev | `0.3.0` (Deployment) |" in body
    assert "| staging | staging | `0.3.0` (Deployment) |" in body
    assert "| prod | production | unreachable: connection refused |" in body
    assert "The clusters were not asked" not in body

    asked.clear()
    run_deploy(DeployRequest(root, "rollback", SERVICE, "staging", pr=target), connector)
    assert asked == []  # only a promotion into production asks the clusters


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_git_daemon(tmp_path_factory.mktemp("daemon"))
    yield server
    server.stop()


def test_plain_git_remote_gets_the_branch_only(daemon: Server, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = _fleet(tmp_path, engine="flux")
    bare = bare_repo(daemon.root, f"{tmp_path.name}.git")
    git(root, "remote", "add", "origin", f"{daemon.url}/{tmp_path.name}.git")
    git(root, "push", "-q", "origin", "main")
    main = git(bare, "rev-parse", "main")

    code, _, err = cli(capsys, "rollback", SERVICE, "--env", "dev", "--pr", "-C", str(root))

    assert code == 0, err
    branch = f"fleetstrap/rollback-{SERVICE}-dev-0.2.0"
    assert "open a pull request" in err and branch in err
    assert _branches(bare) == sorted(["main", branch]) and git(bare, "rev-parse", "main") == main
    assert "tag: 0.2.0" in _show(bare, branch, f"apps/dev/{SERVICE}/values.yaml")

    code, _, err = cli(capsys, "rollback", SERVICE, "--env", "dev", "--pr", "-C", str(root))
    assert code == 0 and "already up" in err
