"""What every check reads: the repo listing, its parsed documents, the schema stores, and the findings sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetstrap.validate.loader import RepoFiles, line_of
from fleetstrap.validate.model import Doc, Finding, Severity, ValidateOptions, json_path, object_id
from fleetstrap.validate.schemas import CoreSchemas, CrdSchemas, is_core_group, split_api_version

# Config files that look like objects but never reach a cluster.
NON_CLUSTER_GROUPS = frozenset({
    "kustomize.config.k8s.io", "config.kubernetes.io", "kpt.dev", "fn.kpt.dev", "builtin", "kind.x-k8s.io",
})


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

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)


def is_cluster_object(data: Any) -> bool:
    if not (isinstance(data, dict) and isinstance(data.get("apiVersion"), str) and isinstance(data.get("kind"), str)):
        return False
    group, _ = split_api_version(data["apiVersion"])
    return group not in NON_CLUSTER_GROUPS and not data["kind"].endswith("List")


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
            # Also *.k8s.io groups Kubernetes does not serve itself (Gateway API) come from CRD schemas.
            validate = ctx.crds.validator(api_version, kind)
        name = str((data.get("metadata") or {}).get("name", "")) if isinstance(data.get("metadata"), dict) else ""
        file = attribute_to or doc.file
        if validate is None:
            key = (kind, name, "", "no schema")
            if key in ctx.reported:
                continue
            ctx.reported.add(key)
            ctx.add("schema", severity_missing, file, None if attribute_to else doc.line,
                    f"no schema for {api_version} {kind}", doc=doc)
            continue
        for path, message in validate(data):
            key = (kind, name, json_path(path), message)
            if key in ctx.reported:
                continue
            ctx.reported.add(key)
            line = None if attribute_to else line_of(doc, path)
            where = locate(data, list(path)) if locate else None
            ctx.add("schema", "error", where[0] if where else file, where[1] if where else line, message,
                    doc=doc, path=path)
