"""Values passed between the validate stages: options in, findings and a report out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warning"]

CHECKS: tuple[str, ...] = ("yaml", "schema", "kustomize", "helm", "xref", "otel", "workflows", "dockerfile",
                           "placeholders")
# Checks that call slow external tools; `fast` (the init/add/update gate) skips them.
SLOW_CHECKS: frozenset[str] = frozenset({"helm", "workflows", "dockerfile"})

DEFAULT_KUBERNETES_VERSION = "1.37"
CATALOG_URL = "https://raw.githubusercontent.com/datreeio/CRDs-catalog/main/{group}/{kind}_{version}.json"


@dataclass(frozen=True)
class ValidateOptions:
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    disabled: frozenset[str] = frozenset()
    strict: bool = False
    schema_locations: tuple[str, ...] = ()
    cache_dir: Path | None = None
    offline: bool = False
    fast: bool = False
    # The public CRDs catalog (URL template); None never asks it.
    catalog_url: str | None = CATALOG_URL
    # The CRD schemas shipped in the package (off only to cross-check another source).
    bundled_schemas: bool = True
    # OpenTelemetry Collector binary whose `validate` also loads each collector config (None: look on PATH).
    otelcol: str | None = None
    # Let kustomize fetch remote bases (URLs, git repos); never with `offline`.
    remote_bases: bool = False

    def enabled(self, check: str) -> bool:
        if check in self.disabled:
            return False
        return not (self.fast and check in SLOW_CHECKS)


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    file: str
    line: int | None
    object: str
    path: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "object": self.object,
            "path": self.path,
            "message": self.message,
        }


@dataclass(frozen=True)
class Report:
    root: Path
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()
    objects: int = 0
    files: int = 0

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    def summary(self) -> str:
        return (
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s) "
            f"in {self.files} file(s), {self.objects} object(s)"
        )


@dataclass(frozen=True)
class Doc:
    """One YAML document of a file, with its node tree kept for line lookups."""

    file: str  # relative to the repo root, posix
    index: int
    line: int  # 1-based line of the document start
    data: Any
    node: Any = field(compare=False, repr=False)

    @property
    def is_object(self) -> bool:
        d = self.data
        return isinstance(d, dict) and isinstance(d.get("apiVersion"), str) and isinstance(d.get("kind"), str)


def object_id(data: Any) -> str:
    """`Kind/namespace/name` (namespace omitted when unset)."""
    if not isinstance(data, dict):
        return ""
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    kind = str(data.get("kind", ""))
    raw = meta.get("name") if meta else None
    # An object without a name says so (never `HelmRelease/None`).
    name = str(raw) if raw not in (None, "") else "(no name)"
    ns = meta.get("namespace") if meta else None
    return f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"


def json_path(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """`spec.containers[0].image` from path segments."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out
