"""fleetstrap's own OTLP telemetry (optional extra `fleetstrap[otel]`).

Imported only when an endpoint is configured. This module itself imports no OpenTelemetry code, so a missing
extra becomes one warning instead of an ImportError.
"""

from __future__ import annotations

from fleetstrap.telemetry.check import CheckResult, check_endpoint
from fleetstrap.telemetry.command import command_tracer

__all__ = ["CheckResult", "check_endpoint", "command_tracer"]
