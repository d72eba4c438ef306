#!/usr/bin/env python3
"""Regenerate the CRD schemas bundled in the wheel (generator/fleetstrap/validate/crd_schemas/).

Source of truth: the CustomResourceDefinition YAMLs inside the controllers' Go modules at the versions
templates/pins.yml pins, fetched with `go mod download -json module@version` (the Go module proxy). The Flux
controller versions are the ones the pinned flux2 release installs (its manifests/bases/*/kustomization.yaml).
Kinds that cannot be had that way (a module the proxy refuses) fall back to a local copy of the MIT-licensed
datreeio/CRDs-catalog (`--fallback`, default ../shared/schemas/crds beside the checkout); the index credits it.

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
from collections.abc import Iterator
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


def flux_modules(pins: dict[str, str]) -> list[tuple[str, str, tuple[str, ...]]]:
    flux2 = go_download("github.com/fluxcd/flux2/v2", _v(pins["flux_version"]))
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
    for doc in yaml.load_all(text, Loader=_Loader):
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            yield doc


def _dump(schema: Any) -> str:
    return json.dumps(schema, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def generate(out: Path, fallback: Path | None) -> dict[str, Any]:
    pins = _pins()
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}  # "group/kind_version.json" -> source key
    sources: dict[str, dict[str, Any]] = {}
    for module, version, globs in [*flux_modules(pins), *modules(pins)]:
        info = go_download(module, version)
        key = f"{module}@{info['Version']}"
        files: list[str] = []
        for pattern in globs:
            for path in sorted(Path(info["Dir"]).glob(pattern)):
                for crd in _crd_docs(path):
                    spec = crd["spec"]
                    group, kind = spec["group"], spec["names"]["kind"].lower()
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
    index = {"generated_by": "scripts/gen_crd_schemas.py", "sources": sources,
             "schemas": dict(sorted(written.items()))}
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
