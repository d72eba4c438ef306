"""Validate reads only the repository: paths and symlinks that resolve outside it are findings and are never
opened, and remote kustomize bases are never fetched without the user's opt-in (never with --offline).

Canary files outside the repo hold a marker that must never reach the output; a loopback HTTP server must see
no request (and does see one when the user opts in, so the server is known to be reachable)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from fleetstrap.cli import run
from fleetstrap.errors import EXIT_FINDINGS
from fleetstrap.validate.check_kustomize import find_kustomize

CANARY = "CANARY-OUTSIDE-7f3a9c"

CM = f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: canary
data:
  secret: {CANARY}
  bad: [{CANARY}
"""

needs_kustomize = pytest.mark.skipif(find_kustomize() is None,
                                     reason="neither kustomize nor kubectl is installed (validate extra)")


def _kustomization(*resources: str, extra: str = "") -> str:
    lines = "".join(f"  - {r}\n" for r in resources)
    return f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{lines}{extra}"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "cm.yaml").write_text(CM, encoding="utf-8")
    (outside / "values.yaml").write_text(f"replicaCount: [{CANARY}\n", encoding="utf-8")
    (outside / "app.env").write_text(f"TOKEN={CANARY}\n", encoding="utf-8")
    (outside / "kustomization.yaml").write_text(_kustomization("cm.yaml"), encoding="utf-8")
    repo = tmp_path / "repo"
    (repo / "apps/dev").mkdir(parents=True)
    (repo / "apps/base").mkdir(parents=True)
    (repo / "apps/base/cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: own\n",
                                            encoding="utf-8")
    return repo, outside


def _validate(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[dict[str, object]]]:
    code = run(["validate", "--format", "json", *args, str(repo)])
    out = capsys.readouterr()
    text = out.out + out.err
    return code, text, json.loads(out.out)["findings"] if out.out.strip() else []


