"""External linters, each run once over all its files: check-jsonschema + actionlint + zizmor, hadolint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from fleetstrap.validate.context import Context
from fleetstrap.validate.loader import line_of
from fleetstrap.validate.model import Severity


def find_tool(name: str) -> str | None:
    """On PATH, or installed next to this Python (the venv's bin) by the `validate` extra."""
    if exe := shutil.which(name):
        return exe
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else None


def _run(cmd: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False, timeout=300)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _segments(path: str) -> list[str | int]:
    """`$.jobs.build.steps[0]` -> ["jobs", "build", "steps", 0]."""
    out: list[str | int] = []
    for part in path.removeprefix("$").replace("[", ".[").split("."):
        if not part:
            continue
        out.append(int(part[1:-1]) if part.startswith("[") and part[1:-1].isdigit() else part.strip("[]'\""))
    return out


def run_workflows(ctx: Context) -> None:
    files = list(ctx.files.workflows)
    if not files:
        return
    with_errors: set[str] = set()
    actionlint = find_tool("actionlint")
    if actionlint:
        proc = _run([actionlint, "-no-color", "-format", "{{json .}}", *files], ctx.root)
        for item in _json(proc.stdout) or []:
            kind, message = str(item.get("kind", "")), str(item.get("message", ""))
            # Style advice (shellcheck, deprecations) is worth seeing but must not fail a PR.
            severity: Severity = "warning" if kind in ("shellcheck", "pyflakes") or "deprecated" in message else "error"
            if severity == "error":
                with_errors.add(str(item.get("filepath")))
            ctx.add("workflows", severity, str(item.get("filepath")), item.get("line"), f"{message} [{kind}]")
    else:
        ctx.note("workflows: actionlint not installed, only the JSON schema is checked")
    run_zizmor(ctx, files)
    checker = find_tool("check-jsonschema")
    if not checker:
        ctx.note("workflows: skipped schema check (check-jsonschema not installed)")
        return
    proc = _run([checker, "--builtin-schema", "vendor.github-workflows", "-o", "JSON", *files], ctx.root)
    report = _json(proc.stdout) or {}
    docs = {d.file: d for d in ctx.docs if d.index == 0}
    for err in report.get("errors", []):
        file = str(err.get("filename"))
        if file in with_errors:
            continue  # actionlint already pinpointed this file's problems
        best = err.get("best_deep_match") or err
        segs = _segments(str(best.get("path", "$")))
        line = line_of(docs[file], segs) if file in docs else None
        ctx.add("workflows", "error", file, line, str(best.get("message")), path=segs)


# zizmor's severities: high and medium findings are security problems (an unpinned action, a token left in
# the checkout, an injectable expression); low and informational ones are worth seeing but must not fail a PR.
_ZIZMOR_SEVERITY: dict[str, Severity] = {"high": "error", "medium": "error", "low": "warning",
                                         "informational": "warning"}


def run_zizmor(ctx: Context, files: list[str]) -> None:
    """GitHub Actions security audits (zizmor), offline and with its regular persona (few false positives).

    Findings a workflow waives with an inline `# zizmor: ignore[<id>]` comment are not reported by zizmor.
    """
    zizmor = find_tool("zizmor")
    if not zizmor:
        ctx.note("workflows: zizmor not installed, security audits skipped")
        return
    proc = _run([zizmor, "--offline", "--persona", "regular", "--format", "json", "--no-progress", *files], ctx.root)
    findings = _json(proc.stdout)
    if not isinstance(findings, list):
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        ctx.note(f"workflows: zizmor failed, security audits skipped ({last})")
        return
    for item in findings:
        severity = _ZIZMOR_SEVERITY.get(str(item["determinations"]["severity"]).lower(), "warning")
        primary = next((loc for loc in item.get("locations", []) if loc["symbolic"].get("kind") == "Primary"),
                       (item.get("locations") or [None])[0])
        file, line, note = "", None, ""
        if primary is not None:
            key = primary["symbolic"].get("key", {})
            file = str(key.get("Local", {}).get("verbatim_path", ""))
            line = int(primary["concrete"]["location"]["start_point"]["row"]) + 1
            note = str(primary["symbolic"].get("annotation") or "")
        message = f"{item['desc']}{f' ({note})' if note else ''} [{item['ident']}]"
        ctx.add("workflows", severity, file, line, message)


def run_dockerfiles(ctx: Context) -> None:
    files = list(ctx.files.dockerfiles)
    if not files:
        return
    hadolint = find_tool("hadolint")
    if not hadolint:
        ctx.note("dockerfile: skipped (hadolint not installed)")
        return
    # cwd = repo root so a repo's own .hadolint.yaml applies.
    proc = _run([hadolint, "-f", "json", "--no-color", *files], ctx.root)
    for item in _json(proc.stdout) or []:
        level = item.get("level")
        if level not in ("error", "warning"):
            continue
        ctx.add("dockerfile", level, str(item.get("file")), item.get("line"),
                f"{item.get('message')} [{item.get('code')}]")
