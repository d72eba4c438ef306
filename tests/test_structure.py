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
    ("bootstrapper.py", {"Bootstrapper"}),
    ("push/runner.py", {"GitPublisher", "GitHubPublisher"}),
    ("deploy/apply.py", {"CheckoutWriter", "PullRequestWriter"}),
    ("publish/pullrequest.py", {"BranchPublisher"}),
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


def _lint_imports(config: Path | None = None,
                  package_parent: Path = PACKAGE.parent) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports (PyPI import-linter, in the test extra) is not installed")
    args = [exe, "--no-cache", *(["--config", str(config)] if config else [])]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(package_parent)})


def _contracts() -> list[dict[str, object]]:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = data["tool"]["importlinter"]["contracts"]
    return contracts


COMMANDS = ("init", "add", "update", "deploy", "push", "bootstrapper", "status")


def test_the_import_contracts_hold() -> None:
    """pyproject's [tool.importlinter]: commands never import each other; the layers of docs/architecture.md."""
    done = _lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Commands are leaves" in done.stdout and "BROKEN" not in done.stdout


def test_the_contracts_list_every_command_and_allow_no_exception() -> None:
    """Every command module is in the independence contract and in the commands' layer, and no contract carries
    an ignore entry: a command-to-command import has no way around the check."""
    contracts = _contracts()
    (leaves,) = [c for c in contracts if c["type"] == "independence"]
    assert sorted(leaves["modules"]) == sorted(f"fleetstrap.{m}" for m in COMMANDS)  # type: ignore[arg-type]
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    assert sorted(str(layers["layers"][1]).replace(" ", "").split("|")) == sorted(  # type: ignore[index]
        f"fleetstrap.{m}" for m in COMMANDS)
    assert [c["name"] for c in contracts if c.get("ignore_imports")] == []
    # Each CLI command reaches its library through a command module (or the shared gate, for validate).
    entries = set()
    for path in sorted((PACKAGE / "cli").glob("*_cmd.py")):
        entries |= {m.split(".")[1] for m in _imports_in(ast.parse(path.read_text(encoding="utf-8")).body)
                    if m.startswith("fleetstrap.") and m.split(".")[1] in {*COMMANDS, "upgrade", "bootstrap"}}
    assert entries <= set(COMMANDS), entries


@pytest.mark.parametrize(("importer", "imported"), [
    ("add.py", "fleetstrap.update"),
    ("deploy/apply.py", "fleetstrap.bootstrapper"),
    ("update/pr.py", "fleetstrap.push"),
    ("status.py", "fleetstrap.bootstrapper"),
])
def test_the_import_contracts_can_fail(tmp_path: Path, importer: str, imported: str) -> None:
    """The real contracts over a copy of the package with one command-to-command import added: it fails."""
    copy = tmp_path / "src" / "fleetstrap"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / importer).open("a", encoding="utf-8") as f:
        f.write(f"\nimport {imported}  # noqa\n")
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8")
    done = _lint_imports(config, copy.parent)
    assert done.returncode != 0
    command = "fleetstrap." + importer.removesuffix(".py").split("/")[0]
    leaves = done.stdout.split("Commands are leaves")[-1]
    assert f"{command} is not allowed to import {imported}" in leaves, done.stdout[-3000:]


# ---------------------------------------------------------------- dry runs are the recording writer


def test_only_the_writer_layer_commits_in_the_users_repo() -> None:
    """Commands land their changes through writer.py; none of them commits or restores the work tree itself."""
    offenders = []
    for rel in ("init.py", "add.py", "update/__init__.py", "deploy/apply.py"):
        text = (PACKAGE / rel).read_text(encoding="utf-8")
        offenders += [f"{rel}: {needle}" for needle in ("restore(", "git.add", '"add", "-A"', "ensure_commit(root",
                                                        "ensure_commit(self.root") if needle in text]
    assert offenders == []


# ---------------------------------------------------------------- every command's dry run writes nothing

DRY_RUN_TOKEN = "ghp_" + "S7" * 18


def _writers(module: str, function: str) -> list[str]:
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    found = []
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]:
        for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call)]:
            if ast.unparse(call.func) in {"open_writer", "choose_forge", "connect_clients", "choose_clients"}:
                kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
                found.append(f"{ast.unparse(call.func)}(dry_run={kw.get('dry_run')})")
    return found


@pytest.mark.parametrize(("module", "function", "expected"), [
    ("update/__init__.py", "update_fleet", ["open_writer(dry_run=request.pretend)"]),
    ("update/pr.py", "open_update_pr", ["choose_forge(dry_run=request.pretend)"]),
    ("deploy/apply.py", "run_deploy", ["choose_forge(dry_run=request.dry_run)",
                                       "open_writer(dry_run=request.dry_run and in_checkout)"]),
    ("push/runner.py", "push_repo", ["choose_clients(dry_run=request.dry_run)"]),
    ("bootstrapper.py", "bootstrap_cluster", ["connect_clients(dry_run=request.dry_run)"]),
])
def test_every_dry_run_is_chosen_once_where_the_command_starts(module: str, function: str,
                                                               expected: list[str]) -> None:
    """Each command picks its recording side (repository writer, forge, clients) in its entry function, once."""
    assert _writers(module, function) == expected


