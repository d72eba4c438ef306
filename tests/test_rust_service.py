"""The generated Rust service, proven by cargo and by running it: locked, lint-clean, tested, built, and at run
time serving probes, continuing W3C traces, exporting over both OTLP protocols and shutting down cleanly.

Builds share one cached CARGO_TARGET_DIR (tests/support/rust_service.py). Without cargo these tests skip with
the reason (in CI they fail instead).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetstrap.answers import build_answers
from fleetstrap.pins import pins
from fleetstrap.plan import build_service_component
from fleetstrap.render import ensure_template_mirror, render_component
from support import rust_service as rs

pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto (test extra) is not installed")

from otlp_receiver import ReceivedSpan, Store, grpc_receiver, http_receiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
SPAN_KIND_SERVER = 2


@pytest.fixture(scope="session")
def fetched() -> Path:
    """Crates of the shipped lock in cargo's cache (the lock tests below then run offline and fast)."""
    crate = rs.render_crate("gateway")
    run = rs.run_cargo(crate, "fetch", "--locked")
    assert run.returncode == 0, run.output
    return crate


def render_named(tmp: Path, name: str) -> Path:
    answers = build_answers({"owner": "acme", "service": name})
    render_component(build_service_component(answers, name), tmp, ensure_template_mirror())
    return tmp / "services" / name


def cargo_locked_check(crate: Path) -> subprocess.CompletedProcess[str]:
    """Fails when Cargo.lock does not match Cargo.toml (cargo would have to change the lock)."""
    return subprocess.run([rs.cargo(), "update", "--workspace", "--locked", "--offline"], cwd=crate,
                          capture_output=True, text=True, check=False)


# ---------------------------------------------------------------- the lock


# Sorting before, between and after the locked crates, with dashes, and named like a dependency (cargo then
# writes that dependency as "tracing 0.1.x" everywhere).
@pytest.mark.parametrize("name", ["checkout", "order-api", "a", "zz-top", "tracing"])
def test_shipped_lock_matches_the_manifest_for_any_service_name(fetched: Path, tmp_path: Path, name: str) -> None:
    del fetched
    crate = render_named(tmp_path, name)
    res = cargo_locked_check(crate)
    assert res.returncode == 0, res.stderr
    assert f'name = "{name}"\nversion = "0.1.0"\ndependencies = [' in (crate / "Cargo.lock").read_text()


def test_lock_check_fails_when_the_manifest_moves(fetched: Path, tmp_path: Path) -> None:
    """The check above can fail: a dependency added to the manifest (one already in the lock, so resolution
    succeeds offline) changes the service's own lock entry, which --locked refuses to write."""
    del fetched
    crate = render_named(tmp_path, "checkout")
    manifest = crate / "Cargo.toml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("[dependencies]\n", '[dependencies]\nbytes = "1"\n', 1), encoding="utf-8")
    res = cargo_locked_check(crate)
    assert res.returncode != 0
    assert "--locked" in res.stderr, res.stderr


