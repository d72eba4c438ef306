"""The generated service chart, linted (`--strict`) and rendered with the real Helm engine per toggle.

Each toggle's objects validate strictly: core kinds against kubernetes-validate, custom kinds against
$FLEETSTRAP_CRD_SCHEMAS. values.schema.json must reject typos; checkov must pass but for a justified list.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetstrap.pins import pin
from support import k8s
from support.tools import require_tool
from support_service import (
    K8S_VERSION,
    NAMESPACE,
    SERVICE,
    helm_sdk,
    lint_problems,
    render_chart,
    render_service,
)

Objects = list[tuple[str, dict[str, Any]]]

# Values per toggle, on top of the chart defaults. "Off" states are the defaults (checked there).
TOGGLES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "sidecar": {"otel": {"sidecar": {"enabled": True}}},
    "operator-injection": {"otel": {"operator": {"injectSdk": "observability/default"}}},
    "http-protobuf": {"otel": {"protocol": "http/protobuf"}},
    "rollouts": {"rollout": {"enabled": True}},
    "rollouts-autoscaling": {"rollout": {"enabled": True}, "autoscaling": {"enabled": True}},
    "migration": {"migration": {"enabled": True}},
    "servicemonitor": {"serviceMonitor": {"enabled": True}, "otel": {"sidecar": {"enabled": True}}},
    "networkpolicy-off": {"networkPolicy": {"enabled": False}},
    "autoscaling-on": {"autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 75}},
    "ingress-on": {"ingress": {"enabled": True, "className": "nginx",
                               "tls": [{"secretName": "checkout-tls", "hosts": ["checkout.example.com"]}]}},
    "everything": {
        "otel": {"sidecar": {"enabled": True}, "operator": {"injectSdk": "observability/default"}},
        "rollout": {"enabled": True, "autoPromotionEnabled": True, "autoPromotionSeconds": 60},
        "migration": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "autoscaling": {"enabled": True},
        "ingress": {"enabled": True},
        "config": {"extraEnv": {"FEATURE_X": "on", "RETRIES": 3}},
    },
}

# checkov findings accepted on purpose: check id -> (why, which resources; None = all).
CHECKOV_SKIPS: dict[str, tuple[str, Callable[[str], bool] | None]] = {
    "CKV_DOCKER_2": ("no HEALTHCHECK: Kubernetes probes /health and /ready; distroless has no shell or curl",
                     None),
    "CKV_K8S_43": ("tags, not digests: GitOps image automation and the release workflow bump semver tags", None),
    "CKV_K8S_15": ("IfNotPresent: release tags are immutable, so Always only adds a registry dependency", None),
    "CKV_K8S_8": ("the `helm test` pod is a one-shot wget, probes are meaningless there",
                  lambda resource: resource.endswith("-test-connection")),
    "CKV_K8S_9": ("the `helm test` pod is a one-shot wget, probes are meaningless there",
                  lambda resource: resource.endswith("-test-connection")),
}


@pytest.fixture(scope="module")
def unit() -> Path:
    return render_service("default")


@pytest.fixture(scope="module")
def chart(unit: Path) -> Path:
    return unit / "charts" / SERVICE


@pytest.fixture(scope="module")
def rendered(chart: Path) -> dict[str, Objects]:
    """Every toggle rendered once for this module."""
    return {name: render_chart(chart, values) for name, values in TOGGLES.items()}


def kinds(objects: Objects) -> list[str]:
    return sorted(doc["kind"] for _, doc in objects)


def one(objects: Objects, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in objects if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def pod_spec(objects: Objects) -> dict[str, Any]:
    workloads = [d for _, d in objects if d["kind"] in {"Deployment", "Rollout"}]
    assert len(workloads) == 1, kinds(objects)
    spec: dict[str, Any] = workloads[0]["spec"]["template"]["spec"]
    return spec


def config_env(objects: Objects) -> dict[str, str]:
    data: dict[str, str] = one(objects, "ConfigMap", SERVICE)["data"]
    return data


# ---------------------------------------------------------------- lint and strict validation, per toggle


@pytest.mark.parametrize("toggle", list(TOGGLES))
def test_chart_lints_strict(chart: Path, toggle: str) -> None:
    assert lint_problems(chart, TOGGLES[toggle]) == []


@pytest.mark.parametrize("toggle", list(TOGGLES))
def test_rendered_objects_validate_strictly(rendered: dict[str, Objects], toggle: str) -> None:
    objects = rendered[toggle]
    assert objects, "the chart rendered nothing"
    core = [(t, d) for t, d in objects if k8s.is_core(d["apiVersion"])]
    assert k8s.validate_objects(core, K8S_VERSION) == []
    for _, doc in objects:
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']} without the release namespace"
        assert k8s.outdated_api(doc) is None, k8s.outdated_api(doc)
    custom = [(t, d) for t, d in objects if not k8s.is_core(d["apiVersion"])]
    if custom:
        assert k8s.validate_objects(custom, K8S_VERSION) == []


def test_environment_values_lint_render_and_validate() -> None:
    """The values every environment overlay ships (sidecar and monitoring on in the 'full' variant)."""
    # The default answers' one environment (copier.yml: [dev]), and the full variant's three.
    expected = {"default": ["dev"], "full": ["dev", "production", "staging"]}
    for variant in ("default", "full"):
        root = render_service(variant)
        files = sorted((root / "apps").glob(f"*/{SERVICE}/values.yaml"))
        assert [f.parent.parent.name for f in files] == expected[variant], files
        for values_file in files:
            values = yaml.safe_load(values_file.read_text(encoding="utf-8"))
            where = values_file.relative_to(root).as_posix()
            assert lint_problems(root / "charts" / SERVICE, values) == [], where
            objects = render_chart(root / "charts" / SERVICE, values)
            core = [(t, d) for t, d in objects if k8s.is_core(d["apiVersion"])]
            assert k8s.validate_objects(core, K8S_VERSION) == [], where
            assert one(objects, "ConfigMap", SERVICE)["data"]["DEPLOYMENT_ENVIRONMENT"] == values["environment"]


# ---------------------------------------------------------------- behaviour of the defaults


def test_defaults_are_restricted_pod_security(rendered: dict[str, Objects]) -> None:
    for toggle in ("defaults", "everything"):
        for template, doc in rendered[toggle]:
            spec = (doc["spec"]["template"]["spec"] if doc["kind"] in {"Deployment", "Rollout", "Job"}
                    else doc["spec"] if doc["kind"] == "Pod" else None)
            if spec is None:
                continue
            assert spec["securityContext"]["runAsNonRoot"] is True, template
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", template
            assert spec["automountServiceAccountToken"] is False, template
            for container in spec["containers"] + spec.get("initContainers", []):
                sc = container["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, (template, container["name"])
                assert sc["readOnlyRootFilesystem"] is True, (template, container["name"])
                assert sc["capabilities"]["drop"] == ["ALL"], (template, container["name"])
                assert "limits" in container["resources"], (template, container["name"])
    assert one(rendered["defaults"], "ServiceAccount")["automountServiceAccountToken"] is False


def test_defaults_objects(rendered: dict[str, Objects]) -> None:
    objects = rendered["defaults"]
    assert kinds(objects) == ["ConfigMap", "Deployment", "NetworkPolicy", "Pod", "PodDisruptionBudget",
                              "Service", "ServiceAccount"]
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = pod_spec(objects)["containers"][0]
    assert container["image"] == f"ghcr.io/acme/{SERVICE}:0.1.0"  # appVersion when image.tag is empty
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert "initContainers" not in pod_spec(objects)
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["maxUnavailable"] == 1


def container_env(objects: Objects) -> dict[str, str]:
    """The service container's literal `env` entries (downward-API entries map to "")."""
    env = pod_spec(objects)["containers"][0]["env"]
    return {e["name"]: e.get("value", "") for e in env}


