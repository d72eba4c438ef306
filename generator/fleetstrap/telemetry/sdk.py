"""The OpenTelemetry SDK side: resource, buffered providers, synchronous export, the trace backend.

Spans and metrics are buffered in memory and exported once, synchronously, when the command ends: one request
per signal, no background threads, and the export result is known (so a failure gives exactly one warning).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, Status, StatusCode

from fleetstrap import __version__
from fleetstrap.redact import redact
from fleetstrap.telemetry.attributes import AttrValue, build_safe_attributes, build_safe_value
from fleetstrap.telemetry.settings import ExportSettings

SCOPE = "fleetstrap"


@dataclass(frozen=True)
class ExportResult:
    ok: bool
    seconds: float
    error: str | None = None


class _SpanBuffer(SpanExporter):
    """Keeps finished spans until the command ends."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a bad log call must not break the command
            self.messages.append(str(record.msg))


@contextmanager
def capture_sdk_logs() -> Iterator[list[str]]:
    """Keep the SDK's own log lines off stderr (Python's last-resort handler); the caller summarises them."""
    logger = logging.getLogger("opentelemetry")
    handler = _LogCapture()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def build_resource() -> Resource:
    """service.name=fleetstrap (OTEL_SERVICE_NAME overrides), service.version; OTEL_RESOURCE_ATTRIBUTES is merged."""
    name = os.environ.get("OTEL_SERVICE_NAME") or "fleetstrap"
    return Resource.create({SERVICE_NAME: name, SERVICE_VERSION: __version__})


def build_parent_context() -> Context | None:
    """Continue the caller's trace (a CI pipeline, a wrapper script) when TRACEPARENT/TRACESTATE are set."""
    carrier = {k.lower(): v for k in ("TRACEPARENT", "TRACESTATE") if (v := os.environ.get(k))}
    if "traceparent" not in carrier:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(carrier)


def build_tracer_provider(resource: Resource, sampled: bool = False) -> tuple[TracerProvider, _SpanBuffer]:
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    buffer = _SpanBuffer()
    # No sampler argument: the SDK reads OTEL_TRACES_SAMPLER(_ARG); the smoke check always samples.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False, sampler=ALWAYS_ON if sampled else None)
    provider.add_span_processor(SimpleSpanProcessor(buffer))
    return provider, buffer


def build_meter_provider(resource: Resource) -> tuple[MeterProvider, InMemoryMetricReader]:
    # Each command is its own short-lived process: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta makes
    # every export "this run" (default cumulative, which every backend accepts).
    from opentelemetry.sdk.metrics import Counter, Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    preference = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "cumulative").strip().lower()
    delta: dict[type, AggregationTemporality] = {Counter: AggregationTemporality.DELTA,
                                                 Histogram: AggregationTemporality.DELTA}
    reader = InMemoryMetricReader(preferred_temporality=delta if preference in ("delta", "lowmemory") else None)
    return MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False), reader


def _exporter(settings: ExportSettings, signal: str) -> Any:
    """The OTLP exporter of `signal` ("trace" or "metric") for the configured protocol."""
    headers = dict(settings.headers)
    url = settings.traces_url if signal == "trace" else settings.metrics_url
    name = "OTLPSpanExporter" if signal == "trace" else "OTLPMetricExporter"
    if settings.protocol == "grpc":
        grpc = importlib.import_module(f"opentelemetry.exporter.otlp.proto.grpc.{signal}_exporter")
        return getattr(grpc, name)(endpoint=url, insecure=settings.insecure, headers=headers,
                                   timeout=settings.timeout_s)
    http = importlib.import_module(f"opentelemetry.exporter.otlp.proto.http.{signal}_exporter")
    return getattr(http, name)(endpoint=url, headers=headers, timeout=settings.timeout_s)


def export_spans(settings: ExportSettings, spans: Sequence[ReadableSpan]) -> ExportResult:
    """Send the spans now and wait for the collector's answer (bounded by settings.timeout_s plus connect)."""
    with capture_sdk_logs() as logs:
        start = time.perf_counter()
        try:
            exporter = _exporter(settings, "trace")
            try:
                ok = exporter.export(spans) == SpanExportResult.SUCCESS
            finally:
                exporter.shutdown()
        except Exception as exc:  # exporter construction or transport bug: still only a failed export
            logs.append(f"{type(exc).__name__}: {exc}")
            ok = False
        seconds = time.perf_counter() - start
    return ExportResult(ok, seconds, None if ok else _diagnose(settings, logs))


