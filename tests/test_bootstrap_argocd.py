"""Argo CD pieces of bootstrap and status that the real controllers depend on (issue 26): status reports every
Application."""

from __future__ import annotations

from typing import Any

from fleetstrap.bootstrap.status import argocd_application_state, argocd_object_states


def app(name: str, sync: str, health: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "argocd"},
            "status": {"sync": {"status": sync}, "health": {"status": health}, **status}}


class Apps:
    def __init__(self, apps: list[dict[str, Any]]) -> None:
        self.apps = apps

    def list(self, api_version: str, kind: str, namespace: str = "") -> list[dict[str, Any]]:
        assert (api_version, kind, namespace) == ("argoproj.io/v1alpha1", "Application", "argocd")
        return self.apps


def test_status_names_every_application_with_sync_health_and_why() -> None:
    client = Apps([
        app("root", "Synced", "Healthy"),
        app("dev-infra-cert-manager", "Unknown", "Healthy",
            conditions=[{"type": "ComparisonError", "message": "failed to fetch chart:\n proxyconnect tcp"}]),
        app("dev-hello", "OutOfSync", "Degraded"),
    ])
    client.apps[2]["status"]["health"]["message"] = "Deployment hello exceeded its progress deadline"
    states = dict(argocd_object_states(client))  # type: ignore[arg-type]
    assert list(states) == ["Application argocd/dev-hello", "Application argocd/dev-infra-cert-manager",
                            "Application argocd/root"]
    assert states["Application argocd/root"] == "Synced/Healthy"
    assert states["Application argocd/dev-infra-cert-manager"] == (
        "Unknown/Healthy: failed to fetch chart: proxyconnect tcp")
    assert states["Application argocd/dev-hello"] == (
        "OutOfSync/Degraded: Deployment hello exceeded its progress deadline")


def test_an_application_without_status_yet_is_unknown() -> None:
    assert argocd_application_state({"metadata": {"name": "x"}}) == "Unknown/Unknown"
    assert argocd_application_state(app("a", "Synced", "Progressing")) == "Synced/Progressing"
