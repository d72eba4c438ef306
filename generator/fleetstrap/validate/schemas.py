"""Where schemas come from (kubernetes-validate's bundle, repo CRDs, locations, the catalog) and fast validators.

Each kind's schema is made self-contained (its `_definitions.json` closure inlined) and compiled once per run;
jsonschema-rs does the validating, with python-jsonschema as the fallback when the wheel is absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetstrap.errors import ToolMissingError, UserError
from fleetstrap.validate.model import CATALOG_URL

# (instance path segments, message)
SchemaError = tuple[list[str | int], str]
Validate = Callable[[Any], list[SchemaError]]

_DEFS_REF = "/api/_definitions.json#/$defs/"
_LOCAL_REF = "#/$defs/"
# Groups whose kinds live in kubernetes-validate's bundle: "" (core), unqualified (apps, batch) and *.k8s.io.
_CORE_GROUP = re.compile(r"^(?:[a-z0-9-]*|[a-z0-9.-]*\.k8s\.io)$")
_GO_CASE_INSENSITIVE = re.compile(r"^\^\(\?i\)")


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def is_core_group(group: str) -> bool:
    return bool(_CORE_GROUP.match(group)) and group != "apiextensions.crossplane.io"


# --- compiling -------------------------------------------------------------------------------------------


def _fix_patterns(node: Any) -> Any:
    """Rewrite Go's `^(?i)...` (flags after an anchor) to `(?i)^...`, which Python's re accepts."""
    if isinstance(node, dict):
        out = {k: _fix_patterns(v) for k, v in node.items()}
        pat = node.get("pattern")
        if isinstance(pat, str) and _GO_CASE_INSENSITIVE.match(pat):
            out["pattern"] = "(?i)^" + pat[len("^(?i)"):]
        return out
    if isinstance(node, list):
        return [_fix_patterns(v) for v in node]
    return node


def compile_schema(schema: dict[str, Any], *, draft: int = 2020) -> Validate:
    if draft != 2020:
        schema = _fix_patterns(schema)  # CRD schemas may carry Go regex syntax
    try:
        import jsonschema_rs
    except ImportError:
        return _compile_python(schema, draft)
    cls = jsonschema_rs.Draft202012Validator if draft == 2020 else jsonschema_rs.Draft7Validator
    try:
        validator = cls(schema, validate_formats=False)
    except ValueError:
        # A construct the Rust engine rejects (regex flavour): the pure-Python engine is slower but lenient.
        return _compile_python(schema, draft)

    def run(instance: Any) -> list[SchemaError]:
        out: list[SchemaError] = []
        for err in validator.iter_errors(instance):
            path = list(err.instance_path)
            unexpected = getattr(err.kind, "unexpected", None)
            if isinstance(err.kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties) and unexpected:
                out.extend(([*path, str(key)], f"unknown field {key!r}") for key in unexpected)
            else:
                out.append((path, err.message))
        return out

    return run


def _compile_python(schema: dict[str, Any], draft: int) -> Validate:
    import jsonschema

    cls = jsonschema.Draft202012Validator if draft == 2020 else jsonschema.Draft7Validator
    validator = cls(_fix_patterns(schema))

    def run(instance: Any) -> list[SchemaError]:
        out: list[SchemaError] = []
        for err in validator.iter_errors(instance):
            path = list(err.absolute_path)
            if err.validator == "additionalProperties":
                keys = re.findall(r"'([^']+)'", err.message.split("(", 1)[-1])
                out.extend(([*path, key], f"unknown field {key!r}") for key in keys)
            else:
                out.append((path, err.message))
        return out

    return run


# --- core kinds ------------------------------------------------------------------------------------------


def _bundle_root() -> Path:
    # Located, not imported: importing kubernetes_validate pulls in python-jsonschema (~0.3 s of start-up).
    import importlib.util

    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        raise ToolMissingError("kubernetes-validate is not installed", hint="pip install 'fleetstrap[validate]'")
    return Path(spec.origin).parent / "kubernetes-json-schema"


def _minor_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v)[:2])


def supported_versions() -> list[str]:
    pattern = re.compile(r"^v(\d+\.\d+)\.\d+-local-strict$")
    found = {m.group(1) for d in _bundle_root().iterdir() if (m := pattern.match(d.name))}
    return sorted(found, key=_minor_key)


def _iter_refs(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            ref = cur.get("$ref")
            if isinstance(ref, str):
                yield ref.rsplit("/", 1)[-1]
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)


class CoreSchemas:
    """Strict schemas of the built-in kinds for one Kubernetes minor version."""

    def __init__(self, kubernetes_version: str) -> None:
        want = kubernetes_version.removeprefix("v")
        if not re.fullmatch(r"\d+\.\d+(\.\d+)?", want):
            raise UserError(f"invalid Kubernetes version {kubernetes_version!r} (expected e.g. 1.37)")
        versions = supported_versions()
        usable = [v for v in versions if _minor_key(v) <= _minor_key(want)]
        if not usable or _minor_key(want) > _minor_key(versions[-1]):
            raise UserError(
                f"Kubernetes {want} is not supported by kubernetes-validate "
                f"(supported: {versions[0]} to {versions[-1]})"
            )
        self.version = usable[-1]
        self._dir = _bundle_root() / f"v{self.version}.0-local-strict"
        self._defs: dict[str, Any] | None = None
        self._def_refs: dict[str, set[str]] = {}
        self._cache: dict[tuple[str, str], Validate | None] = {}

    def _definitions(self) -> dict[str, Any]:
        if self._defs is None:
            raw = json.loads((self._dir / "_definitions.json").read_text(encoding="utf-8"))
            self._defs = raw["$defs"]
        return self._defs

    def _closure(self, roots: set[str]) -> set[str]:
        defs = self._definitions()
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            name = todo.pop()
            if name in seen or name not in defs:
                continue
            seen.add(name)
            if name not in self._def_refs:
                self._def_refs[name] = set(_iter_refs(defs[name]))
            todo.extend(self._def_refs[name] - seen)
        return seen

    def load(self, api_version: str, kind: str) -> dict[str, Any] | None:
        """The self-contained schema of one kind, or None when the bundle has no such kind."""
        group, version = split_api_version(api_version)
        stem = f"{kind.lower()}-{group.split('.')[0]}-{version}" if group else f"{kind.lower()}-{version}"
        path = self._dir / f"{stem}.json"
        if not path.is_file():
            return None
        text = path.read_text(encoding="utf-8").replace(_DEFS_REF, _LOCAL_REF)
        schema: dict[str, Any] = json.loads(text)
        schema.pop("$id", None)
        defs = self._definitions()
        schema["$defs"] = {name: defs[name] for name in self._closure(set(_iter_refs(schema)))}
        return schema

    def validator(self, api_version: str, kind: str) -> Validate | None:
        key = (api_version, kind)
        if key not in self._cache:
            schema = self.load(api_version, kind)
            self._cache[key] = None if schema is None else compile_schema(schema, draft=2020)
        return self._cache[key]


# --- custom resources ------------------------------------------------------------------------------------


ROOT_FIELDS: dict[str, Any] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                               "metadata": {"type": "object"}}


def convert_crd_schema(node: Any, *, root: bool = True) -> Any:
    """openAPIV3Schema → strict JSON Schema, as kubeconform's catalog converts it: every object with
    `properties` is closed (the root too) unless the CRD preserves unknown fields there;
    x-kubernetes-int-or-string and nullable become JSON Schema types."""
    if root and isinstance(node, dict) and isinstance(node.get("properties"), dict):
        # The API server always accepts these, whether or not the CRD spells them out.
        node = {**node, "properties": {**ROOT_FIELDS, **node["properties"]}}
    if isinstance(node, list):
        return [convert_crd_schema(v, root=False) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: convert_crd_schema(v, root=False) for k, v in value.items()} if isinstance(
                value, dict) else value
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = convert_crd_schema(value, root=False)
        else:
            out[key] = value
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: dict[str, Any]) -> Iterator[tuple[tuple[str, str, str], dict[str, Any]]]:
    """((group, kind lowercase, version), schema) for every version of a CustomResourceDefinition."""
    spec = crd.get("spec") or {}
    group = spec.get("group")
    kind = (spec.get("names") or {}).get("kind")
    if not isinstance(group, str) or not isinstance(kind, str):
        return
    for ver in spec.get("versions") or []:
        if not isinstance(ver, dict):
            continue
        schema = ((ver.get("schema") or {}).get("openAPIV3Schema")) if isinstance(ver.get("schema"), dict) else None
        if isinstance(schema, dict) and isinstance(ver.get("name"), str):
            yield (group, kind.lower(), ver["name"]), convert_crd_schema(schema)


def _fill(template: str, group: str, kind: str, version: str) -> str:
    out = template
    for names, value in (
        (("{group}", "{{.Group}}", "{{ .Group }}"), group),
        (("{kind}", "{{.ResourceKind}}", "{{ .ResourceKind }}"), kind),
        (("{version}", "{{.ResourceAPIVersion}}", "{{ .ResourceAPIVersion }}"), version),
    ):
        for name in names:
            out = out.replace(name, value)
    return out


def _is_template(location: str) -> bool:
    return "{" in location


# Compact schemas generated by scripts/gen_crd_schemas.py from the controllers' CRDs at the pinned versions
# (kubeconform layout: {group}/{kind}_{version}.json; provenance in index.json).
BUNDLED_SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"


def bundled_schema_dir() -> Path:
    """The directory of the CRD schemas shipped in the package (a `--schema-location`-style directory)."""
    return BUNDLED_SCHEMAS


def bundled_kinds() -> set[tuple[str, str, str]]:
    """(group, kind lowercase, version) of every bundled schema."""
    index = json.loads((BUNDLED_SCHEMAS / "index.json").read_text(encoding="utf-8"))
    out: set[tuple[str, str, str]] = set()
    for rel in index["schemas"]:
        group, _, name = rel.removesuffix(".json").partition("/")
        kind, _, version = name.rpartition("_")
        out.add((group, kind, version))
    return out


# --- removed and deprecated API versions ------------------------------------------------------------------
# Generated with the bundled schemas (scripts/gen_crd_schemas.py, index.json "apis"): per bundled kind, what the
# pinned release of its controller serves (served, storage, deprecated and the CRD's deprecation warning, per
# version) and, from a walk over the controller's earlier releases, the release that stopped serving each version
# it no longer serves.


def version_key(version: str) -> tuple[int, int, int]:
    """Kubernetes' version priority: GA above beta above alpha, then by number (v2 > v1 > v1beta3)."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if m is None:
        return (-1, -1, -1)
    stage = {"alpha": 0, "beta": 1}.get(m.group(2) or "", 2)
    return (int(m.group(1)) if stage == 2 else 0, stage, int(m.group(1)) * 1000 + int(m.group(3) or 0))


