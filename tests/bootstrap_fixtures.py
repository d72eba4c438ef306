"""Shared test helpers for bootstrap: a small fleet repo with a bare file:// remote, keys, a download server."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

FLUX_VERSION_PATH = "/fluxcd/flux2/releases/download/v{ver}"
GIT_URL = "ssh://git@github.com/acme/fleet-infra.git"
KNOWN_HOSTS = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"

GOTK_SYNC = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  secretRef:
    name: flux-system
  url: {url}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 10m0s
  path: ./clusters/{cluster}
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""

ROOT_APP = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: root
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {url}
    targetRevision: main
    path: clusters/{cluster}/argocd/apps
  destination:
    server: https://kubernetes.default.svc
    namespace: argocd
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
"""


def crd(group: str, kind: str, plural: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "versions": [{"name": version, "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                                         "x-kubernetes-preserve-unknown-fields": True}},
                          "subresources": {"status": {}}}],
        },
    }


def deployment(name: str, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app": name}}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "manager", "image": f"example/{name}:v1"}]}}},
    }


def flux_install_yaml() -> str:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}},
        crd("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories", "v1"),
        crd("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations", "v1"),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "source-controller",
                                                                   "namespace": "flux-system"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "crd-controller-flux-system"},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        deployment("source-controller", "flux-system"),
        deployment("kustomize-controller", "flux-system"),
    ]
    header = "# Flux Version: v2.9.4 (test fixture)\n"
    return header + "".join("---\n" + yaml.safe_dump(d, sort_keys=False) for d in docs)


def argocd_install_yaml() -> str:
    # Like the real one: no Namespace, namespaced objects without a namespace.
    docs = [
        crd("argoproj.io", "Application", "applications", "v1alpha1"),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "argocd-server"}},
        deployment("argocd-server", None),
        deployment("argocd-repo-server", None),
    ]
    return "".join("---\n" + yaml.safe_dump(d, sort_keys=False) for d in docs)


# ---------------------------------------------------------------- download server


@dataclass
class Downloads:
    files: dict[str, bytes] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    base_url: str = ""

    def publish_flux(self, version: str, manifest: str, checksum: str | None = None) -> None:
        root = FLUX_VERSION_PATH.format(ver=version)
        data = manifest.encode()
        digest = checksum or hashlib.sha256(data).hexdigest()
        self.files[f"{root}/install.yaml"] = data
        self.files[f"{root}/flux_{version}_checksums.txt"] = (
            f"{'0' * 64}  flux_{version}_linux_amd64.tar.gz\n{digest}  install.yaml\n".encode())

    def publish_argocd(self, version: str, manifest: str) -> None:
        self.files[f"/argoproj/argo-cd/{version}/manifests/install.yaml"] = manifest.encode()


@contextmanager
def download_server() -> Iterator[Downloads]:
    state = Downloads()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002
            return

        def do_GET(self) -> None:
            state.hits.append(self.path)
            body = state.files.get(self.path)
            self.send_response(200 if body is not None else 404)
            payload = body if body is not None else b"not found"
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- fleet repo


def git(cwd: Path, *args: str) -> str:
    env_args = ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", *env_args, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@dataclass(frozen=True)
class FleetRepo:
    root: Path
    bare: Path

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD")

    def remote_head(self, branch: str = "main") -> str:
        return git(self.bare, "rev-parse", f"refs/heads/{branch}")


def make_fleet_repo(base: Path, engine: str = "flux", cluster: str = "dev", git_url: str = GIT_URL,
                    remote: str | None = None) -> FleetRepo:
    """A small fleet repo pushed to `remote`, or to a fresh local bare repo (file://) when none is given."""
    root, bare = base / "fleet-infra", base / "remote.git"
    answers = root / ".fleetstrap" / "answers"
    answers.mkdir(parents=True)
    fleet = {"_commit": "v0.1.0", "_src_path": "fleetstrap-templates", "unit": "fleet", "owner": "acme",
             "fleet_name": "fleet-infra", "git_url": git_url, "branch": "main", "engine": engine,
             "clusters": [{"name": cluster, "environment": "dev"}], "services": ["checkout"]}
    (answers / "fleet.yml").write_text(yaml.safe_dump(fleet), encoding="utf-8")
    (answers / f"cluster-{cluster}.yml").write_text(
        yaml.safe_dump({"_commit": "v0.1.0", "unit": "cluster", "cluster_name": cluster}), encoding="utf-8")
    cdir = root / "clusters" / cluster
    if engine in {"flux", "both"}:
        (cdir / "flux-system").mkdir(parents=True)
        (cdir / "flux-system" / "gotk-sync.yaml").write_text(GOTK_SYNC.format(url=git_url, cluster=cluster))
        (cdir / "flux-system" / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-sync.yaml\n")
    if engine in {"argocd", "both"}:
        (cdir / "argocd").mkdir(parents=True)
        (cdir / "argocd" / "root.yaml").write_text(ROOT_APP.format(url=git_url, cluster=cluster))
    if remote is None:
        git(base, "init", "-q", "--bare", "-b", "main", str(bare))
    git(base, "init", "-q", "-b", "main", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Initial fleet")
    git(root, "remote", "add", "origin", remote or bare.resolve().as_uri())
    git(root, "push", "-q", "--force", "origin", "HEAD:refs/heads/main")
    return FleetRepo(root, bare)


def write_deploy_key(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


@contextmanager
def pinned_release_downloads() -> Iterator[Downloads]:
    """A download server publishing the Flux and Argo CD install manifests of the pinned versions."""
    from fleetstrap.pins import pin

    with download_server() as d:
        d.publish_flux(pin("flux_version"), flux_install_yaml())
        d.publish_argocd(pin("argocd_version"), argocd_install_yaml())
        yield d


def bootstrap_env(tmp_path: Path, downloads: Downloads, monkeypatch: Any) -> dict[str, Path]:
    """What a bootstrap test runs with: the pinned release downloads served on loopback, a cache and secrets
    under `tmp_path` (deploy key, known_hosts), no KUBECONFIG from the machine, and no flux CLI on the machine
    replacing the download path under test."""
    monkeypatch.setenv("FLEETSTRAP_DOWNLOAD_BASE_URL", downloads.base_url)
    monkeypatch.setenv("FLEETSTRAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setattr("fleetstrap.bootstrap.manifests.flux_cli_version", lambda _flux: None)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    known = secrets / "known_hosts"
    known.write_text(KNOWN_HOSTS)
    return {"key": write_deploy_key(secrets / "dev.key"), "known_hosts": known, "kubeconfig": tmp_path / "kc",
            "cache": tmp_path / "cache"}
