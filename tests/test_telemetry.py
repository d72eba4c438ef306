"""fleetstrap's own telemetry: real OTLP/HTTP and OTLP/gRPC receivers, real commands run in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest

from fleetstrap import cli as cli_module
from fleetstrap import trace
from fleetstrap.cli import run
from fleetstrap.errors import UserError
from fleetstrap.redact import register_secret
from fleetstrap.telemetry.attributes import build_safe_args, build_safe_attributes, is_secret_key
from fleetstrap.telemetry.settings import build_headers, build_settings

pytest.importorskip("opentelemetry.sdk", reason="the otel extra (pip install 'fleetstrap[otel]') is not installed")
pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto (test extra) is not installed")

from otlp_receiver import HttpReceiver, ReceivedSpan, free_port, grpc_receiver, http_receiver

TOKEN = "ghp_" + "T0kenForTelemetryTest" + "x" * 16  # shaped like a GitHub token, registered as a secret
OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "FLEETSTRAP_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
             "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER",
             "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_SERVICE_NAME",
             "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "TRACEPARENT", "TRACESTATE")


# ------------------------------------------------------------------ a test-only command using the trace facade

@click.command()
@click.option("--token", default="")
@click.option("-d", "--data", multiple=True)
@click.option("--fail", is_flag=True)
@click.argument("words", nargs=-1)
def demo(token: str, data: tuple[str, ...], fail: bool, words: tuple[str, ...]) -> None:
    register_secret(token)
    trace.annotate(**{"fleet.repo": "acme/fleet", "github_token": token, "note": f"using {token}"})
    with trace.stage("render", components=2, secret=token, path=f"/tmp/{token}"):
        trace.event("files changed", count=7, detail=f"token={token}")
        with trace.stage("wait", kind="kustomization"):
            trace.annotate(**{"vcs.commit.sha": "abc123"})
            if fail:
                raise UserError("the cluster refused the apply")
    trace.event("answers changed", keys=len(data) + len(words))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in OTEL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(cli_module.COMMANDS, "demo", (__name__, "demo", "test-only"))


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def rx(receiver: HttpReceiver) -> HttpReceiver:
    receiver.store.clear()
    receiver.fail_with(0)
    return receiver


def _by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    names = [s.name for s in spans]
    assert len(names) == len(set(names)), names
    return {s.name: s for s in spans}


def _all_values(spans: list[ReceivedSpan]) -> list[str]:
    values: list[str] = []
    for s in spans:
        values += [f"{k}={v}" for k, v in s.attributes.items()]
        values += [f"{k}={v}" for _, attrs in s.events for k, v in attrs.items()]
        values += [f"{k}={v}" for k, v in s.resource.items()]
    return values


# ------------------------------------------------------------------ command traces

def test_demo_command_trace_structure_attributes_events_metrics(
    rx: HttpReceiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci,team=platform")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={TOKEN}")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    args = ["--otlp-endpoint", rx.url, "demo", "--token", TOKEN, "-d", f"github_token={TOKEN}", "w1", TOKEN]
    assert run(args) == 0
    spans = _by_name(rx.store.spans)
    assert set(spans) == {"fleetstrap demo", "render", "wait"}
    root, render, wait = spans["fleetstrap demo"], spans["render"], spans["wait"]
    assert root.parent_span_id == ""
    assert render.parent_span_id == root.span_id and wait.parent_span_id == render.span_id
    assert {s.trace_id for s in spans.values()} == {root.trace_id}
    assert root.resource["service.name"] == "fleetstrap"
    assert root.resource["service.version"]
    assert root.resource["deployment.environment.name"] == "ci" and root.resource["team"] == "platform"
    assert root.attributes["fleetstrap.command"] == "demo"
    assert root.attributes["fleetstrap.outcome"] == "ok" and root.attributes["fleetstrap.exit_code"] == 0
    # annotate() reaches the current span and the root span
    assert root.attributes["fleet.repo"] == "acme/fleet"
    assert wait.attributes["vcs.commit.sha"] == "abc123" and root.attributes["vcs.commit.sha"] == "abc123"
    assert render.attributes["fleetstrap.components"] == 2
    assert wait.attributes["fleetstrap.kind"] == "kustomization"
    assert [e[0] for e in render.events] == ["files changed"]
    assert render.events[0][1]["fleetstrap.count"] == 7
    assert [e[0] for e in root.events] == ["answers changed"]
    # secrets: the header reached the collector, but no attribute, event or resource value holds the token
    assert rx.store.headers[0]["x-api-key"] == TOKEN
    leaked = [v for v in _all_values(rx.store.spans) if TOKEN in v or "T0kenForTelemetryTest" in v]
    assert leaked == []
    assert "fleetstrap.secret" not in render.attributes and "fleetstrap.github_token" not in root.attributes
    assert root.attributes["fleetstrap.note"] == "using ***"
    assert "--token *** -d github_token=*** w1 ***" in str(root.attributes["fleetstrap.args"])
    # metrics: one run of `demo` with outcome ok, and its duration
    points = {(p.metric, p.kind): p for p in rx.store.points}
    assert points[("fleetstrap.commands", "sum")].value == 1
    assert points[("fleetstrap.commands", "sum")].attributes["fleetstrap.command"] == "demo"
    assert points[("fleetstrap.commands", "sum")].attributes["fleetstrap.outcome"] == "ok"
    assert points[("fleetstrap.command.duration", "histogram")].value == 1
    assert {p.temporality for p in rx.store.points} == {2}  # cumulative by default
    assert "warning" not in capsys.readouterr().err
    assert trace._backend is None  # uninstalled after the command


def test_failing_command_records_error_outcome(rx: HttpReceiver) -> None:
    assert run(["--otlp-endpoint", rx.url, "demo", "--fail"]) == 1
    spans = _by_name(rx.store.spans)
    root, wait = spans["fleetstrap demo"], spans["wait"]
    assert root.attributes["fleetstrap.outcome"] == "error"
    assert root.attributes["fleetstrap.exit_class"] == "user_error" and root.attributes["fleetstrap.exit_code"] == 1
    assert root.status_code == 2 and wait.status_code == 2 and spans["render"].status_code == 2
    assert ("exception", {"exception.type": "UserError", "exception.message": "the cluster refused the apply"}) \
        in wait.events
    run_point = next(p for p in rx.store.points if p.metric == "fleetstrap.commands")
    assert run_point.attributes["fleetstrap.outcome"] == "error"
    assert run_point.attributes["fleetstrap.exit_class"] == "user_error"


def test_endpoint_from_otel_env_and_sampler_off_still_counts(rx: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    assert run(["demo"]) == 0
    assert rx.store.spans == []
    assert [p.metric for p in rx.store.points if p.kind == "sum"] == ["fleetstrap.commands"]
    assert {p.temporality for p in rx.store.points} == {1}


def test_unreachable_endpoint_one_warning_exit_0(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    url = f"http://user:{TOKEN}@127.0.0.1:{free_port()}"
    assert run(["--otlp-endpoint", url, "demo"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1, err
    assert "telemetry: could not export" in err and "Connection refused" in err
    assert TOKEN not in err and "Traceback" not in err
    assert trace._backend is None


def test_bad_protocol_warns_once_and_runs_the_command(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    assert run(["--otlp-endpoint", "http://127.0.0.1:1", "demo"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "unsupported OTLP protocol 'http/json'" in err


def test_grpc_protocol_command_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-scope-orgid=fleet")
    with grpc_receiver() as g:
        assert run(["--otlp-endpoint", g.url, "demo"]) == 0
        assert {s.name for s in g.store.spans} == {"fleetstrap demo", "render", "wait"}
        assert g.store.headers[0]["x-scope-orgid"] == "fleet"
        assert any(p.metric == "fleetstrap.command.duration" for p in g.store.points)


def test_without_endpoint_no_telemetry_code_is_imported(rx: HttpReceiver) -> None:
    code = (
        "import sys; from fleetstrap.cli import run; rc = run(['completion', 'bash']); "
        "mods = [m for m in sys.modules if m.startswith(('opentelemetry', 'fleetstrap.telemetry', 'grpc'))]; "
        "print('RC', rc, 'OTEL', len(mods))"
    )
    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert "RC 0 OTEL 0" in off.stdout, off.stdout + off.stderr
    # the same probe sees the modules once an endpoint is set (so it can fail)
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                        env={**env, "FLEETSTRAP_OTLP_ENDPOINT": rx.url})
    assert "RC 0 OTEL 0" not in on.stdout and "RC 0 OTEL" in on.stdout, on.stdout + on.stderr


# ------------------------------------------------------------------ an init run

@pytest.fixture(scope="module")
def init_trace(receiver: HttpReceiver, tmp_path_factory: pytest.TempPathFactory) -> list[ReceivedSpan]:
    receiver.store.clear()
    receiver.fail_with(0)
    register_secret(TOKEN)
    with pytest.MonkeyPatch.context() as mp:
        for var in OTEL_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("GITHUB_TOKEN", TOKEN)
        dest = tmp_path_factory.mktemp("traced") / "fleet-infra"
        code = run(["--otlp-endpoint", receiver.url, "init", "--blueprint", "starter", str(dest)])
    assert code == 0, "the traced `fleetstrap init` failed (its error is in the captured stderr)"
    return list(receiver.store.spans)


def test_init_trace_stages_and_attributes(init_trace: list[ReceivedSpan]) -> None:
    spans = _by_name(init_trace)
    root = spans["fleetstrap init"]
    assert root.parent_span_id == ""
    assert {"prompt", "render", "validate", "commit"} <= set(spans)
    for stage in ("prompt", "render", "validate", "commit"):
        assert spans[stage].parent_span_id == root.span_id, stage
        assert spans[stage].trace_id == root.trace_id
        assert spans[stage].status_code != 2, stage
    attrs = root.attributes
    assert attrs["fleetstrap.outcome"] == "ok" and attrs["fleetstrap.exit_code"] == 0
    assert "/" in str(attrs["fleet.repo"]) and attrs["fleet.engine"]
    assert str(attrs["fleetstrap.template_version"]).startswith("v")
    assert len(str(attrs["vcs.commit.sha"])) == 40
    assert spans["commit"].attributes["vcs.commit.sha"] == attrs["vcs.commit.sha"]
    events = {name for s in init_trace for name, _ in s.events}
    assert "files changed" in events and any("answers" in e for e in events)
    files = next(a for s in init_trace for n, a in s.events if n == "files changed")
    assert int(files["fleetstrap.count"]) > 10


def test_init_trace_holds_no_token(init_trace: list[ReceivedSpan]) -> None:
    assert [v for v in _all_values(init_trace) if TOKEN in v] == []


# ------------------------------------------------------------------ telemetry check

def test_check_success_http(rx: HttpReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["telemetry", "check", "--endpoint", rx.url]) == 0
    assert [s.name for s in rx.store.spans] == ["fleetstrap telemetry check"]
    err = capsys.readouterr().err
    assert "accepted a test span in" in err and " ms" in err
    assert rx.store.spans[0].trace_id in err


def test_check_success_grpc(capsys: pytest.CaptureFixture[str]) -> None:
    with grpc_receiver() as g:
        assert run(["telemetry", "check", "--endpoint", g.url, "--protocol", "grpc"]) == 0
        assert [s.name for s in g.store.spans] == ["fleetstrap telemetry check"]
    assert "(grpc) accepted a test span" in capsys.readouterr().err


def test_check_rejected_by_collector(rx: HttpReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    rx.fail_with(401)
    assert run(["telemetry", "check", "--endpoint", rx.url]) == 1
    err = capsys.readouterr().err
    assert "failed: HTTP 401" in err and "Traceback" not in err


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_check_unreachable(protocol: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert run(["telemetry", "check", "--endpoint", url, "--protocol", protocol, "--timeout", "0.5"]) == 1
    err = capsys.readouterr().err
    assert f"OTLP export to {url} ({protocol}) failed:" in err
    assert "refused" in err.lower() or "unavailable" in err.lower()
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1


def test_check_bad_endpoint_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["telemetry", "check", "--endpoint", "collector:4318"]) == 1
    assert "must start with http:// or https://" in capsys.readouterr().err


# ------------------------------------------------------------------ pure helpers

def test_safe_args_and_attributes() -> None:
    register_secret(TOKEN)
    args = ["push", "--github-token", TOKEN, f"--password={TOKEN}", "--data=api_key=abc", "-d", "owner=acme",
            f"https://x:{TOKEN}@github.com/acme/fleet.git", "http://otel:4318/?api_key=abc"]
    safe = build_safe_args(args)
    assert TOKEN not in safe and "abc" not in safe
    assert safe.startswith("push --github-token *** --password=*** --data=api_key=*** -d owner=acme")
    assert safe.endswith(" http://otel:4318/?***")
    attrs = build_safe_attributes({"token": "x", "ssh_key": "x", "keys": 3, "author": "A <a@b>", "a.b": TOKEN,
                                   "obj": object()})
    assert attrs == {"fleetstrap.keys": 3, "fleetstrap.author": "A <a@b>", "a.b": "***"}
    assert is_secret_key("OTEL_EXPORTER_OTLP_HEADERS") is False and is_secret_key("authorization")


def test_settings_from_env() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_HEADERS": "a=1,b=x%3Dy,bad",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5"}
    s = build_settings("collector:4317", environ=env)
    assert (s.protocol, s.timeout_s, s.headers, s.insecure) == ("grpc", 2.5, (("a", "1"), ("b", "x=y")), False)
    h = build_settings("https://u:p4ss@otel.example/base/", environ={})
    assert h.traces_url == "https://u:p4ss@otel.example/base/v1/traces" and h.display == "https://otel.example/base/"
    assert build_headers("") == ()
    with pytest.raises(UserError, match="unsupported OTLP protocol"):
        build_settings("http://x", environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    with pytest.raises(UserError, match="not a number"):
        build_settings("http://x", environ={"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"})



def test_traceparent_env_continues_the_callers_trace(rx: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    monkeypatch.setenv("TRACEPARENT", f"00-{trace_id}-{parent}-01")
    assert run(["--otlp-endpoint", rx.url, "demo"]) == 0
    root = _by_name(rx.store.spans)["fleetstrap demo"]
    assert (root.trace_id, root.parent_span_id) == (trace_id, parent)


def test_missing_otel_extra_is_one_warning_and_check_says_how_to_install() -> None:
    # A meta-path blocker plays "fleetstrap installed without the otel extra".
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'opentelemetry': raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from fleetstrap.cli import run\n"
        "a = run(['--otlp-endpoint', 'http://127.0.0.1:1', 'completion', 'bash'])\n"
        "b = run(['telemetry', 'check', '--endpoint', 'http://127.0.0.1:1'])\n"
        "print('RC', a, b)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert "RC 0 1" in res.stdout, res.stdout + res.stderr
    assert res.stderr.count("warning:") == 1 and "OpenTelemetry SDK is not installed" in res.stderr
    assert "pip install 'fleetstrap[otel]'" in res.stderr and "Traceback" not in res.stderr
