"""Structural rules of the package (issue 19) that a reader would otherwise have to check by hand."""

from __future__ import annotations

import ast
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetstrap.validate.schemas import CrdSchemas

PACKAGE = Path(__file__).resolve().parent.parent / "generator" / "fleetstrap"


def _imports_in(nodes: list[ast.stmt]) -> list[str]:
    names: list[str] = []
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and sub.module:
                names.append(sub.module)
            elif isinstance(sub, ast.Import):
                names += [a.name for a in sub.names]
    return names


def test_no_import_error_guard_around_this_packages_own_modules() -> None:
    """A broken import of our own module must fail loudly (a guard once skipped the validation gate)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Try):
                continue
            catches = [h for h in node.handlers if h.type is not None and "ImportError" in ast.unparse(h.type)]
            own = [m for m in _imports_in(node.body) if m == "fleetstrap" or m.startswith("fleetstrap.")]
            if catches and own:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} guards {', '.join(own)}")
    assert offenders == []


def test_the_guard_check_can_fail() -> None:
    bad = "try:\n    from fleetstrap.validate import gate\nexcept ImportError:\n    gate = None\n"
    tree = ast.parse(bad)
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.Try)]
    assert _imports_in(node.body) == ["fleetstrap.validate"]


class _Catalog(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 404 if "missing" in self.path else 503
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def catalog() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Catalog)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}" + "/{group}/{kind}_{version}.json"
    server.shutdown()
    server.server_close()


def test_schema_catalog_only_404_means_no_such_kind(catalog: str, tmp_path: Path) -> None:
    schemas = CrdSchemas((), tmp_path / "cache", offline=False, catalog=catalog.replace("{group}", "missing"))
    assert schemas.validator("example.com/v1", "Widget") is None
    assert schemas.network_failures == 0  # a 404 is an answer: the catalog has no such kind
    broken = CrdSchemas((), tmp_path / "cache", offline=False, catalog=catalog.replace("{group}", "busy"))
    assert broken.validator("example.com/v1", "Widget") is None
    assert broken.network_failures == 1  # a 503 says nothing about the kind: reported as the catalog failing


@pytest.mark.parametrize(("module", "classes"), [
    ("bootstrap/flow.py", {"Bootstrapper"}),
    ("publish/core.py", {"GitPublisher", "GitHubPublisher"}),
])
def test_steps_never_ask_whether_it_is_a_dry_run(module: str, classes: set[str]) -> None:
    """Dry run is a choice of clients made when the runner is built, not a branch in its steps."""
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    branches = []
    for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name in classes]:
        for fn in [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name not in {"__init__", "_connect"}]:
            for node in ast.walk(fn):
                test = getattr(node, "test", None)
                if isinstance(node, ast.If | ast.IfExp | ast.While) and test is not None and (
                        "dry_run" in ast.unparse(test) or "api is None" in ast.unparse(test)):
                    branches.append(f"{cls.name}.{fn.name}: {ast.unparse(test)}")
    assert branches == []


# ---------------------------------------------------------------- import contracts (issue 27)

ROOT = PACKAGE.parent.parent


def _lint_imports(config: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports (PyPI import-linter, in the test extra) is not installed")
    args = [exe, "--no-cache", *(["--config", str(config)] if config else [])]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})


def test_the_import_contracts_hold() -> None:
    """pyproject's [tool.importlinter]: commands never import each other; the layers of docs/architecture.md."""
    done = _lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Commands are leaves" in done.stdout and "BROKEN" not in done.stdout


def test_the_import_contracts_can_fail(tmp_path: Path) -> None:
    """The same independence contract without its one listed exception: add's import of update's engine breaks
    it, so a new command-to-command import would too."""
    config = tmp_path / "importlinter.ini"
    config.write_text("[importlinter]\nroot_package = fleetstrap\n\n[importlinter:contract:leaves]\n"
                      "name = no exceptions\ntype = independence\nmodules =\n    fleetstrap.init\n"
                      "    fleetstrap.add\n    fleetstrap.update\n    fleetstrap.deploy\n")
    done = _lint_imports(config)
    assert done.returncode != 0
    assert "fleetstrap.add is not allowed to import fleetstrap.update" in done.stdout


# ---------------------------------------------------------------- dry runs are the recording writer


@pytest.mark.parametrize(("module", "function"), [
    ("update/__init__.py", "update_fleet"),
    ("deploy/apply.py", "run_deploy"),
])
def test_dry_runs_choose_the_recording_writer_once(module: str, function: str) -> None:
    """Every command's dry run is `open_writer(..., dry_run=...)`: the writer is chosen where the command starts."""
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    (fn,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]
    calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and ast.unparse(n.func) == "open_writer"]
    assert len(calls) == 1 and any(k.arg == "dry_run" for k in calls[0].keywords)


def test_only_the_writer_layer_commits_in_the_users_repo() -> None:
    """Commands land their changes through writer.py; none of them commits or restores the work tree itself."""
    offenders = []
    for rel in ("init.py", "add.py", "update/__init__.py", "deploy/apply.py"):
        text = (PACKAGE / rel).read_text(encoding="utf-8")
        offenders += [f"{rel}: {needle}" for needle in ("restore(", "git.add", '"add", "-A"', "ensure_commit(root",
                                                        "ensure_commit(self.root") if needle in text]
    assert offenders == []