@dataclass(frozen=True)
class ApiVersions:
    """One bundled kind at the pinned release of its controller."""

    kind: str
    release: str  # "Flux 2.9.4"
    served: tuple[str, ...]  # best first
    deprecated: dict[str, str]  # served but deprecated: version -> the CRD's warning ("" when it gives none)
    removed: dict[str, str]  # no longer served: version -> the release that stopped serving it
    unserved: frozenset[str]  # still in the CRD, served: false

    def use(self, group: str) -> str | None:
        """The version to use: the best served version that is not deprecated."""
        best = next((v for v in self.served if v not in self.deprecated), None)
        return f"{group}/{best}" if best else None


_APIS: dict[tuple[str, str], ApiVersions] | None = None


def api_versions(group: str, kind: str) -> ApiVersions | None:
    global _APIS
    if _APIS is None:
        index = json.loads((BUNDLED_SCHEMAS / "index.json").read_text(encoding="utf-8"))
        table: dict[tuple[str, str], ApiVersions] = {}
        for api, entry in index.get("apis", {}).items():
            g, _, k = api.partition("/")
            rows = entry["versions"]
            table[(g, k)] = ApiVersions(
                entry["kind"], entry["release"],
                tuple(sorted((v for v, r in rows.items() if r["served"]), key=version_key, reverse=True)),
                {v: r.get("warning", "") for v, r in rows.items() if r["served"] and r["deprecated"]},
                dict(entry.get("removed", {})), frozenset(v for v, r in rows.items() if not r["served"]))
        _APIS = table
    return _APIS.get((group, kind.lower()))


