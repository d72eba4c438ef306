"""`fleetstrap validate`: an offline gate that checks a GitOps repo the way the cluster would.

`validate_repo(root, options) -> Report` runs the named checks; `gate(root)` is the quick version that
init/add/update call before they finish.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path

from fleetstrap.cache import cache_dir
from fleetstrap.errors import FindingsError, UserError
from fleetstrap.validate.context import Context, schema_check
from fleetstrap.validate.loader import OUTSIDE_LINK, build_repo_files, load_files
from fleetstrap.validate.model import CHECKS, Doc, Finding, Report, ValidateOptions
from fleetstrap.validate.schemas import CoreSchemas, CrdSchemas

__all__ = ["CHECKS", "Finding", "FindingsError", "Report", "ValidateOptions", "gate", "validate_repo"]

CRD_SCHEMAS_ENV = "FLEETSTRAP_CRD_SCHEMAS"


def _run_schema(ctx: Context) -> None:
    schema_check(ctx, ctx.manifests)


def _lazy(module: str, name: str) -> Callable[[Context], None]:
    """A check imported only when it runs (a schemas-only run starts without the others' imports)."""
    def run(ctx: Context) -> None:
        import importlib

        getattr(importlib.import_module(f"fleetstrap.validate.{module}"), name)(ctx)

    return run


def _checks() -> list[tuple[str, Callable[[Context], None]]]:
    return [("schema", _run_schema), ("kustomize", _lazy("check_kustomize", "run_kustomize")),
            ("helm", _lazy("check_helm", "run_helm")), ("xref", _lazy("check_xref", "run_xref")),
            ("otel", _lazy("check_otel", "run_otel")), ("workflows", _lazy("check_tools", "run_workflows")),
            ("dockerfile", _lazy("check_tools", "run_dockerfiles")),
            ("placeholders", _lazy("check_placeholders", "run_placeholders"))]


def schema_locations(options: ValidateOptions) -> tuple[str, ...]:
    """`--schema-location`s first, then $FLEETSTRAP_CRD_SCHEMAS (the same for `validate` and the init/add/update
    gate); the repo's CRDs, the bundled schemas and the online catalog follow them in CrdSchemas."""
    env = os.environ.get(CRD_SCHEMAS_ENV)
    extra = tuple(p for p in (env or "").split(os.pathsep) if p and p not in options.schema_locations)
    return (*options.schema_locations, *extra)


def validate_repo(root: Path, options: ValidateOptions | None = None) -> Report:
    # A large repo is millions of parsed containers, none of them in a reference cycle: the cyclic collector's
    # full passes over them cost a fifth of the run and free nothing. Refcounting still frees everything.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _validate_repo(root, options)
    finally:
        if enabled:
            gc.enable()


def _validate_repo(root: Path, options: ValidateOptions | None) -> Report:
    options = options or ValidateOptions()
    unknown = sorted(set(options.disabled) - set(CHECKS))
    if unknown:
        raise UserError(f"unknown check {unknown[0]!r} (checks: {', '.join(CHECKS)})")
    if not root.is_dir():
        raise UserError(f"not a directory: {root}")
    root = root.resolve()
    files = build_repo_files(root)
    docs: list[Doc] = []
    yaml_findings: list[Finding] = [Finding("yaml", "error", rel, None, "", "", OUTSIDE_LINK)
                                    for rel in files.outside_links]
    for file_docs, problems in load_files(root, files.yaml_files):
        docs.extend(file_docs)
        yaml_findings.extend(problems)
    crds = CrdSchemas(schema_locations(options), options.cache_dir or cache_dir("schemas"), options.offline,
                      options.catalog_url, options.bundled_schemas)
    for doc in docs:
        if doc.is_object and doc.data["kind"] == "CustomResourceDefinition":
            crds.add_crd(doc.data)
    ctx = Context(root, options, files, docs, CoreSchemas(options.kubernetes_version), crds)
    from fleetstrap.validate.manifests import deployed_files

    ctx.deployed = deployed_files(ctx)
    if files.kustomize_roots:
        from fleetstrap.validate.check_kustomize import kustomizations, patch_files

        found = patch_files(root, kustomizations(ctx))
        ctx.patch_files = frozenset(p.file for patches in found.values() for p in patches)
    if options.enabled("yaml"):
        ctx.findings.extend(yaml_findings)
    for name, run in _checks():
        if options.enabled(name):
            run(ctx)
    if ctx.unjudged:
        shown = sorted(ctx.unjudged)
        more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
        ctx.note(f"schema: {len(shown)} file(s) the repo does not deploy hold objects without a schema, not checked: "
                 f"{', '.join(shown[:5])}{more}")
    if crds.network_failures:
        ctx.note("schema: the CRDs catalog is unreachable; custom resources without a local schema have no schema")
    findings = sorted(set(ctx.findings), key=lambda f: (f.file, f.line or 0, f.check, f.path, f.message))
    return Report(root, tuple(findings), tuple(ctx.notes), ctx.objects_checked, len(files.yaml_files))


def gate(root: Path, options: ValidateOptions | None = None) -> None:
    """Fail fast (FindingsError, exit 2) when a freshly written repo has errors; warnings pass."""
    if options is None:
        options = ValidateOptions(fast=True, offline=True)
    report = validate_repo(root, options)
    if report.errors:
        first = report.errors[0]
        where = f"{first.file}:{first.line}" if first.line else first.file
        raise FindingsError(
            f"validation failed: {len(report.errors)} error(s); first: {where}: [{first.check}] {first.message}",
            hint=f"run `fleetstrap validate {root}` for all findings",
        )
