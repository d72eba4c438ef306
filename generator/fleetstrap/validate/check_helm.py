"""Every chart renders and lints with its defaults and with each values set the repo gives it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from fleetstrap.boundedyaml import safe_load
from fleetstrap.errors import RenderError
from fleetstrap.validate.check_xref import _generator_params, _get, _substitute, generated_config_maps
from fleetstrap.validate.confine import read_repo_text
from fleetstrap.validate.context import Context, schema_check
from fleetstrap.validate.loader import load_text

_LOCATION = re.compile(r"^(?P<file>[^\s:]+\.(?:ya?ml|tpl|txt|json)):(?P<line>\d+)(?::\d+)?:?\s*(?P<rest>.*)$")


@dataclass(frozen=True)
class ValuesSet:
    label: str  # where the values come from, for messages
    values: dict[str, Any]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load_values(root: Path, rel: str) -> dict[str, Any] | None:
    text = read_repo_text(root, rel)  # None outside the repo: a values file there is never opened
    if text is None:
        return None
    try:
        data = safe_load(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else ({} if data is None else None)


def _norm(path: str, base: str = "") -> str:
    p = (PurePosixPath(base) / path.removeprefix("./")) if base else PurePosixPath(path.removeprefix("./"))
    return p.as_posix().rstrip("/")


def _flux_sets(ctx: Context, data: dict[str, Any], file: str,
               gens: dict[str, list[tuple[str, dict[str, str]]]]) -> Iterator[tuple[str, ValuesSet]]:
    chart_spec = _get(data, "spec", "chart", "spec")
    chart = chart_spec.get("chart") if isinstance(chart_spec, dict) else None
    if not isinstance(chart, str) or _get(chart_spec, "sourceRef", "kind") not in ("GitRepository", "Bucket"):
        return
    inline = _get(data, "spec", "values")
    inline = inline if isinstance(inline, dict) else {}
    bases: list[tuple[str, dict[str, Any]]] = []
    for vf in _get(data, "spec", "valuesFrom") or []:
        if isinstance(vf, dict) and vf.get("kind") == "ConfigMap":
            key = vf.get("valuesKey") or "values.yaml"
            for _, files in gens.get(str(vf.get("name")), []):
                if key in files and (vals := _load_values(ctx.root, files[key])) is not None:
                    bases.append((files[key], vals))
    for label, vals in bases or [(file, {})]:
        yield _norm(chart), ValuesSet(label, _merge(vals, inline))


def build_values_sets(ctx: Context) -> dict[str, list[ValuesSet]]:
    """chart dir -> values sets used for it by Flux HelmReleases and Argo CD Applications."""
    charts = set(ctx.files.chart_dirs)
    gens = generated_config_maps(ctx)
    out: dict[str, list[ValuesSet]] = {}
    for doc in ctx.objects:
        data, kind, api = doc.data, doc.data["kind"], doc.data["apiVersion"]
        found: list[tuple[str, ValuesSet]] = []
        if kind == "HelmRelease" and api.startswith("helm.toolkit.fluxcd.io/"):
            found.extend(_flux_sets(ctx, data, doc.file, gens))
        elif kind == "Application" and api.startswith("argoproj.io/"):
            found.extend(_argo_sets(ctx, data.get("spec"), doc.file))
        elif kind == "ApplicationSet" and api.startswith("argoproj.io/"):
            template = _get(data, "spec", "template")
            for params in _generator_params(ctx, data.get("spec") or {}) if isinstance(template, dict) else ():
                found.extend(_argo_sets(ctx, _substitute(template, params).get("spec"), doc.file))
        for chart, vs in found:
            if chart in charts and all(v.values != vs.values for v in out.setdefault(chart, [])):
                out[chart].append(vs)
    return out


def _argo_sets(ctx: Context, spec: Any, file: str) -> Iterator[tuple[str, ValuesSet]]:
    if not isinstance(spec, dict):
        return
    sources = [spec["source"]] if isinstance(spec.get("source"), dict) else []
    sources += [s for s in spec.get("sources") or [] if isinstance(s, dict)]
    for src in sources:
        path, helm = src.get("path"), src.get("helm")
        if not isinstance(path, str) or "{{" in path or not isinstance(helm, dict):
            continue
        values: dict[str, Any] = {}
        label = file
        for vf in helm.get("valueFiles") or []:
            if isinstance(vf, str) and "{{" not in vf and not vf.startswith("$"):
                rel = _norm(vf, _norm(path))
                if (vals := _load_values(ctx.root, rel)) is not None:
                    values, label = _merge(values, vals), rel
        if isinstance(helm.get("values"), str):
            try:
                parsed = safe_load(helm["values"]) if "{{" not in helm["values"] else None
            except yaml.YAMLError:
                parsed = None
            if isinstance(parsed, dict):
                values = _merge(values, parsed)
        if isinstance(helm.get("valuesObject"), dict):
            values = _merge(values, helm["valuesObject"])
        yield _norm(path), ValuesSet(label, values)


class _Engine:
    def render(self, chart: Path, values: dict[str, Any]) -> dict[str, str]:
        raise NotImplementedError

    def lint(self, chart: Path, values: dict[str, Any]) -> list[tuple[int, str, str]]:
        """(severity 2 warning | 3 error, path in chart, message)."""
        raise NotImplementedError


class _SdkEngine(_Engine):
    def __init__(self) -> None:
        import helm_python

        self.helm = helm_python

    def render(self, chart: Path, values: dict[str, Any]) -> dict[str, str]:
        try:
            with self.helm.Chart.load(chart) as loaded:
                rendered: dict[str, str] = loaded.render(values, name="release", namespace="default")
                return rendered
        except self.helm.HelmError as exc:
            raise RenderError(str(exc)) from exc

    def lint(self, chart: Path, values: dict[str, Any]) -> list[tuple[int, str, str]]:
        try:
            report = self.helm.lint(chart, values)
        except self.helm.HelmError as exc:
            return [(3, "Chart.yaml", str(exc))]
        return [(int(m["severity"]), str(m["path"]), str(m["error"])) for m in report.get("messages", [])]


class _BinaryEngine(_Engine):
    def __init__(self, exe: str) -> None:
        self.exe = exe

    def _values_file(self, tmp: str, values: dict[str, Any]) -> str:
        path = Path(tmp) / "values.json"
        path.write_text(json.dumps(values), encoding="utf-8")  # JSON is YAML
        return str(path)

    def render(self, chart: Path, values: dict[str, Any]) -> dict[str, str]:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([self.exe, "template", "release", str(chart), "-f", self._values_file(tmp, values)],
                                  capture_output=True, text=True, check=False, timeout=120)
        if proc.returncode != 0:
            raise RenderError(proc.stderr.strip().removeprefix("Error: ").removeprefix("template: "))
        out: dict[str, str] = {}
        for part in re.split(r"^---\s*$", proc.stdout, flags=re.M):
            m = re.search(r"^# Source: (.+)$", part, flags=re.M)
            if m:
                out[m.group(1).strip()] = out.get(m.group(1).strip(), "") + "---\n" + part
        return out

    def lint(self, chart: Path, values: dict[str, Any]) -> list[tuple[int, str, str]]:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([self.exe, "lint", str(chart), "-f", self._values_file(tmp, values)],
                                  capture_output=True, text=True, check=False, timeout=120)
        found = []
        for line in proc.stdout.splitlines():
            m = re.match(r"^\[(ERROR|WARNING)\] ([^:]+): (.*)$", line.strip())
            if m:
                found.append((3 if m.group(1) == "ERROR" else 2, m.group(2), m.group(3)))
        return found


def _engine(ctx: Context) -> _Engine | None:
    if exe := shutil.which("helm"):
        return _BinaryEngine(exe)
    try:
        return _SdkEngine()
    except (ImportError, OSError):
        ctx.note("helm: skipped (no helm binary on PATH and the helm-python-sdk extra is not installed)")
        return None


def run_helm(ctx: Context) -> None:
    if not ctx.files.chart_dirs:
        return
    engine = _engine(ctx)
    if engine is None:
        return
    sets = build_values_sets(ctx)
    seen: set[tuple[str, int | None, str]] = set()
    for chart in ctx.files.chart_dirs:
        prefix = f"{chart}/" if chart else ""
        if any(link.startswith(prefix) for link in ctx.files.outside_links):
            # helm follows symlinks: a chart with one resolving outside the repo is never rendered.
            ctx.note(f"helm: chart {chart or '.'} not rendered (a symlink in it resolves outside the repository)")
            continue
        for vs in [ValuesSet("", {}), *sets.get(chart, [])]:
            _check_chart(ctx, engine, chart, vs, seen)


def _check_chart(ctx: Context, engine: _Engine, chart: str, vs: ValuesSet,
                 seen: set[tuple[str, int | None, str]]) -> None:
    chart_path = ctx.root / chart if chart else ctx.root
    prefix = f"{chart}/" if chart else ""
    suffix = f" (values from {vs.label})" if vs.label else ""

    def add(severity: str, file: str, line: int | None, message: str) -> None:
        # The same problem under several values sets is reported once.
        if (file, line, message) not in seen:
            seen.add((file, line, message))
            ctx.add("helm", "error" if severity == "error" else "warning", file, line, message + suffix)

    try:
        rendered = engine.render(chart_path, vs.values)
    except RenderError as exc:
        add("error", *_locate(str(exc), prefix))
        return
    for sev, path, message in engine.lint(chart_path, vs.values):
        if sev >= 2 and not path.startswith("templates"):
            add("error" if sev >= 3 else "warning", chart_file(ctx.root, chart, path), None,
                _one_line(message).replace(str(ctx.root) + "/", ""))
    for name, text in sorted(rendered.items()):
        base = name.rsplit("/", 1)[-1]
        if base == "NOTES.txt" or base.startswith("_"):
            continue  # helm never applies these
        file = prefix + name.split("/", 1)[1] if "/" in name else prefix + name
        docs, problems = load_text(text, file)
        ctx.rendered.extend(docs)
        for p in problems:
            add("error", file, None, f"rendered output: {p.message}")
        if ctx.options.enabled("schema"):
            schema_check(ctx, docs, attribute_to=file)


def chart_file(root: Path, chart: str, path: str) -> str:
    """The repo-relative file of a path helm reports for a chart: relative to the chart, or absolute (helm prints
    the chart directory itself for chart-level problems, e.g. missing dependencies: those are Chart.yaml's)."""
    prefix = f"{chart}/" if chart else ""
    path = path.strip().rstrip("/")
    if not path.startswith("/"):
        return prefix + path
    try:
        rel = Path(path).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return prefix + "Chart.yaml"
    if rel in (chart, ".", "") or not Path(root, rel).is_file():
        return prefix + "Chart.yaml"
    return rel


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _locate(message: str, prefix: str) -> tuple[str, int | None, str]:
    """Map `chart/templates/x.yaml:2:13 executing ...` to (repo file, line, one-line message)."""
    flat = _one_line(message)
    m = _LOCATION.match(flat)
    if not m:
        return (prefix + "Chart.yaml", None, flat)
    inner = m.group("file").split("/", 1)[1] if "/" in m.group("file") else m.group("file")
    return (prefix + inner, int(m.group("line")), m.group("rest") or flat)
