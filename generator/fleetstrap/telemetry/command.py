"""One trace per command: root span, stage spans via fleetstrap.trace, outcome, metrics, one export at the end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from fleetstrap import output
from fleetstrap import trace as facade
from fleetstrap.errors import (
    EXIT_BUG,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USER,
    UserError,
    exit_code_for,
)
from fleetstrap.telemetry.attributes import build_safe_args, build_safe_value
from fleetstrap.telemetry.settings import ExportSettings, build_settings, otel_installed

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan

EXIT_CLASSES = {EXIT_OK: "ok", EXIT_USER: "user_error", EXIT_FINDINGS: "findings", EXIT_BUG: "bug",
                EXIT_INTERRUPTED: "interrupted"}
# Seconds; fleetstrap commands run from well under a second (validate) to many minutes (bootstrap waits).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

Tracer = Callable[[str], AbstractContextManager[None]]


def command_tracer(endpoint: str, args: Sequence[str]) -> Tracer:
    """The factory cli.run() wraps each command in; never raises, never fails the command."""
    safe_args = build_safe_args(list(args))

    def tracer(command: str) -> AbstractContextManager[None]:
        return traced_command(endpoint, command, safe_args)

    return tracer


def build_exit_class(code: int) -> str:
    return EXIT_CLASSES.get(code, "error")


@contextmanager
def traced_command(endpoint: str, command: str, safe_args: str) -> Iterator[None]:
    try:
        settings = build_settings(endpoint)
    except UserError as exc:
        output.warn(f"telemetry: {exc.message}; no trace sent")
        yield
        return
    if not otel_installed():
        output.warn("telemetry: the OTLP endpoint is set but the OpenTelemetry SDK is not installed "
                    "(pip install 'fleetstrap[otel]'); no trace sent")
        yield
        return
    from fleetstrap.telemetry import sdk
    with sdk.capture_sdk_logs():
        try:
            resource = sdk.build_resource()
            tracer_provider, buffer = sdk.build_tracer_provider(resource)
            meter_provider, reader = sdk.build_meter_provider(resource)
            meter = meter_provider.get_meter(sdk.SCOPE)
            runs = meter.create_counter("fleetstrap.commands", unit="{command}",
                                        description="fleetstrap commands run, by command and outcome")
            duration = meter.create_histogram("fleetstrap.command.duration", unit="s",
                                              description="Duration of fleetstrap commands",
                                              explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
            parent = sdk.build_parent_context()
        except Exception as exc:  # a broken SDK setup must not stop the command
            output.warn(f"telemetry: setup failed ({type(exc).__name__}: {build_safe_value(str(exc))}); "
                        "no trace sent")
            yield
            return
        name = f"fleetstrap {command}".strip()
        tracer = tracer_provider.get_tracer(sdk.SCOPE)
        start = time.perf_counter()
        failure: BaseException | None = None
        try:
            with tracer.start_as_current_span(
                name,
                context=parent,
                attributes={"fleetstrap.command": command or "fleetstrap", "fleetstrap.args": safe_args},
                record_exception=False,
                set_status_on_exception=False,
            ) as root:
                facade.install(sdk.OtelBackend(tracer, root))
                try:
                    yield
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    facade.install(None)
                    code = exit_code_for(failure)
                    if failure is not None and code != EXIT_OK:
                        sdk.mark_failed(root, failure)
                    outcome = "ok" if code == EXIT_OK else "error"
                    attrs = {"fleetstrap.command": command or "fleetstrap", "fleetstrap.outcome": outcome,
                             "fleetstrap.exit_class": build_exit_class(code)}
                    root.set_attributes({**attrs, "fleetstrap.exit_code": code})
                    runs.add(1, attrs)
                    duration.record(time.perf_counter() - start, attrs)
        finally:
            _flush(settings, buffer.spans, reader)
            tracer_provider.shutdown()
            meter_provider.shutdown()


def _flush(settings: ExportSettings, spans: Sequence[ReadableSpan], reader: InMemoryMetricReader) -> None:
    from fleetstrap.telemetry import sdk

    try:
        result = sdk.export_spans(settings, spans) if spans else sdk.ExportResult(True, 0.0)
        # A dead endpoint is not tried twice: that would double the wait.
        if result.ok:
            result = sdk.export_metrics(settings, reader)
    except Exception as exc:  # telemetry never fails the command
        result = sdk.ExportResult(False, 0.0, f"{type(exc).__name__}: {exc}")
    if not result.ok:
        output.warn(f"telemetry: could not export to {settings.display} ({build_safe_value(result.error or '')}); "
                    "the command itself is unaffected")
