"""The trimmed OpenAPI description as JSON Schema: operation lookup, validation, minimal valid instances."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_FILE = Path(__file__).with_name("openapi-subset.json")
BASE = "urn:github-subset"


def _to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema 2020-12: `nullable`, absolute $refs, no `discriminator`."""
    if isinstance(node, list):
        return [_to_jsonschema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_jsonschema(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(out.get("$ref"), str) and out["$ref"].startswith("#"):
        out["$ref"] = BASE + out["$ref"]
    if out.pop("nullable", False):
        if "type" in out and "$ref" not in out:
            t = out["type"]
            out["type"] = [*t, "null"] if isinstance(t, list) else [t, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    regex: re.Pattern[str]
    op: dict[str, Any]


class Spec:
    def __init__(self, path: Path = SPEC_FILE) -> None:
        raw = json.loads(path.read_text(encoding="utf-8"))
        self.doc: dict[str, Any] = _to_jsonschema(raw)
        self.registry: Registry[Any] = Registry().with_resource(BASE, DRAFT202012.create_resource(self.doc))
        self.operations: list[Operation] = []
        self._validators: dict[int, Draft202012Validator] = {}
        for template, methods in self.doc["paths"].items():
            pattern = "^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            for method, op in methods.items():
                self.operations.append(Operation(method.upper(), template, re.compile(pattern), op))

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        for op in self.operations:
            m = op.regex.match(path)
            if m and op.method == method:
                return op, m.groupdict()
        return None

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node and len(node) == 1:
            ref = node["$ref"].removeprefix(BASE + "#/")
            node = self.doc
            for part in ref.split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        # Validators are cached per schema object: building one per request dominated the fake's latency.
        validator = self._validators.get(id(schema))
        if validator is None or validator.schema is not schema:
            validator = self._validators[id(schema)] = Draft202012Validator(schema, registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}"
                for e in validator.iter_errors(instance)]

    def schema(self, name: str) -> dict[str, Any]:
        return {"$ref": f"{BASE}#/components/schemas/{name}"}

    def synth(self, schema: Any, depth: int = 0) -> Any:  # noqa: C901
        """A minimal instance valid against `schema`: required fields only, nulls where allowed."""
        schema = self.resolve(schema)
        if depth > 30 or not isinstance(schema, dict):
            return None
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for sub in schema["allOf"]:
                part = self.synth(sub, depth + 1)
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.resolve(o) for o in schema[key]]
                nullable = any(isinstance(o, dict) and o.get("type") == "null" for o in options)
                if nullable:
                    return None
                return self.synth(options[0], depth + 1)
        if "enum" in schema:
            return copy.deepcopy(schema["enum"][0])
        t = schema.get("type")
        if isinstance(t, list):
            if "null" in t:
                return None
            t = t[0]
        if t == "object" or (t is None and "properties" in schema):
            props = schema.get("properties") or {}
            return {k: self.synth(props.get(k, {}), depth + 1) for k in schema.get("required") or []}
        if t == "array":
            return []
        if t == "string":
            fmt = schema.get("format")
            return {"date-time": "2024-01-01T00:00:00Z", "uri": "https://example.invalid/x",
                    "email": "someone@example.invalid"}.get(str(fmt), "x")
        if t == "integer":
            return int(schema.get("minimum", 1))
        if t == "number":
            return 1.0
        if t == "boolean":
            return False
        return None
