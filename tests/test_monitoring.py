"""The monitoring unit: kube-prometheus-stack, scrape configs, alert rules, dashboards, notifications.

Each answers variant is rendered once per module through fleetstrap's own render path (template mirror +
copier) and checked with real tools: kubectl kustomize, kubernetes-validate + CRD schemas, promql-parser,
promtool (Debian package `prometheus`) when installed.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from fleetstrap.answers import build_answers
from fleetstrap.pins import pin
from fleetstrap.plan import build_monitoring_component
from fleetstrap.render import ensure_template_mirror, render_component
from support.fleet import RenderedFleet, render_blueprint
from support.k8s import kustomize_build, load_documents, validate_objects
from support.tools import require_tool

K8S_VERSION = pin("kubernetes_version")
CONTROLLERS = "infrastructure/controllers/monitoring"
CONFIGS = "infrastructure/configs/monitoring"
ARGO_APPS = "argocd/infrastructure/monitoring.yaml"
ARGO_NOTIFICATIONS = "argocd/notifications/argocd-notifications-cm.yaml"
VALUES = f"{CONTROLLERS}/kube-prometheus-stack-values.yaml"

# (engine, notifications, telemetry_backend): every notifications choice on each engine, every backend once.
VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("flux", "none", "jaeger"),
    ("flux", "slack", "tempo"),
    ("flux", "github", "jaeger"),
    ("flux", "webhook", "otlp"),
    ("argocd", "none", "tempo"),
    ("argocd", "slack", "jaeger"),
    ("argocd", "github", "otlp"),
    ("argocd", "webhook", "jaeger"),
    ("both", "slack", "jaeger"),
    ("both", "github", "tempo"),
)


@dataclass(frozen=True)
class Rendered:
    engine: str
    notifications: str
    backend: str
    root: Path

    @property
    def key(self) -> str:
        return f"{self.engine}-{self.notifications}-{self.backend}"

    @property
    def flux(self) -> bool:
        return self.engine in ("flux", "both")

    @property
    def argo(self) -> bool:
        return self.engine in ("argocd", "both")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    source = ensure_template_mirror()
    out: dict[str, Rendered] = {}
    for engine, notifications, backend in VARIANTS:
        answers = build_answers({
            "owner": "acme", "fleet_name": "fleet-infra", "service": "checkout", "monitoring": True,
            "engine": engine, "notifications": notifications, "telemetry_backend": backend,
        })
        item = Rendered(engine, notifications, backend, tmp_path_factory.mktemp("monitoring") / "repo")
        render_component(build_monitoring_component(answers), item.root, source)
        out[item.key] = item
    return out


@pytest.fixture(scope="module")
def built(rendered: dict[str, Rendered]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every kustomize root of every variant, built once with `kubectl kustomize`.

    infrastructure/controllers/monitoring is a kustomize root for Flux only; Argo CD reads just its values file.
    """
    return {
        key: {rel: kustomize_build(item.root / rel) for rel in (CONTROLLERS, CONFIGS)
              if (item.root / rel / "kustomization.yaml").exists()}
        for key, item in rendered.items()
    }


def _objects(item: Rendered, built: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    objs = [o for docs in built[item.key].values() for o in docs]
    for rel in (ARGO_APPS, ARGO_NOTIFICATIONS):
        if (item.root / rel).exists():
            objs += load_documents(item.root / rel)
    return objs


def _of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o.get("kind") == kind]


def _values(item: Rendered) -> dict[str, Any]:
    data = yaml.safe_load((item.root / VALUES).read_text())
    assert isinstance(data, dict)
    return data