def resource_attributes(value: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in value.split(","))


def test_otel_environment_is_built_from_values(rendered: dict[str, Objects]) -> None:
    env = container_env(rendered["defaults"])
    assert env["OTEL_SERVICE_NAME"] == SERVICE
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://gateway-collector.observability.svc.cluster.local:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["OTEL_PROPAGATORS"] == "tracecontext,baggage"
    assert env["OTEL_SDK_DISABLED"] == "false"
    assert config_env(rendered["defaults"])["SERVICE_VERSION"] == "0.1.0"
    # http/protobuf: base URL on the HTTP port (the SDK appends /v1/traces and /v1/metrics itself).
    http = container_env(rendered["http-protobuf"])
    assert http["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://gateway-collector.observability.svc.cluster.local:4318"
    attributes = resource_attributes(env["OTEL_RESOURCE_ATTRIBUTES"])
    assert attributes["k8s.pod.name"] == "$(K8S_POD_NAME)" and attributes["service.version"] == "0.1.0"
    assert "deployment.environment.name" not in attributes  # no environment in the chart defaults
    names = [e["name"] for e in pod_spec(rendered["defaults"])["containers"][0]["env"]]
    # $(VAR) references only expand to variables defined earlier in the list.
    assert names[-1] == "OTEL_RESOURCE_ATTRIBUTES" and names.index("K8S_NODE_NAME") < len(names) - 1
    assert all(isinstance(v, str) for v in config_env(rendered["everything"]).values())
    assert config_env(rendered["everything"])["RETRIES"] == "3"


def test_resource_attributes_carry_environment_and_version(chart: Path) -> None:
    values = {"environment": "staging", "image": {"tag": "1.4.2"},
              "otel": {"resourceAttributes": {"team": "payments", "service.version": "override"}}}
    attributes = resource_attributes(container_env(render_chart(chart, values))["OTEL_RESOURCE_ATTRIBUTES"])
    assert attributes["deployment.environment.name"] == "staging"
    assert attributes["team"] == "payments"
    assert attributes["service.version"] == "override"  # values win over the derived attribute
    helm = helm_sdk()
    with pytest.raises(helm.HelmValuesError):  # a comma would split the variable into bogus pairs
        helm.Chart.load(str(chart)).validate_schema({"otel": {"resourceAttributes": {"team": "a,b"}}})


def test_operator_injection_cannot_override_the_sdk_settings(rendered: dict[str, Objects]) -> None:
    """The operator's inject-sdk webhook appends a variable only when the container's `env` lacks it
    (envFrom is not consulted): every SDK setting the fleet's Instrumentation carries (endpoint on :4318,
    sampler, propagators, service name) must be in `env`, or gRPC would be sent to the HTTP port."""
    for toggle in ("operator-injection", "everything"):
        env = container_env(rendered[toggle])
        for name in ("OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
                     "OTEL_PROPAGATORS", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES"):
            assert name in env, (toggle, name)
        assert not any(key.startswith("OTEL_") for key in config_env(rendered[toggle])), toggle


def test_extra_env_cannot_shadow_chart_settings(chart: Path) -> None:
    helm = helm_sdk()
    with pytest.raises(helm.HelmError, match=re.escape("config.extraEnv.OTEL_EXPORTER_OTLP_ENDPOINT")):
        render_chart(chart, {"config": {"extraEnv": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://elsewhere:4317"}}})


def test_config_checksum_rolls_pods_on_change(chart: Path) -> None:
    def checksum(values: dict[str, Any]) -> str:
        objects = render_chart(chart, values)
        configmap = next(t for t, d in objects if d["kind"] == "ConfigMap")
        annotation: str = pod_spec_annotations(objects)["checksum/config"]
        assert configmap.endswith("configmap.yaml")
        return annotation

    base = checksum({})
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert checksum({"config": {"logLevel": "debug"}}) != base
    assert checksum({"replicaCount": 3}) == base


def pod_spec_annotations(objects: Objects) -> dict[str, str]:
    workload = next(d for _, d in objects if d["kind"] in {"Deployment", "Rollout"})
    annotations: dict[str, str] = workload["spec"]["template"]["metadata"]["annotations"]
    return annotations


# ---------------------------------------------------------------- each toggle does what it says


def test_sidecar(rendered: dict[str, Objects]) -> None:
    objects = rendered["sidecar"]
    sidecar = pod_spec(objects)["initContainers"][0]
    assert sidecar["name"] == "otel-collector" and sidecar["restartPolicy"] == "Always"
    # 127.0.0.1, the address the sidecar's receivers bind ("localhost" may resolve to ::1 first).
    assert container_env(objects)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    collector_cm = one(objects, "ConfigMap", f"{SERVICE}-otel-collector")
    config = yaml.safe_load(collector_cm["data"]["config.yaml"])
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert config["exporters"]["otlp_grpc"]["endpoint"] == "gateway-collector.observability.svc.cluster.local:4317"
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp_grpc"]
    assert "checksum/otel-sidecar" in pod_spec_annotations(objects)
    # The collector config is the envelope the operator's CRD describes: validate it there when available.
    root = k8s.crd_schema_dir()
    if root is not None:
        import jsonschema

        crd = json.loads((root / "opentelemetry.io/opentelemetrycollector_v1beta1.json").read_text())
        jsonschema.Draft7Validator(crd["properties"]["spec"]["properties"]["config"]).validate(config)


def test_operator_injection(rendered: dict[str, Objects]) -> None:
    annotations = pod_spec_annotations(rendered["operator-injection"])
    assert annotations["instrumentation.opentelemetry.io/inject-sdk"] == "observability/default"
    assert "instrumentation.opentelemetry.io/inject-sdk" not in pod_spec_annotations(rendered["defaults"])


def test_rollouts_replace_the_deployment(rendered: dict[str, Objects]) -> None:
    objects = rendered["rollouts"]
    assert "Deployment" not in kinds(objects)
    rollout = one(objects, "Rollout")
    blue_green = rollout["spec"]["strategy"]["blueGreen"]
    assert blue_green["activeService"] == SERVICE
    assert blue_green["previewService"] == f"{SERVICE}-preview"
    assert blue_green["autoPromotionEnabled"] is False
    assert one(objects, "Service", f"{SERVICE}-preview")["spec"]["selector"] == \
        one(objects, "Service", SERVICE)["spec"]["selector"]
    hpa = one(rendered["rollouts-autoscaling"], "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                             "name": SERVICE}
    assert "replicas" not in one(rendered["rollouts-autoscaling"], "Rollout")["spec"]


def test_migration_hook(rendered: dict[str, Objects]) -> None:
    job = one(rendered["migration"], "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    template = job["spec"]["template"]
    assert template["spec"]["containers"][0]["args"] == ["migrate"]
    env = {e["name"] for e in template["spec"]["containers"][0]["env"]}
    assert {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_RESOURCE_ATTRIBUTES"} <= env
    # Not selected by the Service or the PDB: hook pods must never receive traffic.
    assert "app.kubernetes.io/name" not in template["metadata"]["labels"]
    assert "serviceAccountName" not in template["spec"]  # a pre-install hook runs before the ServiceAccount
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert job["spec"]["backoffLimit"] == 1 and template["spec"]["restartPolicy"] == "Never"
    # The Job has no collector sidecar: it exports to the gateway even when the workload uses one.
    job_env = {e["name"]: e.get("value") for e in
               one(rendered["everything"], "Job")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert job_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://gateway-collector.observability.svc.cluster.local:4317"
    assert container_env(rendered["everything"])["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"


def test_migration_hook_pulls_and_identifies_like_the_workload(chart: Path) -> None:
    values = {"migration": {"enabled": True}, "imagePullSecrets": [{"name": "ghcr"}],
              "serviceAccount": {"create": False, "name": "checkout-db"}}
    spec = one(render_chart(chart, values), "Job")["spec"]["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "ghcr"}]
    assert spec["serviceAccountName"] == "checkout-db"  # exists before install: safe for a pre-install hook
    assert spec["automountServiceAccountToken"] is False


def test_servicemonitor_scrapes_the_sidecar(rendered: dict[str, Objects], chart: Path) -> None:
    objects = rendered["servicemonitor"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    ports = {p["name"]: p for p in one(objects, "Service", SERVICE)["spec"]["ports"]}
    assert ports["metrics"]["targetPort"] == 9464
    collector = yaml.safe_load(one(objects, "ConfigMap", f"{SERVICE}-otel-collector")["data"]["config.yaml"])
    assert collector["service"]["pipelines"]["metrics"]["exporters"] == ["otlp_grpc", "prometheus"]
    # Numeric: the metrics port is on a native sidecar, whose named ports not every CNI resolves.
    policy = one(objects, "NetworkPolicy")
    metrics_rule = next(rule for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == 9464)
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert metrics_rule["from"] == [monitoring]
    helm = helm_sdk()
    with pytest.raises(helm.HelmError, match=re.escape("needs otel.sidecar.enabled")):
        render_chart(chart, {"serviceMonitor": {"enabled": True}})


def test_networkpolicy(rendered: dict[str, Objects]) -> None:
    assert "NetworkPolicy" not in kinds(rendered["networkpolicy-off"])
    policy = one(rendered["defaults"], "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
    assert {53, 4317, 4318} <= egress_ports
    sources = policy["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} in sources and len(sources) == 1  # no ingress controller without ingress
    with_ingress = one(rendered["ingress-on"], "NetworkPolicy")["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in with_ingress
    # Ports are the pod's, numeric; DNS goes to the cluster DNS pods; OTLP to the gateway namespace.
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    by_port = {p["port"]: rule["to"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert by_port[53] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert by_port[4317] == by_port[4318] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}]


def test_networkpolicy_dns_peers_are_configurable(chart: Path) -> None:
    """NodeLocal DNSCache answers on a link-local address no pod selector matches."""
    peers = [{"ipBlock": {"cidr": "169.254.20.10/32"}}]
    policy = one(render_chart(chart, {"networkPolicy": {"dnsEgressTo": peers}}), "NetworkPolicy")
    assert any(rule["to"] == peers and rule["ports"][0]["port"] == 53 for rule in policy["spec"]["egress"])


def test_autoscaling(rendered: dict[str, Objects]) -> None:
    assert "HorizontalPodAutoscaler" not in kinds(rendered["defaults"])
    objects = rendered["autoscaling-on"]
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert "replicas" not in one(objects, "Deployment")["spec"]
    assert "behavior" not in hpa["spec"]  # Kubernetes defaults unless set


def test_autoscaling_behavior_and_guards(chart: Path) -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 600,
                              "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}
    values = {"autoscaling": {"enabled": True, "behavior": behavior}}
    objects = render_chart(chart, values)
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["behavior"] == behavior
    assert k8s.validate_objects([(t, d) for t, d in objects if d["kind"] == "HorizontalPodAutoscaler"],
                                K8S_VERSION) == []
    helm = helm_sdk()
    with pytest.raises(helm.HelmError, match="must not exceed"):
        render_chart(chart, {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}})
    with pytest.raises(helm.HelmError, match="utilization target"):
        render_chart(chart, {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": 0}})
    with pytest.raises(helm.HelmValuesError):
        helm.Chart.load(str(chart)).validate_schema({"autoscaling": {"behavior": {"scaleDwon": {}}}})


def test_pdb_never_blocks_evictions(chart: Path) -> None:
    """minAvailable at the replica floor (e.g. HPA minReplicas 1, minAvailable 1) would hang every drain."""
    helm = helm_sdk()
    with pytest.raises(helm.HelmError, match="no pod could ever be evicted"):
        render_chart(chart, {"autoscaling": {"enabled": True, "minReplicas": 1},
                             "podDisruptionBudget": {"minAvailable": 1}})
    with pytest.raises(helm.HelmError, match="no pod could ever be evicted"):
        render_chart(chart, {"replicaCount": 2, "podDisruptionBudget": {"minAvailable": 2}})
    pdb = one(render_chart(chart, {"replicaCount": 3, "podDisruptionBudget": {"minAvailable": 2}}),
              "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2 and "maxUnavailable" not in pdb["spec"]
    # The default (maxUnavailable 1) is safe at any replica count, HPA minimum 1 included.
    objects = render_chart(chart, {"autoscaling": {"enabled": True, "minReplicas": 1}})
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_shutdown_delay_fits_the_grace_period(chart: Path) -> None:
    helm = helm_sdk()
    with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds"):
        render_chart(chart, {"config": {"shutdownDelaySeconds": 30}, "terminationGracePeriodSeconds": 30})


def test_ingress(rendered: dict[str, Objects]) -> None:
    assert "Ingress" not in kinds(rendered["defaults"])
    ingress = one(rendered["ingress-on"], "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == f"{SERVICE}.example.com"
    assert ingress["spec"]["tls"][0]["secretName"] == "checkout-tls"


def test_httproute_renders(chart: Path) -> None:
    """Gateway API alternative to the Ingress (no schema in the catalogs: structure only)."""
    values = {"httpRoute": {"enabled": True, "hostnames": ["checkout.example.com"]}}
    assert lint_problems(chart, values) == []
    route = one(render_chart(chart, values), "HTTPRoute")
    assert route["spec"]["rules"][0]["backendRefs"][0] == {"name": SERVICE, "port": 80, "weight": 1}


# ---------------------------------------------------------------- values.schema.json and Chart.yaml


@pytest.mark.parametrize("typo", [
    {"replicaCont": 3},
    {"image": {"tagg": "1.0.0"}},
    {"otel": {"sidecar": {"enabeld": True}}},
    {"rollout": {"autoPromotion": True}},
    {"securityContext": {"runAsNonroot": True}},
    {"otel": {"protocol": "http/json"}},
])
def test_values_schema_rejects_typos(chart: Path, typo: dict[str, Any]) -> None:
    helm = helm_sdk()
    loaded = helm.Chart.load(str(chart))
    with pytest.raises(helm.HelmValuesError):
        loaded.validate_schema(typo)
    assert lint_problems(chart, typo), f"lint accepted {typo}"


def test_values_schema_is_strict_everywhere(chart: Path) -> None:
    schema = json.loads((chart / "values.schema.json").read_text(encoding="utf-8"))
    loose = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                loose.append(path)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(schema, "")
    assert loose == []
    # The defaults themselves satisfy the schema (helm does this on every render too).
    helm_sdk().Chart.load(str(chart)).validate_schema({})


def test_chart_metadata_is_semver(chart: Path) -> None:
    semver = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
    meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    assert meta["apiVersion"] == "v2" and meta["name"] == SERVICE
    assert semver.match(meta["version"]) and semver.match(meta["appVersion"])
    assert meta["kubeVersion"] == f">={pin('kubernetes_min_version')}.0-0"
    assert "{{" not in (chart / "values.yaml").read_text(encoding="utf-8")  # values are never templated


def test_chart_has_what_helm_create_gives(chart: Path) -> None:
    expected = {"deployment.yaml", "service.yaml", "serviceaccount.yaml", "ingress.yaml", "hpa.yaml",
                "httproute.yaml", "_helpers.tpl", "NOTES.txt", "tests/test-connection.yaml", "configmap.yaml",
                "pdb.yaml", "networkpolicy.yaml", "servicemonitor.yaml", "otel-sidecar-configmap.yaml",
                "migration-job.yaml", "rollout.yaml", "service-preview.yaml"}
    present = {p.relative_to(chart / "templates").as_posix() for p in (chart / "templates").rglob("*") if p.is_file()}
    assert expected <= present
    assert (chart / ".helmignore").is_file()


# ---------------------------------------------------------------- checkov


def test_checkov_passes_with_justified_skips(rendered: dict[str, Objects], unit: Path, tmp_path: Path) -> None:
    checkov = require_tool("checkov")
    for toggle in ("defaults", "everything"):
        docs = [doc for _, doc in rendered[toggle]]
        (tmp_path / f"chart-{toggle}.yaml").write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    shutil.copy(unit / "services" / SERVICE / "Dockerfile", tmp_path / "Dockerfile")
    shutil.copytree(unit / ".github", tmp_path / ".github")
    res = subprocess.run(
        [checkov, "-d", str(tmp_path), "--framework", "kubernetes", "dockerfile", "github_actions",
         "--skip-download", "--output", "json", "--quiet", "--compact"],
        capture_output=True, text=True, check=False,
    )
    reports = json.loads(res.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile", "github_actions"}, res.stderr[-2000:]
    failed = []
    for report in reports:
        assert report["summary"]["passed"] > 0, report["check_type"]
        for check in report["results"]["failed_checks"]:
            skip = CHECKOV_SKIPS.get(check["check_id"])
            if skip is not None and (skip[1] is None or skip[1](check["resource"])):
                continue
            failed.append(f"{check['check_id']} {check['resource']}: {check['check_name']}")
    assert failed == []

