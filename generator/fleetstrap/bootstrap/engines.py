"""What differs between Flux and Argo CD in bootstrap: the install manifest, the files committed to the repo, the
source Secret, the sync objects and what "synced" means. The sequence itself is `flow.Bootstrapper.run`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from fleetstrap.answers import FleetAnswers
from fleetstrap.bootstrap import manifests, objects
from fleetstrap.bootstrap.kube import KubeClient
from fleetstrap.bootstrap.manifests import Downloads
from fleetstrap.bootstrap.preflight import Preflight, sync_path
from fleetstrap.bootstrap.ssh import public_key_openssh
from fleetstrap.bootstrap.status import flux_reconciled
from fleetstrap.bootstrap.wait import States, Target, argocd_check, flux_check, workload_check
from fleetstrap.pins import pin


class Engine(Protocol):
    name: str
    title: str  # for messages: "Flux", "Argo CD"
    workloads: str  # what the install runs, for messages: "Flux controllers"
    namespace: str

    def install(self) -> str:
        """The pinned install manifest (verified against its checksum)."""
        ...

    def build_files(self, root: Path, install: str) -> dict[Path, str]:
        """Files (relative to the repo) bootstrap commits before applying anything."""
        ...

    def commit_message(self) -> str: ...

    def build_components(self, install: str, pre: Preflight) -> list[dict[str, Any]]:
        """The objects that install the engine (with what preflight learned about the git host)."""
        ...

    def build_secret(self, pre: Preflight) -> dict[str, Any]:
        """The Secret the engine reads the repo with."""
        ...

    def read_sync(self, root: Path) -> list[dict[str, Any]]:
        """The objects from the repo that point the engine at it."""
        ...

    def build_sync_targets(self, sync: Sequence[Mapping[str, Any]], sha: str) -> list[Target]:
        """What must report `sha` before bootstrap is done."""
        ...

    def build_reconciled_states(self, kube: KubeClient) -> States | None:
        """What the engine reconciles from the repo after sync (each object and why it is not ready), if it
        can tell."""
        ...

    def notes(self) -> tuple[str, ...]: ...


def build_workload_targets(objs: Sequence[Mapping[str, Any]], namespace: str) -> list[Target]:
    return [
        Target(str(o["apiVersion"]), str(o["kind"]), str(o["metadata"]["name"]),
               str(o["metadata"].get("namespace") or namespace), workload_check)
        for o in objs if o.get("kind") in {"Deployment", "StatefulSet"}
    ]


def _read_docs(path: Path) -> list[dict[str, Any]]:
    return manifests.documents(path.read_text(encoding="utf-8"), str(path))


def build_flux_kustomization(existing: str | None) -> str:
    """clusters/<c>/flux-system/kustomization.yaml listing the components and the sync objects."""
    data: dict[str, Any] = {}
    if existing:
        loaded = yaml.safe_load(existing)
        data = loaded if isinstance(loaded, dict) else {}
    data.setdefault("apiVersion", "kustomize.config.k8s.io/v1beta1")
    data.setdefault("kind", "Kustomization")
    resources = list(data.get("resources") or [])
    for r in ("gotk-components.yaml", "gotk-sync.yaml"):
        if r not in resources:
            resources.append(r)
    data["resources"] = resources
    return yaml.safe_dump(data, sort_keys=False)


class _EngineBase:
    """What both engines share: the fleet, the cluster, where manifests come from, and how sync is read."""

    name = ""
    title = ""
    workloads = ""
    namespace = ""

    def __init_subclass__(cls, *, name: str, title: str, workloads: str, namespace: str) -> None:
        cls.name, cls.title, cls.workloads, cls.namespace = name, title, workloads, namespace

    def __init__(self, fleet: FleetAnswers, cluster: str, downloads: Downloads) -> None:
        self.fleet = fleet
        self.cluster = cluster
        self.downloads = downloads

    def read_sync(self, root: Path) -> list[dict[str, Any]]:
        return _read_docs(root / sync_path(self.cluster, self.name))


class FluxEngine(_EngineBase, name="flux", title="Flux", workloads="Flux controllers", namespace=objects.FLUX_NS):

    def install(self) -> str:
        return manifests.flux_components(pin("flux_version"), self.downloads,
                                         pinned_sha256=pin("flux_install_sha256")).text

    def build_files(self, root: Path, install: str) -> dict[Path, str]:
        base = Path("clusters", self.cluster, "flux-system")
        kust = root / base / "kustomization.yaml"
        return {
            base / "gotk-components.yaml": install,
            base / "kustomization.yaml": build_flux_kustomization(
                kust.read_text(encoding="utf-8") if kust.exists() else None),
        }

    def commit_message(self) -> str:
        return f"Add Flux v{pin('flux_version').removeprefix('v')} components for {self.cluster}"

    def build_components(self, install: str, pre: Preflight) -> list[dict[str, Any]]:  # noqa: ARG002 (protocol)
        return manifests.documents(install, "Flux components manifest")

    def build_secret(self, pre: Preflight) -> dict[str, Any]:
        return objects.build_flux_secret(pre.identity, public_key_openssh(pre.identity.encode()), pre.known_hosts)

    def build_sync_targets(self, sync: Sequence[Mapping[str, Any]], sha: str) -> list[Target]:
        targets = []
        for o in sync:
            if o.get("kind") not in {"GitRepository", "Kustomization"}:
                continue
            branch = str(((o.get("spec") or {}).get("ref") or {}).get("branch") or self.fleet.branch)
            field_name = "artifact" if o["kind"] == "GitRepository" else "lastAppliedRevision"
            targets.append(Target(str(o["apiVersion"]), str(o["kind"]), str(o["metadata"]["name"]),
                                  str(o["metadata"].get("namespace") or self.namespace),
                                  flux_check(field_name, f"{branch}@sha1:{sha}")))
        return targets

    def build_reconciled_states(self, kube: KubeClient) -> States | None:
        return lambda: flux_reconciled(kube)

    def notes(self) -> tuple[str, ...]:
        return ()


class ArgoCDEngine(_EngineBase, name="argocd", title="Argo CD", workloads="Argo CD components",
                   namespace=objects.ARGOCD_NS):

    def install(self) -> str:
        return manifests.argocd_install(pin("argocd_version"), self.downloads,
                                        pinned_sha256=pin("argocd_install_sha256")).text

    def build_files(self, root: Path, install: str) -> dict[Path, str]:  # noqa: ARG002 (protocol)
        return {}  # Argo CD is installed from the manifest; the repo already has the root Application

    def commit_message(self) -> str:
        return f"Bootstrap Argo CD on {self.cluster}"

    def build_components(self, install: str, pre: Preflight) -> list[dict[str, Any]]:
        # The git host's keys go where the repo-server reads them (Flux keeps them in its source Secret).
        return [objects.build_namespace(self.namespace),
                *(objects.with_argocd_known_hosts(o, pre.known_hosts)
                  for o in manifests.documents(install, "Argo CD install manifest"))]

    def build_secret(self, pre: Preflight) -> dict[str, Any]:
        return objects.build_argocd_repo_secret(self.fleet.fleet_name, self.fleet.git_url, pre.identity)

    def build_sync_targets(self, sync: Sequence[Mapping[str, Any]], sha: str) -> list[Target]:
        return [Target(str(o["apiVersion"]), "Application", str(o["metadata"]["name"]),
                       str(o["metadata"].get("namespace") or self.namespace), argocd_check(sha))
                for o in sync if o.get("kind") == "Application"]

    def build_reconciled_states(self, kube: KubeClient) -> States | None:  # noqa: ARG002 (protocol)
        return None  # the root Application's health already covers what it created

    def notes(self) -> tuple[str, ...]:
        ns = self.namespace
        return (
            f"Argo CD UI: kubectl -n {ns} port-forward svc/argocd-server 8080:443, "
            "then open https://localhost:8080 (user admin)",
            f"initial admin password: argocd admin initial-password -n {ns}  (or: kubectl -n "
            f"{ns} get secret argocd-initial-admin-secret -o jsonpath='{{.data.password}}' | base64 -d)",
        )


def build_engines(fleet: FleetAnswers, cluster: str, downloads: Downloads) -> tuple[Engine, ...]:
    """Flux first: with both engines, Argo CD syncs the commit Flux's files were pushed in."""
    kinds: dict[str, Callable[[FleetAnswers, str, Downloads], Engine]] = {"flux": FluxEngine, "argocd": ArgoCDEngine}
    return tuple(kinds[name](fleet, cluster, downloads) for name in fleet.engines)
