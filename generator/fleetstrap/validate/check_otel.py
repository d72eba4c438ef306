"""OpenTelemetry Collector configs: pipelines reference defined components, in a sensible order.

Offline and always: the structural checks below. When a collector binary is given (`--otelcol`,
$FLEETSTRAP_OTELCOL) or on PATH (otelcol-contrib, otelcol-k8s, otelcol), each config is also loaded by the
collector's own `validate`, which knows every component's fields: its findings carry the file and object.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from fleetstrap.boundedyaml import safe_load
from fleetstrap.errors import UserError
from fleetstrap.validate.context import Context
from fleetstrap.validate.loader import line_of
from fleetstrap.validate.model import Doc, Finding, json_path, object_id

Path_ = tuple[str | int, ...]
Report = Callable[..., None]

OTELCOL_ENV = "FLEETSTRAP_OTELCOL"
# Names the collector distributions install their binary under, most complete first.
OTELCOL_NAMES = ("otelcol-contrib", "otelcol-k8s", "otelcol")
NO_COLLECTOR_NOTE = ("otel: no collector binary (otelcol-contrib, otelcol) on PATH; configs were checked "
                     f"structurally only (give one with --otelcol or ${OTELCOL_ENV})")
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def _is_config(data: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(data, dict) and isinstance(data.get("receivers"), dict) \
        and isinstance(data.get("service"), dict) and isinstance(data["service"].get("pipelines"), dict)


def collector_configs(data: Any) -> list[tuple[Path_, dict[str, Any]]]:
    """(path inside the object, config) of every collector config one YAML document holds: a bare config,
    OpenTelemetryCollector `spec.config` (a mapping in v1beta1, a YAML string in v1alpha1), ConfigMap data."""
    found: list[tuple[Path_, dict[str, Any]]] = []
    if _is_config(data):
        found.append(((), data))
    if not (isinstance(data, dict) and isinstance(data.get("kind"), str) and isinstance(data.get("apiVersion"), str)):
        return found
    if data["kind"] == "ConfigMap" and isinstance(data.get("data"), dict):
        for key, value in data["data"].items():
            if isinstance(value, str) and "receivers" in value:
                parsed = _parse(value)
                if _is_config(parsed):
                    found.append((("data", str(key)), parsed))
    elif data["kind"] == "OpenTelemetryCollector" and data["apiVersion"].startswith("opentelemetry.io/"):
        cfg = (data.get("spec") or {}).get("config")
        parsed = _parse(cfg) if isinstance(cfg, str) else cfg
        if _is_config(parsed):
            found.append((("spec", "config"), parsed))
    return found


def _configs(ctx: Context) -> list[tuple[Doc, Path_, dict[str, Any], bool, bool]]:
    """(document, path of the config inside it, config, nested-in-a-string, rendered-from-a-chart).

    Charts count too: the helm check (which runs first) renders them with every values set the repo gives
    them, so a collector config in a chart template (a sidecar's ConfigMap) is checked as it will deploy."""
    found: list[tuple[Doc, Path_, dict[str, Any], bool, bool]] = []
    seen: set[str] = set()
    from_charts = {id(d) for d in ctx.rendered}
    for doc in [*ctx.docs, *ctx.rendered]:
        rendered = id(doc) in from_charts
        for base, cfg in collector_configs(doc.data):
            key = yaml.safe_dump([doc.file, object_id(doc.data), cfg])
            if rendered and key in seen:
                continue  # the same rendering under another values set
            seen.add(key)
            nested = bool(base) and not isinstance(_get(doc.data, base), dict)
            found.append((doc, base, cfg, nested, rendered))
    return found


def _get(data: Any, path: Path_) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _parse(text: str) -> Any:
    try:
        return safe_load(text)
    except yaml.YAMLError:
        return None


def run_otel(ctx: Context) -> None:
    configs = _configs(ctx)
    for doc, base, cfg, nested, rendered in configs:
        check_config(cfg, _reporter(ctx, doc, base, nested, rendered))
    if not configs or (ctx.options.fast and not ctx.options.otelcol):
        return  # the quick gate of init/add/update runs no external collector unless one is given
    exe = find_otelcol(ctx.options.otelcol)
    if exe is None:
        ctx.note(NO_COLLECTOR_NOTE)
        return
    for doc, base, cfg, nested, rendered in configs:
        run_collector_validate(exe, cfg, _pod_env(doc.data), _reporter(ctx, doc, base, nested, rendered), ctx.note)


def _reporter(ctx: Context, doc: Doc, base: Path_, nested: bool, rendered: bool) -> Report:
    def report(path: Path_, message: str, severity: str = "error") -> None:
        # Inside a string (ConfigMap data) lines point at the key holding the config; rendered chart output
        # has no line in the template.
        line = None if rendered else line_of(doc, base) if nested else line_of(doc, (*base, *path))
        shown = json_path([*base, *path]) if not nested else json_path(base) + " → " + json_path(list(path))
        ctx.findings.append(Finding("otel", "error" if severity == "error" else "warning", doc.file, line,
                                    object_id(doc.data) if doc.is_object else "", shown, message))
    return report


def _ids(section: Any) -> set[str]:
    return {str(k) for k in section} if isinstance(section, dict) else set()


def check_config(cfg: dict[str, Any], report: Report) -> None:
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
                    used: dict[str, set[str]], report: Report) -> None:
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


