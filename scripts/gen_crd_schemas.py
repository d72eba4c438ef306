#!/usr/bin/env python3
"""Regenerate the CRD schemas bundled in the wheel (generator/fleetstrap/validate/crd_schemas/).

Source of truth: the CustomResourceDefinition YAMLs inside the controllers' Go modules at the versions
templates/pins.yml pins, fetched with `go mod download -json module@version` (the Go module proxy). The Flux
controller versions are the ones the pinned flux2 release installs (its manifests/bases/*/kustomization.yaml).
Kinds that cannot be had that way (a module the proxy refuses) fall back to a local copy of the MIT-licensed
datreeio/CRDs-catalog (`--fallback`, default ../shared/schemas/crds beside the checkout); the index credits it.

index.json also records, per bundled kind ("apis"), what the pinned release serves: each version's served,
storage and deprecated flags and the CRD's deprecationWarning; and, for versions it no longer serves, the release
that stopped serving them ("removed"), found by walking the project's earlier minor releases on the proxy
(_history: Flux through the controllers' `api` modules each flux2 release requires, whose kubebuilder markers the
CRDs are generated from). Where the proxy lacks releases in between, the entry is a range ("0.12-0.17").

Each schema is converted the way kubeconform's catalog does it, strictly (additionalProperties false wherever
the CRD does not preserve unknown fields, also at the root; x-kubernetes-int-or-string and nullable honoured),
stripped of what does not validate (descriptions, defaults, list/map annotations) and minified.

    python scripts/gen_crd_schemas.py                 # regenerate from the Go module proxy
    python scripts/gen_crd_schemas.py --check         # exit 1 when the committed set differs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "generator" / "fleetstrap" / "validate" / "crd_schemas"
PINS = ROOT / "templates" / "pins.yml"
INDEX = "index.json"

# Keywords that change nothing about which documents are valid; dropped to keep the wheel small.
_DROP = frozenset({"description", "default", "example", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
                   "x-kubernetes-map-type", "x-kubernetes-validations", "x-kubernetes-embedded-resource",
                   "$schema", "title", "x-kubernetes-group-version-kind"})


def _pins() -> dict[str, str]:
    data = yaml.safe_load(PINS.read_text(encoding="utf-8"))
    return {k: str(v) for k, v in data["pins"]["default"].items()}


def _v(version: str) -> str:
    return version if version.startswith("v") else "v" + version


def modules(pins: dict[str, str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(module, version, CRD file globs inside the module zip), in priority order (first kind/version wins)."""
    return [
        # Argo: versions pinned in templates/pins.yml.
        ("github.com/argoproj/argo-cd/v3", _v(pins["argocd_version"]), ("manifests/crds/*-crd.yaml",)),
        ("github.com/argoproj/argo-rollouts", _v(pins["argo_rollouts_version"]), ("manifests/crds/*-crd.yaml",)),
        ("github.com/argoproj-labs/argocd-image-updater", _v(pins["argocd_image_updater_version"]),
         ("config/crd/bases/*.yaml",)),
        # Flagger: the chart's crds/crd.yaml is this same file (chart version = module version).
        ("github.com/fluxcd/flagger", _v(pins["flagger_version"]), ("artifacts/flagger/crd.yaml",)),
        # Kyverno (answer `policy`): the release its pinned chart ships; config/crds holds every group the chart
        # installs (kyverno.io, policies.kyverno.io, reports, wgpolicyk8s.io).
        ("github.com/kyverno/kyverno", _v(pins["kyverno_version"]), ("config/crds/*/*.yaml",)),
        # cert-manager's chart version is its app version.
        ("github.com/cert-manager/cert-manager", _v(pins["cert_manager_chart_version"]), ("deploy/crds/*.yaml",)),
        # Installed as Helm charts whose CRDs follow the chart: the app version each pinned chart ships.
        ("github.com/prometheus-operator/prometheus-operator", _v(pins["prometheus_operator_version"]),
         ("example/prometheus-operator-crd-full/*.yaml",)),
        ("github.com/external-secrets/external-secrets", "v1.3.2", ("config/crds/bases/*.yaml",)),
        ("github.com/bitnami-labs/sealed-secrets", _v(pins["sealed_secrets_version"]),
         ("helm/sealed-secrets/crds/*.yaml",)),
        # Gateway API: the standard channel first (stricter), the experimental one for the kinds it adds.
        ("sigs.k8s.io/gateway-api", "v1.6.3", ("config/crd/standard/*.yaml", "config/crd/experimental/*.yaml")),
    ]


