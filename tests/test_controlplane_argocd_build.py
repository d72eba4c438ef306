"""The Argo CD the runtime tests run: built from the Go module proxy at ARGOCD_RUNTIME_VERSION (v3.2.11, the newest
release the proxy can build), with the helm its repo-server renders charts with. Generated fleets pin a newer
Argo CD (templates/pins.yml `argocd_version`); these tests keep the two close and the binaries honest about
their versions. The build is cached per version (.ci/run prebuilds it: `python tests/support/argocd.py`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from fleetstrap.pins import pin
from support import argocd, cluster_tools
from support.tools import require_command


@pytest.fixture(scope="module")
def go() -> str:
    return require_command("go", cluster_tools.GO_HINT)


def version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.lstrip("v").split("."))


def test_runtime_version_is_the_pinned_major_and_not_newer() -> None:
    runtime, pinned = version(argocd.ARGOCD_RUNTIME_VERSION), version(pin("argocd_version"))
    assert runtime[0] == pinned[0] and runtime <= pinned


def test_helm_is_the_one_this_argocd_release_ships(go: str) -> None:  # noqa: ARG001
    tools = (argocd.argocd_module() / "hack" / "tool-versions.sh").read_text(encoding="utf-8")
    found = re.search(r"^helm3_version=(\S+)$", tools, re.MULTILINE)
    assert found is not None and f"v{found.group(1)}" == argocd.HELM_VERSION


def test_install_manifest_carries_the_same_crds_as_the_module(go: str) -> None:  # noqa: ARG001
    crds = sorted((argocd.argocd_module() / "manifests" / "crds").glob("*-crd.yaml"))
    from_files = sorted(cluster_tools.crd_names(crds))
    from_install = sorted(o["metadata"]["name"] for o in argocd.crd_and_rbac()
                          if o["kind"] == "CustomResourceDefinition")
    assert from_files == from_install == ["applications.argoproj.io", "applicationsets.argoproj.io",
                                          "appprojects.argoproj.io"]


def test_built_binaries_report_their_versions(go: str, tmp_path: Path) -> None:  # noqa: ARG001
    binary = argocd.build_argocd()
    home = {"HOME": str(tmp_path)}  # the CLI reads its config from $HOME and refuses to run without it
    out = subprocess.run([str(binary), "version", "--client", "--short"], env={**home, "ARGOCD_BINARY_NAME": "argocd"},
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.split()[-1].startswith(f"{argocd.ARGOCD_RUNTIME_VERSION}+"), out
    # One multi-call binary: the controllers the runtime tests start are in it.
    for name in ("argocd-application-controller", "argocd-repo-server", "argocd-applicationset-controller"):
        res = subprocess.run([str(binary), "--help"], env={**home, "ARGOCD_BINARY_NAME": name}, capture_output=True,
                             text=True, check=False, timeout=120)
        assert res.returncode == 0 and f"Usage:\n  {name} [flags]" in res.stdout, (name, res.stdout[:500])
    helm = subprocess.run([str(argocd.build_helm()), "version", "--short"], capture_output=True, text=True,
                          check=True, timeout=120).stdout
    assert helm.startswith(argocd.HELM_VERSION), helm
