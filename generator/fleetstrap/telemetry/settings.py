"""Where and how to export: resolved once from the endpoint and the standard OTEL_* variables (pure)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from fleetstrap.errors import UserError
from fleetstrap.redact import register_secret

PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_PROTOCOL = "http/protobuf"
# Commands must not hang on a dead collector; OTEL_EXPORTER_OTLP_TIMEOUT (seconds, as the Python SDK reads it)
# overrides.
DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ExportSettings:
    endpoint: str
    protocol: str
    headers: tuple[tuple[str, str], ...]
    timeout_s: float
    traces_url: str
    metrics_url: str
    insecure: bool

    @property
    def display(self) -> str:
        """The endpoint as it may be printed: no credentials, no query."""
        return _strip_userinfo(self.endpoint).partition("?")[0]


def build_settings(
    endpoint: str,
    *,
    protocol: str | None = None,
    timeout_s: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExportSettings:
    """Resolve the export settings; a bad value is a UserError naming the variable."""
    env = os.environ if environ is None else environ
    endpoint = endpoint.strip()
    if not endpoint:
        raise UserError("the OTLP endpoint is empty")
    proto = (protocol or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
             or DEFAULT_PROTOCOL).strip().lower()
    if proto not in PROTOCOLS:
        raise UserError(f"unsupported OTLP protocol {proto!r} (use one of: {', '.join(PROTOCOLS)})")
    timeout = timeout_s if timeout_s is not None else _env_timeout(env)
    if timeout <= 0:
        raise UserError(f"the OTLP export timeout must be positive, got {timeout:g}")
    if proto == "http/protobuf":
        if not endpoint.startswith(("http://", "https://")):
            raise UserError(f"OTLP/HTTP endpoint must start with http:// or https://: {_strip_userinfo(endpoint)}")
        base = endpoint.rstrip("/")
        traces_url, metrics_url, insecure = f"{base}/v1/traces", f"{base}/v1/metrics", base.startswith("http://")
    else:
        insecure = _grpc_insecure(endpoint, env)
        traces_url = metrics_url = endpoint
    headers = build_headers(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
    for _, value in headers:
        register_secret(value)  # header values are usually API keys
    _register_userinfo(endpoint)
    return ExportSettings(endpoint=endpoint, protocol=proto, headers=headers, timeout_s=timeout,
                          traces_url=traces_url, metrics_url=metrics_url, insecure=insecure)


def build_headers(raw: str) -> tuple[tuple[str, str], ...]:
    """Parse `k1=v1,k2=v2` (values URL-encoded) as the OTLP exporter spec defines it; skip malformed pairs."""
    pairs: list[tuple[str, str]] = []
    for item in raw.split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            pairs.append((unquote(name.strip()).lower(), unquote(value.strip())))
    return tuple(pairs)


def _env_timeout(env: Mapping[str, str]) -> float:
    raw = env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        return float(raw)
    except ValueError as exc:
        raise UserError(f"OTEL_EXPORTER_OTLP_TIMEOUT is not a number: {raw!r}") from exc


def _grpc_insecure(endpoint: str, env: Mapping[str, str]) -> bool:
    if endpoint.startswith("https://"):
        return False
    if endpoint.startswith("http://"):
        return True
    flag = env.get("OTEL_EXPORTER_OTLP_TRACES_INSECURE") or env.get("OTEL_EXPORTER_OTLP_INSECURE") or ""
    return flag.strip().lower() == "true"


def _strip_userinfo(endpoint: str) -> str:
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return endpoint.rpartition("@")[2]
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def _register_userinfo(endpoint: str) -> None:
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if parts.password:
        register_secret(parts.password)


def otel_installed() -> bool:
    """Whether the `otel` extra is installed (checked without importing it, so a broken sdk.py still fails)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(m) is not None
                   for m in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"))
    except ImportError:  # the `opentelemetry` namespace itself is absent
        return False
