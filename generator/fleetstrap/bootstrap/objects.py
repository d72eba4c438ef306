"""Pure builders for the objects bootstrap creates, and strict schema validation of every generated object."""

from __future__ import annotations

import base64
import copy
import importlib.util
import os
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.cache import cache_dir
from fleetstrap.validate import CRD_SCHEMAS_ENV
from fleetstrap.validate.schemas import CoreSchemas, CrdSchemas, is_core_group, split_api_version, supported_versions

FLUX_NS = "flux-system"
ARGOCD_NS = "argocd"
MANAGED_BY = {"app.kubernetes.io/managed-by": "fleetstrap"}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def build_namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(MANAGED_BY)}}


def build_flux_secret(identity: str, identity_pub: str, known_hosts: str, name: str = FLUX_NS) -> dict[str, Any]:
    """The Secret `flux bootstrap` creates for an ssh GitRepository (keys identity, identity.pub, known_hosts)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": FLUX_NS, "labels": dict(MANAGED_BY)},
        "type": "Opaque",
        "data": {"identity": _b64(identity), "identity.pub": _b64(identity_pub),
                 "known_hosts": _b64(known_hosts)},
    }


def build_argocd_repo_secret(fleet_name: str, git_url: str, identity: str) -> dict[str, Any]:
    """A repository credential Secret, found by Argo CD through its secret-type label."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"repo-{fleet_name}",
            "namespace": ARGOCD_NS,
            "labels": {"argocd.argoproj.io/secret-type": "repository", **MANAGED_BY},
        },
        "type": "Opaque",
        "data": {"type": _b64("git"), "url": _b64(git_url), "sshPrivateKey": _b64(identity)},
    }


ARGOCD_KNOWN_HOSTS = "argocd-ssh-known-hosts-cm"


def with_argocd_known_hosts(obj: Mapping[str, Any], known_hosts: str) -> dict[str, Any]:
    """`obj`, or when it is Argo CD's argocd-ssh-known-hosts-cm, that ConfigMap with the fleet's git host keys
    added to the ones the install manifest ships. The repo-server checks an ssh repository's host key against
    this ConfigMap only (a repository Secret has no field for it): without the fleet's own git host there, every
    fetch fails with "knownhosts: key is unknown"."""
    out = dict(obj)
    if obj.get("kind") != "ConfigMap" or (obj.get("metadata") or {}).get("name") != ARGOCD_KNOWN_HOSTS:
        return out
    out = copy.deepcopy(out)
    data = out.setdefault("data", {})
    lines = str(data.get("ssh_known_hosts") or "").splitlines()
    present = {line.strip() for line in lines}
    for line in known_hosts.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#") and entry not in present:
            lines.append(entry)
            present.add(entry)
    data["ssh_known_hosts"] = "\n".join(lines) + "\n"
    return out


def redacted(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret fit for printing: keys kept, values replaced."""
    out = copy.deepcopy(dict(obj))
    if out.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if isinstance(out.get(field), dict):
                out[field] = {k: "<redacted>" for k in out[field]}
    return out


def to_yaml(objs: Iterable[Mapping[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(dict(o), sort_keys=False) for o in objs)


# ---------------------------------------------------------------- validation (validate's schemas, one validator)


def crd_schema_dir(explicit: Path | None = None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get(CRD_SCHEMAS_ENV)
    if env:
        return Path(env)
    from fleetstrap.validate.schemas import bundled_schema_dir  # the CRD schemas shipped in the package

    return bundled_schema_dir()


def _core_installed() -> bool:
    return importlib.util.find_spec("kubernetes_validate") is not None


@cache
def _crds(root: Path) -> CrdSchemas:
    # Offline and catalog-free: bootstrap checks against the schemas it was given, nothing fetched.
    return CrdSchemas((str(root),), cache_dir("schemas"), offline=True, catalog=None)


@cache
def _core(kube_version: str) -> CoreSchemas:
    versions = supported_versions()
    want = tuple(int(p) for p in kube_version.split(".")[:2])
    # Clusters outside the bundled schema range are checked against the nearest schemas we have.
    usable = [v for v in versions if tuple(int(p) for p in v.split(".")[:2]) <= want] or versions[:1]
    return CoreSchemas(usable[-1])


def validate_object(obj: Mapping[str, Any], kube_version: str, crd_schemas: Path | None = None) -> str | None:
    """A problem with the object, or None. Core kinds: kubernetes-validate's strict schemas; CRD kinds: the CRD
    schemas (`crd_schemas`, else $FLEETSTRAP_CRD_SCHEMAS) — the same validators `fleetstrap validate` uses."""
    kind = str(obj.get("kind"))
    ref = f"{kind} {(obj.get('metadata') or {}).get('name')}"
    if not (obj.get("metadata") or {}).get("name"):
        return f"{kind} has no metadata.name"
    api_version = str(obj.get("apiVersion", ""))
    group, _ = split_api_version(api_version)
    if is_core_group(group):
        if not _core_installed():
            return None  # the caller reports the object as unchecked
        validator = _core(kube_version).validator(api_version, kind)
    else:
        root = crd_schema_dir(crd_schemas)
        if root is None:
            return None  # no schemas configured: the caller reports the object as unchecked
        validator = _crds(root).validator(api_version, kind)
    if validator is None:
        return f"{ref}: no schema for {kind} {api_version}"
    errors = sorted(validator(dict(obj)), key=lambda e: [str(p) for p in e[0]])
    if not errors:
        return None
    path, message = errors[0]
    return f"{ref}: {'.'.join(str(p) for p in path) or '(root)'}: {message[:200]}"


def unchecked_kinds(objs: Iterable[Mapping[str, Any]], crd_schemas: Path | None = None) -> list[str]:
    """Kinds that could not be checked here (no CRD schemas configured, or kubernetes-validate missing)."""
    out: list[str] = []
    have_crd = crd_schema_dir(crd_schemas) is not None
    have_core = _core_installed()
    for o in objs:
        is_crd = not is_core_group(split_api_version(str(o.get("apiVersion", "")))[0])
        if (is_crd and not have_crd) or (not is_crd and not have_core):
            kind = str(o.get("kind"))
            if kind not in out:
                out.append(kind)
    return out
