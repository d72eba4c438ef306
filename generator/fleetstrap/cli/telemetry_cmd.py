"""`fleetstrap telemetry check`."""

from __future__ import annotations

import click

from fleetstrap import output
from fleetstrap.cli.options import format_option
from fleetstrap.errors import RemoteError


@click.group()
def telemetry() -> None:
    """Telemetry tools (smoke check of an OTLP endpoint)."""


@click.command()
@click.option("--endpoint", required=True, envvar="OTEL_EXPORTER_OTLP_ENDPOINT", metavar="URL",
              help="OTLP endpoint: http://HOST:4318 (http/protobuf) or http://HOST:4317 (grpc).")
@click.option("--protocol", type=click.Choice(["http/protobuf", "grpc"]), default=None,
              help="Default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=300), default=5.0, show_default=True,
              metavar="SECONDS", help="How long to wait for the collector's answer.")
@format_option()
def check(endpoint: str, protocol: str | None, timeout: float, fmt: str) -> None:
    """Send one test span through an OTLP endpoint and report success and latency, or the error."""
    from fleetstrap.telemetry import check_endpoint

    with output.progress("sending a test span"):  # not the endpoint: it may carry credentials
        result = check_endpoint(endpoint, protocol=protocol, timeout_s=timeout)
    if fmt == "json":
        output.data_json({"ok": result.ok, "endpoint": result.endpoint, "protocol": result.protocol,
                          "seconds": result.seconds, "trace_id": result.trace_id, "error": result.error})
    if not result.ok:
        raise RemoteError(f"OTLP export to {result.endpoint} ({result.protocol}) failed: {result.error}",
                          hint="is a collector listening there (4318 http/protobuf, 4317 grpc)?")
    if fmt == "json":
        return
    output.success(f"OTLP endpoint {result.endpoint} ({result.protocol}) accepted a test span "
                   f"in {result.seconds * 1000:.0f} ms")
    output.info(f"  trace id {result.trace_id} (span 'fleetstrap telemetry check', service.name from the resource)")


telemetry.add_command(check)
