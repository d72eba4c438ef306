"""progressive_delivery: flagger — Flagger on Flux fleets, a blue/green Canary per service whose analysis reads the
monitoring Prometheus, the answer's parity rules, and the boolean answers of earlier fleets.

One Flux fleet (multi-env blueprint, monitoring, two services) renders once per process. The checks: answers and
their one-line refusals (library, CLI, plain copier), the controller's HelmReleases, strict schemas (Flagger's CRDs
generated from its pinned Go module), the chart rendered by the real Helm engine per environment, the analysis
queries evaluated by promtool on synthetic canary/primary series, the gateway config emitting the labels those
queries select on (a real collector), `fleetstrap update` of a fleet rendered by the previous real templates with
`progressive_delivery: true`, and the real kube-apiserver accepting the Canary and MetricTemplates.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetstrap.answers import build_answers, load_answers_file, parse_data_flags
from fleetstrap.blueprints import resolve_blueprint
from fleetstrap.errors import AnswersError
from fleetstrap.pins import pin
from support import k8s
from support.commands import cli, ok
from support.fleet import RenderedFleet, render_blueprint
from support.tools import require_module, require_tool
from support_service import render_chart
from test_fleet_template import _kustomization_dirs, _objects

BLUEPRINT = "multi-env"
SERVICES = ["hello", "billing"]
FLAGGER = {"engine": "flux", "monitoring": True, "progressive_delivery": "flagger", "services": SERVICES}
K8S_VERSION = pin("kubernetes_version")
ROOT = Path(__file__).resolve().parent.parent
# The last commit of main whose templates answered progressive_delivery with a boolean.
LEGACY_TEMPLATES_COMMIT = "9df05810c3fe7dfd06c6630fdca5d24f246c74bc"


@pytest.fixture(scope="module")
def fleet() -> RenderedFleet:
    return render_blueprint(BLUEPRINT, **FLAGGER)


def _values(fleet: RenderedFleet, env: str, service: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((fleet.root / "apps" / env / service / "values.yaml").read_text())
    return loaded


def _chart(fleet: RenderedFleet, env: str, service: str = "hello",
           **extra: Any) -> list[tuple[str, dict[str, Any]]]:
    values = _values(fleet, env, service)
    for key, value in extra.items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    return render_chart(fleet.root / "charts" / service, values)


def _one(objects: list[tuple[str, dict[str, Any]]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in objects if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {[d['metadata']['name'] for d in found]}"
    return found[0]


# ---------------------------------------------------------------- answers


def test_answer_takes_the_three_values_and_the_legacy_booleans(tmp_path: Path) -> None:
    base = {"owner": "acme", "service": "hello", "monitoring": True}
    assert build_answers({**base, "progressive_delivery": "flagger"}).progressive_delivery == "flagger"
    assert build_answers({**base, "progressive_delivery": "Argo-Rollouts"}).progressive_delivery == "argo-rollouts"
    with pytest.raises(AnswersError, match=r"must be one of argo-rollouts, flagger, none \(got 'istio'\)"):
        build_answers({**base, "progressive_delivery": "istio"})
    # --data reads YAML: `true` is the boolean of fleetstrap 0.1.
    for flag, meaning in (("true", "argo-rollouts"), ("false", "none"), ("flagger", "flagger")):
        data = {**base, **parse_data_flags([f"progressive_delivery={flag}"])}
        assert build_answers(data).progressive_delivery == meaning, flag
    # An answers file written for the boolean (e.g. another fleet's .fleetstrap/answers/fleet.yml).
    answers_file = tmp_path / "fleet.yml"
    answers_file.write_text("owner: acme\nservice: hello\nprogressive_delivery: false\n_commit: v0.1.0\n")
    assert build_answers(load_answers_file(answers_file)).progressive_delivery == "none"
    # A user's blueprint written for the boolean.
    path = tmp_path / "legacy.yaml"
    path.write_text("name: legacy\nextends: starter\nanswers:\n  progressive_delivery: true\n")
    assert build_answers(resolve_blueprint(str(path))).progressive_delivery == "argo-rollouts"


@pytest.mark.parametrize(("changes", "message"), [
    ({"engine": "argocd"}, "progressive_delivery flagger needs engine flux (got argocd); "
                           "Argo CD fleets use progressive_delivery argo-rollouts"),
    ({"engine": "both"}, "progressive_delivery flagger needs engine flux (got both); "
                         "Argo CD fleets use progressive_delivery argo-rollouts"),
    ({"monitoring": False}, "progressive_delivery flagger needs monitoring: true "
                            "(its canary analysis queries the monitoring Prometheus)"),
])
def test_parity_rules_refuse_flagger_with_one_line(changes: dict[str, Any], message: str,
                                                   capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = {"owner": "acme", "service": "hello", "engine": "flux", "monitoring": True,
            "progressive_delivery": "flagger", **changes}
    with pytest.raises(AnswersError) as info:
        build_answers(data)
    assert info.value.message == message
    dest = tmp_path / "fleet"
    flags = [a for k, v in data.items() for a in ("--data", f"{k}={str(v).lower()}")]
    code, _, err = cli(capsys, "init", str(dest), *flags, "--no-commit", "--no-validate")
    assert code == 1
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2, err  # the error (and at most a hint)
    assert not dest.exists() or not any(dest.iterdir()), "nothing half-written"
    # Argo CD fleets keep Argo Rollouts.
    if "engine" in changes:
        assert build_answers({**data, "progressive_delivery": "argo-rollouts"}).progressive_delivery == "argo-rollouts"


@pytest.mark.parametrize(("data", "needle"), [
    ({"engine": "argocd", "monitoring": True}, "needs engine flux"),
    ({"engine": "flux", "monitoring": False}, "needs monitoring"),
])
def test_plain_copier_refuses_the_same(tmp_path: Path, data: dict[str, Any], needle: str) -> None:
    from copier import run_copy

    with pytest.raises(Exception, match=needle):
        run_copy(str(ROOT / "templates"), str(tmp_path / "out"), data={
            "unit": "fleet", "owner": "acme", "services": ["hello"], "progressive_delivery": "flagger", **data},
            defaults=True, unsafe=True, quiet=True)


# ---------------------------------------------------------------- the controller


def test_flagger_is_installed_with_the_monitoring_prometheus(fleet: RenderedFleet) -> None:
    objects = k8s.kustomize_build(fleet.root / "infrastructure/controllers")
    releases = {o["metadata"]["name"]: o for o in objects if o["kind"] == "HelmRelease"}
    flagger, loadtester = releases["flagger"], releases["flagger-loadtester"]
    assert flagger["metadata"]["namespace"] == loadtester["metadata"]["namespace"] == "flagger-system"
    chart = flagger["spec"]["chart"]["spec"]
    assert (chart["chart"], chart["version"]) == ("flagger", pin("flagger_chart_version"))
    chart = loadtester["spec"]["chart"]["spec"]
    assert (chart["chart"], chart["version"]) == ("loadtester", pin("flagger_loadtester_chart_version"))
    (repo,) = [o for o in objects if o["kind"] == "HelmRepository" and o["metadata"]["name"] == "flagger"]
    assert repo["spec"]["url"] == pin("flagger_helm_repo")
    assert flagger["spec"]["install"]["crds"] == "CreateReplace"  # the chart's crds/: Canary, MetricTemplate
    values = flagger["spec"]["values"]
    assert values["meshProvider"] == "kubernetes"
    # metricsServer is kube-prometheus-stack's Prometheus Service: <release>-prometheus in its namespace.
    monitoring = releases["kube-prometheus-stack"]
    prometheus = f"http://{monitoring['spec'].get('releaseName', 'kube-prometheus-stack')}-prometheus." \
                 f"{monitoring['metadata']['namespace']}:9090"
    assert values["metricsServer"] == prometheus
    assert {"name": "kube-prometheus-stack", "namespace": "monitoring"} in flagger["spec"]["dependsOn"]
    # Each service's chart points its MetricTemplates and load test at the same places.
    canary = _values(fleet, "dev", "hello")["canary"]
    assert canary["enabled"] is True and canary["loadTest"]["enabled"] is True
    chart_defaults = yaml.safe_load((fleet.root / "charts/hello/values.yaml").read_text())["canary"]
    assert chart_defaults["metricsServer"] == prometheus
    assert chart_defaults["loadTest"]["url"] == \
        f"http://{loadtester['spec']['releaseName']}.{loadtester['metadata']['namespace']}/"
    namespaces = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Namespace"}
    assert namespaces["flagger-system"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    # No second delivery controller, and the services are not Argo Rollouts.
    assert not any("argo-rollouts" in p.as_posix() for p in fleet.root.rglob("*"))
    assert "rollout" not in _values(fleet, "production", "hello")


def test_objects_validate_strictly(fleet: RenderedFleet) -> None:
    problems = k8s.validate_objects(_objects(fleet), K8S_VERSION)
    assert not problems, "\n".join(map(str, problems))
    for d in _kustomization_dirs(fleet):
        rel = d.relative_to(fleet.root)
        problems = k8s.validate_objects([(f"{rel} (built)", o) for o in k8s.kustomize_build(d)], K8S_VERSION)
        assert not problems, "\n".join(map(str, problems))


def test_fleet_validates_clean(fleet: RenderedFleet) -> None:
    from fleetstrap.validate import ValidateOptions, validate_repo

    schemas = k8s.crd_schema_dir()
    assert isinstance(schemas, Path)
    report = validate_repo(fleet.root, ValidateOptions(schema_locations=(str(schemas),), offline=True,
                                                       catalog_url=None))
    assert report.findings == (), [f.as_dict() for f in report.findings]


def test_validate_checks_the_canaries_against_flaggers_schemas(fleet: RenderedFleet, tmp_path: Path) -> None:
    """The gate renders each environment's chart and judges the Canary: without Flagger's schemas it says so."""
    from fleetstrap.validate import ValidateOptions, validate_repo

    schemas = k8s.crd_schema_dir()
    assert isinstance(schemas, Path) and (schemas / "flagger.app" / "canary_v1beta1.json").is_file()
    without = tmp_path / "schemas"
    shutil.copytree(schemas, without, ignore=shutil.ignore_patterns("flagger.app"))
    report = validate_repo(fleet.root, ValidateOptions(schema_locations=(str(without),), offline=True,
                                                       catalog_url=None, bundled_schemas=False))
    messages = " ".join(str(f.as_dict()) for f in report.findings)
    assert "Canary" in messages and "MetricTemplate" in messages, messages[:3000]


# ---------------------------------------------------------------- the service chart under Flagger


@pytest.mark.parametrize("env", ["dev", "production"])
def test_chart_renders_what_flagger_expects(fleet: RenderedFleet, env: str) -> None:
    objects = _chart(fleet, env)
    kinds = [d["kind"] for _, d in objects]
    assert "Rollout" not in kinds
    # Flagger owns the Services named after the target (<name>, -primary, -canary): the chart renders none.
    assert "Service" not in kinds
    canary = _one(objects, "Canary")
    spec = canary["spec"]
    deployment = _one(objects, "Deployment", spec["targetRef"]["name"])
    assert spec["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                 "name": deployment["metadata"]["name"]}
    assert "replicas" not in deployment["spec"], "Flagger scales the canary Deployment, not Helm"
    assert spec["provider"] == "kubernetes"
    assert spec["service"]["name"] == deployment["metadata"]["name"]
    ports = {p["name"]: p for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert spec["service"]["targetPort"] in ports
    # The ingress and `helm test` reach the Service Flagger creates under the release's name and port.
    ingress = _one(objects, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": spec["service"]["name"], "port": {"number": spec["service"]["port"]}}
    analysis = spec["analysis"]
    assert analysis["iterations"] == (10 if env == "production" else 5)
    templates = {d["metadata"]["name"]: d for _, d in objects if d["kind"] == "MetricTemplate"}
    by_name = {m["name"]: m for m in analysis["metrics"]}
    # Not Flagger's builtin names (request-success-rate, request-duration): it would run its own queries for them.
    assert set(by_name) == {"span-success-rate", "span-duration-p99"}
    for metric in by_name.values():
        assert metric["templateRef"]["name"] in templates
    assert by_name["span-success-rate"]["thresholdRange"] == {"min": 99}
    assert by_name["span-duration-p99"]["thresholdRange"] == {"max": 500}
    chart_defaults = yaml.safe_load((fleet.root / "charts/hello/values.yaml").read_text())["canary"]
    for template in templates.values():
        assert template["spec"]["provider"] == {"type": "prometheus", "address": chart_defaults["metricsServer"]}
    # Traffic for the canary from before the first check (pre-rollout) through every step (rollout).
    hooks = {h["type"]: h for h in analysis["webhooks"]}
    assert sorted(hooks) == ["pre-rollout", "rollout"]
    namespace = canary["metadata"]["namespace"]
    for hook in hooks.values():
        assert hook["url"] == "http://flagger-loadtester.flagger-system/" and hook["metadata"]["type"] == "cmd"
        assert re.fullmatch(rf"hey -z 1m -q 10 -c 2 http://{spec['service']['name']}-canary\.{namespace}:"
                            rf"{spec['service']['port']}/", hook["metadata"]["cmd"]), hook
    # The load tester's namespace may reach the pods; the PDB protects the pods that serve (the primary).
    policy = _one(objects, "NetworkPolicy")
    peers = [p for rule in policy["spec"]["ingress"] for p in rule["from"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "flagger-system"}}} in peers
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    name_label = "app.kubernetes.io/name"
    if env == "production":
        hpa = _one(objects, "HorizontalPodAutoscaler")
        assert spec["autoscalerRef"] == {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                                         "name": hpa["metadata"]["name"]}
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        pdb = _one(objects, "PodDisruptionBudget")
        primary_labels = {**pod_labels, name_label: pod_labels[name_label] + "-primary"}  # Flagger's primary pods
        assert pdb["spec"]["selector"]["matchLabels"].items() <= primary_labels.items()
        assert not pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    else:
        assert "autoscalerRef" not in spec
    problems = k8s.validate_objects([(f"charts/hello {t}", d) for t, d in objects], K8S_VERSION)
    assert not problems, "\n".join(map(str, problems))


def test_metrics_service_for_the_sidecar_scrape(fleet: RenderedFleet) -> None:
    objects = _chart(fleet, "dev", otel={"sidecar": {"enabled": True}}, serviceMonitor={"enabled": True})
    service = _one(objects, "Service")
    assert service["metadata"]["name"].endswith("-metrics")
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    monitor = _one(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # Selects canary and primary pods alike (Flagger suffixes only the name label on the primary).
    assert "app.kubernetes.io/name" not in service["spec"]["selector"]
    pod_labels = _one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize(("extra", "needle"), [
    ({"rollout": {"enabled": True}}, "canary.enabled (Flagger) and rollout.enabled (Argo Rollouts) exclude"),
    ({"replicaCount": 3}, "canary.enabled runs one replica unless autoscaling.enabled"),
])
def test_chart_refuses_what_flagger_cannot_run(fleet: RenderedFleet, extra: dict[str, Any], needle: str) -> None:
    with pytest.raises(Exception, match=re.escape(needle)):
        _chart(fleet, "dev", **extra)


def test_chart_without_canary_is_unchanged(fleet: RenderedFleet) -> None:
    objects = _chart(fleet, "dev", canary={"enabled": False})
    assert "Canary" not in [d["kind"] for _, d in objects]
    service = _one(objects, "Service")
    deployment = _one(objects, "Deployment")
    assert service["metadata"]["name"] == deployment["metadata"]["name"]
    assert deployment["spec"]["replicas"] == 1


# ---------------------------------------------------------------- the analysis queries, evaluated


def _flagger_render(query: str, **variables: str) -> str:
    """What Flagger's RenderQuery does with a MetricTemplate query: its {{ variable }} placeholders filled."""
    rendered = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: variables[m.group(1)], query)
    assert "{{" not in rendered, rendered
    return rendered


