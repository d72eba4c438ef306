"""The recipes behind the real control plane: versions, the Kubernetes wrapper module, the Flux release's parts.

These read the Go modules (through the module proxy) but build nothing; the builds themselves are exercised by
the control-plane tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fleetstrap.pins import pin
from support import cluster_tools
from support.tools import require_command


@pytest.fixture(scope="module")
def go() -> str:
    return require_command("go", cluster_tools.GO_HINT)


def minor(version: str) -> tuple[int, int]:
    major, minor_, *_ = version.lstrip("v").split(".")
    return int(major), int(minor_)


def test_kubernetes_version_is_one_the_pins_and_flux_support() -> None:
    assert minor(cluster_tools.KUBERNETES_VERSION) >= minor(pin("kubernetes_min_version"))
    # Flux 2.9 supports Kubernetes 1.34-1.36 (facts/versions.md §8).
    assert minor(cluster_tools.KUBERNETES_VERSION) <= (1, 36)


def test_wrapper_module_replaces_every_staging_module(go: str) -> None:  # noqa: ARG001
    version = cluster_tools.KUBERNETES_VERSION
    wrapper = cluster_tools.kubernetes_wrapper(version)
    replaced = dict(re.findall(r"^replace (\S+) => \1 (\S+)$", wrapper, re.MULTILINE))
    staging = cluster_tools.staging_modules(version)
    assert {"k8s.io/api", "k8s.io/client-go", "k8s.io/apiserver", "k8s.io/kube-scheduler"} <= set(staging)
    assert replaced == {m: f"v0.{version.split('.', 1)[1]}" for m in staging}
    assert f"require k8s.io/kubernetes v{version}" in wrapper
    ldflags = cluster_tools.kubernetes_ldflags(version)
    assert f"-X k8s.io/component-base/version.gitVersion=v{version}" in ldflags


def test_flux_controllers_are_those_of_the_pinned_release(go: str) -> None:  # noqa: ARG001
    versions = cluster_tools.flux_controller_versions(pin("flux_version"))
    assert set(versions) == set(cluster_tools.FLUX_CONTROLLERS)
    # The flux2 module of that release requires each controller's api at the controller's version.
    gomod = (cluster_tools.module_dir(cluster_tools.FLUX_MODULE, f"v{pin('flux_version')}") / "go.mod").read_text()
    for name, version in versions.items():
        assert re.search(rf"github\.com/fluxcd/{name}/api {re.escape(version)}\b", gomod), name


def test_install_manifest_is_assembled_from_the_controller_modules(go: str, tmp_path: Path) -> None:  # noqa: ARG001
    versions = cluster_tools.flux_controller_versions(pin("flux_version"))
    modules = {n: cluster_tools.module_dir(f"github.com/fluxcd/{n}", v) for n, v in versions.items()}
    build = cluster_tools.FluxBuild(pin("flux_version"), {}, modules)
    docs = [d for d in yaml.safe_load_all(cluster_tools.flux_install_manifest(build, tmp_path)) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Namespace", "flux-system") in kinds
    crds = {n for k, n in kinds if k == "CustomResourceDefinition"}
    assert set(cluster_tools.crd_names(build.crd_files())) == crds
    assert {"gitrepositories.source.toolkit.fluxcd.io", "helmreleases.helm.toolkit.fluxcd.io"} <= crds
    images = {c["image"] for d in docs if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {f"ghcr.io/fluxcd/{n}:{v}" for n, v in versions.items()}
    assert all(d["metadata"].get("namespace") == "flux-system" for d in docs if d["kind"] == "Deployment")
