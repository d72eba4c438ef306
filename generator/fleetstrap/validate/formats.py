"""Report renderings: human (rich, grouped by file), JSON, and SARIF 2.1.0 for code scanning."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from fleetstrap import __version__, output
from fleetstrap.validate.model import CHECKS, Report

_RULE_TEXT = {
    "yaml": "YAML parses, no duplicate keys",
    "schema": "Kubernetes objects match their schemas strictly",
    "kustomize": "Kustomizations build",
    "helm": "Helm charts render and lint",
    "xref": "Flux and Argo CD cross-references resolve",
    "otel": "OpenTelemetry Collector pipelines are complete",
    "workflows": "GitHub workflows are valid",
    "dockerfile": "Dockerfiles pass hadolint",
    "placeholders": "A fleet with a push remote has no placeholder answers (example-org, example.com)",
}


def build_json(report: Report) -> dict[str, Any]:
    return {
        "root": str(report.root),
        "summary": {"errors": len(report.errors), "warnings": len(report.warnings),
                    "files": report.files, "objects": report.objects},
        "notes": list(report.notes),
        "findings": [f.as_dict() for f in report.findings],
    }


def build_sarif(report: Report) -> dict[str, Any]:
    rules = [{"id": c, "name": c, "shortDescription": {"text": _RULE_TEXT[c]}} for c in CHECKS]
    results = []
    for f in report.findings:
        location: dict[str, Any] = {"artifactLocation": {"uri": f.file, "uriBaseId": "%SRCROOT%"}}
        if f.line:
            location["region"] = {"startLine": f.line}
        result: dict[str, Any] = {
            "ruleId": f.check,
            "ruleIndex": CHECKS.index(f.check),
            "level": f.severity,
            "message": {"text": f.message + (f" (at {f.path})" if f.path else "")},
            "locations": [{"physicalLocation": location}],
        }
        if f.object:
            result["locations"][0]["logicalLocations"] = [{"fullyQualifiedName": f.object, "kind": "object"}]
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "fleetstrap", "version": __version__,
                                "informationUri": "https://github.com/fleetstrap/fleetstrap", "rules": rules}},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": report.root.as_uri() + "/"}},
            "results": results,
        }],
    }


def print_human(report: Report) -> None:
    from rich.markup import escape

    console = output.rich_err()
    for file, group in groupby(report.findings, key=lambda f: f.file):
        console.print(f"[bold]{escape(file)}[/]")
        for f in group:
            colour = "red" if f.severity == "error" else "yellow"
            where = f"{f.line}" if f.line else "-"
            extra = " ".join(escape(x) for x in (f.object, f.path) if x)
            console.print(f"  [dim]{where:>5}[/] [{colour}]{f.severity}[/] [cyan]{f.check}[/] "
                          f"{escape(f.message)}" + (f" [dim]{extra}[/]" if extra else ""))
    for note in report.notes:
        output.info(note)
