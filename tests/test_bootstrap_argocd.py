"""Argo CD pieces of bootstrap and status that the real controllers depend on (issue 26): the fleet's git host key
reaches the ConfigMap the repo-server checks host keys against, and status reports every Application."""

from __future__ import annotations

from typing import Any

import pytest

from fleetstrap.bootstrap.objects import ARGOCD_KNOWN_HOSTS, with_argocd_known_hosts
from fleetstrap.bootstrap.status import argocd_application_state, argocd_object_states

SHIPPED = "github.com ssh-ed25519 AAAAgithub\ngitlab.com ssh-ed25519 AAAAgitlab\n"
OURS = "[127.0.0.1]:2222 ssh-ed25519 AAAAours\n"


def known_hosts_cm(text: str = SHIPPED) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ARGOCD_KNOWN_HOSTS, "namespace": "argocd"}, "data": {"ssh_known_hosts": text}}


def test_the_fleet_git_host_joins_the_shipped_known_hosts() -> None:
    out = with_argocd_known_hosts(known_hosts_cm(), "# scanned\n" + OURS)
    assert out["data"]["ssh_known_hosts"] == SHIPPED + OURS
    assert known_hosts_cm()["data"]["ssh_known_hosts"] == SHIPPED  # the input is not changed


def test_other_objects_pass_through() -> None:
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"}, "data": {"a": "b"}}
    assert with_argocd_known_hosts(other, OURS) == other


@pytest.mark.parametrize("lines", [
    [], [OURS.strip()], [OURS.strip(), OURS.strip()], ["github.com ssh-ed25519 AAAAgithub", "", "# c"],
    ["", OURS.strip(), "# c", "github.com ssh-ed25519 AAAAgithub", OURS.strip()],
])
def test_adding_known_hosts_is_idempotent(lines: list[str]) -> None:
    """Every bootstrap applies the same ConfigMap again: adding the same lines twice changes nothing."""
    once = with_argocd_known_hosts(known_hosts_cm(), "\n".join(lines))
    assert with_argocd_known_hosts(once, "\n".join(lines)) == once
    text = once["data"]["ssh_known_hosts"]
    entries = [line for line in text.splitlines() if line]
    assert len(entries) == len(set(entries))
    assert text.startswith(SHIPPED)


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
