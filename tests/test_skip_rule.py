"""The rule for skips (support/skips.py, enforced by tests/conftest.py), tested on pytest runs of its own.

Each case writes a tiny test module, runs pytest on it in a subprocess with the skip hooks loaded
(`-p support.skips`), and reads the outcome from a JUnit XML report: under CI=true every kind of skip fails
unless allow-listed; without CI it stays a skip with the package that provides the missing tool. The last case
runs a real test of this suite with its tool taken off PATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from support.tools import find_tool, require_tool

TESTS = Path(__file__).resolve().parent
HIDDEN = "promtool"  # a Debian-packaged tool the suite needs (test_monitoring, test_flagger)


def outcomes(report: Path) -> dict[str, tuple[str, str]]:
    """test name -> (passed / skipped / failed / error, message) from a JUnit XML report."""
    out: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name") or case.get("classname") or ""
        result = ("passed", "")
        for tag in ("skipped", "failure", "error"):
            node = case.find(tag)
            if node is not None:
                result = ({"failure": "failed"}.get(tag, tag), f"{node.get('message', '')}\n{node.text or ''}")
        out[name] = result
    return out


def path_without(tool: str, tmp: Path) -> str:
    """PATH with every directory that has `tool` replaced by a copy of it (symlinks) without `tool`."""
    dirs = []
    for i, entry in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        src = Path(entry)
        if not entry or not (src / tool).exists():
            dirs.append(entry)
            continue
        shadow = tmp / f"path{i}"
        shadow.mkdir()
        for item in src.iterdir():
            if item.name != tool:
                (shadow / item.name).symlink_to(item)
        dirs.append(str(shadow))
    return os.pathsep.join(dirs)


def run_pytest(tmp: Path, args: list[str], *, ci: bool, path: str | None = None) -> dict[str, tuple[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"}}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if ci:
        env["CI"] = "true"
    if path is not None:
        env["PATH"] = path
    report = tmp / "report.xml"
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "support.skips", "-p", "no:cacheprovider",
                          "-p", "no:randomly", "-n", "0", "-q", f"--junitxml={report}", *args],
                         cwd=tmp, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert report.is_file(), res.stdout[-3000:] + res.stderr[-3000:]
    found = outcomes(report)
    assert found, res.stdout[-3000:] + res.stderr[-3000:]
    return found


TINY = '''
import pytest
from support.tools import require_tool


def test_needs_the_hidden_tool():
    require_tool("{hidden}")


@pytest.mark.skipif(True, reason="a skipif mark")
def test_marked():
    pass


def test_skips_itself():
    pytest.skip("a plain pytest.skip")


def test_passes():
    pass
'''


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_tiny.py").write_text(TINY.format(hidden=HIDDEN), encoding="utf-8")
    return tmp_path


def test_under_ci_every_skip_fails(tiny: Path) -> None:
    found = run_pytest(tiny, ["tests/test_tiny.py"], ci=True, path=path_without(HIDDEN, tiny))
    assert found["test_passes"][0] == "passed"
    for name in ("test_needs_the_hidden_tool", "test_marked", "test_skips_itself"):
        state, message = found[name]
        assert state in {"failed", "error"}, (name, found[name])
        assert "CI must not skip" in message, message
    # The failure names the tool and the package that provides it.
    assert "promtool is not installed (Debian package `prometheus`)" in found["test_needs_the_hidden_tool"][1]


def test_without_ci_a_missing_tool_skips_with_its_package(tiny: Path) -> None:
    found = run_pytest(tiny, ["tests/test_tiny.py"], ci=False, path=path_without(HIDDEN, tiny))
    assert {name: state for name, (state, _) in found.items()} == {
        "test_needs_the_hidden_tool": "skipped", "test_marked": "skipped", "test_skips_itself": "skipped",
        "test_passes": "passed"}
    assert "Debian package `prometheus`" in found["test_needs_the_hidden_tool"][1]


def test_under_ci_a_module_level_importorskip_fails(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "test_imports.py").write_text(
        "import pytest\npytest.importorskip('fleetstrap_no_such_module')\n\ndef test_x():\n    pass\n",
        encoding="utf-8")
    found = run_pytest(tmp_path, ["test_imports.py"], ci=True)
    ((state, message),) = found.values()
    assert state == "error" and "CI must not skip" in message and "fleetstrap_no_such_module" in message, found


def test_under_ci_the_allow_listed_tests_still_skip(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "tests").mkdir()
    body = "import pytest\n\ndef test_{}():\n    pytest.skip('no token')\n"
    (tmp_path / "tests" / "test_push_live.py").write_text(body.format("live"), encoding="utf-8")
    (tmp_path / "tests" / "test_push_units.py").write_text(body.format("units"), encoding="utf-8")
    found = run_pytest(tmp_path, ["tests"], ci=True)
    assert {name: state for name, (state, _) in found.items()} == {"test_live": "skipped", "test_units": "failed"}


def test_under_ci_a_real_test_without_its_tool_fails(tmp_path: Path) -> None:
    """test_monitoring's promtool check, with promtool taken off PATH: it fails, naming the package."""
    require_tool(HIDDEN)  # the proof needs the tool to exist before it is hidden
    path = path_without(HIDDEN, tmp_path)
    assert find_tool(HIDDEN) is not None
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    found = run_pytest(tmp_path, [f"{TESTS / 'test_monitoring.py'}::test_promtool_checks_rules",
                                  "--rootdir", str(TESTS.parent), "-c", str(TESTS.parent / "pyproject.toml")],
                       ci=True, path=path)
    ((state, message),) = found.values()
    assert state == "failed" and "CI must not skip" in message, found
    assert "promtool is not installed (Debian package `prometheus`)" in message, message
