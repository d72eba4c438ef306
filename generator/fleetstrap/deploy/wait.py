"""`rollback --wait`: ask each cluster of the environment to reconcile now, then wait until it runs the commit
and the service runs the rolled-back version (bootstrap's wait code: `wait_ready` with per-object checks).

Flux: `reconcile.fluxcd.io/requestedAt` on the GitRepository makes source-controller fetch now (what
`flux reconcile source git` does); the `apps` Kustomization then applies the commit, helm-controller upgrades the
HelmRelease (its values ConfigMap has a new content-hashed name), and the workload rolls out.
Argo CD: `argocd.argoproj.io/refresh: normal` on the service's Application makes it compare with git now.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetstrap import output
from fleetstrap.answers import FleetAnswers
from fleetstrap.bootstrap.kube import REQUEST_FIELD_MANAGER, KubeClient
from fleetstrap.bootstrap.wait import Check, Target, flux_check, ready_condition, wait_ready, workload_check
from fleetstrap.deploy.running import WORKLOADS, image_tag
from fleetstrap.errors import ClusterError, DeployError

FLUX_NS = "flux-system"
ARGOCD_NS = "argocd"


@dataclass(frozen=True)
class WaitRequest:
    service: str
    env: str
    tag: str  # the version the workload must run
    sha: str  # the commit the clusters must have applied
    branch: str
    kubeconfig: Path | None = None
    context: str | None = None  # overrides the clusters' own contexts (one cluster only)
    timeout: float = 300.0
    interval: float = 2.0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def build_reconcile_requests(engine: str, cluster: str, service: str) -> list[dict[str, Any]]:
    """The partial objects applied (server-side, field manager fleetstrap-refresh) to ask for a reconcile now.

    Never under bootstrap's manager: to server-side apply these would be its whole intent for the object, and
    the fields bootstrap applied (the root Application's spec) would be removed."""
    if engine == "flux":
        return [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                 "metadata": {"name": "flux-system", "namespace": FLUX_NS,
                              "annotations": {"reconcile.fluxcd.io/requestedAt": _now()}}}]
    # The root app-of-apps applies argocd/, with the ImageUpdater rollback pinned: the sooner it syncs, the
    # shorter the time the updater still works from the old allowTags.
    return [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
             "metadata": {"name": name, "namespace": ARGOCD_NS,
                          "annotations": {"argocd.argoproj.io/refresh": "normal"}}}
            for name in ("root", f"{cluster}-{service}")]


def helmrelease_check(obj: Mapping[str, Any]) -> str | None:
    meta, st = obj.get("metadata") or {}, obj.get("status") or {}
    if st.get("observedGeneration") is None or int(st["observedGeneration"]) < int(meta.get("generation") or 0):
        return "not reconciled since the last change"
    status, why = ready_condition(obj)
    return None if status == "True" else f"Ready={status} {why}"


def argocd_app_check(sha: str) -> Check:
    """Synced at the commit (single source: sync.revision; multi-source, the split layout: sync.revisions)."""

    def check(obj: Mapping[str, Any]) -> str | None:
        sync = (obj.get("status") or {}).get("sync") or {}
        revisions = [sync.get("revision") or "", *(sync.get("revisions") or [])]
        if sync.get("status") != "Synced":
            return f"sync={sync.get('status', 'Unknown')}"
        if sha not in revisions:
            return f"Synced at {', '.join(r[:12] for r in revisions if r) or 'none'}, waiting for {sha[:12]}"
        return None

    return check


def rollout_check(obj: Mapping[str, Any]) -> str | None:
    """An Argo Rollout: its phase (its observedGeneration is not a number, bootstrap's workload check cannot
    read it). A blue-green Rollout without auto-promotion stays Paused until someone promotes it."""
    st = obj.get("status") or {}
    phase = str(st.get("phase") or "Unknown")
    if phase != "Healthy":
        return f"phase {phase}" + (f": {st['message']}" if st.get("message") else "")
    return None


def running_check(service: str, tag: str, kind: str = "Deployment") -> Check:
    ready = rollout_check if kind == "Rollout" else workload_check

    def check(obj: Mapping[str, Any]) -> str | None:
        running = image_tag(dict(obj), service)
        if running != tag:
            return f"runs {running}, waiting for {tag}"
        return ready(obj)

    return check


def build_targets(engine: str, cluster: str, request: WaitRequest,
                  workloads: list[tuple[str, str, str]]) -> list[Target]:
    s = request.service
    if engine == "flux":
        synced = [Target("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "apps", FLUX_NS,
                         flux_check("lastAppliedRevision", f"{request.branch}@sha1:{request.sha}")),
                  Target("helm.toolkit.fluxcd.io/v2", "HelmRelease", s, s, helmrelease_check)]
    else:
        synced = [Target("argoproj.io/v1alpha1", "Application", name, ARGOCD_NS, argocd_app_check(request.sha))
                  for name in ("root", f"{cluster}-{s}")]
    return [*synced, *(Target(api_version, kind, name, s, running_check(s, request.tag, kind))
                       for api_version, kind, name in workloads)]


def _workloads(client: KubeClient, service: str) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of what runs the service: its Deployment, or its Argo Rollout; with Flagger also
    the `<service>-primary` Deployment, which serves the traffic once the canary analysis promotes."""
    found = [(api_version, kind, service) for api_version, kind in WORKLOADS if _exists(client, api_version, kind,
                                                                                          service, service)]
    main = found[-1:] or [(*WORKLOADS[0], service)]  # a Rollout, when the cluster has one
    primary = f"{service}-primary"
    return main + ([("apps/v1", "Deployment", primary)] if _exists(client, "apps/v1", "Deployment", primary,
                                                                    service) else [])


def _exists(client: KubeClient, api_version: str, kind: str, name: str, namespace: str) -> bool:
    try:
        return client.get(api_version, kind, name, namespace) is not None
    except ClusterError:
        return False  # the kind is not served (no Argo Rollouts)


def wait_rolled_back(answers: FleetAnswers, request: WaitRequest,
                     connector: Callable[[Path | None, str | None], KubeClient]) -> tuple[str, ...]:
    """Request a reconcile on every cluster of the environment and wait; one report line per cluster."""
    clusters = [c for c in answers.clusters if c.environment == request.env]
    if not clusters:
        raise DeployError(f"no cluster of this fleet runs {request.env}: nothing to wait for")
    if request.context and len(clusters) > 1:
        raise DeployError(f"{request.env} runs on {len(clusters)} clusters: --context names one; "
                          "set each cluster's context in the answers instead")
    lines = []
    for spec in clusters:
        client = connector(request.kubeconfig, request.context or spec.context or None)
        client.version()
        for engine in answers.engines:
            for obj in build_reconcile_requests(engine, spec.name, request.service):
                applied = client.apply(obj, field_manager=REQUEST_FIELD_MANAGER)
                output.step(f"{spec.name}: requested a reconcile of {applied.ref}")
            targets = build_targets(engine, spec.name, request, _workloads(client, request.service))
            wait_ready(client, targets, what=f"{spec.name} to run {request.service} {request.tag}",
                       timeout=request.timeout, interval=request.interval)
            lines.append(f"{spec.name} ({engine}) runs {request.service} {request.tag} at {request.sha[:12]}")
    return tuple(lines)