def test_queries_judge_the_canary_alone(fleet: RenderedFleet, tmp_path: Path) -> None:
    """promtool evaluates the rendered queries on span metrics of a canary (5% errors, slow) beside a healthy
    primary with ten times its traffic: the result is the canary's, so the analysis fails it."""
    promtool = require_tool("promtool")
    objects = _chart(fleet, "dev")
    canary = _one(objects, "Canary")
    namespace, target = canary["metadata"]["namespace"], canary["spec"]["targetRef"]["name"]
    interval = canary["spec"]["analysis"]["metrics"][0]["interval"]
    queries = {d["metadata"]["name"].removeprefix(f"{target}-"): _flagger_render(
        d["spec"]["query"], namespace=namespace, target=target, interval=interval)
        for _, d in objects if d["kind"] == "MetricTemplate"}

    def series(name: str, deployment: str, values: str, **labels: str) -> dict[str, str]:
        all_labels = {"service_name": "hello", "span_name": "GET /", "span_kind": "SPAN_KIND_SERVER",
                      "k8s_namespace_name": namespace, "k8s_deployment_name": deployment, **labels}
        body = ", ".join(f'{k}="{v}"' for k, v in all_labels.items())
        return {"series": f"{name}{{{body}}}", "values": values}

    calls, buckets = "traces_span_metrics_calls_total", "traces_span_metrics_duration_milliseconds_bucket"
    # Per 30 s scrape: canary 57 ok + 3 errors, primary 600 ok; canary durations around 800 ms, primary 20 ms.
    inputs = [series(calls, target, "0+57x20", status_code="STATUS_CODE_UNSET"),
              series(calls, target, "0+3x20", status_code="STATUS_CODE_ERROR"),
              series(calls, f"{target}-primary", "0+600x20", status_code="STATUS_CODE_UNSET")]
    for le, canary_count, primary_count in (("50", 0, 600), ("500", 6, 600), ("1000", 60, 600), ("+Inf", 60, 600)):
        inputs.append(series(buckets, target, f"0+{canary_count}x20", status_code="STATUS_CODE_UNSET", le=le))
        inputs.append(series(buckets, f"{target}-primary", f"0+{primary_count}x20",
                             status_code="STATUS_CODE_UNSET", le=le))
    tests = {"tests": [{"interval": "30s", "input_series": inputs, "promql_expr_test": [
        {"expr": queries["span-success-rate"], "eval_time": "8m", "exp_samples": [{"labels": "{}", "value": 95}]},
        # p99 inside the 500-1000 ms bucket: linear interpolation gives 500 + 500 * (0.99*60 - 6) / 54.
        {"expr": queries["span-duration-p99"], "eval_time": "8m",
         "exp_samples": [{"labels": "{}", "value": 500 + 500 * (0.99 * 60 - 6) / 54}]},
    ]}]}
    path = tmp_path / "queries_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    res = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    thresholds = {m["name"]: m["thresholdRange"] for m in canary["spec"]["analysis"]["metrics"]}
    # Both values fail the generated thresholds.
    assert thresholds["span-success-rate"]["min"] > 95
    assert thresholds["span-duration-p99"]["max"] < 900
    # The same file with the primary's numbers expected must fail: promtool really compares.
    tests["tests"][0]["promql_expr_test"][0]["exp_samples"][0]["value"] = 100
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    res = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode != 0, res.stdout


