"""OpenTelemetry Collector configs: pipelines reference defined components, in a sensible order."""

from __future__ import annotations

from typing import Any

import yaml

from fleetstrap.validate.context import Context
from fleetstrap.validate.loader import line_of
from fleetstrap.validate.model import Doc, json_path

Path_ = tuple[str | int, ...]


def _is_config(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("receivers"), dict) \
        and isinstance(data.get("service"), dict) and isinstance(data["service"].get("pipelines"), dict)


def _configs(ctx: Context) -> list[tuple[Doc, Path_, Any, bool]]:
    """(document, path of the config inside it, config, nested-in-a-string)."""
    found: list[tuple[Doc, Path_, Any, bool]] = []
    for doc in ctx.docs:
        data = doc.data
        if _is_config(data):
            found.append((doc, (), data, False))
        if not doc.is_object:
            continue
        if data["kind"] == "ConfigMap" and isinstance(data.get("data"), dict):
            for key, value in data["data"].items():
                if isinstance(value, str) and "receivers" in value:
                    parsed = _parse(value)
                    if _is_config(parsed):
                        found.append((doc, ("data", key), parsed, True))
        elif data["kind"] == "OpenTelemetryCollector" and data["apiVersion"].startswith("opentelemetry.io/"):
            cfg = (data.get("spec") or {}).get("config")
            if isinstance(cfg, str):
                parsed = _parse(cfg)
                if _is_config(parsed):
                    found.append((doc, ("spec", "config"), parsed, True))
            elif _is_config(cfg):
                found.append((doc, ("spec", "config"), cfg, False))
    return found


def _parse(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def run_otel(ctx: Context) -> None:
    for doc, base, cfg, nested in _configs(ctx):
        def report(path: Path_, message: str, severity: str = "error",
                   doc: Doc = doc, base: Path_ = base, nested: bool = nested) -> None:
            # Inside a string (ConfigMap data) lines point at the key holding the config.
            line = line_of(doc, base) if nested else line_of(doc, (*base, *path))
            shown = json_path([*base, *path]) if not nested else json_path(base) + " → " + json_path(list(path))
            ctx.findings.append(_finding(doc, line, shown, message, severity))
        check_config(cfg, report)


def _finding(doc: Doc, line: int, path: str, message: str, severity: str) -> Any:
    from fleetstrap.validate.model import Finding, object_id

    return Finding("otel", "error" if severity == "error" else "warning", doc.file, line,
                   object_id(doc.data) if doc.is_object else "", path, message)


def _ids(section: Any) -> set[str]:
    return {str(k) for k in section} if isinstance(section, dict) else set()


def check_config(cfg: dict[str, Any], report: Any) -> None:
    defined = {s: _ids(cfg.get(s)) for s in ("receivers", "processors", "exporters", "connectors", "extensions")}
    service = cfg["service"]
    used: dict[str, set[str]] = {s: set() for s in defined}
    for pname, pipeline in service["pipelines"].items():
        if not isinstance(pipeline, dict):
            report(("service", "pipelines", str(pname)), f"pipeline {pname!r} is not a mapping")
            continue
        _check_pipeline(str(pname), pipeline, defined, used, report)
    for i, ext in enumerate(service.get("extensions") or []):
        if str(ext) not in defined["extensions"]:
            report(("service", "extensions", i), f"extension {ext!r} is enabled but not defined")
        used["extensions"].add(str(ext))
    for section in ("receivers", "processors", "exporters", "connectors", "extensions"):
        for cid in sorted(defined[section] - used[section]):
            report((section, cid), f"{section[:-1]} {cid!r} is defined but not used", "warning")


def _check_pipeline(pname: str, pipeline: dict[str, Any], defined: dict[str, set[str]],
                    used: dict[str, set[str]], report: Any) -> None:
    for section, allowed in (("receivers", ("receivers", "connectors")), ("processors", ("processors",)),
                             ("exporters", ("exporters", "connectors"))):
        ids = pipeline.get(section) or []
        if not isinstance(ids, list):
            continue
        for i, cid in enumerate(ids):
            cid = str(cid)
            owner = next((s for s in allowed if cid in defined[s]), None)
            if owner is None:
                report(("service", "pipelines", str(pname), section, i),
                       f"pipeline {pname!r} uses {section[:-1]} {cid!r}, which is not defined")
            else:
                used[owner].add(cid)
    procs = [str(p).split("/")[0] for p in (pipeline.get("processors") or []) if isinstance(p, str)]
    if "memory_limiter" in procs and procs[0] != "memory_limiter":
        report(("service", "pipelines", str(pname), "processors", procs.index("memory_limiter")),
               f"pipeline {pname!r}: memory_limiter should be the first processor", "warning")
    if "batch" in procs and procs[-1] != "batch":
        report(("service", "pipelines", str(pname), "processors", procs.index("batch")),
               f"pipeline {pname!r}: batch should be the last processor", "warning")
