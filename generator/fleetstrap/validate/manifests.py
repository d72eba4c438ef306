"""Which files are manifests: what the repository itself deploys.

A file is a manifest when the repo's own references reach it: a kustomization lists it (resources, bases,
components, crds), a Flux Kustomization's `spec.path` holds it (Flux applies every YAML file under a path without a
kustomization.yaml), an Argo CD Application's (or ApplicationSet template's) source path holds it, or it declares
such a GitOps object itself (the bootstrap applies it). When the repo references nothing (no kustomization, no
Flux Kustomization, no Argo CD Application) every YAML file is a manifest (plain manifest folders).

Other files (Ansible roles, tool and app configs, chart values, docs) are judged lightly: an object there without
a schema is a note, never a warning.
"""

from __future__ import annotations

import fnmatch
import posixpath
from typing import Any

from fleetstrap.validate.check_kustomize import _kustomization_file, _path_entries, _read
from fleetstrap.validate.context import Context

_LISTED = frozenset({"resources", "bases", "components", "crds"})
_FLUX_GROUPS = ("kustomize.toolkit.fluxcd.io", "source.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io",
                "notification.toolkit.fluxcd.io", "image.toolkit.fluxcd.io")


def _norm(path: str, base: str = "") -> str:
    rel = posixpath.normpath(posixpath.join(base, path.strip().removeprefix("./"))) if path.strip() else base
    return "" if rel in (".", "") else rel


def _sources(spec: Any) -> list[dict[str, Any]]:
    if not isinstance(spec, dict):
        return []
    out = [spec["source"]] if isinstance(spec.get("source"), dict) else []
    return out + [s for s in spec.get("sources") or [] if isinstance(s, dict)]


def deployed_files(ctx: Context) -> frozenset[str] | None:
    """The repo's manifest files, or None when the repo references nothing (then every file is one)."""
    yaml_files = set(ctx.files.yaml_files)
    found: set[str] = set()
    dirs: list[tuple[str, bool]] = []  # (directory, recursive) whose YAML files are applied
    referenced = bool(ctx.files.kustomize_roots)
    for d in ctx.files.kustomize_roots:
        for field, entry in _path_entries(_read(ctx.root, _kustomization_file(ctx.root, d))):
            if field in _LISTED and "\n" not in entry:
                found.add(_norm(entry, d))
    for doc in ctx.docs:
        api = doc.data.get("apiVersion") if isinstance(doc.data, dict) else None
        if not isinstance(api, str) or not (api.startswith("argoproj.io/") or ".toolkit.fluxcd.io/" in api):
            continue  # the common case, kept cheap: 100,000 plain objects cost nothing here
        kind = doc.data.get("kind")
        group = api.rpartition("/")[0]
        spec = doc.data.get("spec")
        if group in _FLUX_GROUPS or group == "argoproj.io":
            found.add(doc.file)
        if group == "kustomize.toolkit.fluxcd.io" and kind == "Kustomization":
            referenced = True
            path = spec.get("path") if isinstance(spec, dict) else None
            dirs.append((_norm(path) if isinstance(path, str) else "", True))
        elif group == "argoproj.io" and kind in ("Application", "ApplicationSet"):
            referenced = True
            dirs.extend(_argo_dirs(kind, spec))
    if not referenced:
        return None
    exact = {d for d, _ in dirs}
    recursive = {d for d, rec in dirs if rec}
    globs = [d for d, _ in dirs if "*" in d or "?" in d]
    found.update(f for f in yaml_files if _under(f, exact, recursive, globs))
    return frozenset(found & yaml_files)


def _under(file: str, exact: set[str], recursive: set[str], globs: list[str]) -> bool:
    """Set lookups per ancestor directory: linear in the files however many paths the repo references."""
    parent = file.rsplit("/", 1)[0] if "/" in file else ""
    if parent in exact or "" in recursive:
        return True
    parts = parent.split("/")
    if any("/".join(parts[:i]) in recursive for i in range(1, len(parts))):
        return True
    return any(fnmatch.fnmatch(parent, g) for g in globs)


def _argo_dirs(kind: str, spec: Any) -> list[tuple[str, bool]]:
    """The source directories of an Application (or an ApplicationSet's template and git generators)."""
    out: list[tuple[str, bool]] = []
    if kind == "ApplicationSet" and isinstance(spec, dict):
        out.extend(_generator_dirs(spec))
        template = spec.get("template")
        spec = template.get("spec") if isinstance(template, dict) else None
    for src in _sources(spec):
        path = src.get("path")
        if isinstance(path, str) and "{{" not in path:
            directory = src.get("directory")
            out.append((_norm(path), isinstance(directory, dict) and directory.get("recurse") is True))
    return out


def _generator_dirs(spec: Any) -> list[tuple[str, bool]]:
    """Git directory generators' paths (globs) of an ApplicationSet, applied recursively (conservative)."""
    out: list[tuple[str, bool]] = []
    stack = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            git = node.get("git")
            if isinstance(git, dict):
                out.extend((_norm(e["path"]), True) for e in git.get("directories") or []
                           if isinstance(e, dict) and isinstance(e.get("path"), str) and not e.get("exclude"))
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(node)
    return out
