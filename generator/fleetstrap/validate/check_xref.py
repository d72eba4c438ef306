"""Cross-references the cluster would resolve: Flux sources, paths, dependsOn, ImagePolicies, Argo CD projects."""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fleetstrap.errors import NotAFleetRepoError
from fleetstrap.repo import load_fleet_answers
from fleetstrap.validate.confine import read_repo_text, repo_path
from fleetstrap.validate.context import Context
from fleetstrap.validate.loader import line_of
from fleetstrap.validate.model import Doc

_SETTER = re.compile(r"#\s*\{\s*\"\$imagepolicy\"\s*:\s*\"([^\"]*)\"\s*\}")
_TEMPLATE = re.compile(r"\{\{[^}]*\}\}")


@dataclass(frozen=True)
class Obj:
    doc: Doc
    kind: str
    group: str
    name: str
    namespace: str | None


# What `flux bootstrap` creates in the cluster and many repos never commit (gotk-sync.yaml is often absent).
BOOTSTRAP_OBJECTS: frozenset[tuple[str, str, str]] = frozenset({
    ("GitRepository", "flux-system", "flux-system"), ("OCIRepository", "flux-system", "flux-system"),
    ("Kustomization", "flux-system", "flux-system"),
})
_ARTIFACT_GENERATOR = ("ArtifactGenerator", "source.extensions.fluxcd.io")


class Index:
    def __init__(self, docs: list[Doc], generated_config_maps: set[str]) -> None:
        self.by_kind: dict[str, list[Obj]] = {}
        # (kind, namespace, name) the cluster will have although no file of the repo declares them.
        self.implied: dict[tuple[str, str | None, str], str] = {
            key: "created by `flux bootstrap`" for key in BOOTSTRAP_OBJECTS}
        for doc in docs:
            d = doc.data
            if not doc.is_object or not isinstance(d.get("metadata"), dict):
                continue
            name = d["metadata"].get("name")
            if not isinstance(name, str):
                continue
            ns = d["metadata"].get("namespace")
            group = d["apiVersion"].rpartition("/")[0]
            obj = Obj(doc, d["kind"], group, name, ns if isinstance(ns, str) else None)
            self.by_kind.setdefault(obj.kind, []).append(obj)
        self.generated_config_maps = generated_config_maps
        # An ArtifactGenerator produces one ExternalArtifact per spec.artifacts[] entry, in its namespace.
        for gen in self.of(*_ARTIFACT_GENERATOR):
            for art in _get(gen.doc.data, "spec", "artifacts") or []:
                if isinstance(art, dict) and isinstance(art.get("name"), str):
                    self.implied[("ExternalArtifact", gen.namespace, art["name"])] = f"ArtifactGenerator {gen.name}"

    def of(self, kind: str, group: str | None = None) -> list[Obj]:
        return [o for o in self.by_kind.get(kind, []) if group is None or o.group == group]

    def has(self, kind: str, name: str, namespace: str | None, group: str | None = None) -> bool:
        if kind == "ConfigMap" and name in self.generated_config_maps:
            return True
        if any(k == kind and n == name and _same_ns(namespace, ns) for (k, ns, n) in self.implied):
            return True
        # Namespaces are compared only when both sides state one (kustomize may set them later).
        return any(o.name == name and _same_ns(namespace, o.namespace) for o in self.of(kind, group))

    def names(self, kind: str, namespace: str | None, group: str | None = None) -> list[str]:
        """Names of `kind` the repo (or bootstrap, or a generator) provides in that namespace."""
        out = [o.name for o in self.of(kind, group) if _same_ns(namespace, o.namespace)]
        out += [n for (k, ns, n) in self.implied if k == kind and _same_ns(namespace, ns)]
        if kind == "ConfigMap":
            out += sorted(self.generated_config_maps)
        return out

    def owns(self, kind: str, namespace: str | None, group: str | None = None) -> bool:
        """Whether the repo declares objects of `kind` in that namespace: then it is the only author there,
        and a reference it cannot resolve would certainly fail in the cluster."""
        if kind == "ConfigMap" and self.generated_config_maps:
            return True
        return any(_same_ns(namespace, o.namespace) for o in self.of(kind, group))


