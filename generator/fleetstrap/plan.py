"""Plan: which template units to render, where, with which data. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetstrap.answers import FleetAnswers

ANSWERS_DIR = ".fleetstrap/answers"


@dataclass(frozen=True)
class Component:
    """One rendered unit of the repo, updatable on its own."""

    unit: str  # fleet | cluster | service | monitoring
    name: str  # "fleet", "cluster/<name>", "service/<name>", "monitoring"
    answers_file: str  # relative to the repo root
    data: tuple[tuple[str, Any], ...]

    def data_dict(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True)
class Plan:
    answers: FleetAnswers
    components: tuple[Component, ...]


def answers_file_for(unit: str, instance: str | None = None) -> str:
    return f"{ANSWERS_DIR}/{unit}-{instance}.yml" if instance else f"{ANSWERS_DIR}/{unit}.yml"


def build_fleet_component(answers: FleetAnswers) -> Component:
    data = {"unit": "fleet", **answers.fleet_data()}
    return Component("fleet", "fleet", answers_file_for("fleet"), tuple(data.items()))


def build_cluster_component(answers: FleetAnswers, cluster_name: str) -> Component:
    spec = answers.cluster(cluster_name)
    data = {
        "unit": "cluster",
        **answers.to_copier_data(),
        "secrets": answers.secrets,
        "cluster_name": spec.name,
        "cluster_environment": spec.environment,
        "cluster_context": spec.context,
        "cluster_server": spec.server,
    }
    return Component("cluster", f"cluster/{spec.name}", answers_file_for("cluster", spec.name), tuple(data.items()))


def build_service_component(answers: FleetAnswers, service: str, extra: dict[str, Any] | None = None) -> Component:
    """The service as the fleet holds it: everything (monorepo) or only its GitOps wiring (split)."""
    scope = "gitops" if answers.repo_layout == "split" else "full"
    data = {"unit": "service", **answers.to_copier_data(), "service_name": service, "service_scope": scope,
            **(extra or {})}
    return Component("service", f"service/{service}", answers_file_for("service", service), tuple(data.items()))


def build_service_repo_component(answers: FleetAnswers, service: str) -> Component:
    """Split layout: the service's own repository (source, chart, workflows), answers at its root."""
    data = {"unit": "service", **answers.to_copier_data(), "repo_layout": "split", "service_name": service,
            "service_scope": "source"}
    return Component("service", f"service-repo/{service}", ".copier-answers.yml", tuple(data.items()))


def build_monitoring_component(answers: FleetAnswers) -> Component:
    # Clusters: the metrics stack goes on each cluster (ApplicationSet); services: alerts name their releases.
    data = {"unit": "monitoring", **answers.to_copier_data(), "notifications": answers.notifications,
            "clusters": [c.to_data() for c in answers.clusters], "services": list(answers.services)}
    return Component("monitoring", "monitoring", answers_file_for("monitoring"), tuple(data.items()))


def build_plan(answers: FleetAnswers) -> Plan:
    components = [build_fleet_component(answers)]
    components += [build_cluster_component(answers, c.name) for c in answers.clusters]
    components += [build_service_component(answers, s) for s in answers.services]
    if answers.monitoring:
        components.append(build_monitoring_component(answers))
    return Plan(answers, tuple(components))