def test_gateway_labels_span_metrics_by_workload(fleet: RenderedFleet) -> None:
    """The gateway, run for real, emits the labels the MetricTemplates select the canary by."""
    require_module("opentelemetry.proto")
    import time
    import urllib.request

    from otlp_receiver import grpc_receiver
    from support.otelcol import gateway_config, otelcol_binary, running_collector, standin_gateway
    from test_otelcol import _send_grpc, _span_request

    pod = {"k8s.namespace.name": "hello", "k8s.deployment.name": "hello-primary"}
    with grpc_receiver() as backend:
        config = standin_gateway(gateway_config(fleet.root), backend.url, pod)
        with running_collector(otelcol_binary(), config) as collector:
            _send_grpc(collector.endpoint("receivers.otlp.protocols.grpc"), _span_request("hello", "GET /"))
            deadline = time.monotonic() + 60  # metrics_flush_interval: 15s
            lines: list[str] = []
            while time.monotonic() < deadline and not lines:
                url = f"http://{collector.endpoint('exporters.prometheus')}/metrics"
                with urllib.request.urlopen(url, timeout=5) as response:
                    text = response.read().decode()
                lines = [ln for ln in text.splitlines() if ln.startswith("traces_span_metrics_calls_total{")]
                time.sleep(0.5)
    assert lines, collector.output()[-3000:]
    assert 'k8s_deployment_name="hello-primary"' in lines[0] and 'k8s_namespace_name="hello"' in lines[0], lines
    query = _one(_chart(fleet, "dev"), "MetricTemplate", "checkout-hello-span-success-rate")["spec"]["query"]
    selected = set(re.findall(r"(\w+)!?=\"", query))
    emitted = set(re.findall(r"(\w+)=\"", lines[0]))
    assert selected <= emitted, f"the queries select on labels the gateway does not emit: {selected - emitted}"


