"""What schemas cannot catch in the fleet, cluster and monitoring units: objects that validate but break
in a cluster (a project that forbids its own Application's namespace, a connector default that renames
the metrics the alerts read, an injected endpoint on the wrong port, a notification recipient that names
no service). One fully featured fleet is rendered once (tests/support/fleet.py) and read back.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.fleet import RenderedFleet, render_blueprint
from support.k8s import load_documents

GO_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
DURATION = re.compile(r"(\d+)([hms])")


@pytest.fixture(scope="module")
def fleet() -> RenderedFleet:
    # Both engines, every optional piece that adds Argo CD objects or Flux controllers.
    return render_blueprint("dual-engine", image_automation=True, monitoring=True, notifications="webhook",
                            telemetry_backend="tempo", secrets="external-secrets")


def _docs(root: Path, pattern: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(root.glob(pattern)):
        for doc in load_documents(path):
            if isinstance(doc, dict) and "kind" in doc:
                yield path.relative_to(root).as_posix(), doc


def _seconds(duration: str) -> int:
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in DURATION.findall(duration))


def _elements(generator: dict[str, Any]) -> list[dict[str, Any]]:
    """Parameter sets of a list generator, or of a matrix of list generators (merged per combination)."""
    if "list" in generator:
        return list(generator["list"]["elements"])
    if "matrix" in generator:
        parts = [_elements(g) for g in generator["matrix"]["generators"]]
        return [{k: v for d in combo for k, v in d.items()} for combo in itertools.product(*parts)]
    raise AssertionError(f"unexpected generator {sorted(generator)}")


def _destinations(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(app name, project, server, namespace) of an Application, or of every Application an ApplicationSet makes."""
    if doc["kind"] == "Application":
        spec = doc["spec"]
        yield doc["metadata"]["name"], spec["project"], spec["destination"]["server"], spec["destination"]["namespace"]
        return
    template = doc["spec"]["template"]
    for generator in doc["spec"]["generators"]:
        for params in _elements(generator):
            def fill(text: str, params: dict[str, Any] = params) -> str:
                return GO_FIELD.sub(lambda m: str(params[m.group(1)]), text)
            dest = template["spec"]["destination"]
            yield (fill(template["metadata"]["name"]), fill(template["spec"]["project"]),
                   fill(dest["server"]), fill(dest["namespace"]))


def test_every_argocd_destination_is_permitted_by_its_project(fleet: RenderedFleet) -> None:
    docs = list(_docs(fleet.root, "argocd/**/*.yaml"))
    projects = {d["metadata"]["name"]: d["spec"] for _, d in docs if d["kind"] == "AppProject"}
    apps = [(rel, d) for rel, d in docs if d["kind"] in ("Application", "ApplicationSet")]
    assert apps and projects
    problems = []
    for rel, doc in apps:
        for name, project, server, namespace in _destinations(doc):
            allowed = projects[project]["destinations"]
            if not any(fnmatch.fnmatchcase(server, d.get("server", "*"))
                       and fnmatch.fnmatchcase(namespace, d.get("namespace", "*")) for d in allowed):
                problems.append(f"{rel}: {name} -> {server} {namespace} not allowed by project {project}")
    assert not problems, "\n".join(problems)


def test_image_updater_deploys_into_the_namespace_its_install_manifest_uses(fleet: RenderedFleet) -> None:
    (app,) = [d for _, d in _docs(fleet.root, "argocd/infrastructure/*.yaml")
              if d["kind"] == "Application" and d["metadata"]["name"] == "argocd-image-updater"]
    # config/install.yaml of argocd-image-updater v1.x names this namespace on every namespaced object.
    assert app["spec"]["destination"]["namespace"] == "argocd-image-updater-system"


def test_root_app_survives_custom_resources_whose_crd_a_child_installs(fleet: RenderedFleet) -> None:
    assert any(d["kind"] == "ImageUpdater" for _, d in _docs(fleet.root, "argocd/**/*.yaml"))
    for _, root in _docs(fleet.root, "clusters/*/argocd/root.yaml"):
        assert "SkipDryRunOnMissingResource=true" in root["spec"]["syncPolicy"]["syncOptions"]


def _gateway(fleet: RenderedFleet) -> dict[str, Any]:
    (gateway,) = [d for _, d in _docs(fleet.root, "infrastructure/configs/otel-gateway.yaml")]
    config: dict[str, Any] = gateway["spec"]["config"]
    return config


def test_spanmetrics_names_are_pinned_not_defaulted(fleet: RenderedFleet) -> None:
    spanmetrics = _gateway(fleet)["connectors"]["span_metrics"]
    # traces.span.metrics + ms -> traces_span_metrics_duration_milliseconds_bucket, what rules and dashboards read.
    assert spanmetrics["namespace"] == "traces.span.metrics"
    assert spanmetrics["histogram"]["unit"] == "ms"
    monitoring = fleet.root / "infrastructure/configs/monitoring"
    texts = [p.read_text() for p in monitoring.rglob("*") if p.suffix in (".yaml", ".json")]
    assert any("traces_span_metrics_duration_milliseconds_bucket" in t for t in texts)
    assert not any("traces_span_metrics_duration_seconds" in t for t in texts)


def test_instrumentation_endpoint_matches_the_service_protocol(fleet: RenderedFleet) -> None:
    (inst,) = [d for _, d in _docs(fleet.root, "infrastructure/configs/instrumentation.yaml")]
    port = inst["spec"]["exporter"]["endpoint"].rsplit(":", 1)[1]
    receivers = _gateway(fleet)["receivers"]["otlp"]["protocols"]
    assert receivers["grpc"]["endpoint"].endswith(":" + port)
    chart_values = sorted(fleet.root.glob("charts/*/values.yaml"))
    assert chart_values, "no chart values rendered"
    for values in chart_values:
        # Injected env wins over the chart's envFrom: the protocol the chart sets must fit the port.
        assert yaml.safe_load(values.read_text())["otel"]["protocol"] == "grpc", values


def test_flux_kustomization_outwaits_its_helmreleases(fleet: RenderedFleet) -> None:
    releases = [d for _, d in _docs(fleet.root, "infrastructure/controllers/**/*.yaml") if d["kind"] == "HelmRelease"]
    longest = max(_seconds(r["spec"].get("timeout", "5m")) for r in releases)
    checked = []
    for rel, doc in _docs(fleet.root, "clusters/*/infrastructure.yaml"):
        if doc["metadata"]["name"] == "infra-controllers":
            assert doc["spec"]["wait"] is True
            assert _seconds(doc["spec"]["timeout"]) > longest, rel
            checked.append(rel)
    assert checked, "no infra-controllers Kustomization rendered"
