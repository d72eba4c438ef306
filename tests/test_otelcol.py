"""A real OpenTelemetry Collector loads every collector config the templates emit, and carries a span end to end.

The collector is built from the Go module proxy by scripts/build_otelcol.py (the Collector Builder, the pinned
contrib version, exactly the components of scripts/otelcol-components.yaml); see tests/support/otelcol.py.
"""

from __future__ import annotations

import copy
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from support.fleet import render_blueprint
from support.otelcol import (
    FLEET_VARIANTS,
    FoundConfig,
    build_script,
    built_components,
    components_of,
    env_references,
    fleet_configs,
    gateway_config,
    otelcol_binary,
    running_collector,
    standin_gateway,
    validate_config,
)
from support.tools import require_module

require_module("helm_python")

BLUEPRINTS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "blueprints").glob("*.yaml"))
VARIANTS = [f"blueprint:{b}" for b in BLUEPRINTS] + [f"starter+{v}" for v in FLEET_VARIANTS]


@pytest.fixture(scope="module")
def otelcol() -> Path:
    return otelcol_binary()


def variant_configs(variant: str) -> list[FoundConfig]:
    if variant.startswith("blueprint:"):
        name = variant.split(":", 1)[1]
        return fleet_configs(render_blueprint(name).root, f"blueprint {name}")
    key = variant.split("+", 1)[1]
    return fleet_configs(render_blueprint("starter", **FLEET_VARIANTS[key]).root, variant)


def starter_gateway(**overrides: Any) -> dict[str, Any]:
    return gateway_config(render_blueprint("starter", **overrides).root)


# ---------------------------------------------------------------- the build


def test_component_list_is_what_the_rendered_configs_use() -> None:
    """scripts/otelcol-components.yaml is derived, never hand-kept: it must equal what the templates use."""
    script = build_script()
    assert script.derive_components() == script.load_components(), (
        "the collector configs use other components than scripts/otelcol-components.yaml lists: "
        "run `python scripts/build_otelcol.py --update-components`")


def test_collector_version_is_read_from_the_image_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = build_script()
    for image, expected in (("otel/opentelemetry-collector-contrib:0.159.0", "0.159.0"),
                            ("otel/opentelemetry-collector-contrib:v0.160.1", "0.160.1")):
        pins = tmp_path / "pins.yml"
        pins.write_text(f"pins:\n  default:\n    otel_collector_image: {image!r}\n", encoding="utf-8")
        monkeypatch.setattr(script, "PINS", pins)
        assert script.collector_version() == expected


def test_manifest_pins_every_module_to_the_image_version() -> None:
    script = build_script()
    version = script.collector_version()
    # A plain release number: a Go module version is `v` + it, and the image tag is it.
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    manifest = script.build_manifest(version, script.load_components(), Path("out"))
    gomods = [m["gomod"] for kind in script.KINDS for m in manifest.get(kind, [])]
    assert gomods and all(g.endswith(f" v{version}") for g in gomods)
    with pytest.raises(script.BuildError, match="no Go module known for processor 'nosuch'"):
        script.build_manifest(version, {"processors": ["nosuch"]}, Path("out"))


def test_binary_is_the_pinned_version_with_the_listed_components(otelcol: Path) -> None:
    import subprocess

    script = build_script()
    out = subprocess.run([str(otelcol), "--version"], capture_output=True, text=True, check=True).stdout
    assert script.collector_version() in out
    built = built_components(otelcol)
    listed = script.load_components()
    for kind, types in listed.items():
        assert set(types) <= built[kind], f"{kind}: the build lacks {sorted(set(types) - built[kind])}"


# ---------------------------------------------------------------- every rendered config loads


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_collector_config_validates(otelcol: Path, variant: str) -> None:
    configs = variant_configs(variant)
    assert any("OpenTelemetryCollector gateway" in f.label for f in configs), "no gateway config found"
    built = built_components(otelcol)
    for found in configs:
        lacking = {k: sorted(t - built[k]) for k, t in components_of(found.config).items() if t - built[k]}
        assert not lacking, f"{found.label}: not canonical component names of the build (missing or deprecated " \
                            f"aliases): {lacking}"
        # ${env:...} must be something the pod sets; validate then gets the values the pod would.
        unset = env_references(found.config) - set(found.env)
        assert not unset, f"{found.label}: references unset environment variable(s) {sorted(unset)}"
        result = validate_config(otelcol, found.config, found.env)
        assert result.ok, f"{found.label}:\n{result.output}"
        # Deprecated names and other warnings at load time are defects too (they turn into errors later).
        assert result.warnings == [], f"{found.label}:\n{result.output}"


def test_sidecar_variants_emit_sidecar_configs() -> None:
    """The extraction is not vacuous: sidecar fleets yield the chart's ConfigMap, with and without the exporter."""
    configs = variant_configs("starter+sidecar-monitoring")
    sidecars = [f for f in configs if "ConfigMap" in f.label and "apps/dev/hello/values.yaml" in f.label]
    assert len(sidecars) == 1, [f.label for f in configs]
    assert "prometheus" in sidecars[0].config["exporters"]
    plain = [f for f in configs if "values defaults+sidecar:" in f.label]
    assert plain and "prometheus" not in plain[0].config["exporters"]


# ---------------------------------------------------------------- broken configs must fail


def _break(config: dict[str, Any], how: str) -> dict[str, Any]:
    bad = copy.deepcopy(config)
    traces = bad["service"]["pipelines"]["traces"]
    if how == "unknown-component":
        bad["processors"]["batchx"] = bad["processors"].pop("batch")
        traces["processors"] = [p if p != "batch" else "batchx" for p in traces["processors"]]
        bad["service"]["pipelines"]["metrics"]["processors"] = list(traces["processors"])
    elif how == "wrong-field":
        bad["processors"]["batch"]["send_batch_sizee"] = 100
    elif how == "missing-component":
        traces["exporters"] = [*traces["exporters"], "otlp_http/nowhere"]
    elif how == "wrong-type":
        bad["processors"]["memory_limiter"]["check_interval"] = "often"
    return bad