# ---------------------------------------------------------------- update of a fleet that answered a boolean


def _legacy_templates(dest: Path) -> Path:
    """The real templates as of LEGACY_TEMPLATES_COMMIT (progressive_delivery: bool), from this checkout's git."""
    git = require_tool("git")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the previous templates are not at hand")
    res = subprocess.run([git, "-C", str(ROOT), "archive", LEGACY_TEMPLATES_COMMIT, "templates"],
                         capture_output=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"commit {LEGACY_TEMPLATES_COMMIT} is not in this clone (a shallow clone? "
                    f"git fetch --unshallow): {res.stderr.decode(errors='replace').strip()[-300:]}")
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
        tar.extractall(dest, filter="data")
    copier_yml = (dest / "templates/copier.yml").read_text()
    assert "progressive_delivery:\n  type: bool" in copier_yml, "not the boolean-era template"
    return dest / "templates"


def test_update_rewrites_the_legacy_boolean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from fleetstrap.plan import build_plan
    from fleetstrap.render import ensure_template_release, render_components
    from fleetstrap.repo import load_fleet

    monkeypatch.setenv("FLEETSTRAP_CACHE_DIR", str(tmp_path / "cache"))
    old = ensure_template_release(_legacy_templates(tmp_path / "old"), "0.0.9")
    answers = build_answers({"owner": "acme", "service": "hello", "environments": ["dev", "production"],
                             "progressive_delivery": True})
    # What fleetstrap 0.1 passed to copier and recorded: the boolean.
    components = [c.__class__(c.unit, c.name, c.answers_file,
                              tuple((k, True if k == "progressive_delivery" else v) for k, v in c.data))
                  for c in build_plan(answers).components]
    root = tmp_path / "fleet"
    render_components(components, root, old)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm",
                    "fleet from fleetstrap 0.0.9"], check=True)
    recorded = sorted(root.glob(".fleetstrap/answers/*.yml"))
    assert recorded and all("progressive_delivery: true\n" in p.read_text() for p in recorded)
    assert load_fleet(root).answers.progressive_delivery == "argo-rollouts"  # read as before, not refused

    ok(capsys, "update", "-C", str(root), "--no-validate", "--commit")  # exit 0: a conflict would exit 2
    # and no file holds a conflict (the printed changelog may well use the word)
    markers = subprocess.run(["git", "-C", str(root), "grep", "-n", "-e", "^<<<<<<< ", "-e", "^>>>>>>> "],
                             capture_output=True, text=True, check=False).stdout
    assert markers == "" and not list(root.rglob("*.rej")), markers
    for path in recorded:
        assert "progressive_delivery: argo-rollouts\n" in path.read_text(), path.name
    assert load_fleet(root).answers.progressive_delivery == "argo-rollouts"
    assert (root / "infrastructure/controllers/argo-rollouts.yaml").is_file()
    assert yaml.safe_load((root / "apps/production/hello/values.yaml").read_text())["rollout"]["enabled"] is True
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True,
                            check=True).stdout
    assert status == "", status