def removed_api(api_version: str, kind: str) -> str | None:
    """Why `api_version` `kind` is not served by the pinned release of its controller, or None."""
    group, version = split_api_version(api_version)
    entry = api_versions(group, kind)
    if entry is None or not entry.served or version in entry.served:
        return None
    if version not in entry.removed and version not in entry.unserved and \
            version_key(version) > version_key(entry.served[0]):
        return None  # newer than the pinned release (the catalog or a schema location may know it)
    use = entry.use(group) or f"{group}/{entry.served[0]}"
    when = f"removed in {entry.removed[version]}; " if version in entry.removed else ""
    return (f"{api_version} {kind} is no longer served ({when}{entry.release} serves only "
            f"{', '.join(f'{group}/{v}' for v in entry.served)}): use apiVersion {use}")


def deprecated_api(api_version: str, kind: str) -> str | None:
    """Why `api_version` `kind` should be moved off, while the pinned release still serves it; or None."""
    group, version = split_api_version(api_version)
    entry = api_versions(group, kind)
    if entry is None or version not in entry.deprecated:
        return None
    use = entry.use(group)
    warning = entry.deprecated[version].rstrip(".")
    if use:
        return f"{api_version} {kind} is deprecated ({entry.release} still serves it): use apiVersion {use}"
    # Every served version is deprecated: the project replaces the kind itself, and its warning says by what.
    if warning:
        return f"{warning} ({entry.release} still serves it)"
    return f"{api_version} {kind} is deprecated ({entry.release} still serves it; no version of {kind} replaces it)"


