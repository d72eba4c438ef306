"""Name rules shared by every stage (checked before anything is written)."""

from __future__ import annotations

import re

from fleetstrap.answer_types import reserved_name_problem

__all__ = ["DNS1123_LABEL", "GITHUB_OWNER", "SERVICE_NAME", "dns1123_problem", "reserved_name_problem",
           "service_name_problem"]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
GITHUB_OWNER = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,37}[A-Za-z0-9])?$")


def dns1123_problem(value: object, what: str) -> str | None:
    """Return why `value` is not a DNS-1123 label, or None when it is one."""
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string"
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        return f"{what} {value!r} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    return None


def service_name_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return "service name must be a non-empty string"
    # 40: leaves room for the "-preview"/"-otel-sidecar" suffixes within 63.
    if len(value) > 40 or not SERVICE_NAME.match(value):
        return (
            f"service name {value!r} must be a DNS-1123 label starting with a letter, at most 40 characters"
        )
    # A service is a cargo package and binary, a Helm chart and Kubernetes objects: each toolchain's reserved names.
    return reserved_name_problem(value, "service name", rust=True)