def _same_ns(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


def unresolved(index: Index, kind: str, name: str, namespace: str | None,
               group: str | None = None) -> tuple[str, str]:
    """(severity, message) for a reference the repo cannot resolve. An error when the repo authors that kind
    in that namespace (or the name is a near miss of one it has); else a warning that says why it may exist."""
    where = f"{namespace}/{name}" if namespace else name
    close = difflib.get_close_matches(name, index.names(kind, namespace, group), n=1, cutoff=0.75)
    if close:
        return "error", f"{kind} {where} is not defined in the repo (did you mean {close[0]!r}?)"
    if index.owns(kind, namespace, group):
        return "error", f"{kind} {where} is not defined in the repo"
    return "warning", (f"{kind} {where} is not defined in the repo; fine only if another tool or controller "
                       "creates it in the cluster")


def _get(data: Any, *keys: str | int) -> Any:
    for k in keys:
        if isinstance(k, int):
            if not isinstance(data, list) or k >= len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[k] if isinstance(k, int) else data.get(k)
    return data


def _rel_dir(root: Path, path: str, base: str = "") -> Path:
    # A path resolving outside the repo is treated as absent (and never opened): Flux refuses it too.
    return repo_path(root, path, base) or root / ".fleetstrap-outside-the-repository"


def generated_config_maps(ctx: Context) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """configMapGenerator name -> [(kustomization dir, {key: file relative to repo})]."""
    out: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for doc in ctx.docs:
        name = doc.file.rsplit("/", 1)[-1]
        if name not in ("kustomization.yaml", "kustomization.yml") or not isinstance(doc.data, dict):
            continue
        base = doc.file.rsplit("/", 1)[0] if "/" in doc.file else ""
        for gen in doc.data.get("configMapGenerator") or []:
            if not isinstance(gen, dict) or not isinstance(gen.get("name"), str):
                continue
            files: dict[str, str] = {}
            for entry in gen.get("files") or []:
                if isinstance(entry, str):
                    key, _, path = entry.rpartition("=")
                    key = key or PurePosixPath(path).name
                    files[key] = str(PurePosixPath(base) / path) if base else path
            out.setdefault(gen["name"], []).append((base, files))
    return out


def run_xref(ctx: Context) -> None:
    gens = generated_config_maps(ctx)
    index = Index(ctx.manifests, set(gens))
    _flux(ctx, index)
    _image_setters(ctx, index)
    _argo(ctx, index)


# --- Flux ------------------------------------------------------------------------------------------------


def _ref(ctx: Context, index: Index, obj: Obj, ref: Any, path: tuple[str | int, ...],
         allowed: tuple[str, ...]) -> str | None:
    """Check one `sourceRef`-style reference; returns its kind when well formed."""
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        return None
    kind = ref.get("kind")
    if not isinstance(kind, str) or kind not in allowed:
        return None
    ns = ref.get("namespace") if isinstance(ref.get("namespace"), str) else obj.namespace
    if not index.has(kind, ref["name"], ns):
        severity, message = unresolved(index, kind, ref["name"], ns)
        _add(ctx, obj, (*path, "name"), message, severity)
    return kind


def _add(ctx: Context, obj: Obj, path: tuple[str | int, ...], message: str, severity: str = "error") -> None:
    ctx.add("xref", "error" if severity == "error" else "warning", obj.doc.file, line_of(obj.doc, path), message,
            doc=obj.doc, path=path)


def normalize_git_url(url: str) -> str:
    """`ssh://git@host/o/r.git`, `git@host:o/r`, `https://host/o/r` → `host/o/r` (for comparing sources)."""
    u = url.strip().lower()
    u = re.sub(r"^[a-z+]+://", "", u)
    u = re.sub(r"^[^@/]+@", "", u)
    u = re.sub(r"^([^/:]+):(?!\d+/)", r"\1/", u)  # scp-like host:path, not host:port
    u = re.sub(r":\d+/", "/", u)
    return u.removesuffix("/").removesuffix(".git")


def own_repo_urls(root: Path) -> set[str] | None:
    """This repo's own git URLs (fleetstrap answers), or None when unknown (then every source counts as ours)."""
    try:
        url = load_fleet_answers(root).git_url
    except NotAFleetRepoError:
        return None
    return {normalize_git_url(url)} if url else None


def _is_own(ctx: Context, url: Any) -> bool:
    """Paths of a source are checked in this repo only when the source is this repo (or unknowable)."""
    if not isinstance(url, str) or not url or _templated(url):
        return True
    own = own_repo_urls(ctx.root)
    return own is None or normalize_git_url(url) in own


def _source_is_own(ctx: Context, key: tuple[Any, Any], git_urls: dict[tuple[Any, Any], Any]) -> bool:
    """Whether a Flux GitRepository is this repo, so that paths in it must exist here. Without fleetstrap's
    answers, the bootstrap source (flux-system) is this repo, and so is any source with the same URL; a source
    with another URL, or one the repo does not declare, is someone else's repo (a tenant's, say)."""
    url = git_urls.get(key)
    if own_repo_urls(ctx.root) is not None:
        return _is_own(ctx, url)
    if key[0] == "flux-system":
        return True
    boot = git_urls.get(("flux-system", "flux-system")) or git_urls.get(("flux-system", None))
    if not isinstance(url, str) or not isinstance(boot, str):
        return False
    return _templated(url) or normalize_git_url(url) == normalize_git_url(boot)


def _flux(ctx: Context, index: Index) -> None:
    sources = ("GitRepository", "OCIRepository", "Bucket", "ExternalArtifact")
    git_urls: dict[tuple[Any, Any], Any] = {
        (o.name, o.namespace): _get(o.doc.data, "spec", "url") for o in index.of("GitRepository")}
    for ks in index.of("Kustomization", "kustomize.toolkit.fluxcd.io"):
        spec = ks.doc.data.get("spec") or {}
        kind = _ref(ctx, index, ks, spec.get("sourceRef"), ("spec", "sourceRef"), sources)
        path = spec.get("path")
        ref: dict[str, Any] = spec["sourceRef"] if isinstance(spec.get("sourceRef"), dict) else {}
        key = (ref.get("name"), ref.get("namespace") or ks.namespace)
        if kind == "GitRepository" and isinstance(path, str) and _source_is_own(ctx, key, git_urls) \
                and not _rel_dir(ctx.root, path).is_dir():
            _add(ctx, ks, ("spec", "path"), f"path {path!r} does not exist in the repo")
        _depends_on(ctx, index, ks)
    for hr in index.of("HelmRelease", "helm.toolkit.fluxcd.io"):
        spec = hr.doc.data.get("spec") or {}
        chart_spec = _get(spec, "chart", "spec")
        if isinstance(chart_spec, dict):
            kind = _ref(ctx, index, hr, chart_spec.get("sourceRef"), ("spec", "chart", "spec", "sourceRef"),
                        ("HelmRepository", "GitRepository", "Bucket"))
            chart = chart_spec.get("chart")
            if kind in ("GitRepository", "Bucket") and isinstance(chart, str) \
                    and not (_rel_dir(ctx.root, chart) / "Chart.yaml").is_file():
                _add(ctx, hr, ("spec", "chart", "spec", "chart"), f"chart path {chart!r} has no Chart.yaml")
        _ref(ctx, index, hr, spec.get("chartRef"), ("spec", "chartRef"),
             ("OCIRepository", "HelmChart", "ExternalArtifact"))
        for i, vf in enumerate(spec.get("valuesFrom") or []):
            if isinstance(vf, dict) and vf.get("kind") == "ConfigMap" and not vf.get("optional"):
                _ref(ctx, index, hr, vf, ("spec", "valuesFrom", i), ("ConfigMap",))
        _depends_on(ctx, index, hr)
    for auto in index.of("ImageUpdateAutomation", "image.toolkit.fluxcd.io"):
        _ref(ctx, index, auto, _get(auto.doc.data, "spec", "sourceRef"), ("spec", "sourceRef"), ("GitRepository",))
    for pol in index.of("ImagePolicy", "image.toolkit.fluxcd.io"):
        ref = _get(pol.doc.data, "spec", "imageRepositoryRef")
        if isinstance(ref, dict):
            _ref(ctx, index, pol, {"kind": "ImageRepository", **ref}, ("spec", "imageRepositoryRef"),
                 ("ImageRepository",))
    for kind, group in (("Kustomization", "kustomize.toolkit.fluxcd.io"), ("HelmRelease", "helm.toolkit.fluxcd.io")):
        _cycles(ctx, index.of(kind, group))


def _depends_on(ctx: Context, index: Index, obj: Obj) -> None:
    for i, dep in enumerate(_get(obj.doc.data, "spec", "dependsOn") or []):
        if isinstance(dep, dict) and isinstance(dep.get("name"), str):
            ns = dep.get("namespace") if isinstance(dep.get("namespace"), str) else obj.namespace
            if not index.has(obj.kind, dep["name"], ns, obj.group):
                severity, message = unresolved(index, obj.kind, dep["name"], ns, obj.group)
                _add(ctx, obj, ("spec", "dependsOn", i, "name"), f"dependsOn: {message}", severity)


def _cycles(ctx: Context, objs: list[Obj]) -> None:
    names = {o.name: o for o in objs}
    edges = {o.name: [d["name"] for d in (_get(o.doc.data, "spec", "dependsOn") or [])
                      if isinstance(d, dict) and d.get("name") in names] for o in objs}
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        stack.append(n)
        for m in edges.get(n, []):
            if state.get(m) == 1:
                cycle = stack[stack.index(m):]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    first = min(cycle)
                    at = cycle.index(first)
                    ordered = [*cycle[at:], *cycle[:at], first]
                    _add(ctx, names[first], ("spec", "dependsOn"), "dependsOn cycle: " + " -> ".join(ordered))
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [])


