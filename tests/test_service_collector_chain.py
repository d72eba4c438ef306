"""The whole trace path a fleet runs: the rendered Rust service -> the real collector on the generated gateway
config -> a backend. Each half is proven alone in test_rust_service.py and test_otelcol.py; this proves they
speak to each other as deployed (the service's chart env, the gateway's receivers and processors).

Only two things differ from the cluster, both documented in the helpers: the service listens on loopback with a
free port (support.rust_service.run_service), and the gateway's k8s_attributes processor, which needs a
Kubernetes API, is replaced by a resource processor that sets the same keys (support.otelcol.standin_gateway).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import support.rust_service as rs
from support.fleet import render_blueprint
from support.otelcol import STANDIN_POD, gateway_config, otelcol_binary, running_collector, standin_gateway

pytest.importorskip("helm_python", reason="the Helm SDK (pip install 'fleetstrap[helm]') is not installed")
pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto (test extra) is not installed")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"

# The service's OTLP protocol -> the gateway receiver it talks to (the chart's otel.protocol value).
RECEIVERS = {"grpc": "receivers.otlp.protocols.grpc", "http/protobuf": "receivers.otlp.protocols.http"}


@pytest.fixture(scope="module")
def service_binary() -> Path:
    rs.cargo()  # skips without cargo (fails in CI)
    return rs.build_release(rs.render_crate("gateway"))


@pytest.mark.parametrize("protocol", sorted(RECEIVERS))
def test_service_span_reaches_the_backend_through_the_generated_gateway(service_binary: Path,
                                                                         protocol: str) -> None:
    from otlp_receiver import grpc_receiver

    otelcol = otelcol_binary()
    fleet = render_blueprint("starter")
    name = rs.service_name("gateway")
    env = rs.chart_env(rs.render_root("gateway"), name, {"otel": {"protocol": protocol}})
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == protocol
    # k8s_attributes would look up the pod that sent the span: the stand-in describes that same pod.
    pod = {**STANDIN_POD, "k8s.pod.name": env["K8S_POD_NAME"], "k8s.namespace.name": name,
           "k8s.deployment.name": name, "k8s.node.name": rs.FAKE_NODE}

    with grpc_receiver() as backend, running_collector(
            otelcol, standin_gateway(gateway_config(fleet.root), backend.url, pod)) as gateway:
        # In the pod the endpoint is the gateway Service; here it is the same gateway config on loopback.
        endpoint = f"http://{gateway.endpoint(RECEIVERS[protocol])}"
        with rs.run_service(service_binary, env, overrides={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}) as service:
            status, _ = service.get("/hello/chain", {"traceparent": TRACEPARENT, "baggage": "tenant=acme"})
            assert status == 200
        # Leaving run_service sent SIGTERM: the service flushed its spans to the gateway, which batches them
        # for up to a few seconds before exporting.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [s for s in backend.store.spans if s.trace_id == TRACE_ID]:
            time.sleep(0.2)
        with backend.store.lock:
            spans = [s for s in backend.store.spans if s.trace_id == TRACE_ID]
        assert spans, f"no span of trace {TRACE_ID} reached the backend; gateway log:\n{gateway.output()[-3000:]}"

    span = next(s for s in spans if s.attributes.get("http.route") == "/hello/{name}")
    assert span.parent_span_id == PARENT_ID
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["baggage.tenant"] == "acme"
    # The service's own resource survives the gateway ...
    assert span.resource["service.name"] == name
    assert span.resource["service.version"] == env["SERVICE_VERSION"]
    assert span.resource["k8s.pod.name"] == env["K8S_POD_NAME"]
    # ... and the gateway adds the fleet's attributes and (stand-in for k8s_attributes) the workload's.
    assert span.resource["fleet.name"] == fleet.answers.fleet_name
    assert span.resource["k8s.deployment.name"] == name
