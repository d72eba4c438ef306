"""The rule for skips, as pytest hooks (tests/conftest.py imports them; `-p support.skips` loads them alone).

A machine without a tool skips its tests with the reason. Under CI=true a skip is a FAILURE, whatever raised it
(support.tools.require_tool, pytest.skip, a skipif mark, importorskip at module level), unless the test is on
ALLOWED_SKIPS with the reason it may skip there: a skipped proof in CI would read like a passed one.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from support.tools import in_ci

# nodeid, or module path (relative to the rootdir), -> why CI may skip it. Keep it short.
ALLOWED_SKIPS: dict[str, str] = {
    "tests/test_push_live.py": "talks to the real GitHub: needs FLEETSTRAP_LIVE_GITHUB_TOKEN, which CI does not have",
    "tests/test_e2e_cluster.py": "needs a real cluster (FLEETSTRAP_E2E_KUBECONFIG): its own workflow, e2e-kind.yml, "
                                 "creates one with kind",
    "tests/test_validate_bundled.py::test_cross_check_with_the_crds_catalog":
        "a developer's cross-check against a CRDs catalog copied beside the repo (../shared/schemas/crds); a "
        "fresh CI machine has no copy and cannot fetch one (no GitHub access)",
}

RULE = "under CI=true a skip is a failure unless the test is on support/skips.py's ALLOWED_SKIPS"


def allowed(nodeid: str) -> str | None:
    """Why `nodeid` may skip in CI, or None."""
    module = nodeid.split("::", 1)[0]
    for key in (nodeid, module):
        if key in ALLOWED_SKIPS:
            return ALLOWED_SKIPS[key]
    # A parametrized case of an allowed test.
    base = nodeid.split("[", 1)[0]
    return ALLOWED_SKIPS.get(base)


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, lineno, message = longrepr
        return f"{message.removeprefix('Skipped: ')} ({path}:{lineno})"
    return str(longrepr)


def _fail_the_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci() or allowed(report.nodeid):
        return
    report.outcome = "failed"
    report.longrepr = f"CI must not skip: {_reason(report)}\n({RULE})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport() -> Generator[None, Any, None]:  # pluggy passes only the arguments named
    outcome = yield
    _fail_the_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report() -> Generator[None, Any, None]:
    # importorskip / pytest.skip(allow_module_level=True) skip a whole module while it is collected.
    outcome = yield
    _fail_the_skip(outcome.get_result())
