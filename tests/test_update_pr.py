"""`fleetstrap update --pr` against the fake GitHub (REST validated against GitHub's OpenAPI subset, git over
HTTP) and against a plain git server on loopback (git daemon): branch, commit, push, pull request, idempotence."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_github import FakeGitHub
from fake_github.server import FakeRepo
from fake_github.session import fake_github, token_in_env_only
from fake_github.spec import Spec
from fleetstrap.cli import run
from fleetstrap.render import TemplateSource
from gitservers import Server, bare_repo, repo_log, start_git_daemon
from update_support import (
    V1,
    build_v2,
    commit_all,
    git,
    head,
    render_fleet,
    status,
    variant,
    write_two_versions,
    write_version,
)

TOKEN = "ghp_" + "Z3" * 18
VALUES = "apps/dev/alpha/values.yaml"
BRANCH_V2 = "fleetstrap/update-v2.0.0"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec()


@pytest.fixture
def template(tmp_path: Path) -> Path:
    t = tmp_path / "templates"
    return write_two_versions(t)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = tmp_path_factory.mktemp("tplpr") / "templates"
    write_version(t, V1, "v1.0.0")
    root = tmp_path_factory.mktemp("pristinepr") / "fleet"
    render_fleet(root, TemplateSource(str(t), "v1.0.0"), ["alpha"])
    return root


@pytest.fixture
def gh(tmp_path: Path, spec: Spec) -> Iterator[FakeGitHub]:
    with fake_github(tmp_path / "github", spec, TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
         capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    with token_in_env_only(tmp_path, TOKEN, monkeypatch, caplog, capsys):
        yield


def _fleet(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the pristine fleet (rendered at v1.0.0, which every test template repo has)."""
    root = tmp_path / "fleet"
    shutil.copytree(pristine, root, symlinks=True)
    return root


def _on_github(gh: FakeGitHub, root: Path) -> FakeRepo:
    repo = gh.create_repo("acme", "fleet-infra")
    subprocess.run(["git", "-C", str(root), "push", "-q", str(repo.bare), "main"], check=True, capture_output=True)
    git(root, "remote", "add", "origin", f"{gh.url}/acme/fleet-infra.git")
    return repo


def _pr(root: Path, gh: FakeGitHub, template: Path, *args: str) -> int:
    return run(["update", str(root), "--pr", "--template", str(template), "--github-url", gh.url, "--api-delay", "0",
                *args])


def _branches(bare: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(bare), "for-each-ref", "--format=%(refname:short)", "refs/heads"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


def _show(bare: Path, rev: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(bare), "show", f"{rev}:{path}"], capture_output=True, text=True,
                          check=True).stdout


def test_pull_request_opened_with_title_body_label_and_base(gh: FakeGitHub, pristine: Path, template: Path,
                                                            tmp_path: Path) -> None:
    root = _fleet(pristine, tmp_path)
    repo = _on_github(gh, root)
    before = head(root)

    assert _pr(root, gh, template) == 0

    (pr,) = repo.pulls.values()
    assert pr["title"] == "fleetstrap: update templates v1.0.0 → v2.0.0"
    assert pr["head"] == BRANCH_V2 and pr["base"] == "main" and pr["labels"] == ["fleetstrap"]
    assert pr["draft"] is False and pr["state"] == "open"
    body = pr["body"]
    assert "**service/alpha** `v1.0.0` → `v2.0.0`" in body
    lines = body.splitlines()
    at = lines.index("- **service/alpha** `v1.0.0` → `v2.0.0`")
    changed = next(line for line in lines[at:] if line.strip().startswith("- changed:"))
    assert f"`{VALUES}`" in changed and "`apps/dev/alpha/imagepolicy.yaml`" in changed
    assert "**fleet** `v1.0.0` → `v2.0.0`" in body  # a version bump is listed too
    assert "Bot-owned lines" in body and "Conflicts" not in body
    assert TOKEN not in body and TOKEN not in pr["title"]
    # The branch holds the update; main (remote and local) and the user's checkout are untouched.
    assert _branches(repo.bare) == sorted(["main", BRANCH_V2])
    assert "memory: 256Mi" in _show(repo.bare, BRANCH_V2, VALUES)
    assert repo.head("main") == before and head(root) == before and status(root) == []
    assert git(root, "branch", "--list").split() == ["*", "main"]
    assert git(root, "worktree", "list").count("\n") == 1


def test_rerun_with_nothing_new_writes_nothing(gh: FakeGitHub, pristine: Path, template: Path,
                                               tmp_path: Path) -> None:
    root = _fleet(pristine, tmp_path)
    repo = _on_github(gh, root)
    assert _pr(root, gh, template) == 0
    writes, branch_head = list(gh.writes()), repo.head(BRANCH_V2)

    assert _pr(root, gh, template) == 0

    assert gh.writes() == writes  # no new pull request, label, comment or edit
    assert repo.head(BRANCH_V2) == branch_head and len(repo.pulls) == 1
    assert all(not pr["comments"] for pr in repo.pulls.values())


