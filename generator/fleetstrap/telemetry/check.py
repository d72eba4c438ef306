"""`fleetstrap telemetry check`: one test span through an OTLP endpoint, synchronously."""

from __future__ import annotations

from dataclasses import dataclass

from fleetstrap.errors import ToolMissingError
from fleetstrap.telemetry.settings import build_settings, otel_installed


@dataclass(frozen=True)
class CheckResult:
    endpoint: str  # printable: no credentials
    protocol: str
    ok: bool
    seconds: float
    trace_id: str
    error: str | None


def check_endpoint(endpoint: str, *, protocol: str | None = None, timeout_s: float | None = None) -> CheckResult:
    """Send one span named `fleetstrap telemetry check` and wait for the collector's answer."""
    settings = build_settings(endpoint, protocol=protocol, timeout_s=timeout_s)
    if not otel_installed():
        raise ToolMissingError("the OpenTelemetry SDK is not installed", hint="pip install 'fleetstrap[otel]'")
    from fleetstrap.telemetry import sdk
    with sdk.capture_sdk_logs():
        provider, buffer = sdk.build_tracer_provider(sdk.build_resource(), sampled=True)
        tracer = provider.get_tracer(sdk.SCOPE)
        with tracer.start_as_current_span("fleetstrap telemetry check",
                                          attributes={"fleetstrap.check": True,
                                                      "fleetstrap.protocol": settings.protocol}) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
        provider.shutdown()
    result = sdk.export_spans(settings, buffer.spans)
    return CheckResult(endpoint=settings.display, protocol=settings.protocol, ok=result.ok, seconds=result.seconds,
                       trace_id=trace_id, error=result.error)
