"""Issue 23 class 3: two commands on one repository. The second mutating command exits 1 with one line naming the
holder (command, pid, host); nothing of the first is lost; a lock left by a killed process is recovered."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
import yaml

from fleetstrap.cli import run
from support.deploy import fleet_repo, release, rendered, tag_of
from support.txn import Paused, env_for, fleetstrap, git, leftovers, one_line_error, state


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("starter") / "fleet"
    assert run(["-q", "init", "-b", "starter", str(root)]) == 0
    return root


@pytest.fixture
def fleet(starter: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(starter, tmp_path / "fleet", symlinks=True))


def _services(root: Path) -> list[str]:
    return list(yaml.safe_load((root / ".fleetstrap/answers/fleet.yml").read_text())["services"])


def test_second_add_is_refused_naming_the_holder_and_nothing_is_lost(fleet: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path / "tmp")
    first = Paused(("add", "service", "alpha", "-C", str(fleet)), "render", env, tmp_path / "marker")
    pid = first.proc.pid
    second = fleetstrap("add", "service", "beta", "-C", str(fleet), env=env)
    assert second.code == 1
    one_line_error(second, "locked by `fleetstrap add service alpha`", f"pid {pid}")
    done = first.resume()
    assert done.code == 0, done.err
    again = fleetstrap("add", "service", "beta", "-C", str(fleet), env=env)
    assert again.code == 0, again.err
    assert {"alpha", "beta"} <= set(_services(fleet))
    for env_name in ("dev",):
        kustomization = (fleet / "apps" / env_name / "kustomization.yaml").read_text()
        assert "alpha" in kustomization and "beta" in kustomization
    assert git(fleet, "log", "-2", "--format=%s").splitlines() == ["Add service beta", "Add service alpha"]
    assert git(fleet, "show", "--name-only", "--format=", "HEAD~1").count("beta") == 0  # alpha's commit: alpha's files
    assert state(fleet).status == ""
    assert leftovers(fleet, tmp=tmp_path / "tmp") == []


def test_update_and_promote_wait_their_turn_too(fleet: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path / "tmp")
    before = state(fleet)
    holder = Paused(("add", "cluster", "edge-1", "-e", "dev", "-C", str(fleet)), "validate", env,
                    tmp_path / "marker")
    for args, words in ((("update", str(fleet), "--commit"), ("locked by `fleetstrap add cluster edge-1`",)),
                        (("add", "monitoring", "-C", str(fleet)), ("locked by",)),
                        (("init", "-b", "starter", "--force", str(fleet)), ("locked by",))):
        done = fleetstrap(*args, env=env)
        assert done.code == 1, done.err
        one_line_error(done, *words)
    assert holder.signal(signal.SIGTERM).code == 143
    assert state(fleet) == before


def test_a_dry_run_is_not_blocked_by_a_writer(tmp_path: Path) -> None:
    root = fleet_repo(rendered("flux", "monorepo", False), tmp_path / "fleet")
    assert release(root, "0.2.0") is not None
    env = env_for(tmp_path / "tmp")
    holder = Paused(("promote", "hello", "--to", "staging", "-C", str(root)), "read", env, tmp_path / "marker")
    dry = fleetstrap("promote", "hello", "--to", "staging", "--dry-run", "-C", str(root), env=env)
    assert dry.code == 0, dry.err
    refused = fleetstrap("rollback", "hello", "--env", "dev", "-C", str(root), env=env)
    assert refused.code == 1
    one_line_error(refused, "locked by `fleetstrap promote`")
    assert holder.resume().code == 0
    assert tag_of(root, "staging") == "0.2.0"


def test_a_lock_left_by_a_killed_process_is_recovered(fleet: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path / "tmp")
    killed = Paused(("add", "service", "alpha", "-C", str(fleet)), "merge", env, tmp_path / "marker")
    killed.kill()  # SIGKILL: no handler runs, the lock file stays behind
    assert (fleet / ".git" / "fleetstrap.lock").exists()
    holder = json.loads((fleet / ".git" / "fleetstrap.lock").read_text())
    assert holder["pid"] == killed.proc.pid and holder["command"] == "add service alpha"
    done = fleetstrap("add", "service", "alpha", "-C", str(fleet), env=env)
    assert done.code == 0, done.err
    assert "alpha" in _services(fleet) and state(fleet).status == ""
    assert not (fleet / ".git" / "fleetstrap.lock").exists()


@pytest.mark.parametrize("content", [
    '{"pid": 999999999, "host": "elsewhere", "command": "add service ghost", "started": "2020-01-01T00:00:00Z"}',
    "",
    "not json at all",
])
def test_a_stale_or_garbled_lock_file_does_not_block(fleet: Path, tmp_path: Path, content: str) -> None:
    (fleet / ".git" / "fleetstrap.lock").write_text(content)
    done = fleetstrap("add", "cluster", "edge-2", "-e", "dev", "-C", str(fleet), env=env_for(tmp_path / "tmp"))
    assert done.code == 0, done.err
    assert git(fleet, "log", "-1", "--format=%s").strip() == "Add cluster edge-2 (dev)"
    assert not (fleet / ".git" / "fleetstrap.lock").exists()


def test_two_inits_into_one_new_destination(tmp_path: Path) -> None:
    dest = tmp_path / "work" / "fleet"
    dest.parent.mkdir()
    env = env_for(tmp_path / "tmp")
    first = Paused(("init", "-b", "starter", str(dest)), "render", env, tmp_path / "marker")
    second = fleetstrap("init", "-b", "multi-env", str(dest), env=env)
    assert second.code == 1
    one_line_error(second, "locked by `fleetstrap init`")
    assert first.resume().code == 0
    third = fleetstrap("init", "-b", "multi-env", str(dest), env=env)  # after it: the destination is not empty
    assert third.code == 1
    one_line_error(third, "is not empty")
    assert len(git(dest, "log", "--format=%H").split()) == 1
    assert leftovers(dest.parent, tmp=tmp_path / "tmp") == []