def test_lock_holds_the_pins_and_builds_with_the_image_toolchain(fetched: Path) -> None:
    lock = tomllib.loads((fetched / "Cargo.lock").read_text(encoding="utf-8"))
    locked: dict[str, list[str]] = {}
    for package in lock["package"]:
        locked.setdefault(package["name"], []).append(package["version"])
    for key, pinned in pins().items():
        if not key.startswith("crate_"):
            continue
        crate = key.removeprefix("crate_").replace("_", "-")
        versions = locked.get(crate) or locked[crate.replace("-", "_")]
        # A full pin is locked exactly; a minor pin (0.33) to its newest patch.
        assert any(v == pinned or v.startswith(f"{pinned}.") for v in versions), (crate, pinned, versions)
    # Every locked crate builds with the Rust of the Dockerfile's image (rust-version of the template).
    manifest = tomllib.loads((fetched / "Cargo.toml").read_text(encoding="utf-8"))
    image_rust = tuple(int(p) for p in manifest["package"]["rust-version"].split("."))
    assert pins()["rust_image"].startswith(f"rust:{manifest['package']['rust-version']}-")
    res = subprocess.run([rs.cargo(), "metadata", "--locked", "--offline", "--format-version", "1"], cwd=fetched,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    too_new = [f"{p['name']} {p['version']} needs {p['rust_version']}" for p in json.loads(res.stdout)["packages"]
               if p.get("rust_version") and tuple(int(x) for x in p["rust_version"].split(".")[:2]) > image_rust]
    assert too_new == []


# ---------------------------------------------------------------- cargo, as the generated CI runs it


_CHECKED: dict[str, list[rs.CargoRun]] = {}


def checked(variant: str) -> list[rs.CargoRun]:
    """fmt / clippy / test of the variant's crate, once per distinct source (identical renders share it)."""
    crate = rs.render_crate(variant)
    digest = rs.source_digest(crate)
    if digest not in _CHECKED:
        _CHECKED[digest] = rs.cargo_checks(crate)
    return _CHECKED[digest]


@pytest.mark.parametrize("variant", list(rs.RUST_VARIANTS))
def test_cargo_fmt_clippy_test_and_release_build(variant: str) -> None:
    rs.cargo()
    for run in checked(variant):
        assert run.returncode == 0, f"{run.command}:\n{run.output[-6000:]}"
    binary = rs.build_release(rs.render_crate(variant))
    assert binary.name == rs.service_name(variant) and binary.stat().st_size > 0


def test_the_lint_check_can_fail(tmp_path: Path) -> None:
    """clippy -D warnings really rejects a warning in the rendered crate (the check above is not vacuous)."""
    rs.cargo()
    crate = tmp_path / "crate"
    src = rs.stable_copy(rs.render_crate("gateway"))
    for path in rs.crate_files(src):
        dest = crate / path.relative_to(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
    main = crate / "src" / "main.rs"
    main.write_text(main.read_text(encoding="utf-8") + "\nfn unused_helper() {}\n", encoding="utf-8")
    run = rs.run_cargo(crate, "clippy", "--all-targets", "--locked", "--offline", "--", "-D", "warnings")
    assert run.returncode != 0 and "unused_helper" in run.output


# ---------------------------------------------------------------- running it as the chart does


def binary(variant: str) -> Path:
    rs.cargo()
    return rs.build_release(rs.render_crate(variant))


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def server_spans(store: Store, route: str) -> list[ReceivedSpan]:
    with store.lock:
        return [s for s in store.spans if s.attributes.get("http.route") == route]


RUNTIME_CASES = [("gateway", "grpc"), ("gateway", "http/protobuf"), ("sidecar", "grpc"),
                 ("sidecar", "http/protobuf"), ("progressive", "grpc"), ("dashed-name", "http/protobuf")]


@pytest.mark.parametrize(("variant", "protocol"), RUNTIME_CASES, ids=[f"{v}-{p}" for v, p in RUNTIME_CASES])
def test_service_runs_with_the_chart_env_and_its_trace_arrives(variant: str, protocol: str) -> None:
    """Probes, 404, a continued W3C trace with baggage, JSON logs with the trace id, then SIGTERM: readiness off,
    requests still served while draining, exit 0, and the spans buffered at the signal flushed after it."""
    exe = binary(variant)
    name = rs.service_name(variant)
    env = rs.chart_env(rs.render_root(variant), name, {"otel": {"protocol": protocol}})
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == protocol and env["OTEL_SDK_DISABLED"] == "false"
    # Only the endpoint moves to the test receiver (in the pod it is the sidecar or the gateway). The batch delay
    # is raised so that nothing is exported before SIGTERM: what arrives was flushed by the shutdown.
    receiver_cm = grpc_receiver() if protocol == "grpc" else http_receiver()
    with receiver_cm as receiver, rs.run_service(exe, env, overrides={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "600000"}) as service:
        assert service.get("/health")[0] == 200
        assert service.get("/ready")[0] == 200
        assert service.get("/no/such/route")[0] == 404
        status, body = service.get("/hello/otel", {"traceparent": TRACEPARENT, "baggage": "tenant=acme,plan=gold"})
        assert (status, body) == (200, b"Hello, otel!\n")
        assert server_spans(receiver.store, "/hello/{name}") == []  # still buffered

        service.process.send_signal(signal.SIGTERM)
        wait_for(lambda: service.get("/ready")[0] == 503, "readiness to turn off after SIGTERM")
        # Draining: the endpoints controller has not dropped the pod yet, so requests keep being served.
        drained = service.get("/hello/drain", {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
        assert drained == (200, b"Hello, drain!\n")
        assert service.process.wait(timeout=60) == 0
        spans = server_spans(receiver.store, "/hello/{name}")

    by_trace = {s.trace_id: s for s in spans}
    assert set(by_trace) == {TRACE_ID, "ab" * 16}, "spans buffered at SIGTERM were not flushed"
    span = by_trace[TRACE_ID]
    assert span.parent_span_id == PARENT_ID and span.kind == SPAN_KIND_SERVER
    assert span.name == "GET /hello/{name}"
    # Exactly the semantic-convention attributes and the baggage: no code location, thread, busy/idle time or
    # duplicated trace id (each costs CPU per request and bytes per export; see the service's telemetry.rs).
    assert span.attributes == {
        "http.request.method": "GET", "http.route": "/hello/{name}", "url.path": "/hello/otel",
        "http.response.status_code": 200, "baggage.tenant": "acme", "baggage.plan": "gold"}
    # INFO events stay in the JSON logs; they are not copied onto the span as span events.
    assert span.events == ()
    resource = span.resource
    assert resource["service.name"] == name == env["OTEL_SERVICE_NAME"]
    assert resource["service.version"] == env["SERVICE_VERSION"]
    assert resource["deployment.environment.name"] == "dev"
    assert resource["k8s.pod.name"] == env["K8S_POD_NAME"] and resource["k8s.namespace.name"] == name
    assert resource["k8s.node.name"] == rs.FAKE_NODE
    assert by_trace["ab" * 16].parent_span_id == "cd" * 8

    logs = service.logs()
    traced = [line for line in logs if line.get("trace_id") == TRACE_ID]
    assert traced, f"no JSON log line carries trace id {TRACE_ID}: {logs[-5:]}"
    # The request's log lines name the server span itself, so a log line leads to its span, not just its trace.
    assert {line.get("span_id") for line in traced} == {span.span_id}
    assert {line["message"] for line in traced} >= {"greeting", "finished processing request"}
    assert all("trace_id" not in line for line in logs if "shutdown requested" in str(line.get("message")))
    assert any("shutdown requested" in str(line.get("message")) for line in logs)


def test_sdk_disabled_serves_without_exporting() -> None:
    exe = binary("gateway")
    env = rs.chart_env(rs.render_root("gateway"), rs.DEFAULT_SERVICE, {"otel": {"enabled": False}})
    assert env["OTEL_SDK_DISABLED"] == "true"
    with http_receiver() as receiver, rs.run_service(exe, env, overrides={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) as service:
        assert service.get("/hello/x", {"traceparent": TRACEPARENT})[0] == 200
        assert service.terminate() == 0
        assert receiver.store.paths == []
    logs = service.logs()
    assert logs, "JSON logs still go to stdout"
    # No SDK, no trace context to name: the incoming traceparent is not echoed as if this service traced it.
    assert not [line for line in logs if "trace_id" in line or "span_id" in line]


def test_a_request_in_flight_when_the_listener_closes_is_answered_before_exit() -> None:
    """SIGTERM, the readiness delay, then the listener closes: a request already on a connection (here its
    headers still arriving) is served to the end and the process exits 0; new connections are refused."""
    exe = binary("gateway")
    env = rs.chart_env(rs.render_root("gateway"), rs.DEFAULT_SERVICE, {"otel": {"enabled": False}})
    with rs.run_service(exe, env, overrides={"SHUTDOWN_DELAY_SECONDS": "1"}) as service:
        host, port = service.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as in_flight:
            in_flight.sendall(b"GET /hello/inflight HTTP/1.1\r\nHost: test\r\n")  # the blank line is still to come
            service.process.send_signal(signal.SIGTERM)

            def refused() -> bool:
                try:
                    socket.create_connection((host, int(port)), timeout=2).close()
                except OSError:
                    return True
                return False

            wait_for(refused, "the listener to close after the shutdown delay")
            assert service.process.poll() is None, "exited with a request in flight"
            in_flight.sendall(b"\r\n")
            response = b""
            while chunk := in_flight.recv(4096):
                response += chunk  # graceful shutdown: the server closes the connection after answering
        assert response.startswith(b"HTTP/1.1 200 "), response
        assert response.endswith(b"Hello, inflight!\n"), response
        assert service.process.wait(timeout=60) == 0


@pytest.mark.parametrize(("variable", "value"), [("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), ("PORT", "80a"),
                                                 ("PORT", "70000")])
def test_bad_environment_exits_with_one_line_before_binding(variable: str, value: str) -> None:
    exe = binary("gateway")
    env = {**rs.chart_env(rs.render_root("gateway"), rs.DEFAULT_SERVICE), "LISTEN_ADDRESS": "127.0.0.1",
           variable: value}
    res = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and value in lines[0], res.stderr
    assert res.stdout == "", "it logged (and so started) before rejecting its configuration"


def chart_env_as_seen(variant: str) -> dict[str, Any]:
    return rs.chart_env(rs.render_root(variant), rs.service_name(variant))


def test_chart_env_is_what_the_pod_gets() -> None:
    """The helper reads the chart, not a copy of it: sidecar points at localhost, gateway at the collector."""
    sidecar, gateway = chart_env_as_seen("sidecar"), chart_env_as_seen("gateway")
    assert sidecar["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    assert gateway["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://gateway-collector.observability.svc")
    assert "$(" not in gateway["OTEL_RESOURCE_ATTRIBUTES"]
    assert f"k8s.pod.name={gateway['K8S_POD_NAME']}" in gateway["OTEL_RESOURCE_ATTRIBUTES"]
    assert chart_env_as_seen("dashed-name")["PORT"] == "9090"
