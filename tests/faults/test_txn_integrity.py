"""Issue 23 classes 5 and 8: `init --force` into an existing repository never commits or overwrites what is not
its own without saying so, and a broken `.git` is the user's error; committing commands refuse a detached HEAD
as push does. Every refusal: exit 1, one line, the repository exactly as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleetstrap.cli import run
from support.deploy import fleet_repo, release, rendered
from support.txn import env_for, existing_repo, fleetstrap, git, leftovers, one_line_error, state
from update_support import render_fleet, write_two_versions

SECRET = "AWS_SECRET_ACCESS_KEY=do-not-commit-me\n"


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("starter") / "fleet"
    assert run(["-q", "init", "-b", "starter", str(root)]) == 0
    return root



# ---------------------------------------------------------------- init --force (class 5)


def test_init_force_never_commits_an_untracked_secret(tmp_path: Path) -> None:
    dest = existing_repo(tmp_path)
    (dest / ".env.local").write_text(SECRET)
    first = git(dest, "rev-parse", "HEAD").strip()
    done = fleetstrap("init", "-b", "starter", "--force", str(dest), env=env_for(tmp_path / "tmp"))
    assert done.code == 0, done.err
    assert git(dest, "rev-parse", "HEAD~1").strip() == first
    assert git(dest, "status", "--porcelain").splitlines() == ["?? .env.local"]
    assert git(dest, "log", "--all", "--format=%H", "--", ".env.local") == ""
    committed = set(git(dest, "show", "--name-only", "--format=", "HEAD").split())
    assert ".env.local" not in committed and "NOTES.md" not in committed
    assert ".fleetstrap/answers/fleet.yml" in committed
    assert "do-not-commit-me" not in git(dest, "log", "-p", "--all")
    assert (dest / ".env.local").read_text() == SECRET
    assert leftovers(dest, tmp=tmp_path / "tmp") == []


@pytest.mark.parametrize("dirt", ["modified", "staged", "deleted"])
def test_init_force_refuses_a_tree_with_uncommitted_changes(tmp_path: Path, dirt: str) -> None:
    dest = existing_repo(tmp_path)
    if dirt == "modified":
        (dest / "NOTES.md").write_text("half-done edit\n")
    elif dirt == "staged":
        (dest / "plan.txt").write_text("staged\n")
        git(dest, "add", "plan.txt")
    else:
        (dest / "NOTES.md").unlink()
    before = state(dest)
    done = fleetstrap("init", "-b", "starter", "--force", str(dest), env=env_for(tmp_path / "tmp"))
    assert done.code == 1
    one_line_error(done, "uncommitted changes", "commit or stash")
    assert state(dest) == before
    assert leftovers(tmp_path, tmp=tmp_path / "tmp") == []


def test_init_force_names_the_files_it_would_overwrite(tmp_path: Path) -> None:
    dest = existing_repo(tmp_path)
    (dest / "README.md").write_text("# Our own README\n")
    git(dest, "add", "README.md")
    git(dest, "commit", "-q", "-m", "readme")
    before = state(dest)
    done = fleetstrap("init", "-b", "starter", "--force", str(dest), env=env_for(tmp_path / "tmp"))
    assert done.code == 1
    one_line_error(done, "would overwrite 1 file(s)", "README.md")
    assert "--overwrite" in done.err
    assert state(dest) == before

    done = fleetstrap("init", "-b", "starter", "--force", "--overwrite", str(dest), env=env_for(tmp_path / "tmp"))
    assert done.code == 0, done.err
    assert (dest / "README.md").read_text() != "# Our own README\n"
    assert "README.md" in git(dest, "show", "--name-only", "--format=", "HEAD").split()
    assert state(dest).status == ""


@pytest.mark.parametrize("broken", ["empty", "garbage-head", "file"])
def test_init_force_into_a_broken_git_dir_is_a_user_error(tmp_path: Path, broken: str) -> None:
    dest = tmp_path / "broken"
    dest.mkdir()
    (dest / "NOTES.md").write_text("ours\n")
    if broken == "empty":
        (dest / ".git").mkdir()
    elif broken == "garbage-head":
        (dest / ".git").mkdir()
        (dest / ".git" / "HEAD").write_text("this is not a ref\n")
    else:
        (dest / ".git").write_text("gitdir: /nowhere/at/all\n")
    files_before = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))
    done = fleetstrap("init", "-b", "starter", "--force", str(dest), env=env_for(tmp_path / "tmp"))
    assert done.code == 1, done.err
    assert "internal error" not in done.err
    one_line_error(done, ".git")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == files_before
    assert leftovers(tmp_path, tmp=tmp_path / "tmp") == []


# ---------------------------------------------------------------- detached HEAD (class 8)


def _detach(root: Path) -> None:
    git(root, "checkout", "-q", "--detach", "HEAD")


def test_add_on_a_detached_head_is_refused(starter: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(starter, tmp_path / "fleet", symlinks=True))
    _detach(root)
    before = state(root)
    for args in (("add", "service", "alpha"), ("add", "cluster", "edge-1", "-e", "dev"), ("add", "monitoring")):
        done = fleetstrap(*args, "-C", str(root), env=env_for(tmp_path / "tmp"))
        assert done.code == 1, done.err
        one_line_error(done, "detached HEAD")
        assert state(root) == before
    # --no-commit commits nothing, so a detached HEAD is no obstacle
    done = fleetstrap("add", "service", "alpha", "--no-commit", "-C", str(root), env=env_for(tmp_path / "tmp"))
    assert done.code == 0, done.err
    assert git(root, "rev-parse", "HEAD").strip() == before.head


def test_update_commit_on_a_detached_head_is_refused(tmp_path: Path) -> None:
    from fleetstrap.render import TemplateSource

    template = tmp_path / "templates"
    write_two_versions(template)
    root = tmp_path / "fleet"
    render_fleet(root, TemplateSource(str(template), "v1.0.0"), ["alpha"])
    (root / "extra.txt").write_text("x\n")
    git(root, "add", "extra.txt")
    git(root, "commit", "-q", "-m", "second")
    git(root, "checkout", "-q", "--detach", "HEAD~1")
    before = state(root)
    done = fleetstrap("update", str(root), "--template", str(template), "--no-validate", "--commit",
                      env=env_for(tmp_path / "tmp"))
    assert done.code == 1, done.err
    one_line_error(done, "detached HEAD")
    assert state(root) == before


@pytest.mark.parametrize("args", [("promote", "hello", "--to", "staging"), ("rollback", "hello", "--env", "dev")])
def test_promote_and_rollback_on_a_detached_head_are_refused(tmp_path: Path, args: tuple[str, ...]) -> None:
    root = fleet_repo(rendered("flux", "monorepo", False), tmp_path / "fleet")
    assert release(root, "0.2.0") is not None
    assert release(root, "0.3.0") is not None
    git(root, "checkout", "-q", "--detach", "HEAD~1")  # the detached commit saw 0.2.0
    before = state(root)
    done = fleetstrap(*args, "-C", str(root), env=env_for(tmp_path / "tmp"))
    assert done.code == 1, done.err
    one_line_error(done, "detached HEAD")
    assert state(root) == before


def test_init_force_into_a_detached_repo_is_refused(tmp_path: Path) -> None:
    dest = existing_repo(tmp_path)
    _detach(dest)
    before = state(dest)
    done = fleetstrap("init", "-b", "starter", "--force", str(dest), env=env_for(tmp_path / "tmp"))
    assert done.code == 1
    one_line_error(done, "detached HEAD")
    assert state(dest) == before


def test_add_commits_by_default_and_no_commit_opts_out(starter: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(starter, tmp_path / "fleet", symlinks=True))
    head = git(root, "rev-parse", "HEAD").strip()
    done = fleetstrap("add", "cluster", "edge-1", "-e", "dev", "-C", str(root), env=env_for(tmp_path / "tmp"))
    assert done.code == 0, done.err
    assert git(root, "rev-parse", "HEAD~1").strip() == head and state(root).status == ""
    done = fleetstrap("add", "cluster", "edge-2", "-e", "dev", "--no-commit", "-C", str(root),
                      env=env_for(tmp_path / "tmp"))
    assert done.code == 0, done.err
    assert git(root, "rev-parse", "HEAD~1").strip() == head
    assert state(root).status != ""
