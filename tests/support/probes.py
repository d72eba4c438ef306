"""What the control-plane tests read from a real API server, and the nudges they give the controllers.

One place for the Flux mission, its rollback story, the Argo CD mission and the dual-engine test: each probe returns
the object once it meets the condition the product itself waits for (generation observed, revision applied, history
recorded), else None, so `support.controlplane.eventually` can poll it.
"""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path
from typing import Any

from support.controlplane import ControlPlane

FLUX_NS = "flux-system"
KUSTOMIZATIONS = f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{FLUX_NS}/kustomizations"
FLUX_SOURCE = f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{FLUX_NS}/gitrepositories/flux-system"
APPS = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"
MERGE_PATCH = "application/merge-patch+json"


def get(plane: ControlPlane, path: str) -> dict[str, Any] | None:
    status, body = plane.request("GET", path)
    return body if status == 200 and isinstance(body, dict) else None


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def commit_all(fleet: Path, message: str) -> str:
    """Commit every tracked change of `fleet` (as a user would) and return the new HEAD."""
    git(fleet, "-c", "user.name=Test", "-c", "user.email=t@example.com", "commit", "-q", "-am", message)
    return git(fleet, "rev-parse", "HEAD")


def running_tag(plane: ControlPlane, service: str) -> str | None:
    """The image tag the service's Deployment runs (its container of the same name), None before it exists."""
    dep = get(plane, f"/apis/apps/v1/namespaces/{service}/deployments/{service}")
    if dep is None:
        return None
    (container,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == service]
    return str(container["image"]).rsplit(":", 1)[1]


# ---------------------------------------------------------------- Flux


def ready(obj: dict[str, Any] | None) -> tuple[str, str, str]:
    """(status, reason, message) of the Ready condition; ("Unknown", "", "") while there is none."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status")), str(c.get("reason", "")), str(c.get("message", ""))
    return "Unknown", "", ""


def kustomization_applied(plane: ControlPlane, name: str, revision: str) -> dict[str, Any] | None:
    """The Kustomization once it applied `revision` with its current generation (what bootstrap waits for)."""
    kust = get(plane, f"{KUSTOMIZATIONS}/{name}")
    status = (kust or {}).get("status") or {}
    if kust is None or ready(kust)[0] != "True" or status.get("lastAppliedRevision") != revision or \
            int(status.get("observedGeneration") or -1) < kust["metadata"]["generation"]:
        return None
    return kust


def request_reconcile(plane: ControlPlane) -> None:
    """What `flux reconcile source git flux-system` does: annotate, so the new commit is fetched now."""
    stamp = datetime.datetime.now(datetime.UTC).isoformat()
    status, body = plane.request("PATCH", FLUX_SOURCE,
                                 {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}},
                                 content_type=MERGE_PATCH)
    assert status == 200, body


# ---------------------------------------------------------------- Argo CD


def application(plane: ControlPlane, name: str) -> dict[str, Any] | None:
    return get(plane, f"{APPS}/{name}")


def sync_health(app: dict[str, Any] | None) -> tuple[str, str, str]:
    """(sync status, health status, synced revision) of an Application."""
    st = (app or {}).get("status") or {}
    return (str((st.get("sync") or {}).get("status", "")), str((st.get("health") or {}).get("status", "")),
            str((st.get("sync") or {}).get("revision", "")))


def admit_ingresses(plane: ControlPlane, namespace: str) -> None:
    """Play the ingress controller the fleet expects on each cluster: give every Ingress of `namespace` an address.
    Argo CD reports an Ingress Healthy only once its status has one (kwok plays the kubelet the same way)."""
    status, body = plane.request("GET", f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses")
    for ing in body.get("items", []) if status == 200 and isinstance(body, dict) else []:
        if not ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            name = ing["metadata"]["name"]
            done, out = plane.request(
                "PATCH", f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}/status",
                {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.30"}]}}}, content_type=MERGE_PATCH)
            assert done == 200, out


def synced_healthy_at(plane: ControlPlane, name: str, sha: str, runs_on: ControlPlane | None = None,
                      ) -> dict[str, Any] | None:
    """The Application (on the hub `plane`) once Synced and Healthy at `sha`; its workloads run on `runs_on`."""
    app = application(plane, name)
    if app is not None:
        admit_ingresses(runs_on or plane, str(app["spec"]["destination"].get("namespace") or ""))
    return app if sync_health(app) == ("Synced", "Healthy", sha) else None


def refresh(plane: ControlPlane, name: str) -> None:
    """What `argocd app get --refresh` does: ask the controller to compare with git now."""
    status, body = plane.request("PATCH", f"{APPS}/{name}",
                                 {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}},
                                 content_type=MERGE_PATCH)
    assert status == 200, body