def _image_setters(ctx: Context, index: Index) -> None:
    policies = index.of("ImagePolicy", "image.toolkit.fluxcd.io")
    for rel in ctx.files.yaml_files:
        text = read_repo_text(ctx.root, rel)
        if text is None:
            continue
        if "$imagepolicy" not in text:
            continue
        for lineno, line in enumerate(text.splitlines(), start=1):
            for m in _SETTER.finditer(line):
                parts = m.group(1).split(":")
                if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("tag", "name", "digest")):
                    ctx.add("xref", "error", rel, lineno, f"malformed $imagepolicy marker {m.group(1)!r}")
                    continue
                ns, name = parts[0], parts[1]
                if not any(p.name == name and (p.namespace is None or p.namespace == ns) for p in policies):
                    ctx.add("xref", "error", rel, lineno, f"$imagepolicy marker names ImagePolicy {ns}/{name}, "
                            "which is not defined in the repo")


# --- Argo CD ---------------------------------------------------------------------------------------------


def _argo(ctx: Context, index: Index) -> None:
    projects = {o.name: o for o in index.of("AppProject", "argoproj.io")}
    for app in index.of("Application", "argoproj.io"):
        _app_spec(ctx, app, projects, app.doc.data.get("spec"), ("spec",))
    for appset in index.of("ApplicationSet", "argoproj.io"):
        template = _get(appset.doc.data, "spec", "template")
        if not isinstance(template, dict):
            continue
        seen = len(ctx.findings)
        for params in _generator_params(ctx, appset.doc.data.get("spec") or {}):
            _app_spec(ctx, appset, projects, _substitute(template, params).get("spec"), ("spec", "template", "spec"))
        # One finding per problem, however many generated apps share it.
        unique: list[Any] = []
        for f in ctx.findings[seen:]:
            if f not in unique:
                unique.append(f)
        ctx.findings[seen:] = unique


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _app_spec(ctx: Context, obj: Obj, projects: dict[str, Obj], spec: Any, base: tuple[str | int, ...]) -> None:
    if not isinstance(spec, dict):
        return
    project = spec.get("project")
    if isinstance(project, str) and not _templated(project) and project != "default" and project not in projects:
        close = difflib.get_close_matches(project, list(projects), n=1, cutoff=0.75)
        if projects or close:
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _add(ctx, obj, (*base, "project"), f"AppProject {project!r} is not defined in the repo{hint}")
        else:
            # No AppProject in the repo at all: Argo CD's own install or another repo manages them.
            _add(ctx, obj, (*base, "project"), f"AppProject {project!r} is not defined in the repo; fine only if "
                 "it is created in the cluster another way", "warning")
    sources: list[tuple[tuple[str | int, ...], Any]] = []
    if isinstance(spec.get("source"), dict):
        sources.append(((*base, "source"), spec["source"]))
    for i, src in enumerate(spec.get("sources") or []):
        sources.append(((*base, "sources", i), src))
    refs = {s.get("ref"): s for _, s in sources if isinstance(s, dict) and isinstance(s.get("ref"), str)}
    for path, src in sources:
        if isinstance(src, dict):
            _app_source(ctx, obj, src, path, refs)
    if isinstance(project, str) and project in projects:
        _destination(ctx, obj, projects[project], spec.get("destination"), (*base, "destination"))


