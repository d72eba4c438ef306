"""Cluster bootstrap (Flux / Argo CD) and fleet status. Cluster access goes through `kube.KubeClient` only."""

from __future__ import annotations

from fleetstrap.bootstrap.flow import BootstrapReport, BootstrapRequest, Change, bootstrap_cluster
from fleetstrap.bootstrap.status import ClusterState, ComponentState, StatusReport, StatusRequest, fleet_status

__all__ = [
    "BootstrapReport",
    "BootstrapRequest",
    "Change",
    "ClusterState",
    "ComponentState",
    "StatusReport",
    "StatusRequest",
    "bootstrap_cluster",
    "fleet_status",
]