def _rule_exprs(objs: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for rule_obj in _of_kind(objs, "PrometheusRule"):
        for group in rule_obj["spec"]["groups"]:
            for rule in group["rules"]:
                yield rule.get("alert") or rule["record"], rule["expr"]


def _dashboards(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for cm in _of_kind(objs, "ConfigMap"):
        if (cm["metadata"].get("labels") or {}).get("grafana_dashboard") == "1":
            for fname, text in cm["data"].items():
                out.append((f"{cm['metadata']['name']}/{fname}", json.loads(text)))
    return out


# ----------------------------------------------------------------------------------------------- layout


def test_files_follow_engine_and_notifications(rendered: dict[str, Rendered]) -> None:
    for item in rendered.values():
        configs = item.root / CONFIGS
        assert (configs / "podmonitor-flux.yaml").exists() == item.flux, item.key
        assert (configs / "prometheusrule-flux.yaml").exists() == item.flux, item.key
        assert (configs / "servicemonitor-argocd.yaml").exists() == item.argo, item.key
        assert (configs / "prometheusrule-argocd.yaml").exists() == item.argo, item.key
        notify = item.notifications != "none"
        assert (configs / "flux-notifications.yaml").exists() == (item.flux and notify), item.key
        assert (item.root / ARGO_NOTIFICATIONS).exists() == (item.argo and notify), item.key
        assert (item.root / ARGO_APPS).exists() == item.argo, item.key
        assert (item.root / CONTROLLERS / "kustomization.yaml").exists() == item.flux, item.key
        assert (item.root / VALUES).exists()
        assert (item.root / ".fleetstrap/answers/monitoring.yml").exists()
        # Nothing unrendered: every `{{` left must belong to a Prometheus/Argo CD/Grafana template.
        for path in item.root.rglob("*"):
            assert not path.name.endswith(".jinja"), path
            assert "{%" not in (path.read_text() if path.is_file() else ""), path


def test_kustomize_roots_build(rendered: dict[str, Rendered],
                               built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    assert set(built) == set(rendered) and rendered
    for key, roots in built.items():
        assert roots, f"{key}: no kustomize roots built"
        for rel, docs in roots.items():
            assert docs, f"{key}: {rel} built no objects"


def test_objects_validate_strictly(rendered: dict[str, Rendered],
                                   built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for item in rendered.values():
        objs = _objects(item, built)
        problems = validate_objects(((item.key, o) for o in objs), K8S_VERSION)
        assert not problems, "\n".join(map(str, problems))
        # The values ConfigMap must carry a parseable values document too.
        assert _values(item)["grafana"]["sidecar"]["dashboards"]["enabled"] is True


def test_core_objects_validate_without_crd_schemas(rendered: dict[str, Rendered],
                                                   built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    # Runs even where the CRD catalog is absent: Services, ConfigMaps, Namespaces are strict-checked.
    for item in rendered.values():
        core = [o for o in _objects(item, built) if "." not in o["apiVersion"].split("/")[0]
                or "/" not in o["apiVersion"]]
        assert core
        problems = validate_objects(((item.key, o) for o in core), K8S_VERSION)
        assert not problems, "\n".join(map(str, problems))


# ----------------------------------------------------------------------------------------------- pins, parity


def test_chart_is_pinned_the_same_for_both_engines(rendered: dict[str, Rendered],
                                                  built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    version = pin("kube_prometheus_stack_chart_version")
    repo = pin("prometheus_community_helm_repo")
    for item in rendered.values():
        objs = _objects(item, built)
        releases = _of_kind(objs, "HelmRelease")
        assert len(releases) == int(item.flux), item.key
        if item.flux:
            (release,) = releases
            assert release["spec"]["chart"]["spec"]["version"] == version
            (helm_repo,) = _of_kind(objs, "HelmRepository")
            assert helm_repo["spec"]["url"] == repo
            values_cm = next(o for o in _of_kind(objs, "ConfigMap")
                             if o["metadata"]["name"] == "kube-prometheus-stack-values")
            assert release["spec"]["valuesFrom"][0]["name"] == "kube-prometheus-stack-values"
            assert yaml.safe_load(values_cm["data"]["values.yaml"]) == _values(item)
        appsets = _of_kind(objs, "ApplicationSet")
        assert len(appsets) == int(item.argo), item.key
        if not item.argo:
            continue
        (appset,) = appsets
        assert [e["name"] for e in appset["spec"]["generators"][0]["list"]["elements"]] == ["dev"]
        spec = appset["spec"]["template"]["spec"]
        chart_src = next(s for s in spec["sources"] if s.get("chart"))
        assert (chart_src["repoURL"], chart_src["targetRevision"]) == (repo, version)
        # Argo CD reads the very values file the Flux ConfigMap is generated from.
        (value_file,) = chart_src["helm"]["valueFiles"]
        assert value_file == f"$values/{VALUES}"
        ref_src = next(s for s in spec["sources"] if s.get("ref") == "values")
        assert ref_src["repoURL"] == "ssh://git@github.com/acme/fleet-infra.git"


# ----------------------------------------------------------------------------------------------- rules

GRAFANA_VARS = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}


def _grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?(\w+)\}?", r"x", expr)


def test_every_promql_expression_parses(rendered: dict[str, Rendered],
                                        built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    seen = 0
    for item in rendered.values():
        objs = _objects(item, built)
        for name, expr in _rule_exprs(objs):
            try:
                promql_parser.parse(expr)
            except ValueError as exc:
                raise AssertionError(f"{item.key} rule {name}: {exc}") from exc
            seen += 1
        for where, dash in _dashboards(objs):
            for target in _targets(dash):
                if "expr" in target:
                    try:
                        promql_parser.parse(_grafana_to_promql(target["expr"]))
                    except ValueError as exc:
                        raise AssertionError(f"{item.key} {where}: {target['expr']}: {exc}") from exc
                    seen += 1
    assert seen > 100


def test_promql_parser_rejects_bad_expressions() -> None:
    # Guards the test above against a parser that accepts anything.
    with pytest.raises(ValueError, match=r"\S"):
        promql_parser.parse("sum by (x (rate(foo[5m]))")


def test_promtool_checks_rules(rendered: dict[str, Rendered],
                               built: dict[str, dict[str, list[dict[str, Any]]]],
                               tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    files = []
    for item in rendered.values():
        for rule_obj in _of_kind(_objects(item, built), "PrometheusRule"):
            path = tmp_path / f"{item.key}-{rule_obj['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(rule_obj["spec"]))
            files.append(str(path))
    res = subprocess.run([promtool, "check", "rules", *files], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_alerts_cover_the_engines_and_have_runbooks(rendered: dict[str, Rendered],
                                                    built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    flux_alerts = {"FluxKustomizationNotReady", "FluxHelmReleaseNotReady", "FluxReconciliationFailures"}
    argo_alerts = {"ArgoCDAppDegraded", "ArgoCDAppOutOfSync", "ArgoCDSyncFailureRatioHigh", "ArgoCDSyncSlow"}
    service_alerts = {"ServiceHighErrorRate", "ServiceHighLatency"}
    for item in rendered.values():
        objs = _objects(item, built)
        runbook = (item.root / CONFIGS / "RUNBOOK.md").read_text()
        anchors = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
        alerts: dict[str, dict[str, Any]] = {}
        for rule_obj in _of_kind(objs, "PrometheusRule"):
            for group in rule_obj["spec"]["groups"]:
                alerts.update({r["alert"]: r for r in group["rules"] if "alert" in r})
        expected = service_alerts | (flux_alerts if item.flux else set()) | (argo_alerts if item.argo else set())
        assert expected <= set(alerts), f"{item.key}: missing {expected - set(alerts)}"
        if not item.flux:
            assert not any(a.startswith("Flux") for a in alerts)
        if not item.argo:
            assert not any(a.startswith("ArgoCD") for a in alerts)
        for name, rule in alerts.items():
            assert rule["labels"]["severity"] in {"warning", "critical"}, name
            url = rule["annotations"]["runbook_url"]
            assert url.startswith("https://github.com/acme/fleet-infra/blob/main/infrastructure/configs/monitoring/")
            assert url.split("#", 1)[1] in anchors, f"{name}: runbook section missing"
            assert rule["annotations"]["summary"], name
        if item.argo:
            ratio = alerts["ArgoCDSyncFailureRatioHigh"]["expr"]
            assert "argocd_app_sync_total" in ratio and 'phase=~"Error|Failed"' in ratio
            assert "argocd_app_sync_duration_seconds_total" in alerts["ArgoCDSyncSlow"]["expr"]
        if item.flux:
            assert "gotk_resource_info" in alerts["FluxKustomizationNotReady"]["expr"]


# ----------------------------------------------------------------------------------------------- dashboards


def _targets(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash["panels"]:
        yield from panel.get("targets", [])
        for inner in panel.get("panels", []):
            yield from inner.get("targets", [])


def _datasource_uids(node: Any) -> Iterator[str]:
    """Datasource uids a dashboard refers to: datasource objects and Explore links (`"datasource":"uid"`)."""
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            yield ds["uid"]
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from _datasource_uids(value)
    elif isinstance(node, str) and "/explore?" in node:
        yield from re.findall(r'"datasource":"([^"]+)"', node)
        yield from re.findall(r'"uid":"([^"]+)"', node)


def _defined_datasources(values: dict[str, Any]) -> set[str]:
    grafana = values["grafana"]
    defined = {grafana["sidecar"]["datasources"]["uid"]}
    defined |= {ds["uid"] for ds in grafana.get("additionalDataSources", [])}
    return defined


def test_dashboards_parse_and_use_only_defined_datasources(
        rendered: dict[str, Rendered], built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for item in rendered.values():
        objs = _objects(item, built)
        values = _values(item)
        defined = _defined_datasources(values)
        assert "prometheus" in defined
        assert ("traces" in defined) == (item.backend in ("jaeger", "tempo")), item.key
        dashboards = _dashboards(objs)
        assert {d["uid"] for _, d in dashboards} == {"fleet-overview", "service-red"}
        uids = [d["uid"] for _, d in dashboards]
        assert len(uids) == len(set(uids)), f"{item.key}: duplicate dashboard uids {uids}"
        for where, dash in dashboards:
            used = set(_datasource_uids(dash))
            assert used, where
            assert used <= defined, f"{item.key} {where}: undefined datasource(s) {used - defined}"
            ids = [p["id"] for p in dash["panels"]]
            assert len(ids) == len(set(ids)), f"{item.key} {where}: duplicate panel ids"
        red = dict(dashboards)["dashboard-service-red/service-red.json"]
        trace_links = [u for u in _datasource_uids(red) if u == "traces"]
        assert bool(trace_links) == ("traces" in defined), f"{item.key}: trace links vs trace datasource"
        overview = dict(dashboards)["dashboard-fleet-overview/fleet-overview.json"]
        exprs = " ".join(t["expr"] for t in _targets(overview))
        assert ("argocd_app_sync_total" in exprs) == item.argo
        assert ("gotk_resource_info" in exprs) == item.flux
        for cm in _of_kind(objs, "ConfigMap"):
            if cm["metadata"]["name"].startswith("dashboard-"):
                assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        sidecar = values["grafana"]["sidecar"]["dashboards"]
        assert (sidecar["label"], sidecar["labelValue"]) == ("grafana_dashboard", "1")


def test_scrape_targets(rendered: dict[str, Rendered], built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for item in rendered.values():
        objs = _objects(item, built)
        pod_monitors = {o["metadata"]["name"]: o for o in _of_kind(objs, "PodMonitor")}
        svc_monitors = {o["metadata"]["name"]: o for o in _of_kind(objs, "ServiceMonitor")}
        assert ("flux-system" in pod_monitors) == item.flux
        assert ("argocd" in svc_monitors) == item.argo
        gateway = svc_monitors["otel-gateway"]
        (service,) = [s for s in _of_kind(objs, "Service") if s["metadata"]["name"] == "otel-gateway-prometheus"]
        assert gateway["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert [p["port"] for p in service["spec"]["ports"]] == [8889]
        assert gateway["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
        prom = _values(item)["prometheus"]["prometheusSpec"]
        assert prom["serviceMonitorSelectorNilUsesHelmValues"] is False
        assert prom["ruleSelectorNilUsesHelmValues"] is False
        ksm = _values(item).get("kube-state-metrics", {})
        assert bool(ksm.get("customResourceState", {}).get("enabled")) == item.flux


# ----------------------------------------------------------------------------------------------- notifications


def test_notifications_follow_the_answer(rendered: dict[str, Rendered],
                                         built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for item in rendered.values():
        objs = _objects(item, built)
        providers = {p["metadata"]["name"]: p for p in _of_kind(objs, "Provider")}
        alerts = {a["metadata"]["name"]: a for a in _of_kind(objs, "Alert")}
        for obj in (*providers.values(), *alerts.values()):
            assert obj["apiVersion"] == "notification.toolkit.fluxcd.io/v1beta3"
        if not item.flux or item.notifications == "none":
            assert not providers and not alerts, item.key
        else:
            status = providers["github-status"]["spec"]
            assert status == {"type": "github", "address": "https://github.com/acme/fleet-infra",
                              "secretRef": {"name": "github-token"}}
            assert alerts["github-status"]["spec"]["providerRef"]["name"] == "github-status"
            if item.notifications == "github":
                assert set(providers) == {"github-status"}
            else:
                dest = providers["fleet-alerts"]["spec"]
                assert dest["type"] == {"slack": "slack", "webhook": "generic"}[item.notifications]
                assert "address" not in dest and dest["secretRef"]["name"]
                assert alerts["fleet-alerts"]["spec"]["eventSeverity"] == "error"
        cms = [c for c in _of_kind(objs, "ConfigMap") if c["metadata"]["name"] == "argocd-notifications-cm"]
        if not item.argo or item.notifications == "none":
            assert not cms, item.key
            continue
        (cm,) = cms
        data = cm["data"]
        service_key = {"slack": "service.slack", "webhook": "service.webhook.fleet",
                       "github": "service.github"}[item.notifications]
        assert [k for k in data if k.startswith("service.")] == [service_key]
        for trigger in ("trigger.on-sync-failed", "trigger.on-health-degraded"):
            assert yaml.safe_load(data[trigger])[0]["send"]
        for key, text in data.items():
            if key.startswith("template."):
                assert yaml.safe_load(text)["message"]
        subs = yaml.safe_load(data["subscriptions"])
        assert "on-sync-failed" in subs[0]["triggers"]


def _service_names(data: dict[str, str]) -> set[str]:
    """Names Argo CD notifications registers: service.<type> is <type>, service.<type>.<name> is <name>."""
    return {key.split(".")[-1] for key in data if key.startswith("service.")}


def test_argocd_subscriptions_name_configured_services(rendered: dict[str, Rendered],
                                                       built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    seen = 0
    for item in rendered.values():
        for cm in _of_kind(_objects(item, built), "ConfigMap"):
            if cm["metadata"]["name"] != "argocd-notifications-cm":
                continue
            services = _service_names(cm["data"])
            for sub in yaml.safe_load(cm["data"]["subscriptions"]):
                for recipient in sub["recipients"]:
                    # notifications-engine reads a recipient as <service>[:<recipient>].
                    assert recipient.split(":")[0] in services, (item.key, recipient, services)
                    seen += 1
    assert seen


def test_flux_success_is_not_controller_runtime_success(rendered: dict[str, Rendered]) -> None:
    # Flux reconcilers requeue at their interval, so a healthy reconcile is result="requeue_after".
    wrong = re.compile(r'controller_runtime_reconcile_total\{[^}]*result=\\?"success')
    for item in rendered.values():
        for path in (item.root / CONFIGS).rglob("*"):
            if path.is_file():
                assert not wrong.search(path.read_text()), path


SECRETISH = re.compile(r"(hooks\.slack\.com|xox[abp]-|ghp_|github_pat_|BEGIN [A-Z ]*PRIVATE KEY|prom-operator)")


def _check_alertmanager(item: Rendered) -> None:
    alertmanager = _values(item)["alertmanager"]
    for receiver in alertmanager.get("config", {}).get("receivers", []):
        for cfg in receiver.get("slack_configs", []):
            assert "api_url" not in cfg and cfg["api_url_file"].startswith("/etc/alertmanager/secrets/")
        for cfg in receiver.get("webhook_configs", []):
            assert "url" not in cfg and cfg["url_file"].startswith("/etc/alertmanager/secrets/")
    if item.notifications in ("slack", "webhook"):
        assert alertmanager["alertmanagerSpec"]["secrets"] == [f"alertmanager-{item.notifications}"]


def _check_argocd_services(objs: list[dict[str, Any]]) -> None:
    for cm in _of_kind(objs, "ConfigMap"):
        if cm["metadata"]["name"] != "argocd-notifications-cm":
            continue
        for key, text in cm["data"].items():
            if not key.startswith("service."):
                continue
            for field, value in yaml.safe_load(text).items():
                if field in {"token", "url", "appID", "installationID", "privateKey"}:
                    assert str(value).startswith("$"), f"{key}.{field} must reference the Secret"


def test_no_secret_is_inlined(rendered: dict[str, Rendered], built: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for item in rendered.values():
        objs = _objects(item, built)
        assert not _of_kind(objs, "Secret"), item.key
        for path in item.root.rglob("*"):
            if path.is_file():
                assert not SECRETISH.search(path.read_text()), path
        grafana = _values(item)["grafana"]
        assert "adminPassword" not in grafana and grafana["admin"]["existingSecret"] == "grafana-admin"
        _check_alertmanager(item)
        _check_argocd_services(objs)


# ----------------------------------------------------------------------------------------------- whole fleet


def _fleet(monitoring: bool) -> RenderedFleet:
    # dual-engine: both engines and two clusters; the monitoring-off render is the one the golden tests use.
    if monitoring:
        return render_blueprint("dual-engine", monitoring=True, notifications="slack")
    return render_blueprint("dual-engine")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


def test_switching_monitoring_off_removes_all_of_it() -> None:
    on, off = _fleet(True), _fleet(False)
    on_files, off_files = _files(on.root), _files(off.root)
    assert {f"{CONTROLLERS}/kustomization.yaml", f"{CONFIGS}/kustomization.yaml", ARGO_APPS,
            ARGO_NOTIFICATIONS, ".fleetstrap/answers/monitoring.yml"} <= on_files
    assert not [f for f in off_files if "monitoring" in f], "monitoring files left with monitoring off"
    assert on_files - off_files == {f for f in on_files if "monitoring" in f or f == ARGO_NOTIFICATIONS}
    for rel in ("infrastructure/controllers", "infrastructure/configs"):
        assert "monitoring" in (on.root / rel / "kustomization.yaml").read_text(), rel
        on_docs = kustomize_build(on.root / rel)
        off_docs = kustomize_build(off.root / rel)
        text = yaml.safe_dump_all(off_docs)
        for word in ("kube-prometheus-stack", "PrometheusRule", "ServiceMonitor", "grafana_dashboard", "Provider"):
            assert word not in text, f"{rel} still has {word} with monitoring off"
        assert len(on_docs) > len(off_docs)
    off_objs = [("off", o) for rel in ("infrastructure/controllers", "infrastructure/configs")
                for o in kustomize_build(off.root / rel)]
    assert off_objs
    problems = validate_objects(off_objs, K8S_VERSION)
    assert not problems, "\n".join(map(str, problems))


def test_argocd_project_admits_the_monitoring_stack() -> None:
    """The `fleet-infrastructure` AppProject must allow the chart repo and every namespace monitoring writes to."""
    on = _fleet(True)
    project = next(d for p in (on.root / "argocd").rglob("*.yaml") for d in load_documents(p)
                   if d.get("kind") == "AppProject" and d["metadata"]["name"] == "fleet-infrastructure")
    assert pin("prometheus_community_helm_repo") in project["spec"]["sourceRepos"]
    namespaces = {d["namespace"] for d in project["spec"]["destinations"]}
    configs = kustomize_build(on.root / CONFIGS)
    # kube-system: the chart's Services for the control-plane exporters (coreDns, kubelet, ...).
    needed = {"monitoring", "kube-system"} | {o["metadata"]["namespace"] for o in configs
                                              if o["metadata"].get("namespace")}
    assert needed <= namespaces or "*" in namespaces, f"AppProject lacks namespaces {needed - namespaces}"


def test_gateway_collector_feeds_the_servicemonitor() -> None:
    on = _fleet(True)
    configs = kustomize_build(on.root / "infrastructure/configs")
    collectors = [o for o in configs if o.get("kind") == "OpenTelemetryCollector"]
    service = next(o for o in configs if o.get("kind") == "Service"
                   and o["metadata"]["name"] == "otel-gateway-prometheus")
    instance = service["spec"]["selector"]["app.kubernetes.io/instance"]
    matching = [c for c in collectors
                if f"{c['metadata'].get('namespace')}.{c['metadata']['name']}" == instance]
    assert matching, f"no OpenTelemetryCollector {instance} (namespace.name) for the span-metrics Service"
    config = matching[0]["spec"]["config"]
    exporter = config["exporters"]["prometheus"]
    assert exporter["endpoint"].endswith(":8889")
    assert "span_metrics" in config.get("connectors", {}), "gateway lacks the span_metrics connector"
