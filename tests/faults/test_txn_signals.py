"""Issue 23 class 4: SIGINT and SIGTERM at named moments of init, add, update and promote. Before the landing the
repository is exactly as before; a signal during the landing waits for it (the repository is then exactly
complete). Either way the exit is 130 (SIGINT) / 143 (SIGTERM) with one line, no traceback, no staging directory,
no lock left. The moment is the command's own checkpoint (transaction.checkpoint), reached, not waited for."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from fleetstrap.cli import run
from support.deploy import fleet_repo, release, rendered, tag_of
from support.txn import Paused, env_for, existing_repo, git, leftovers, state
from update_support import render_fleet, write_two_versions

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
WORD = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("starter") / "fleet"
    assert run(["-q", "init", "-b", "starter", str(root)]) == 0
    return root


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def _interrupted(done_code: int, err: str, sig: signal.Signals) -> None:
    assert done_code == EXIT[sig], err
    assert "Traceback" not in err
    expected = f"error: {WORD[sig]}" + (" (SIGTERM)" if sig == signal.SIGTERM else "")
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [expected]


# ---------------------------------------------------------------- init


@pytest.mark.parametrize(("step", "sig"), [("render", signal.SIGINT), ("render", signal.SIGTERM),
                                           ("validate", signal.SIGTERM)])
def test_init_interrupted_before_landing_leaves_nothing(tmp_path: Path, step: str, sig: signal.Signals) -> None:
    dest = tmp_path / "work" / "fleet"
    dest.parent.mkdir()
    env = env_for(tmp_path / "tmp")
    paused = Paused(("init", "-b", "starter", str(dest)), step, env, tmp_path / "marker")
    assert leftovers(dest.parent), "the staging directory and lock exist while init works"
    done = paused.signal(sig)
    _interrupted(done.code, done.err, sig)
    assert not dest.exists()
    assert leftovers(dest.parent, tmp=tmp_path / "tmp") == []


def test_init_terminated_while_landing_completes_it(tmp_path: Path) -> None:
    dest = tmp_path / "work" / "fleet"
    dest.parent.mkdir()
    env = env_for(tmp_path / "tmp")
    done = Paused(("init", "-b", "starter", str(dest)), "land", env, tmp_path / "marker").signal(signal.SIGTERM)
    _interrupted(done.code, done.err, signal.SIGTERM)
    after = state(dest)
    assert after.head and after.status == "" and after.branch == "main"
    (subject,) = git(dest, "log", "--format=%s").splitlines()
    assert subject.startswith("Initial fleet from fleetstrap (")
    assert leftovers(dest.parent, tmp=tmp_path / "tmp") == []


def test_init_force_into_a_repo_interrupted_leaves_it_as_it_was(tmp_path: Path) -> None:
    dest = existing_repo(tmp_path)
    before = state(dest)
    env = env_for(tmp_path / "tmp")
    done = Paused(("init", "-b", "starter", "--force", str(dest)), "validate", env,
                  tmp_path / "marker").signal(signal.SIGTERM)
    _interrupted(done.code, done.err, signal.SIGTERM)
    assert state(dest) == before
    assert leftovers(dest, tmp=tmp_path / "tmp") == []


# ---------------------------------------------------------------- add


@pytest.mark.parametrize(("step", "sig"), [("render", signal.SIGTERM), ("merge", signal.SIGINT),
                                           ("validate", signal.SIGTERM), ("validate", signal.SIGINT)])
def test_add_interrupted_before_landing_leaves_the_repo_as_it_was(starter: Path, tmp_path: Path, step: str,
                                                                   sig: signal.Signals) -> None:
    root = _copy(starter, tmp_path / "fleet")
    before = state(root)
    env = env_for(tmp_path / "tmp")
    done = Paused(("add", "service", "payments", "-C", str(root)), step, env, tmp_path / "marker").signal(sig)
    _interrupted(done.code, done.err, sig)
    assert state(root) == before
    assert leftovers(root, tmp=tmp_path / "tmp") == []


def test_add_terminated_while_landing_is_complete_and_committed(starter: Path, tmp_path: Path) -> None:
    root = _copy(starter, tmp_path / "fleet")
    before = state(root)
    env = env_for(tmp_path / "tmp")
    done = Paused(("add", "service", "payments", "-C", str(root)), "land", env,
                  tmp_path / "marker").signal(signal.SIGTERM)
    _interrupted(done.code, done.err, signal.SIGTERM)
    after = state(root)
    assert after.status == "" and after.head != before.head
    assert git(root, "log", "-1", "--format=%s").strip() == "Add service payments"
    assert git(root, "rev-parse", "HEAD~1").strip() == before.head
    assert "payments" in (root / ".fleetstrap/answers/fleet.yml").read_text()
    assert leftovers(root, tmp=tmp_path / "tmp") == []


# ---------------------------------------------------------------- update


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = tmp_path_factory.mktemp("tpl") / "templates"
    return write_two_versions(t)


@pytest.fixture(scope="module")
def outdated(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fleetstrap.render import TemplateSource

    root = tmp_path_factory.mktemp("outdated") / "fleet"
    render_fleet(root, TemplateSource(str(template), "v1.0.0"), ["alpha"])
    return root


@pytest.mark.parametrize(("step", "sig"), [("merge", signal.SIGTERM), ("validate", signal.SIGINT),
                                           ("validate", signal.SIGTERM)])
def test_update_commit_interrupted_before_landing_leaves_the_repo_as_it_was(
        outdated: Path, template: Path, tmp_path: Path, step: str, sig: signal.Signals) -> None:
    root = _copy(outdated, tmp_path / "fleet")
    before = state(root)
    env = env_for(tmp_path / "tmp")
    done = Paused(("update", str(root), "--template", str(template), "--no-validate", "--commit"), step, env,
                  tmp_path / "marker").signal(sig)
    _interrupted(done.code, done.err, sig)
    assert state(root) == before
    assert leftovers(root, tmp=tmp_path / "tmp") == []


def test_update_commit_interrupted_while_landing_is_complete(outdated: Path, template: Path,
                                                             tmp_path: Path) -> None:
    root = _copy(outdated, tmp_path / "fleet")
    before = state(root)
    env = env_for(tmp_path / "tmp")
    done = Paused(("update", str(root), "--template", str(template), "--no-validate", "--commit"), "land", env,
                  tmp_path / "marker").signal(signal.SIGINT)
    _interrupted(done.code, done.err, signal.SIGINT)
    after = state(root)
    assert after.status == "" and git(root, "rev-parse", "HEAD~1").strip() == before.head
    assert git(root, "log", "-1", "--format=%s").startswith("fleetstrap update: templates v1.0.0 -> v2.0.0")
    assert leftovers(root, tmp=tmp_path / "tmp") == []


# ---------------------------------------------------------------- promote


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = fleet_repo(rendered("flux", "monorepo", False), tmp_path_factory.mktemp("released") / "fleet")
    assert release(root, "0.2.0") is not None
    return root


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_promote_interrupted_after_reading_leaves_the_repo_as_it_was(released: Path, tmp_path: Path,
                                                                     sig: signal.Signals) -> None:
    root = _copy(released, tmp_path / "fleet")
    before = state(root)
    env = env_for(tmp_path / "tmp")
    done = Paused(("promote", "hello", "--to", "staging", "-C", str(root)), "read", env,
                  tmp_path / "marker").signal(sig)
    _interrupted(done.code, done.err, sig)
    assert state(root) == before
    assert leftovers(root, tmp=tmp_path / "tmp") == []


def test_promote_terminated_while_landing_is_complete(released: Path, tmp_path: Path) -> None:
    root = _copy(released, tmp_path / "fleet")
    before = state(root)
    env = env_for(tmp_path / "tmp")
    done = Paused(("promote", "hello", "--to", "staging", "-C", str(root)), "land", env,
                  tmp_path / "marker").signal(signal.SIGTERM)
    _interrupted(done.code, done.err, signal.SIGTERM)
    assert state(root).status == "" and git(root, "rev-parse", "HEAD~1").strip() == before.head
    assert tag_of(root, "staging") == "0.2.0"
    assert leftovers(root, tmp=tmp_path / "tmp") == []
