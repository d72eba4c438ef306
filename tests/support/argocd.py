"""Real Argo CD for the control-plane tests: its binary built from the Go module proxy, its CRDs and RBAC from the
same version's module zip, and its controllers run as local processes.

Version: the runtime tests run Argo CD ARGOCD_RUNTIME_VERSION, the newest release the module proxy can build. From
v3.3 on, argo-cd's go.mod replaces gitops-engine with a nested folder its module zip does not carry, so those
releases cannot be built from the proxy (shared facts, go-built-tools.md); v3.2.12 resolves but does not compile.
Generated fleets pin a newer Argo CD (templates/pins.yml `argocd_version`): these tests prove the generated objects
with an older minor of the same major. When a newer release becomes buildable, move ARGOCD_RUNTIME_VERSION to it.

`cmd/` is one multi-call binary: it acts as argocd-application-controller, argocd-repo-server, ... by the name it
runs under (ARGOCD_BINARY_NAME). Without a stamp it reports v99.99.99+unknown; the version is stamped with ldflags.

Run `python tests/support/argocd.py` to prebuild it (what .ci/run does; cached per version).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.cluster_tools import build_from_module, load_all, module_dir

ARGOCD_RUNTIME_VERSION = "v3.2.11"
ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3"
# The Helm the repo-server renders charts with: the one Argo CD v3.2.11 ships (its hack/tool-versions.sh).
HELM_VERSION = "v3.18.4"
HELM_MODULE = "helm.sh/helm/v3"
ARGOCD_NS = "argocd"


def build_argocd(version: str = ARGOCD_RUNTIME_VERSION) -> Path:
    """The multi-call Argo CD binary of `version` (cached under the tool cache, keyed by version)."""
    return build_from_module("argocd", ARGOCD_MODULE, version, "./cmd",
                             stamp={"github.com/argoproj/argo-cd/v3/common.version": version.lstrip("v")})


def build_helm(version: str = HELM_VERSION) -> Path:
    """The helm CLI the repo-server shells out to (Argo CD's images ship it; no Debian package has it)."""
    return build_from_module("helm", HELM_MODULE, version, "./cmd/helm",
                             stamp={"helm.sh/helm/v3/internal/version.version": version})


def argocd_module(version: str = ARGOCD_RUNTIME_VERSION) -> Path:
    """The read-only module folder of `version`: manifests/crds, manifests/install.yaml (nothing built)."""
    return module_dir(ARGOCD_MODULE, version)


def install_manifest(version: str = ARGOCD_RUNTIME_VERSION) -> str:
    """manifests/install.yaml of `version`, as the release serves it (the module zip carries the same file)."""
    return (argocd_module(version) / "manifests" / "install.yaml").read_text(encoding="utf-8")


def install_objects(version: str = ARGOCD_RUNTIME_VERSION) -> list[dict[str, Any]]:
    return [d for d in load_all(install_manifest(version)) if isinstance(d, dict)]


def crd_and_rbac(version: str = ARGOCD_RUNTIME_VERSION) -> list[dict[str, Any]]:
    """The CRDs, ServiceAccounts, Roles, ClusterRoles and bindings of the install manifest (namespace argocd)."""
    kinds = {"CustomResourceDefinition", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
             "ClusterRoleBinding"}
    out = []
    for obj in install_objects(version):
        if obj.get("kind") in kinds:
            if obj["kind"] in {"ServiceAccount", "Role", "RoleBinding"}:
                obj["metadata"]["namespace"] = ARGOCD_NS
            out.append(obj)
    return out


def main() -> int:
    started = time.monotonic()
    binary = build_argocd()
    print(f"argocd {ARGOCD_RUNTIME_VERSION}: {binary} (built or found in {time.monotonic() - started:.1f}s)")
    helm = build_helm()
    print(f"helm {HELM_VERSION} (the repo-server's): {helm} (total {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