@dataclass
class CrdSchemas:
    """Lookup of custom-resource schemas, each compiled once, in the documented order: the schema locations
    (`--schema-location`, then $FLEETSTRAP_CRD_SCHEMAS), the repo's own CRDs, the bundled set, the online
    catalog (cached)."""

    locations: tuple[str, ...]
    cache_dir: Path
    offline: bool
    catalog: str | None = CATALOG_URL
    bundled: bool = True

    def __post_init__(self) -> None:
        self.repo: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._cache: dict[tuple[str, str, str], Validate | None] = {}
        self._unreachable: set[str] = set()
        self.network_failures = 0

    def own_schema(self, api_version: str, kind: str) -> bool:
        """Whether the repo's CRDs or the schema locations define this version (the repo installs it itself)."""
        group, version = split_api_version(api_version)
        key = (group, kind.lower(), version)
        return key in self.repo or self._from(tuple(loc for loc in self.locations if not re.match(
            r"^https?://", loc)), *key) is not None

    def add_crd(self, crd: dict[str, Any]) -> None:
        for key, schema in crd_schemas(crd):
            self.repo.setdefault(key, schema)

    def validator(self, api_version: str, kind: str) -> Validate | None:
        group, version = split_api_version(api_version)
        key = (group, kind.lower(), version)
        if key not in self._cache:
            schema = self._find(*key)
            self._cache[key] = None if schema is None else compile_schema(schema, draft=7)
        return self._cache[key]

    def _find(self, group: str, kind: str, version: str) -> dict[str, Any] | None:
        schema = self._from(self.locations, group, kind, version)
        if schema is None and (group, kind, version) in self.repo:
            schema = self.repo[(group, kind, version)]
        if schema is None and self.bundled:
            schema = _read_json(BUNDLED_SCHEMAS / group / f"{kind}_{version}.json")
        if schema is None and self.catalog:
            schema = self._from((self.catalog,), group, kind, version)
        return schema

    def _from(self, locations: tuple[str, ...], group: str, kind: str, version: str) -> dict[str, Any] | None:
        for loc in locations:
            if _is_template(loc):
                target = _fill(loc, group, kind, version)
            else:
                target = str(Path(loc) / group / f"{kind}_{version}.json")
            schema = self._fetch(target) if re.match(r"^https?://", target) else _read_json(Path(target))
            if schema is not None:
                return schema
        return None

    def _fetch(self, url: str) -> dict[str, Any] | None:
        cached = self.cache_dir / (hashlib.sha256(url.encode()).hexdigest()[:40] + ".json")
        hit = _read_json(cached)
        if hit is not None or self.offline:
            return hit
        host = url.split("/", 3)[2]
        if host in self._unreachable:
            return None
        import urllib.error  # only when a schema is fetched: keeps the offline start fast
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None  # the catalog has no such kind
            # Any other status (rate limit, server error) says nothing about the kind: a network failure.
            self.network_failures += 1
            return None
        except (urllib.error.URLError, OSError, TimeoutError):
            # Offline or blocked: remember it so one run pays the timeout once.
            self._unreachable.add(host)
            self.network_failures += 1
            return None
        try:
            schema = json.loads(body)
        except ValueError:
            return None
        if not isinstance(schema, dict):
            return None
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(body)
            tmp.replace(cached)
        except OSError:
            pass  # a read-only cache only costs a refetch next time
        return schema


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