# The flux2 release pins each controller in manifests/bases/<controller>/kustomization.yaml.
_FLUX_URL = re.compile(r"https://github\.com/fluxcd/([a-z-]+)/releases/download/(v[0-9][^/]*)/[a-z-]+\.crds\.yaml")
# Controllers whose module path has a major-version suffix.
_FLUX_MODULE = {"source-watcher": "github.com/fluxcd/source-watcher/v2"}


def go_download(module: str, version: str) -> dict[str, Any]:
    cmd = ["go", "mod", "download", "-json", f"{module}@{version}"]
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    info: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
    err = str(info.get("Error", ""))
    if err and "sum.golang.org" in err and "404" in err:
        # A few modules (fluxcd/source-watcher/v2) are missing from the checksum database although the proxy
        # serves them: fetch unverified and say so in the index.
        env["GONOSUMDB"] = module
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        info = json.loads(proc.stdout) if proc.stdout.strip() else {}
        info["Unverified"] = True
    if info.get("Error") or not info.get("Dir"):
        raise RuntimeError(f"go mod download {module}@{version}: {info.get('Error') or proc.stderr.strip()}")
    return info


def flux_modules(pins: dict[str, str], flux_version: str | None = None) -> list[tuple[str, str, tuple[str, ...]]]:
    flux2 = go_download("github.com/fluxcd/flux2/v2", _v(flux_version or pins["flux_version"]))
    out: list[tuple[str, str, tuple[str, ...]]] = []
    for kfile in sorted(Path(flux2["Dir"], "manifests", "bases").glob("*/kustomization.yaml")):
        for name, version in _FLUX_URL.findall(kfile.read_text(encoding="utf-8")):
            out.append((_FLUX_MODULE.get(name, f"github.com/fluxcd/{name}"), version, ("config/crd/bases/*.yaml",)))
    if not out:
        raise RuntimeError("no Flux controller versions found in the flux2 module")
    return out


_ROOT_FIELDS = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