def _app_source(ctx: Context, obj: Obj, src: dict[str, Any], path: tuple[str | int, ...],
                refs: dict[Any, Any]) -> None:
    # The source's own path is checked only in this repo; `$ref/...` value files (multi-source: chart from a
    # Helm/OCI registry, values from a `ref` source) are checked whenever the ref source is this repo.
    src_path = src.get("path")
    local = (not src.get("chart") and isinstance(src_path, str) and not _templated(src_path)
             and _is_own(ctx, src.get("repoURL")))
    if local and not _rel_dir(ctx.root, str(src_path)).is_dir():
        _add(ctx, obj, (*path, "path"), f"path {src_path!r} does not exist in the repo")
        return
    helm: dict[str, Any] = src["helm"] if isinstance(src.get("helm"), dict) else {}
    if helm.get("ignoreMissingValueFiles"):
        return
    for j, vf in enumerate(helm.get("valueFiles") or []):
        where = (*path, "helm", "valueFiles", j)
        if isinstance(vf, str) and vf.startswith("$") and not _templated(vf.partition("/")[0]):
            name = vf[1:].partition("/")[0]
            if name not in refs:
                _add(ctx, obj, where, f"values file {vf!r} references ${name}, but no source has ref {name!r}")
                continue
            target = _value_file("", vf, refs) if _is_own(ctx, refs[name].get("repoURL")) else None
        elif local:
            target = _value_file(str(src_path), vf, refs)
        else:
            continue
        if target is not None and not (ctx.root / target).is_file():
            _add(ctx, obj, where, f"values file {vf!r} does not exist in the repo")