def test_newer_template_version_supersedes_the_open_pull_request(gh: FakeGitHub, pristine: Path, template: Path,
                                                                 tmp_path: Path) -> None:
    root = _fleet(pristine, tmp_path)
    repo = _on_github(gh, root)
    assert _pr(root, gh, template) == 0
    v3 = variant(build_v2(), "service", "services/{{ service_name }}/README.md.jinja", "A Rust service.",
                 "A Rust service with OTLP tracing.")
    write_version(template, v3, "v3.0.0")

    assert _pr(root, gh, template) == 0

    old, new = repo.pulls[1], repo.pulls[2]
    assert new["head"] == "fleetstrap/update-v3.0.0" and new["state"] == "open" and new["labels"] == ["fleetstrap"]
    assert new["title"] == "fleetstrap: update templates v1.0.0 → v3.0.0"
    assert old["state"] == "closed"
    assert old["comments"] == [f"Superseded by #2 ({gh.url}/acme/fleet-infra/pull/2), which updates to newer "
                               "templates."]
    assert "with OTLP tracing" in _show(repo.bare, "fleetstrap/update-v3.0.0", "services/alpha/README.md")


def test_conflict_gives_a_draft_listing_the_files_and_exit_2(gh: FakeGitHub, pristine: Path, template: Path,
                                                             tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = _fleet(pristine, tmp_path)
    values = root / VALUES
    values.write_text(values.read_text().replace("memory: 128Mi", "memory: 512Mi"))
    commit_all(root, "more memory")
    repo = _on_github(gh, root)

    assert _pr(root, gh, template) == 2

    (pr,) = repo.pulls.values()
    assert pr["draft"] is True and pr["labels"] == ["fleetstrap"]
    assert "### Conflicts" in pr["body"]
    conflict_line = next(line for line in pr["body"].splitlines() if line.startswith(f"- `{VALUES}`"))
    assert "lines " in conflict_line
    committed = _show(repo.bare, BRANCH_V2, VALUES)
    assert "<<<<<<< before updating" in committed and "memory: 512Mi" in committed and "memory: 256Mi" in committed
    assert VALUES in capsys.readouterr().err
    assert status(root) == [] and "512Mi" in values.read_text() and "<<<<<<<" not in values.read_text()


def test_nothing_to_update_no_branch_no_pull_request(gh: FakeGitHub, pristine: Path, template: Path,
                                                     tmp_path: Path) -> None:
    root = _fleet(pristine, tmp_path)
    repo = _on_github(gh, root)

    assert _pr(root, gh, template, "--to", "v1.0.0") == 0

    assert gh.writes() == [] and repo.pulls == {} and _branches(repo.bare) == ["main"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_git_daemon(tmp_path_factory.mktemp("daemon"))
    yield server
    server.stop()


def test_plain_git_remote_gets_the_branch_and_nothing_else(daemon: Server, pristine: Path, template: Path,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _fleet(pristine, tmp_path)
    bare = bare_repo(daemon.root, f"{tmp_path.name}.git")
    git(root, "remote", "add", "origin", f"{daemon.url}/{tmp_path.name}.git")
    git(root, "push", "-q", "origin", "main")
    main = repo_log(bare)

    assert run(["update", str(root), "--pr", "--template", str(template)]) == 0

    assert _branches(bare) == sorted(["main", BRANCH_V2]) and repo_log(bare) == main
    assert "memory: 256Mi" in _show(bare, BRANCH_V2, VALUES)
    assert f"open a pull request from {BRANCH_V2} into main" in capsys.readouterr().err
    tip = repo_log(bare, BRANCH_V2)[0]
    # Again: the branch is there, nothing is pushed.
    assert run(["update", str(root), "--pr", "--template", str(template)]) == 0
    assert repo_log(bare, BRANCH_V2)[0] == tip


@pytest.mark.parametrize(("url", "expected"), [
    ("https://github.com/acme/fleet-infra.git", ("acme", "fleet-infra")),
    ("https://github.com/acme/fleet-infra", ("acme", "fleet-infra")),
    ("git@github.com:acme/fleet-infra.git", ("acme", "fleet-infra")),
    ("ssh://git@github.com/acme/fleet-infra.git", ("acme", "fleet-infra")),
    ("https://gitlab.com/acme/fleet-infra.git", None),
    ("git@ghe.example.com:acme/fleet-infra.git", None),
])
def test_pull_requests_only_for_the_github_the_remote_is_on(url: str, expected: tuple[str, str] | None) -> None:
    from fleetstrap.update.pr import _github_repo, branch_for

    assert _github_repo(url, "https://github.com") == expected
    assert branch_for("v2.1.0") == branch_for("2.1.0") == "fleetstrap/update-v2.1.0"