# ---------------------------------------------------------------- the real kube-apiserver


@pytest.mark.xdist_group("controlplane")
def test_apiserver_accepts_the_flagger_fleet_and_canaries(control_plane: Any, tmp_path: Path,
                                                          fleet: RenderedFleet) -> None:
    """Flagger's CRDs from its pinned module, then every object of the fleet and of each environment's chart
    rendering server-side applied with dry-run and strict field validation; an unknown Canary field is refused."""
    from support import cluster_tools
    from test_controlplane_acceptance import MANAGER, dry_run_apply, ensure_namespaces, rendered_objects

    files = list(cluster_tools.flux_modules(pin("flux_version")).crd_files())
    for spec in cluster_tools.crd_modules():  # Flagger's among them
        files += cluster_tools.module_crd_files(spec)
    control_plane.apply_files(files, manager=MANAGER)
    # Every CRD applied, not only Flagger's: the fleet also holds Kyverno's and the other controllers' kinds, and a
    # dry run that reaches a kind whose CRD is not yet Established fails with "no matches for kind" (seen once, in
    # a cold CI run on a loaded machine).
    control_plane.wait_crds_established(cluster_tools.crd_names(files))
    # The OpenTelemetry Operator's kinds are covered by test_controlplane_acceptance (its CRDs are rebuilt there).
    objects = [(w, o) for w, o in rendered_objects(fleet.root) if not o["apiVersion"].startswith("opentelemetry.io/")]
    for env in fleet.answers.environments:
        objects += [(f"charts/hello {env} {t}", o) for t, o in _chart(fleet, env)
                    if o["kind"] != "Pod"]  # the `helm test` hook
    kinds = {o["kind"] for _, o in objects}
    assert {"Canary", "MetricTemplate", "HelmRelease"} <= kinds
    ensure_namespaces(control_plane, objects)
    code, output = dry_run_apply(control_plane, [o for _, o in objects], tmp_path)
    assert code == 0, output
    assert output.count("serverside-applied (server dry run)") == len(objects), output
    canary = next(o for _, o in objects if o["kind"] == "Canary")
    bad = {**canary, "spec": {**canary["spec"], "analysis": {**canary["spec"]["analysis"], "iteratons": 5}}}
    code, output = dry_run_apply(control_plane, [bad], tmp_path)
    assert code != 0 and "iteratons" in output, output