def _human(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    run(["validate", *args, str(repo)])
    out = capsys.readouterr()
    return out.out + out.err


@needs_kustomize
@pytest.mark.parametrize("entry", ["../../../outside/cm.yaml", "{outside}/cm.yaml", "../../../outside"])
def test_kustomization_entry_outside_the_repo_is_an_error_and_never_read(
        layout: tuple[Path, Path], entry: str, capsys: pytest.CaptureFixture[str]) -> None:
    repo, outside = layout
    (repo / "apps/dev/kustomization.yaml").write_text(
        _kustomization("../base/cm.yaml", entry.format(outside=outside)), encoding="utf-8")
    code, text, findings = _validate(repo, capsys, "--offline")
    assert CANARY not in text
    assert code == EXIT_FINDINGS
    assert [(f["check"], f["file"], f["line"]) for f in findings if f["severity"] == "error"] == [
        ("kustomize", "apps/dev/kustomization.yaml", 5)], findings
    assert "outside the repository" in str(findings[0]["message"])
    assert CANARY not in _human(repo, capsys, "--offline")


@needs_kustomize
@pytest.mark.parametrize("field", ["patch", "generator-file", "generator-env", "transformer-config", "base-dir"])
def test_every_path_a_kustomization_names_is_confined(layout: tuple[Path, Path], field: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    repo, outside = layout
    out = os.path.relpath(outside, repo / "apps/dev")
    extra = {
        "patch": f"patches:\n  - path: {out}/cm.yaml\n",
        "generator-file": f"configMapGenerator:\n  - name: x\n    files:\n      - key={out}/values.yaml\n",
        "generator-env": f"configMapGenerator:\n  - name: x\n    envs:\n      - {out}/app.env\n",
        "transformer-config": "transformers:\n  - transformer.yaml\n",
        "base-dir": "",
    }[field]
    resources = ["../base/cm.yaml"] + (["../shared"] if field == "base-dir" else [])
    (repo / "apps/dev/kustomization.yaml").write_text(_kustomization(*resources, extra=extra), encoding="utf-8")
    (repo / "apps/dev/transformer.yaml").write_text(
        f"apiVersion: builtin\nkind: PatchTransformer\nmetadata:\n  name: p\npath: {out}/cm.yaml\n", encoding="utf-8")
    # A base inside the repo that itself reaches out: reported there, and the overlay is not built either.
    (repo / "apps/shared").mkdir()
    (repo / "apps/shared/kustomization.yaml").write_text(_kustomization("../../../outside/cm.yaml"), encoding="utf-8")
    code, text, findings = _validate(repo, capsys, "--offline")
    assert CANARY not in text
    assert code == EXIT_FINDINGS
    errors = {(f["check"], f["file"]) for f in findings if f["severity"] == "error"}
    expected = {("kustomize", "apps/shared/kustomization.yaml")}
    if field != "base-dir":
        expected.add(("kustomize", "apps/dev/kustomization.yaml"))
    assert errors == expected, findings


@pytest.mark.parametrize("link", ["apps/dev/secret.yaml", "apps/linked"])
def test_symlink_resolving_outside_is_a_finding_never_opened(layout: tuple[Path, Path], link: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    repo, outside = layout
    target = outside / "cm.yaml" if link.endswith(".yaml") else outside
    (repo / link).symlink_to(target)
    code, text, findings = _validate(repo, capsys, "--offline")
    assert CANARY not in text
    assert code == EXIT_FINDINGS
    assert [(f["file"], f["severity"]) for f in findings if "outside the repository" in str(f["message"])] == [
        (link, "error")]


def test_symlink_inside_the_repo_is_read(layout: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    repo, _ = layout
    (repo / "apps/dev/own.yaml").symlink_to(repo / "apps/base/cm.yaml")
    code, _, findings = _validate(repo, capsys, "--offline")
    assert code == 0, findings


@needs_kustomize
def test_patch_file_symlinked_outside_is_not_read(layout: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    repo, outside = layout
    (repo / "apps/dev/patch.yaml").symlink_to(outside / "cm.yaml")
    (repo / "apps/dev/kustomization.yaml").write_text(
        _kustomization("../base/cm.yaml", extra="patches:\n  - path: patch.yaml\n"), encoding="utf-8")
    code, text, findings = _validate(repo, capsys, "--offline")
    assert CANARY not in text
    assert code == EXIT_FINDINGS
    assert {f["file"] for f in findings if f["severity"] == "error"} == {
        "apps/dev/patch.yaml", "apps/dev/kustomization.yaml"}, findings


def test_values_and_flux_paths_outside_are_not_read(layout: tuple[Path, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    repo, _ = layout
    (repo / "charts/web/templates").mkdir(parents=True)
    (repo / "charts/web/Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n", encoding="utf-8")
    (repo / "charts/web/values.yaml").write_text("replicaCount: 1\n", encoding="utf-8")
    (repo / "apps/dev/app.yaml").write_text("""\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://example.com/fleet.git
    path: charts/web
    helm:
      valueFiles:
        - ../../../outside/values.yaml
  destination:
    server: https://kubernetes.default.svc
    namespace: web
""", encoding="utf-8")
    _, text, _ = _validate(repo, capsys, "--offline")
    assert CANARY not in text


# --- remote bases ------------------------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        body = CM.replace(f"  bad: [{CANARY}\n", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    handler = type("Handler", (_Recorder,), {"requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


@needs_kustomize
@pytest.mark.parametrize("args", [("--offline",), (), ("--offline", "--allow-remote-bases")])
def test_remote_base_is_never_fetched_without_opt_in(layout: tuple[Path, Path], server: tuple[str, list[str]],
                                                     args: tuple[str, ...],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    repo, _ = layout
    url, requests = server
    (repo / "apps/dev/kustomization.yaml").write_text(
        _kustomization("../base/cm.yaml", f"{url}/cm.yaml", f"git::{url}/repo.git//deploy?ref=v1",
                       "github.com/example/fleet//apps/base?ref=v1"), encoding="utf-8")
    code, text, findings = _validate(repo, capsys, "--disable", "helm", *args)
    assert requests == []
    assert CANARY not in text
    assert code == 0
    remote = [f for f in findings if "remote base" in str(f["message"])]
    assert [(f["severity"], f["line"]) for f in remote] == [("warning", 5), ("warning", 6), ("warning", 7)]
    assert ("--offline" in str(remote[0]["message"])) == ("--offline" in args)


@needs_kustomize
def test_remote_base_is_fetched_when_the_user_opts_in(layout: tuple[Path, Path], server: tuple[str, list[str]],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    repo, _ = layout
    url, requests = server
    (repo / "apps/dev/kustomization.yaml").write_text(_kustomization("../base/cm.yaml", f"{url}/cm.yaml"),
                                                      encoding="utf-8")
    _validate(repo, capsys, "--allow-remote-bases", "--disable", "helm")
    assert requests == ["/cm.yaml"]  # the server is reachable: the tests above prove a real refusal
