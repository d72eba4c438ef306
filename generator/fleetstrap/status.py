"""`fleetstrap status`: template version per component, last pushed commit, per-cluster sync state.

A command (a leaf): it reads the repo and asks each cluster through the shared cluster layer (bootstrap/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleetstrap import gitrepo
from fleetstrap.answers import FleetAnswers
from fleetstrap.bootstrap.kube import KubeClient, connect
from fleetstrap.bootstrap.status import argocd_object_states, argocd_sync_state, flux_object_states, flux_sync_state
from fleetstrap.errors import FleetstrapError
from fleetstrap.publish.auth import remote_of
from fleetstrap.repo import component_name, load_fleet_answers


@dataclass(frozen=True)
class StatusRequest:
    root: Path
    cluster: str | None = None
    context: str | None = None
    kubeconfig: Path | None = None
    remote: str = "origin"


@dataclass(frozen=True)
class ComponentState:
    name: str  # as `update --component` names it: fleet, cluster/dev, service/checkout, monitoring
    template_version: str


@dataclass(frozen=True)
class ClusterState:
    name: str
    engine: str
    reachable: bool
    revision: str
    state: str  # Ready / Synced+Healthy / the reason it is not
    # Flux: every Kustomization and HelmRelease on the cluster, ("Kind ns/name", "Ready" or why not);
    # Argo CD: every Application, ("Application ns/name", "<sync>/<health>" and why when not Synced/Healthy).
    objects: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StatusReport:
    components: tuple[ComponentState, ...]
    branch: str
    local_commit: str
    pushed_commit: str  # "" when unknown (remote unreachable or branch absent)
    clusters: tuple[ClusterState, ...]


def build_components(root: Path) -> tuple[ComponentState, ...]:
    out = []
    for path in sorted((root / ".fleetstrap" / "answers").glob("*.yml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        version = str(data.get("_commit") or "unknown")
        out.append(ComponentState(component_name(data) or path.stem, version))
    return tuple(out)


def _cluster_states(fleet: FleetAnswers, req: StatusRequest,
                    connector: Callable[[Path | None, str | None], KubeClient]) -> tuple[ClusterState, ...]:
    out = []
    for spec in fleet.clusters:
        if req.cluster and spec.name != req.cluster:
            continue
        context = (req.context if req.cluster else None) or spec.context or None
        for engine in fleet.engines:
            try:
                client = connector(req.kubeconfig, context)
                client.version()
                revision, state = flux_sync_state(client) if engine == "flux" else argocd_sync_state(client)
                objects = ((flux_object_states(client) if engine == "flux" else argocd_object_states(client))
                           if revision else ())
            except FleetstrapError as exc:
                out.append(ClusterState(spec.name, engine, False, "", f"unreachable: {exc}"))
                continue
            out.append(ClusterState(spec.name, engine, True, revision, state, objects))
    return tuple(out)


def fleet_status(request: StatusRequest,
                 connector: Callable[[Path | None, str | None], KubeClient] = connect) -> StatusReport:
    fleet = load_fleet_answers(request.root)
    if request.cluster:
        fleet.cluster(request.cluster)  # unknown names are a user error
    try:
        remote = remote_of(request.root, request.remote)
        pushed = (gitrepo.remote_head(request.root, remote, fleet.branch) if remote else None) or ""
    except FleetstrapError:
        pushed = ""
    return StatusReport(
        components=build_components(request.root),
        branch=fleet.branch,
        local_commit=gitrepo.head_sha(request.root) or "",
        pushed_commit=pushed,
        clusters=_cluster_states(fleet, request, connector),
    )
