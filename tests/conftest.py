"""Shared test configuration: the rule for skips, isolated cache/config dirs, a git identity, CRD schema location."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Under CI=true a skip is a failure unless allow-listed (support/skips.py): these hooks enforce it for the suite.
from support.skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 (pytest hooks)


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Per-worker cache/config so tests never touch the user's ~/.cache or ~/.config.
    saved = dict(os.environ)
    base = tmp_path_factory.mktemp("fleetstrap-env")
    os.environ.setdefault("FLEETSTRAP_CACHE_DIR", str(base / "cache"))
    os.environ["FLEETSTRAP_CONFIG_DIR"] = str(base / "config")
    os.environ.setdefault("GIT_AUTHOR_NAME", "Test Author")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "test@example.com")
    os.environ.setdefault("GIT_COMMITTER_NAME", "Test Author")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "test@example.com")
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "FLEETSTRAP_OTLP_ENDPOINT"):
        os.environ.pop(var, None)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _isolated_secrets() -> Iterator[None]:
    # redact's registry lives as long as the process, which is right for one CLI run; in a test worker it would
    # carry one test's "secrets" (e.g. an OTLP header value "fleet") into every later test's output.
    from fleetstrap import redact

    saved = set(redact._SECRETS)
    yield
    redact._SECRETS.clear()
    redact._SECRETS.update(saved)


@pytest.fixture(scope="session")
def crd_schemas() -> Path:
    """The CRD schemas bundled in the package (kubeconform layout), or $FLEETSTRAP_CRD_SCHEMAS when set."""
    from validate_fixture import crd_schemas as location

    return Path(location())


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real control plane (support/controlplane.py) for one test module; every process it started is stopped.

    One per module: what a module leaves on its cluster (CRDs, a bootstrapped Flux, namespaces) never meets
    another module, so the modules are right in any order, and only one control plane runs at a time."""
    from support.controlplane import control_plane_for_tests

    with control_plane_for_tests(tmp_path_factory.mktemp("controlplane")) as plane:
        yield plane
