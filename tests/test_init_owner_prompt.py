"""`init --blueprint` on a terminal asks for the owner while it is the blueprints' placeholder (example-org): the
git URL, the images and the deploy keys derive from it, and `push` refuses the placeholder. Driven with keystrokes
through a real pseudo-terminal; without a terminal nothing is asked (scripts and CI keep today's behaviour)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from support.commands import ok

pexpect = pytest.importorskip("pexpect")

ENTER = "\r"
KILL_LINE = "\x15"  # ctrl-u: clear what was typed


def _spawn(*args: str) -> object:
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    return pexpect.spawn(sys.executable, ["-m", "fleetstrap", *args], env=env, encoding="utf-8", timeout=300,
                         dimensions=(40, 120))


def _recorded(dest: Path) -> dict[str, object]:
    return dict(yaml.safe_load((dest / ".fleetstrap" / "answers" / "fleet.yml").read_text()))


def test_init_with_a_blueprint_asks_for_the_owner_on_a_terminal(tmp_path: Path) -> None:
    dest = tmp_path / "fleet"
    child = _spawn("init", "--blueprint", "starter", "--no-validate", str(dest))
    try:
        child.expect("GitHub owner")
        child.expect("'example-org' is a placeholder")  # the blueprint's owner, named in the question
        child.send("example-org" + ENTER)  # refused: still the placeholder
        child.expect("name your GitHub user or organization")
        child.send(KILL_LINE + "acme" + ENTER)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    recorded = _recorded(dest)
    assert recorded["owner"] == "acme"
    assert recorded["git_url"] == "ssh://git@github.com/acme/fleet-infra.git"
    assert recorded["registry"] == "ghcr.io/acme"


def test_an_owner_given_is_not_asked_again(tmp_path: Path) -> None:
    dest = tmp_path / "fleet"
    child = _spawn("init", "--blueprint", "starter", "--data", "owner=you", "--no-validate", str(dest))
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert "GitHub owner" not in str(child.before)
    assert _recorded(dest)["owner"] == "you"


def test_without_a_terminal_the_placeholder_stays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "init", "--blueprint", "starter", "--no-validate", str(tmp_path / "fleet"))
    assert _recorded(tmp_path / "fleet")["owner"] == "example-org"  # push refuses it until the user names theirs
