"""Shared by the parity tests: what Flux and Argo CD would compute from the same manifests."""

from __future__ import annotations

import json
import re
from typing import Any


def merge_values(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge recursively, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge_values(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def canonical(value: Any) -> str:
    return json.dumps(value or {}, sort_keys=True)


def go_template(template: str, params: dict[str, str]) -> str:
    """The ApplicationSet goTemplate substitutions the fleet uses (`{{.key}}`)."""
    return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: params[m.group(1)], template)


def appset_params(appset: dict[str, Any]) -> list[dict[str, str]]:
    """Parameters of a list generator, or of a matrix of two list generators."""
    gen = appset["spec"]["generators"][0]
    if "list" in gen:
        return [dict(e) for e in gen["list"]["elements"]]
    left, right = (g["list"]["elements"] for g in gen["matrix"]["generators"])
    return [{**a, **b} for a in left for b in right]
