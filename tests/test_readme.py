"""The README is a test: its quick start and the commands after it, taken literally and in order, in one shell on
a fresh clone of this repository with a fresh home (no git identity, no caches), the way a newcomer types them.
`push` talks to the fake GitHub on loopback through the documented override FLEETSTRAP_GITHUB_URL, with GH_TOKEN.
The cluster commands (README: "With a cluster") need a cluster and are proven by the bootstrap tests instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_github import FakeGitHub
from fake_github.spec import Spec

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "ghp_" + "R8" * 18
STEP = "@@readme-step"
pytestmark = pytest.mark.slow


def quick_start_commands(readme: str) -> list[str]:
    """The shell lines of the README's quick start, from its heading to the cluster commands, in order."""
    section = readme.split("\n## Quick start", 1)[1].split("\nWith a cluster", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    lines = [ln.rstrip() for block in blocks for ln in block.splitlines()]
    return [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def test_the_quick_start_is_extracted_as_written() -> None:
    commands = quick_start_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands[0].startswith("python3 -m venv .venv && . .venv/bin/activate && pip install '.[validate]' && "
                                  "fleetstrap init --blueprint starter --data owner=you ./fleet-infra")
    assert any(c.startswith("fleetstrap push -C ./fleet-infra --owner you") for c in commands)
    assert not any("bootstrap" in c for c in commands)  # after "With a cluster"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    server = FakeGitHub(tmp_path / "github", Spec()).start()
    server.add_user("you")
    server.add_token(TOKEN, "you")
    try:
        yield server
    finally:
        server.stop()


def _fresh_clone(tmp_path: Path) -> Path:
    checkout = tmp_path / "fleetstrap"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(checkout)], check=True)
    return checkout


def _newcomer_env(tmp_path: Path, github: FakeGitHub) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p != venv_bin)
    env = {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "GH_TOKEN": TOKEN,
           "FLEETSTRAP_GITHUB_URL": github.url}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})  # this machine's pip (CA bundle)
    return env


def test_readme_quick_start_runs_in_order(tmp_path: Path, github: FakeGitHub) -> None:
    commands = quick_start_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    checkout = _fresh_clone(tmp_path)
    script = "".join(f'{cmd}\necho "{STEP} {i} rc=$?" >&2\n' for i, cmd in enumerate(commands))
    res = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=checkout,
                         env=_newcomer_env(tmp_path, github), capture_output=True, text=True, check=False, timeout=1800)
    codes = {int(m.group(1)): int(m.group(2)) for m in re.finditer(rf"^{STEP} (\d+) rc=(\d+)$", res.stderr, re.M)}
    report = "\n".join(f"[{codes.get(i, '-')}] {cmd}" for i, cmd in enumerate(commands))
    print(f"README commands and their exit codes:\n{report}")  # for the record (pytest -s)
    failed = [i for i in range(len(commands)) if codes.get(i) != 0]
    assert not failed, f"README command failed:\n{report}\n--- output ---\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}"
    fleet = checkout / "fleet-infra"
    assert (fleet / ".fleetstrap/answers/service-payments.yml").is_file()
    assert ("you", "fleet-infra") in {(r.owner, r.name) for r in github.repos.values()}
    answers = (fleet / ".fleetstrap/answers/fleet.yml").read_text()
    assert "owner: you" in answers and "example-org" not in answers


def test_no_page_installs_fleetstrap_from_an_index_it_is_not_on() -> None:
    """Until the first release is published, the commands in README and docs install from a checkout, a git URL or
    a wheel, never `fleetstrap` by name from an index (prose may say that this does not work yet)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    by_name = re.compile(r"(pipx (install|run)|uvx|pip install)\s+(--?\S+\s+)*['\"]?fleetstrap(\[[a-z,]+\])?"
                         r"(?!\s*@)(['\"]|\s|$)", re.M)
    found = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}" for p in pages
             for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", p.read_text(encoding="utf-8"), re.S)
             for m in by_name.finditer(block)]
    assert found == []
    assert by_name.search("pipx install 'fleetstrap[validate]'") and by_name.search("uvx fleetstrap --help")
    assert not by_name.search("pip install 'fleetstrap[validate] @ git+https://h/o/fleetstrap.git'")