def compact(node: Any, *, root: bool = True) -> Any:
    """openAPIV3Schema (or an already-converted catalog schema) → strict, minimal JSON Schema."""
    if root and isinstance(node, dict) and isinstance(node.get("properties"), dict):
        # The API server always accepts these, whether or not the CRD spells them out.
        node = {**node, "properties": {**_ROOT_FIELDS, **node["properties"]}}
    if isinstance(node, list):
        return [compact(v, root=False) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key in ("properties", "patternProperties", "definitions") and isinstance(value, dict):
            out[key] = {k: compact(v, root=False) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = compact(value, root=False)
        else:
            out[key] = value
    return _kube_extensions(out)


def _kube_extensions(out: dict[str, Any]) -> dict[str, Any]:
    """Turn the Kubernetes OpenAPI extensions of one node into plain JSON Schema, and close the node."""
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False) is True
    if preserve:
        # Unknown fields are kept by the API server: the catalog sometimes closes these anyway (false errors).
        if out.get("additionalProperties") is False:
            del out["additionalProperties"]
    elif "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loader that reads a plain `=` (YAML 1.1's value tag, seen in operator enums) as the string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _crd_docs(path: Path) -> Iterator[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError:
        # Older releases ship some CRDs as Helm templates (`{{- if .Values.installCRDs }}` around the object):
        # the template lines dropped, the object is plain YAML.
        docs = list(yaml.load_all("\n".join(ln for ln in text.splitlines() if "{{" not in ln), Loader=_Loader))
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            yield doc


# --- served, deprecated and removed versions ----------------------------------------------------------------
# The display name of each controller project (Flux: the flux2 release, whose controllers are many modules).
_PROJECTS = (
    ("github.com/fluxcd/flagger", "Flagger", None),
    ("github.com/fluxcd/", "Flux", "flux_version"),
    ("github.com/argoproj/argo-cd/", "Argo CD", None),
    ("github.com/argoproj/argo-rollouts", "Argo Rollouts", None),
    ("github.com/argoproj-labs/argocd-image-updater", "Argo CD Image Updater", None),
    ("github.com/kyverno/kyverno", "Kyverno", None),
    ("github.com/cert-manager/cert-manager", "cert-manager", None),
    ("github.com/prometheus-operator/prometheus-operator", "prometheus-operator", None),
    ("github.com/external-secrets/external-secrets", "External Secrets Operator", None),
    ("github.com/bitnami-labs/sealed-secrets", "Sealed Secrets", None),
    ("sigs.k8s.io/gateway-api", "Gateway API", None),
)


def project(module: str, pins: dict[str, str], version: str | None = None) -> str:
    """`Flux 2.9.4`, `Kyverno 1.19.1`: the project and release a module's CRDs come from (version: the module's)."""
    for prefix, name, pin in _PROJECTS:
        if module.startswith(prefix):
            release = pins[pin] if pin else version
            return f"{name} {release.removeprefix('v')}" if release else name
    return module


def _record_versions(apis: dict[str, dict[str, Any]], crd: dict[str, Any], source: str) -> None:
    """Per version of one CRD: served, storage, deprecated and the CRD's own deprecation warning. A kind two
    sources define (Gateway API's standard and experimental channels) is served where either serves it."""
    spec = crd["spec"]
    entry = apis.setdefault(f"{spec['group']}/{spec['names']['kind'].lower()}",
                            {"kind": spec["names"]["kind"], "release": source, "versions": {}})
    for ver in spec.get("versions") or []:
        had = entry["versions"].get(ver["name"], {})
        row = {"served": bool(ver.get("served")) or bool(had.get("served")),
               "storage": bool(ver.get("storage")) or bool(had.get("storage")),
               "deprecated": bool(ver.get("deprecated")) or bool(had.get("deprecated"))}
        warning = ver.get("deprecationWarning") or had.get("warning")
        if warning:
            row["warning"] = str(warning)
        entry["versions"][ver["name"]] = row


# The releases walked to find when each version stopped being served: every minor release from a floor to the
# pinned one (the floor: the oldest release whose CRDs are still published this way). Flux's are the flux2
# releases, each with the controller versions it installs.
Parts = list[tuple[str, str, tuple[str, ...]]]  # (module, version, CRD globs) of one release


def _history(pins: dict[str, str]) -> list[list[tuple[str, Callable[[], Parts | None]]]]:
    """Per project: [(release label, its modules or None when the proxy has no such release)], oldest first."""
    flux_minor = int(pins["flux_version"].split(".")[1])

    def first_patch(module: str, version: str) -> str | None:
        """The release itself, or the first patch of its minor the proxy has (it lacks some releases)."""
        if not version.endswith(".0"):
            return version if _released(module, version) else None
        base = version.removesuffix(".0")
        return next((f"{base}.{p}" for p in range(6) if _released(module, f"{base}.{p}")), None)

    def flux(version: str) -> Callable[[], Parts | None]:
        def parts() -> Parts | None:
            found = first_patch("github.com/fluxcd/flux2/v2", version)
            return flux_api_modules(found) if found else None
        return parts

    def walk(name: str, module: str, versions: list[str], globs: tuple[str, ...]
             ) -> list[tuple[str, Callable[[], Parts | None]]]:
        def parts(version: str) -> Callable[[], Parts | None]:
            def resolve() -> Parts | None:
                found = first_patch(module, version)
                return [(module, found, globs)] if found else None
            return resolve
        return [(f"{name} {v.removeprefix('v').removesuffix('.0')}", parts(v)) for v in versions]

    def minors(first: int, last: int, major: str = "v1") -> list[str]:
        return [f"{major}.{m}.0" for m in range(first, last + 1)]

    eso = "github.com/external-secrets/external-secrets"
    esog = ("config/crds/bases/*.yaml",)
    return [
        # Up to the pinned release itself (its minor's .0 may be one the proxy lacks).
        [(f"Flux 2.{m}", flux(f"v2.{m}.0")) for m in range(0, flux_minor)]
        + [(f"Flux 2.{flux_minor}", flux(_v(pins["flux_version"])))],
        walk("cert-manager", "github.com/jetstack/cert-manager", ["v1.5.0", "v1.6.0", "v1.7.0"],
             ("deploy/crds/*.yaml",)),
        walk("External Secrets Operator", eso, minors(9, 20, "v0") + minors(0, 3), esog),
        walk("Gateway API", "sigs.k8s.io/gateway-api", minors(5, 8, "v0") + minors(0, 6),
             ("config/crd/standard/*.yaml", "config/crd/experimental/*.yaml")),
        walk("Kyverno", "github.com/kyverno/kyverno", minors(10, 19), ("config/crds/*.yaml", "config/crds/*/*.yaml")),
        walk("Flagger", "github.com/fluxcd/flagger", ["v0.27.0", "v1.0.0"], ("artifacts/flagger/crd.yaml",)),
    ]


# Flux: the proxy lacks many controller releases, but every flux2 release requires its controllers' `api` modules,
# and those hold the Go types the CRDs are generated from (kubebuilder markers: a root type is a served kind unless
# marked skipversion/unservedversion).
_FLUX_API = re.compile(r"^\s*(github\.com/fluxcd/[a-z-]+(?:/v\d+)?/api)\s+(v\S+)", re.M)
_API_VERSION_DIR = re.compile(r"^v\d+(?:(?:alpha|beta)\d+)?$")
_GROUP = re.compile(r'Group:\s*"([^"]+)"')
_TYPE = re.compile(r"^type (\w+) struct")


def flux_api_modules(version: str) -> Parts | None:
    flux2 = _released("github.com/fluxcd/flux2/v2", version)
    if flux2 is None:
        return None
    gomod = Path(flux2["Dir"], "go.mod").read_text(encoding="utf-8")
    return [(module, ver, ("@api",)) for module, ver in _FLUX_API.findall(gomod)]


def _api_served(root: Path) -> set[tuple[str, str]]:
    """("group/kind", version) of the served root types of a kubebuilder `api` module."""
    served: set[tuple[str, str]] = set()
    for vdir in sorted(d for d in root.iterdir() if d.is_dir() and _API_VERSION_DIR.match(d.name)):
        sources = {f.name: f.read_text(encoding="utf-8") for f in vdir.glob("*.go")}
        group = next((m.group(1) for text in sources.values() if (m := _GROUP.search(text))), None)
        package = "".join(t.split("\npackage ", 1)[0] for n, t in sources.items()
                          if n in ("doc.go", "groupversion_info.go"))
        if group is None or "+kubebuilder:skipversion" in package:
            continue
        for text in sources.values():
            markers: list[str] = []
            for line in text.splitlines():
                if line.startswith("//"):
                    markers.append(line)
                    continue
                if not line.strip():
                    continue  # markers and the type's doc comment are often a blank line apart
                m = _TYPE.match(line)
                root_type = any("+kubebuilder:object:root=true" in x for x in markers)
                if m and root_type and not m.group(1).endswith("List") \
                        and not any("skipversion" in x or "unservedversion" in x for x in markers):
                    served.add((f"{group}/{m.group(1).lower()}", vdir.name))
                markers = []
    return served


def _released(module: str, version: str) -> dict[str, Any] | None:
    """go_download, or None when the proxy has no such release (a minor the project skipped, or one the proxy
    does not serve)."""
    try:
        return go_download(module, version)
    except RuntimeError as exc:
        if re.search(r"unknown revision|invalid version|not found|not available|404|410", str(exc)):
            return None
        raise


def _served_at(parts: Parts | None) -> set[tuple[str, str]] | None:
    """("group/kind", version) served by one release, or None when the release cannot be had."""
    if parts is None:
        return None
    served: set[tuple[str, str]] = set()
    for module, version, globs in parts:
        info = _released(module, version)
        if info is None:
            return None
        if globs == ("@api",):
            served |= _api_served(Path(info["Dir"]))
            continue
        for pattern in globs:
            for path in sorted(Path(info["Dir"]).glob(pattern)):
                for crd in _crd_docs(path):
                    spec = crd["spec"]
                    api = f"{spec['group']}/{spec['names']['kind'].lower()}"
                    served.update((api, v["name"]) for v in spec.get("versions") or [] if v.get("served"))
                    if not spec.get("versions") and spec.get("version"):  # apiextensions v1beta1 CRDs
                        served.add((api, spec["version"]))
    return served


def removals(pins: dict[str, str]) -> dict[str, dict[str, str]]:
    """"group/kind" -> {version: the release that stopped serving it}, from the walk of _history. Where the proxy
    lacks the releases just before, the entry is the range they span ("Flux 2.2-2.3")."""
    out: dict[str, dict[str, str]] = {}
    for releases in _history(pins):
        before: set[tuple[str, str]] | None = None
        unchecked: list[str] = []
        for label, parts in releases:
            served = _served_at(parts())
            if served is None:
                if before is not None:
                    unchecked.append(label)
                continue
            if before is not None:
                # "Flux 2.2-2.3": the proxy lacks the releases before this one, so it stopped in one of them.
                when = f"{unchecked[0]}-{label.rsplit(' ', 1)[1]}" if unchecked else label
                for api, version in sorted(before - served):
                    out.setdefault(api, {})[version] = when
            for api, version in served:
                out.get(api, {}).pop(version, None)  # served again: not removed (yet)
            before, unchecked = served, []
    return {api: versions for api, versions in out.items() if versions}


def _dump(schema: Any) -> str:
    return json.dumps(schema, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _add_fallback(out: Path, fallback: Path, written: dict[str, str], sources: dict[str, dict[str, Any]]) -> None:
    fb_key = "datreeio/CRDs-catalog (MIT, Copyright (c) 2022 datree.io)"
    fb_files = []
    from_modules = {r.split("/", 1)[0] for r in written}
    for path in sorted(fallback.glob("*/*.json")):
        rel = path.relative_to(fallback).as_posix()
        group = rel.split("/", 1)[0]
        # Only groups no module provides (the OpenTelemetry Operator's module is refused by the proxy);
        # never a kind of a group we already have from source, whose missing versions are obsolete.
        if group in from_modules or group not in _FALLBACK_GROUPS:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        (out / group).mkdir(exist_ok=True)
        (out / rel).write_text(_dump(compact(data)), encoding="utf-8")
        written[rel] = fb_key
        fb_files.append(rel)
    if fb_files:
        sources[fb_key] = {"files": fb_files,
                           "why": "module github.com/open-telemetry/opentelemetry-operator is not served by "
                                  "the Go module proxy"}


def generate(out: Path, fallback: Path | None) -> dict[str, Any]:
    pins = _pins()
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}  # "group/kind_version.json" -> source key
    sources: dict[str, dict[str, Any]] = {}
    apis: dict[str, dict[str, Any]] = {}  # "group/kind" -> what the pinned release serves (see _record_versions)
    for module, version, globs in [*flux_modules(pins), *modules(pins)]:
        info = go_download(module, version)
        key = f"{module}@{info['Version']}"
        files: list[str] = []
        for pattern in globs:
            for path in sorted(Path(info["Dir"]).glob(pattern)):
                for crd in _crd_docs(path):
                    spec = crd["spec"]
                    group, kind = spec["group"], spec["names"]["kind"].lower()
                    _record_versions(apis, crd, project(module, pins, info["Version"]))
                    for ver in spec.get("versions") or []:
                        schema = (ver.get("schema") or {}).get("openAPIV3Schema")
                        rel = f"{group}/{kind}_{ver['name']}.json"
                        if not isinstance(schema, dict) or rel in written:
                            continue
                        (out / group).mkdir(exist_ok=True)
                        (out / rel).write_text(_dump(compact(schema)), encoding="utf-8")
                        written[rel] = key
                        files.append(path.relative_to(info["Dir"]).as_posix())
        sources[key] = {"sum": info.get("Sum", ""), "files": sorted(set(files)),
                        **({"sumdb": "not in sum.golang.org"} if info.get("Unverified") else {})}
    if fallback is not None:
        _add_fallback(out, fallback, written, sources)
    for api, removed in removals(pins).items():
        if api in apis:
            apis[api]["removed"] = removed
    index = {"generated_by": "scripts/gen_crd_schemas.py", "sources": sources,
             "schemas": dict(sorted(written.items())), "apis": dict(sorted(apis.items()))}
    (out / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return index


# Groups taken from the catalog when no Go module can provide them.
_FALLBACK_GROUPS = frozenset({"opentelemetry.io"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_fb = os.environ.get("FLEETSTRAP_CRD_SCHEMAS") or str(ROOT.parent / "shared" / "schemas" / "crds")
    ap.add_argument("--fallback", type=Path, default=Path(default_fb),
                    help="local CRDs-catalog copy for groups no Go module provides "
                         "(default: $FLEETSTRAP_CRD_SCHEMAS, else ../shared/schemas/crds)")
    ap.add_argument("--check", action="store_true", help="compare with the committed set instead of writing")
    args = ap.parse_args()
    if shutil.which("go") is None:
        print("go is not installed", file=sys.stderr)
        return 1
    fallback = args.fallback if args.fallback.is_dir() else None
    if fallback is None:
        print(f"note: no fallback catalog at {args.fallback}; OpenTelemetry Operator kinds are left out",
              file=sys.stderr)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp), fallback)
            diff = subprocess.run(["diff", "-rq", tmp, str(OUT)], check=False)
            return 1 if diff.returncode else 0
    if OUT.exists():
        shutil.rmtree(OUT)
    index = generate(OUT, fallback)
    size = sum(p.stat().st_size for p in OUT.rglob("*.json"))
    print(f"{len(index['schemas'])} schemas from {len(index['sources'])} sources, {size / 1e6:.2f} MB in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