@pytest.mark.parametrize(("how", "needle"), [
    ("unknown-component", "batchx"),
    ("wrong-field", "send_batch_sizee"),
    ("missing-component", "otlp_http/nowhere"),
    ("wrong-type", "check_interval"),
])
def test_broken_configs_fail(otelcol: Path, how: str, needle: str) -> None:
    good = starter_gateway()
    assert validate_config(otelcol, good).ok
    result = validate_config(otelcol, _break(good, how))
    assert not result.ok, f"{how} was accepted:\n{result.output}"
    assert needle in result.output, result.output


def test_deprecated_alias_passes_validate_but_not_the_canonical_names(otelcol: Path) -> None:
    """Why the tests compare types with `components`: `validate` accepts the pre-0.144 exporter name `otlp`
    without a word, while the running collector logs it as deprecated."""
    config = starter_gateway()
    config["processors"].pop("k8s_attributes")  # needs a Kubernetes API to start
    config["exporters"]["otlp/backend"] = config["exporters"].pop("otlp_grpc/backend")
    for pipeline in config["service"]["pipelines"].values():
        pipeline["exporters"] = ["otlp/backend" if e == "otlp_grpc/backend" else e for e in pipeline["exporters"]]
        pipeline["processors"] = [p for p in pipeline["processors"] if p != "k8s_attributes"]
    result = validate_config(otelcol, config)
    assert result.ok and result.warnings == [], result.output
    assert "otlp" not in built_components(otelcol)["exporters"]
    with running_collector(otelcol, config) as collector:
        pass
    assert '"otlp" alias is deprecated' in collector.output(), collector.output()


# ---------------------------------------------------------------- end to end through the gateway


def _span_request(service: str, name: str) -> Any:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1 import trace_pb2

    now = time.time_ns()
    span = trace_pb2.Span(trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
                          span_id=bytes.fromhex("eee19b7ec3c1b174"), name=name,
                          kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=now - 5_000_000,
                          end_time_unix_nano=now,
                          attributes=[KeyValue(key="http.route", value=AnyValue(string_value="/orders"))])
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=[span])])])


def _send_http(endpoint: str, request: Any) -> None:
    req = urllib.request.Request(f"http://{endpoint}/v1/traces", data=request.SerializeToString(),
                                 headers={"Content-Type": "application/x-protobuf"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 200


def _send_grpc(endpoint: str, request: Any) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)


@pytest.mark.parametrize("monitoring", [False, True], ids=["monitoring-off", "monitoring-on"])
def test_gateway_carries_spans_over_grpc_and_http_with_its_resource_attributes(otelcol: Path,
                                                                               monitoring: bool) -> None:
    require_module("opentelemetry.proto")
    from otlp_receiver import grpc_receiver

    fleet = render_blueprint("starter", monitoring=monitoring)
    with grpc_receiver() as backend:
        config = standin_gateway(starter_gateway(monitoring=monitoring), backend.url)
        with running_collector(otelcol, config) as collector:
            _send_grpc(collector.endpoint("receivers.otlp.protocols.grpc"), _span_request("checkout", "GET /grpc"))
            _send_http(collector.endpoint("receivers.otlp.protocols.http"), _span_request("checkout", "GET /http"))
            deadline = time.monotonic() + 60  # the gateway batches for up to 5 s
            while time.monotonic() < deadline and len({s.name for s in backend.store.spans}) < 2:
                time.sleep(0.2)
            spans = {s.name: s for s in backend.store.spans}
            assert set(spans) == {"GET /grpc", "GET /http"}, collector.output()[-3000:]
            for span in spans.values():
                assert span.trace_id == "5b8efff798038103d269b633813fc60c"
                assert span.attributes["http.route"] == "/orders"
                assert span.resource["service.name"] == "checkout"  # the sender's own attributes are kept
                assert span.resource["fleet.name"] == fleet.answers.fleet_name  # added by the gateway
                assert span.resource["k8s.deployment.name"] == "checkout"  # the k8s_attributes stand-in's place
            if monitoring:
                _assert_span_metrics(collector.endpoint("exporters.prometheus"))


def _assert_span_metrics(endpoint: str) -> None:
    """The span_metrics connector's RED metrics, under the names the monitoring unit's alerts and dashboards read."""
    wanted = ("traces_span_metrics_calls_total", "traces_span_metrics_duration_milliseconds_bucket")
    deadline = time.monotonic() + 60  # metrics_flush_interval: 15s
    text = ""
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=5) as response:
            text = response.read().decode()
        if all(f"{name}{{" in text for name in wanted):
            break
        time.sleep(1)
    calls = [line for line in text.splitlines() if line.startswith("traces_span_metrics_calls_total{")]
    assert calls, text[-3000:]
    assert any('service_name="checkout"' in line and 'span_name="GET /grpc"' in line for line in calls), calls
    assert "traces_span_metrics_duration_milliseconds_bucket{" in text


def test_running_collector_stops_its_process_when_the_test_fails(otelcol: Path) -> None:
    config = starter_gateway()
    config["processors"].pop("k8s_attributes")
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = [p for p in pipeline["processors"] if p != "k8s_attributes"]
    with pytest.raises(RuntimeError, match="boom"), running_collector(otelcol, config) as collector:
        process = collector.process
        raise RuntimeError("boom")
    assert process.poll() is not None