def _snapshot(root: Path, bare: Path | None = None) -> dict[str, object]:
    """Everything a dry run must leave alone: the work tree's files, the repository's refs, HEAD and worktrees,
    and the remote's refs."""
    def git(cwd: Path, *args: str) -> str:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout

    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
             if p.is_file() and ".git" not in p.relative_to(root).parts}
    return {"files": files, "refs": git(root, "for-each-ref"), "head": git(root, "rev-parse", "HEAD"),
            "status": git(root, "status", "--porcelain"), "worktrees": git(root, "worktree", "list"),
            "config": (root / ".git" / "config").read_text(encoding="utf-8"),
            "remote": git(bare, "for-each-ref") if bare is not None else ""}


@pytest.fixture
def forge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
          capsys: pytest.CaptureFixture[str]) -> Iterator[object]:
    from fake_github.session import fake_github, token_in_env_only
    from fake_github.spec import Spec

    with token_in_env_only(tmp_path, DRY_RUN_TOKEN, monkeypatch, caplog, capsys), \
            fake_github(tmp_path / "github", Spec(), DRY_RUN_TOKEN) as server:
        yield server


def _on_github(gh: object, root: Path) -> Path:
    repo = gh.create_repo("acme", "fleet-infra")  # type: ignore[attr-defined]
    subprocess.run(["git", "-C", str(root), "push", "-q", str(repo.bare), "main"], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(root), "remote", "add", "origin", f"{gh.url}/acme/fleet-infra.git"],  # type: ignore[attr-defined]
                   check=True, capture_output=True)
    return Path(repo.bare)


@pytest.mark.parametrize("args", [
    ("update", "--pretend"),
    ("update", "--pr", "--pretend"),
])
def test_update_dry_runs_write_nothing(forge: object, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       args: tuple[str, ...]) -> None:
    """update --pretend and update --pr --pretend: the recording writer and the recording forge."""
    from fleetstrap.cli import run
    from fleetstrap.render import TemplateSource
    from update_support import render_fleet, write_two_versions

    template = write_two_versions(tmp_path / "templates")
    root = tmp_path / "fleet"
    render_fleet(root, TemplateSource(str(template), "v1.0.0"), ["alpha"])
    bare = _on_github(forge, root)
    before, writes = _snapshot(root, bare), list(forge.writes())  # type: ignore[attr-defined]
    pr = ["--github-url", forge.url, "--api-delay", "0"] if "--pr" in args else []  # type: ignore[attr-defined]
    assert run([*args, "-C", str(root), "--template", str(template), *pr]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "would" in err and "v2.0.0" in err, err  # it did the work: it says what would change
    assert _snapshot(root, bare) == before
    assert forge.writes() == writes  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", [
    ("promote", "hello", "--to", "staging", "--dry-run"),
    ("promote", "hello", "--to", "staging", "--dry-run", "--pr"),
    ("rollback", "hello", "--env", "dev", "--dry-run"),
    ("resume", "hello", "--env", "dev", "--dry-run"),  # after a real rollback: something to resume
    ("push", "--dry-run"),
])
def test_deploy_and_push_dry_runs_write_nothing(forge: object, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                args: tuple[str, ...]) -> None:
    """promote/rollback/resume --dry-run (with --pr: the recording forge) and push --dry-run."""
    from fleetstrap.cli import run
    from support.deploy import fleet_repo, release
    from support.fleet import render_blueprint

    fleet = render_blueprint("multi-env", engine="flux", repo_layout="monorepo", image_automation=True, owner="acme")
    root = fleet_repo(fleet, tmp_path / "fleet")
    for version in ("0.2.0", "0.3.0"):
        release(root, version, by="flux")
    if args[0] == "resume":
        assert run(["rollback", "hello", "--env", "dev", "-C", str(root)]) == 0, capsys.readouterr().err
        capsys.readouterr()
    bare = _on_github(forge, root)
    before, writes = _snapshot(root, bare), list(forge.writes())  # type: ignore[attr-defined]
    pr = ["--github-url", forge.url, "--api-delay", "0"] if "--pr" in args or args[0] == "push" else []  # type: ignore[attr-defined]
    assert run([*args, "-C", str(root), *pr]) == 0, capsys.readouterr().err
    assert "would" in capsys.readouterr().err.lower()
    assert _snapshot(root, bare) == before
    assert forge.writes() == writes  # type: ignore[attr-defined]


# ---------------------------------------------------------------- one error tree


def _outside_the_tree(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(b).split(".")[-1] for b in node.bases}
            if bases & {"Exception", "BaseException", "ValueError", "RuntimeError", "OSError", "TypeError"}:
                found.append(f"{node.name}({', '.join(sorted(bases))})")
    return found


def test_every_exception_class_is_in_the_one_error_tree() -> None:
    """Each exception fleetstrap defines derives from errors.FleetstrapError (so it has an exit code and a
    one-line message); only Terminated (SIGTERM) stands beside KeyboardInterrupt. Checked on the source, so a
    module behind an optional extra counts too."""
    outside = [f"{p.relative_to(PACKAGE)}: {c}" for p in sorted(PACKAGE.rglob("*.py"))
               for c in _outside_the_tree(p.read_text(encoding="utf-8"))]
    assert outside == ["errors.py: FleetstrapError(Exception)", "errors.py: Terminated(BaseException)"]


def test_the_error_tree_check_can_fail() -> None:
    assert _outside_the_tree("class RenderError(Exception):\n    pass\n") == ["RenderError(Exception)"]
    assert _outside_the_tree("class ValuesError(errors.UserError):\n    pass\n") == []


def test_no_exception_drops_its_cause() -> None:
    """`raise ... from None` hides why; a cause that could carry a secret is redacted instead (github_api)."""
    offenders = [f"{p.relative_to(PACKAGE)}:{n}" for p in sorted(PACKAGE.rglob("*.py"))
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "from None" in line]
    assert offenders == []