def export_metrics(settings: ExportSettings, reader: InMemoryMetricReader) -> ExportResult:
    data = reader.get_metrics_data()
    if data is None or not data.resource_metrics:
        return ExportResult(True, 0.0)
    with capture_sdk_logs() as logs:
        start = time.perf_counter()
        try:
            exporter = _exporter(settings, "metric")
            try:
                ok = exporter.export(data, timeout_millis=settings.timeout_s * 1000) == MetricExportResult.SUCCESS
            finally:
                exporter.shutdown()
        except Exception as exc:
            logs.append(f"{type(exc).__name__}: {exc}")
            ok = False
        seconds = time.perf_counter() - start
    return ExportResult(ok, seconds, None if ok else _diagnose(settings, logs))


def _diagnose(settings: ExportSettings, logs: Sequence[str]) -> str:
    reason = build_error_reason(logs)
    if reason != GENERIC_FAILURE:
        return reason
    # The SDK gave up before logging why (its first retry backoff exceeded the timeout): a plain TCP connect
    # tells a refused or unresolvable endpoint from a slow one.
    return probe_tcp(settings.endpoint, min(settings.timeout_s, 2.0)) or f"no answer within {settings.timeout_s:g}s"


def probe_tcp(endpoint: str, timeout_s: float) -> str | None:
    """None when something accepts TCP connections at the endpoint, else the socket error."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "invalid port in the endpoint"
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout_s):
            return None
    except socket.gaierror as exc:
        return _one_line(f"cannot resolve {parts.hostname}: {exc.strerror or exc}")
    except TimeoutError:
        return f"no answer within {timeout_s:g}s"
    except OSError as exc:
        return _one_line(f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc))


GENERIC_FAILURE = "export failed"
_ERRNO = re.compile(r"\[Errno -?\d+\][^\"'()\]]*")
_HTTP = re.compile(r"code: (\d{3}), reason: (.*)")
_GRPC = re.compile(r"(?:error code|Transient error):? StatusCode\.(\w+).*?(?:error details|Error details): (.*)")


def build_error_reason(messages: Sequence[str]) -> str:
    """One short line out of the SDK's log lines: the socket error, the HTTP status or the gRPC status."""
    text = "\n".join(messages)
    for line in messages:
        if m := _HTTP.search(line):
            return _one_line(f"HTTP {m.group(1)} {m.group(2)}")
    if m := _ERRNO.search(text):
        return _one_line(m.group(0))
    for line in messages:
        if m := _GRPC.search(line):
            return _one_line(f"gRPC {m.group(1)}: {m.group(2)}")
    # The SDK's give-up line ("... due to timeout, max retries or shutdown") says nothing about the cause.
    telling = [m for m in messages if "max retries or shutdown" not in m and "Shutdown in progress" not in m]
    return _one_line(telling[-1]) if telling else GENERIC_FAILURE


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else GENERIC_FAILURE
    return redact(first)[:200]


class OtelBackend:
    """fleetstrap.trace.Backend on the SDK: stages are child spans; annotations also go to the root span."""

    def __init__(self, tracer: otel_trace.Tracer, root: Span) -> None:
        self._tracer = tracer
        self._root = root

    def stage(self, name: str, attributes: Mapping[str, AttrValue]) -> AbstractContextManager[None]:
        return self._stage(name, attributes)

    @contextmanager
    def _stage(self, name: str, attributes: Mapping[str, AttrValue]) -> Iterator[None]:
        # record_exception=False: the SDK would attach the raw message and stack; we attach a redacted summary.
        with self._tracer.start_as_current_span(
            name, attributes=build_safe_attributes(attributes), record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield
            except BaseException as exc:
                mark_failed(span, exc)
                raise

    def event(self, name: str, attributes: Mapping[str, AttrValue]) -> None:
        otel_trace.get_current_span().add_event(name, build_safe_attributes(attributes))

    def set_attributes(self, attributes: Mapping[str, AttrValue]) -> None:
        # Annotations are command-level facts (repo, engine, commit sha): keep them on the root span too, so one
        # span per deployment carries everything a trace search needs.
        safe = build_safe_attributes(attributes)
        current = otel_trace.get_current_span()
        current.set_attributes(safe)
        if current is not self._root:
            self._root.set_attributes(safe)


def mark_failed(span: Span, exc: BaseException) -> None:
    message = build_safe_value(str(exc).splitlines()[0]) if str(exc) else ""
    span.add_event("exception", {"exception.type": type(exc).__name__, "exception.message": message})
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}" if message else type(exc).__name__))
