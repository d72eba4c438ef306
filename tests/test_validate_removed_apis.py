"""An API version the pinned controllers no longer serve is an error naming the API, the release that removed it
(where known) and the version to use; never a quiet "no schema" warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetstrap.validate import ValidateOptions, validate_repo
from fleetstrap.validate.schemas import BUNDLED_SCHEMAS, removed_api, version_key

HELMRELEASE = """\
apiVersion: helm.toolkit.fluxcd.io/{version}
kind: HelmRelease
metadata:
  name: podinfo
  namespace: apps
spec:
  interval: 10m
  chart:
    spec:
      chart: podinfo
      sourceRef:
        kind: HelmRepository
        name: podinfo
"""
OCIREPOSITORY = """\
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: OCIRepository
metadata:
  name: podinfo
  namespace: apps
spec:
  interval: 10m
  url: oci://ghcr.io/stefanprodan/manifests/podinfo
  ref:
    tag: latest
"""


def _validate(root: Path, files: dict[str, str]) -> list[tuple[str, str, str]]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    report = validate_repo(root, ValidateOptions(offline=True, catalog_url=None,
                                                 disabled=frozenset({"helm", "xref", "kustomize"})))
    return [(f.severity, f.file, f.message) for f in report.findings]


@pytest.mark.parametrize(("text", "api", "use", "release"), [
    (HELMRELEASE.format(version="v2beta2"), "helm.toolkit.fluxcd.io/v2beta2", "helm.toolkit.fluxcd.io/v2",
     "Flux 2.8"),
    (OCIREPOSITORY, "source.toolkit.fluxcd.io/v1beta2", "source.toolkit.fluxcd.io/v1", "Flux 2.8"),
    (HELMRELEASE.format(version="v2beta1"), "helm.toolkit.fluxcd.io/v2beta1", "helm.toolkit.fluxcd.io/v2", ""),
])
def test_removed_version_is_an_error_with_the_replacement(tmp_path: Path, text: str, api: str, use: str,
                                                          release: str) -> None:
    findings = _validate(tmp_path, {"apps/release.yaml": text})
    assert len(findings) == 1, findings
    severity, file, message = findings[0]
    assert (severity, file) == ("error", "apps/release.yaml")
    assert api in message and f"use apiVersion {use}" in message and release in message
    assert "no schema" not in message


def test_a_repo_that_installs_the_old_crd_itself_is_judged_by_it(tmp_path: Path) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "helmreleases.helm.toolkit.fluxcd.io"},
           "spec": {"group": "helm.toolkit.fluxcd.io", "names": {"kind": "HelmRelease", "plural": "helmreleases"},
                    "scope": "Namespaced",
                    "versions": [{"name": "v2beta2", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    findings = _validate(tmp_path, {"apps/release.yaml": HELMRELEASE.format(version="v2beta2"),
                                    "crds/helmrelease.yaml": json.dumps(crd)})
    assert [f for f in findings if f[0] == "error"] == [], findings


def test_served_and_newer_versions_are_not_called_removed() -> None:
    assert removed_api("helm.toolkit.fluxcd.io/v2", "HelmRelease") is None
    assert removed_api("notification.toolkit.fluxcd.io/v1", "Alert") is None  # newer than the pinned v1beta3
    assert removed_api("example.com/v1", "Widget") is None


def test_every_bundled_controller_has_its_served_versions() -> None:
    index = json.loads((BUNDLED_SCHEMAS / "index.json").read_text(encoding="utf-8"))
    groups = {rel.split("/", 1)[0] for rel in index["schemas"]}
    for group in ("helm.toolkit.fluxcd.io", "argoproj.io", "cert-manager.io", "monitoring.coreos.com",
                  "external-secrets.io", "gateway.networking.k8s.io", "kyverno.io", "flagger.app"):
        assert group in groups
    assert sorted(["v1", "v1beta3", "v2", "v1alpha1", "v2beta1"], key=version_key, reverse=True) == [
        "v2", "v1", "v2beta1", "v1beta3", "v1alpha1"]