def _value_file(src_path: str, vf: Any, refs: dict[Any, Any]) -> str | None:
    """Repo-relative path of a helm valueFiles entry, or None when it is not resolvable offline."""
    if not isinstance(vf, str) or _templated(vf) or "://" in vf:
        return None
    if vf.startswith("$"):
        ref, _, rest = vf[1:].partition("/")
        src = refs.get(ref)
        # Argo CD resolves $ref to the root of the ref source's repository, whatever its path.
        return rest if src is not None else None
    return str(PurePosixPath(src_path.removeprefix("./")) / vf)


def _destination(ctx: Context, obj: Obj, project: Obj, dest: Any, path: tuple[str | int, ...]) -> None:
    if not isinstance(dest, dict) or any(_templated(v) for v in dest.values()):
        return
    allowed = _get(project.doc.data, "spec", "destinations")
    if not isinstance(allowed, list):
        return
    server, name, ns = dest.get("server"), dest.get("name"), dest.get("namespace") or ""

    def match(value: Any, pattern: Any) -> bool:
        return isinstance(value, str) and isinstance(pattern, str) and fnmatch.fnmatchcase(value, pattern.lstrip("!"))

    ok = False
    for rule in allowed:
        if not isinstance(rule, dict):
            continue
        target = match(server, rule.get("server")) if server else match(name, rule.get("name"))
        if target and match(ns, rule.get("namespace", "*") or "*"):
            if str(rule.get("namespace", "")).startswith("!") or str(rule.get("server", "")).startswith("!"):
                ok = False
                break
            ok = True
    if not ok:
        where = server or name
        _add(ctx, obj, path, f"destination {where} namespace {ns!r} is not allowed by AppProject {project.name!r}")


def _generator_params(ctx: Context, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for gen in spec.get("generators") or []:
        if isinstance(gen, dict):
            yield from _one_generator(ctx, gen)


def _one_generator(ctx: Context, gen: dict[str, Any]) -> Iterator[dict[str, Any]]:
    # A matrix combines the parameters of its (two) child generators, each pair merged into one set.
    children = [c for c in (_get(gen, "matrix", "generators") or []) if isinstance(c, dict)]
    if len(children) == 2:
        right = list(_one_generator(ctx, children[1]))
        for left in _one_generator(ctx, children[0]):
            for params in right:
                yield {**left, **params}
    for element in _get(gen, "list", "elements") or []:
        if isinstance(element, dict):
            yield element
    for entry in _get(gen, "git", "directories") or []:
        if not isinstance(entry, dict) or entry.get("exclude") or not isinstance(entry.get("path"), str):
            continue
        for d in sorted(ctx.root.glob(entry["path"])):
            if d.is_dir():
                rel = d.relative_to(ctx.root).as_posix()
                base = PurePosixPath(rel).name
                yield {"path": {"path": rel, "basename": base, "basenameNormalized": base},
                       "path.basename": base, "path.basenameNormalized": base, "path.path": rel}


def _lookup(params: dict[str, Any], key: str) -> Any:
    if key in params:
        return params[key]
    cur: Any = params
    for part in key.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None and key == "path":
        return None
    return cur


def _substitute(template: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    def repl(m: re.Match[str]) -> str:
        key = m.group(0)[2:-2].strip().lstrip(".")
        value = _lookup(params, key)
        if isinstance(value, dict):
            value = value.get("path")
        return m.group(0) if value is None or isinstance(value, (dict, list)) else json.dumps(str(value))[1:-1]

    result: dict[str, Any] = json.loads(_TEMPLATE.sub(repl, json.dumps(template)))
    return result
