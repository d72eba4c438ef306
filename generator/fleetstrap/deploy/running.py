"""What the clusters run of a service, for the production pull request body (read only; unreachable is a row)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetstrap.answers import FleetAnswers
from fleetstrap.bootstrap.kube import KubeClient
from fleetstrap.errors import FleetstrapError

# The chart's workload: a Deployment, or an Argo Rollout with progressive delivery.
WORKLOADS = (("apps/v1", "Deployment"), ("argoproj.io/v1alpha1", "Rollout"))


def image_tag(workload: dict[str, Any], service: str) -> str:
    containers = (((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    chosen = next((c for c in containers if c.get("name") == service), containers[0] if containers else {})
    image = str(chosen.get("image") or "")
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else image or "no image"


def running_versions(answers: FleetAnswers, service: str, kubeconfig: Path | None,
                     connector: Callable[[Path | None, str | None], KubeClient]) -> tuple[tuple[str, str, str], ...]:
    """(cluster, environment, running tag or why unknown) for every cluster of the fleet."""
    rows = []
    for spec in answers.clusters:
        try:
            client = connector(kubeconfig, spec.context or None)
            client.version()
            found = "not deployed"
            # Flagger: the primary serves the traffic; the Deployment named after the service is the canary.
            primary = client.get("apps/v1", "Deployment", f"{service}-primary", service)
            if primary is not None:
                found = f"`{image_tag(primary, service)}` (Flagger primary)"
            for api_version, kind in () if primary is not None else WORKLOADS:
                try:
                    obj = client.get(api_version, kind, service, service)
                except FleetstrapError:
                    continue  # kind not served (no Argo Rollouts)
                if obj is not None:
                    found = f"`{image_tag(obj, service)}` ({kind})"
                    break
        except FleetstrapError as exc:
            found = f"unreachable: {exc.message}"
        rows.append((spec.name, spec.environment, found))
    return tuple(rows)
