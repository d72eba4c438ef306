"""Shared by the parity tests: what Flux and Argo CD would compute from the same manifests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml


def merge_values(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge recursively, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge_values(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def canonical(value: Any) -> str:
    return json.dumps(value or {}, sort_keys=True)


def _lookup(params: dict[str, Any], path: str) -> str:
    value: Any = params
    for part in path.split("."):
        value = value[part]  # missingkey=error, as the fleet's ApplicationSets set it
    return str(value)


def go_template(template: str, params: dict[str, Any]) -> str:
    """The ApplicationSet goTemplate substitutions the fleet uses (`{{.key}}`, `{{.data.version}}`)."""
    return re.sub(r"\{\{\s*\.([\w.]+)\s*\}\}", lambda m: _lookup(params, m.group(1)), template)


def _git_files(gen: dict[str, Any], params: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """A git files generator over the rendered repository at `root`: each matching YAML file's content, plus
    `path` (the file's directory, its basename, the file name), as Argo CD's goTemplate mode gives them. The
    path patterns may use the parameters of the matrix's first generator."""
    out = []
    for entry in gen["git"]["files"]:
        for file in sorted(root.glob(go_template(entry["path"], params))):
            rel = file.relative_to(root).parent.as_posix()
            content = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            out.append({**content, "path": {"path": rel, "basename": Path(rel).name, "filename": file.name}})
    return out


def appset_params(appset: dict[str, Any], root: Path | None = None) -> list[dict[str, Any]]:
    """Parameters of a list generator, or of a matrix of two generators (lists; the second may be a git files
    generator, read from the rendered repository at `root`). The first generator's parameters win, as in Argo
    CD's matrix with goTemplate."""
    gen = appset["spec"]["generators"][0]
    if "list" in gen:
        return [dict(e) for e in gen["list"]["elements"]]
    first, second = gen["matrix"]["generators"]
    out = []
    for a in first["list"]["elements"]:
        if "git" in second:
            assert root is not None, "a git files generator needs the repository"
            right = _git_files(second, a, root)
        else:
            right = second["list"]["elements"]
        out += [{**b, **a} for b in right]
    return out