# ---------------------------------------------------------------- Flagger itself runs the chart's Canary


class _FakePrometheus:
    """Prometheus' query API on loopback: answers Flagger's queries with set values and records them."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading
        import urllib.parse

        self.queries: list[str] = []
        self.values = {"calls_total": 100.0, "duration": 20.0}
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query).get("query", [""])[0]
                fake.queries.append(query)
                value = next((v for k, v in fake.values.items() if k in query), 1.0)
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {}, "value": [1.0, str(value)]}]}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait(what: str, check: Any, logs: Any, timeout: float = 180) -> Any:
    import time

    from support.tools import scaled

    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


@pytest.mark.xdist_group("controlplane")
def test_flagger_runs_the_charts_canary(control_plane: Any, fleet: RenderedFleet, tmp_path: Path) -> None:
    """Flagger, built from its pinned module, against the real control plane (kwok makes pods Ready): it takes over
    the production rendering of the chart without colliding with anything the chart renders, the PDB selects the
    primary's pods, and a new version is promoted when the MetricTemplates' queries (sent to a fake Prometheus,
    checked verbatim) pass, and rolled back when the success rate drops."""
    import json

    from support import cluster_tools
    from support.tools import require_command

    require_command("go", cluster_tools.GO_HINT)
    binary = cluster_tools.build_flagger(pin("flagger_version"))
    (spec,) = [s for s in cluster_tools.crd_modules() if s.family == "flagger"]
    control_plane.apply_files(cluster_tools.module_crd_files(spec))
    control_plane.wait_crds_established(["canaries.flagger.app", "metrictemplates.flagger.app"])
    prometheus = _FakePrometheus()
    # Short steps for the test; no load test (its tester runs in the cluster, not here).
    objects = [o for _, o in _chart(fleet, "production", canary={
        "metricsServer": prometheus.url, "loadTest": {"enabled": False},
        "analysis": {"interval": "5s", "iterations": 2, "threshold": 1, "metricsInterval": "1m",
                     "minSuccessRate": 99, "maxRequestDurationMs": 500}}) if o["kind"] != "Pod"]
    canary = _one([("", o) for o in objects], "Canary")
    namespace, name = canary["metadata"]["namespace"], canary["metadata"]["name"]
    chart_names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    status, body = control_plane.request("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    assert status in (201, 409), body
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    control_plane.kubectl("apply", "--server-side", "--field-manager=helm", "-f", str(manifest))

    def get(kind: str, obj: str) -> dict[str, Any] | None:
        res = control_plane.kubectl("get", kind, obj, "-n", namespace, "-o", "json", check=False)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def phase() -> str:
        return str(((get("canary", name) or {}).get("status") or {}).get("phase", ""))

    control_plane.processes.start("flagger", [
        str(binary), "-kubeconfig", str(control_plane.kubeconfig), "-mesh-provider", "kubernetes",
        "-metrics-server", prometheus.url, "-namespace", namespace, "-control-loop-interval", "2s",
        "-port", str(control_plane.processes.ports.port()), "-log-level", "info"])
    logs = lambda: control_plane.processes.tail("flagger", 60)  # noqa: E731
    try:
        _wait("the canary to initialize", lambda: phase() == "Initialized", logs)
        # What Flagger created, next to (never over) what the chart rendered.
        created = {("Deployment", f"{name}-primary"), ("Service", name), ("Service", f"{name}-primary"),
                   ("Service", f"{name}-canary"), ("HorizontalPodAutoscaler", f"{name}-primary")}
        assert not created & chart_names
        for kind, obj in created:
            assert get(kind, obj) is not None, f"{kind} {obj} missing\n{logs()}"
        assert get("deployment", name)["spec"]["replicas"] == 0  # the chart's Deployment is the idle canary
        pdb = next(o for o in objects if o["kind"] == "PodDisruptionBudget")
        selector = ",".join(f"{k}={v}" for k, v in pdb["spec"]["selector"]["matchLabels"].items())
        primary = get("deployment", f"{name}-primary")
        assert primary is not None
        pods = _wait("the primary's pods", lambda: json.loads(control_plane.kubectl(
            "get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)["items"], logs)
        assert all(p["metadata"]["name"].startswith(f"{name}-primary-") for p in pods)
        # A new version: analysed with the MetricTemplates, then promoted.
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        control_plane.kubectl("set", "image", f"deployment/{name}", "-n", namespace,
                              f"{deployment['spec']['template']['spec']['containers'][0]['name']}={image}-next")
        _wait("the promotion", lambda: phase() == "Succeeded", logs, timeout=240)
        promoted = get("deployment", f"{name}-primary")["spec"]["template"]["spec"]["containers"][0]["image"]
        assert promoted == f"{image}-next"
        # Flagger renders the template variables, then folds every whitespace run into one space.
        expected = {re.sub(r"\s+", " ", _flagger_render(o["spec"]["query"], namespace=namespace, target=name,
                                                         interval="1m"))
                    for o in objects if o["kind"] == "MetricTemplate"}
        assert expected <= set(prometheus.queries), prometheus.queries[-4:]
        # Another version whose canary fails the success rate: rolled back, the primary keeps the last one.
        prometheus.values["calls_total"] = 90.0
        control_plane.kubectl("set", "image", f"deployment/{name}", "-n", namespace,
                              f"{deployment['spec']['template']['spec']['containers'][0]['name']}={image}-broken")
        _wait("the rollback", lambda: phase() == "Failed", logs, timeout=240)
        kept = get("deployment", f"{name}-primary")["spec"]["template"]["spec"]["containers"][0]["image"]
        assert kept == f"{image}-next"
        assert "advancement span-success-rate 90.00 < 99" in logs(), logs()
    finally:
        control_plane.processes.stop(["flagger"])
        prometheus.close()