# ---------------------------------------------------------------- the real collector's `validate`


def find_otelcol(given: str | None) -> str | None:
    """The collector binary: `given` (option), else $FLEETSTRAP_OTELCOL, else the first of OTELCOL_NAMES on PATH.
    A binary given but missing is the user's error, not a reason to fall back silently."""
    explicit = given or os.environ.get(OTELCOL_ENV)
    if explicit:
        exe = shutil.which(explicit)
        if exe is None:
            raise UserError(f"collector binary {explicit!r} not found or not executable (--otelcol/{OTELCOL_ENV})")
        return exe
    return next((exe for name in OTELCOL_NAMES if (exe := shutil.which(name))), None)


def _pod_env(data: Any) -> dict[str, str] | None:
    """The `env` an OpenTelemetryCollector gives its pods (valueFrom entries: set, value known in the cluster
    only); None for other objects, whose pod is not known here."""
    if not (isinstance(data, dict) and data.get("kind") == "OpenTelemetryCollector"):
        return None
    env = _get(data, ("spec", "env"))
    return {str(e["name"]): str(e.get("value", "")) for e in env or [] if isinstance(e, dict) and "name" in e}


_KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")


@cache
def built_components(exe: str) -> dict[str, frozenset[str]]:
    """The canonical type names `<exe> components` lists per kind (empty when the binary cannot say)."""
    try:
        proc = subprocess.run([exe, "components"], capture_output=True, text=True, check=False, timeout=60)
        data = safe_load(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, yaml.YAMLError):
        data = None
    if not isinstance(data, dict):
        return {}
    return {kind: frozenset(str(c.get("name")) for c in data.get(kind) or [] if isinstance(c, dict))
            for kind in _KINDS}


def _aliases(cfg: dict[str, Any], canonical: dict[str, frozenset[str]]) -> list[tuple[str, str]]:
    """Types that loaded but are not canonical names: deprecated aliases, which `validate` accepts silently
    (the running collector warns, and a later release drops them)."""
    found = []
    for kind in _KINDS if canonical else ():
        for cid in cfg.get(kind) or {}:
            ctype = str(cid).split("/", 1)[0]
            if ctype not in canonical[kind]:
                found.append(("warning", f"{kind[:-1]} type {ctype!r} is a deprecated alias (not among the "
                                         f"collector's component names)"))
    return found


# zap console lines: "<time>\t<level>\t<caller>\t<message>\t{json}"; validate errors start with "Error: ".
_LOG_LINE = re.compile(r"^\S+\t(?P<level>warn|error)\t\S+\t(?P<message>[^\t]+)(?:\t(?P<fields>\{.*\}))?$")


def parse_validate_output(output: str) -> list[tuple[str, str]]:
    """(severity, one-line message) for each problem `otelcol validate` printed."""
    problems: list[tuple[str, str]] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if m := _LOG_LINE.match(line):
            message = m.group("message").strip()
            if m.group("fields"):
                message += " " + m.group("fields")
            problems.append(("warning" if m.group("level") == "warn" else "error", message))
        elif line.startswith("Error: "):
            # The error may span lines (mapstructure lists each problem on its own line).
            rest = [part.strip() for part in lines[i + 1:] if part.strip() and not _LOG_LINE.match(part)]
            problems.append(("error", " ".join([line.removeprefix("Error: ").strip(), *rest])))
            break
    return problems


def run_collector_validate(exe: str, cfg: dict[str, Any], env: dict[str, str] | None, report: Report,
                           note: Callable[[str], None]) -> None:
    """`<exe> validate --config` on one config; each problem it prints becomes a finding. `env`: what the pod
    sets (None: unknown). The collector expands an unset ${env:X} to "" without a word, so it is said here."""
    text = yaml.safe_dump(cfg, sort_keys=False)
    if env is not None:
        for name in sorted({name for name, default in _ENV_REF.findall(text) if not default and name not in env}):
            report((), f"references ${{env:{name}}}, which the collector's pod does not set", "warning")
    env = env or {}
    base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
    with tempfile.TemporaryDirectory(prefix="fleetstrap-otelcol-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            proc = subprocess.run([exe, "validate", f"--config=file:{path}"], capture_output=True, text=True,
                                  check=False, timeout=120, env={**base_env, **env})
        except (OSError, subprocess.TimeoutExpired) as exc:
            note(f"otel: {exe} validate could not run: {exc}")
            return
    problems = parse_validate_output(proc.stdout + proc.stderr)
    if proc.returncode != 0 and not any(sev == "error" for sev, _ in problems):
        problems.append(("error", f"exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-300:]}"))
    if proc.returncode == 0:
        problems += _aliases(cfg, built_components(exe))
    for severity, message in problems:
        report((), f"collector validate ({Path(exe).name}): {message.replace(str(path), 'config')}", severity)
