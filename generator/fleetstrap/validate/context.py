"""What every check reads: the repo listing, its parsed documents, the schema stores, and the findings sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetstrap.validate.loader import RepoFiles, line_of
from fleetstrap.validate.model import Doc, Finding, Severity, ValidateOptions, json_path, object_id
from fleetstrap.validate.schemas import (
    CoreSchemas,
    CrdSchemas,
    deprecated_api,
    is_core_group,
    removed_api,
    split_api_version,
)

# Config files that look like objects but never reach a cluster.
NON_CLUSTER_GROUPS = frozenset({
    "kustomize.config.k8s.io", "config.kubernetes.io", "kpt.dev", "fn.kpt.dev", "builtin", "kind.x-k8s.io",
})


# CRDs a controller extends in the cluster: flux-operator patches its own kinds into the Flux Alert CRD's
# eventSources kind enum. (group, kind, path with "*" for any index) -> (the controller's API group, whose
# objects in the repo say it runs; the values it adds).
EXTENDED_ENUMS: dict[tuple[str, str, tuple[str, ...]], tuple[str, frozenset[str]]] = {
    ("notification.toolkit.fluxcd.io", "Alert", ("spec", "eventSources", "*", "kind")):
        ("fluxcd.controlplane.io",
         frozenset({"FluxInstance", "FluxReport", "ResourceSet", "ResourceSetInputProvider"})),
}


def _matches(pattern: tuple[str, ...], path: list[str | int] | tuple[str | int, ...]) -> bool:
    return len(pattern) == len(path) and all(p == "*" or p == str(q) for p, q in zip(pattern, path, strict=True))


def _value_at(data: Any, path: list[str | int] | tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


@dataclass
class Context:
    root: Path
    options: ValidateOptions
    files: RepoFiles
    docs: list[Doc]
    core: CoreSchemas
    crds: CrdSchemas
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    objects_checked: int = 0
    # (kind, name, path, message) of schema errors already reported, so built/rendered copies stay quiet.
    reported: set[tuple[str, str, str, str]] = field(default_factory=set)
    # Kustomize patch files: fragments, checked only through the build output they change.
    patch_files: frozenset[str] = frozenset()
    # Objects the helm check rendered from the repo's charts, for checks of their content (otel).
    rendered: list[Doc] = field(default_factory=list)
    # The files the repo deploys (validate.manifests), None when it references nothing (all are manifests).
    deployed: frozenset[str] | None = None
    # Files not deployed whose objects have no schema: one note, not a warning each.
    unjudged: set[str] = field(default_factory=set)
    _groups: set[str] | None = None

    @property
    def objects(self) -> list[Doc]:
        return [d for d in self.docs if d.is_object]

    @property
    def manifests(self) -> list[Doc]:
        """The documents that stand on their own (every document but kustomize patches)."""
        return [d for d in self.docs if d.file not in self.patch_files]

    def add(self, check: str, severity: Severity, file: str, line: int | None, message: str, *,
            doc: Doc | None = None, path: list[str | int] | tuple[str | int, ...] = ()) -> None:
        self.findings.append(Finding(check, severity, file, line, object_id(doc.data) if doc else "",
                                     json_path(path), message))

    def extended_by_controller(self, group: str, kind: str, data: Any, path: list[str | int] | tuple[str | int, ...]
                               ) -> bool:
        """Whether an error at `path` is a value a controller the repo runs adds to this CRD in the cluster."""
        for (g, k, pattern), (controller, values) in EXTENDED_ENUMS.items():
            if g == group and k == kind and _matches(pattern, path) and _value_at(data, path) in values:
                if self._groups is None:
                    self._groups = {d.data["apiVersion"].rpartition("/")[0] for d in self.docs if d.is_object}
                return controller in self._groups
        return False

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)


def is_cluster_object(data: Any) -> bool:
    if not (isinstance(data, dict) and isinstance(data.get("apiVersion"), str) and isinstance(data.get("kind"), str)):
        return False
    group, _ = split_api_version(data["apiVersion"])
    return group not in NON_CLUSTER_GROUPS and not data["kind"].endswith("List")


def _removed_or_deprecated(ctx: Context, doc: Doc, attribute_to: str | None) -> bool:
    """An error for an API version the pinned controller no longer serves (True: nothing more to check), a
    warning for one it serves deprecated. A repo that installs the CRD itself is judged by its own CRD."""
    data = doc.data
    api_version, kind = data["apiVersion"], data["kind"]
    removed = removed_api(api_version, kind)
    deprecated = None if removed else deprecated_api(api_version, kind)
    if (removed is None and deprecated is None) or ctx.crds.own_schema(api_version, kind):
        return False
    file = attribute_to or doc.file
    if removed:
        ctx.add("schema", "error", file, None if attribute_to else doc.line, removed, doc=doc, path=("apiVersion",))
        return True
    assert deprecated is not None
    name = str((data.get("metadata") or {}).get("name", "")) if isinstance(data.get("metadata"), dict) else ""
    if (kind, name, "apiVersion", deprecated) not in ctx.reported:  # a built copy of the same object stays quiet
        ctx.reported.add((kind, name, "apiVersion", deprecated))
        ctx.add("schema", "warning", file, None if attribute_to else line_of(doc, ("apiVersion",)), deprecated,
                doc=doc, path=("apiVersion",))
    return False


# Where in the repo an error of built output comes from: (file, line) of the patch that set the path, or None.
Locate = Callable[[dict[str, Any], list[str | int]], "tuple[str, int] | None"]


def schema_check(ctx: Context, docs: list[Doc], *, attribute_to: str | None = None,
                 locate: Locate | None = None) -> None:
    """Validate objects strictly; with `attribute_to` (built or rendered output) findings go to that file
    (or, through `locate`, to the patch file that introduced them) and errors already reported for the same
    object and path are not repeated."""
    severity_missing: Severity = "error" if ctx.options.strict else "warning"
    for doc in docs:
        data = doc.data
        if not is_cluster_object(data):
            continue
        ctx.objects_checked += 1
        api_version, kind = data["apiVersion"], data["kind"]
        group, _ = split_api_version(api_version)
        validate = ctx.core.validator(api_version, kind) if is_core_group(group) else None
        if validate is None and "." in group:
            if ctx.crds.bundled and _removed_or_deprecated(ctx, doc, attribute_to):
                continue
            # Also *.k8s.io groups Kubernetes does not serve itself (Gateway API) come from CRD schemas.
            validate = ctx.crds.validator(api_version, kind)
        name = str((data.get("metadata") or {}).get("name", "")) if isinstance(data.get("metadata"), dict) else ""
        file = attribute_to or doc.file
        if validate is None and attribute_to is None and ctx.deployed is not None and doc.file not in ctx.deployed:
            ctx.unjudged.add(doc.file)
            continue
        if validate is None:
            key = (kind, name, "", "no schema")
            if key in ctx.reported:
                continue
            ctx.reported.add(key)
            ctx.add("schema", severity_missing, file, None if attribute_to else doc.line,
                    f"no schema for {api_version} {kind}", doc=doc)
            continue
        for path, message in validate(data):
            if ctx.extended_by_controller(group, kind, data, path):
                continue  # the controller adds this value to the CRD in the cluster
            key = (kind, name, json_path(path), message)
            if key in ctx.reported:
                continue
            ctx.reported.add(key)
            line = None if attribute_to else line_of(doc, path)
            where = locate(data, list(path)) if locate else None
            ctx.add("schema", "error", where[0] if where else file, where[1] if where else line, message,
                    doc=doc, path=path)
