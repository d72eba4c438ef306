"""Pure builders for the objects bootstrap creates, and strict schema validation of every generated object."""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

FLUX_NS = "flux-system"
ARGOCD_NS = "argocd"
MANAGED_BY = {"app.kubernetes.io/managed-by": "fleetstrap"}
CRD_SCHEMAS_ENV = "FLEETSTRAP_CRD_SCHEMAS"


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


# ---------------------------------------------------------------- validation


def crd_schema_dir(explicit: Path | None = None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get(CRD_SCHEMAS_ENV)
    if env:
        return Path(env)
    from fleetstrap.validate.schemas import bundled_schema_dir  # the CRD schemas shipped in the package

    return bundled_schema_dir()


@cache
def _crd_validator(path: Path) -> Any:
    import jsonschema

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        # Go RE2 inline flags at the start (one schema has `^(?i)...`) are not valid Python regex.
        if patrn.startswith("^(?i)"):
            patrn = "(?i)^" + patrn[5:]
        yield from jsonschema.Draft7Validator.VALIDATORS["pattern"](validator, patrn, instance, schema)

    cls = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": pattern})
    return cls(json.loads(path.read_text(encoding="utf-8")))


def _core_version(kube_version: str) -> str:
    from kubernetes_validate.utils import all_versions

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".")[:2])

    versions = sorted({".".join(v.split(".")[:2]) for v in all_versions()}, key=key)
    mm = ".".join(kube_version.split(".")[:2])
    if mm in versions:
        return mm
    # Clusters outside the bundled schema range are checked against the nearest schemas we have.
    return versions[-1] if key(mm) > key(versions[-1]) else versions[0]


def validate_object(obj: Mapping[str, Any], kube_version: str, crd_schemas: Path | None = None) -> str | None:
    """A problem with the object, or None. Core kinds: kubernetes-validate strict; CRD kinds: the CRD schemas."""
    ref = f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')}"
    if not (obj.get("metadata") or {}).get("name"):
        return f"{obj.get('kind')} has no metadata.name"
    api_version = str(obj.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    if group and "." in group and not group.endswith(".k8s.io"):
        root = crd_schema_dir(crd_schemas)
        if root is None:
            return None  # no schemas configured: the caller reports the object as unchecked
        path = root / group / f"{str(obj.get('kind')).lower()}_{version}.json"
        if not path.is_file():
            return f"{ref}: no schema for {obj.get('kind')} {api_version}"
        errors = sorted(_crd_validator(path).iter_errors(dict(obj)), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            return f"{ref}: {'.'.join(str(p) for p in e.path) or '(root)'}: {e.message[:200]}"
        return None
    try:
        import kubernetes_validate
    except ImportError:
        return None
    try:
        kubernetes_validate.validate(dict(obj), _core_version(kube_version), strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(root)"
        return f"{ref}: {where}: {str(exc.message)[:200]}"
    except kubernetes_validate.SchemaNotFoundError:
        return f"{ref}: no schema for {obj.get('kind')} {api_version}"
    return None


def unchecked_kinds(objs: Iterable[Mapping[str, Any]], crd_schemas: Path | None = None) -> list[str]:
    """Kinds that could not be checked here (no CRD schemas configured, or kubernetes-validate missing)."""
    out: list[str] = []
    have_crd = crd_schema_dir(crd_schemas) is not None
    try:
        import kubernetes_validate  # noqa: F401
        have_core = True
    except ImportError:
        have_core = False
    for o in objs:
        group = str(o.get("apiVersion", "")).rpartition("/")[0]
        is_crd = bool(group) and "." in group and not group.endswith(".k8s.io")
        if (is_crd and not have_crd) or (not is_crd and not have_core):
            kind = str(o.get("kind"))
            if kind not in out:
                out.append(kind)
    return out
