"""The real kube-apiserver accepts every object each blueprint renders (issue 15, item 1).

The CRDs of the pinned controllers are installed from their Go modules (Flux, Argo CD, Argo Rollouts, Image
Updater, cert-manager, prometheus-operator, sealed-secrets, Kyverno), then every object of every blueprint (each engine,
monitoring and progressive delivery on) is server-side applied with dry-run=All and strict field validation: CEL
rules, defaulting, schema types and unknown fields are judged by the apiserver itself. One broken object per CRD
family must be rejected, which proves the check can fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetstrap.blueprints import list_blueprints
from fleetstrap.pins import pin
from support import cluster_tools, k8s
from support.controlplane import ControlPlane
from support.fleet import render_blueprint
from validate_fixture import crd_schemas as crd_schema_location

pytestmark = pytest.mark.xdist_group("controlplane")

ENGINES = ("flux", "argocd", "both")
# Folders of manifests a cluster applies (Flux Kustomizations, Argo CD directory sources); the service repos and
# charts are rendered by Helm, and .github holds workflows.
MANIFEST_ROOTS = ("clusters", "apps", "infrastructure", "argocd")
MANAGER = "fleetstrap-acceptance"


def blueprint_names() -> list[str]:
    return sorted(getattr(b, "name", b) for b in list_blueprints())


def family_of(api_version: str) -> str:
    group = api_version.rpartition("/")[0]
    return group.split(".", 1)[1] if group.endswith(".fluxcd.io") else group


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Install the CRDs of every pinned controller; family (API group family) -> kinds installed."""
    files = list(cluster_tools.flux_modules(pin("flux_version")).crd_files())
    for spec in cluster_tools.crd_modules():
        files += cluster_tools.module_crd_files(spec)
    # The operator's module is not on the proxy: its CRDs are rebuilt from the schemas validate uses
    # ($FLEETSTRAP_CRD_SCHEMAS, else the bundled set), never silently left out.
    extra = tmp_path_factory.mktemp("crds") / "opentelemetry.yaml"
    extra.write_text(yaml.safe_dump_all(cluster_tools.otel_crds_from_schemas(Path(crd_schema_location()))),
                     encoding="utf-8")
    files.append(extra)
    control_plane.apply_files(files, manager=MANAGER)
    installed: dict[str, list[str]] = {}
    names = []
    for path in files:
        for doc in cluster_tools.load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            names.append(doc["metadata"]["name"])
            spec = doc["spec"]
            installed.setdefault(family_of(f"{spec['group']}/v"), []).append(spec["names"]["kind"])
    control_plane.wait_crds_established(names)
    return installed


def manifest_dirs(root: Path) -> Iterator[Path]:
    for top in MANIFEST_ROOTS:
        base = root / top
        if base.is_dir():
            yield from sorted({p.parent for p in base.rglob("*.yaml")})


def rendered_objects(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, object) for every object the fleet's folders produce, each distinct object once."""
    seen: set[str] = set()
    out: list[tuple[str, dict[str, Any]]] = []
    for folder in manifest_dirs(root):
        where = folder.relative_to(root).as_posix()
        if (folder / "kustomization.yaml").is_file():
            docs = k8s.kustomize_build(folder)
        else:
            # Argo CD directory sources and cluster folders Flux reads without a kustomization.yaml.
            docs = [d for p in sorted(folder.glob("*.yaml")) for d in k8s.load_documents(p)]
        for doc in docs:
            if not isinstance(doc, dict) or "kind" not in doc or \
                    str(doc.get("apiVersion", "kustomize.config.k8s.io")).startswith("kustomize.config.k8s.io"):
                continue  # values files and kustomize's own files are not objects
            key = json.dumps(doc, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append((where, doc))
    return out


def ensure_namespaces(plane: ControlPlane, objects: list[tuple[str, dict[str, Any]]]) -> None:
    """Namespaces the objects live in exist in a cluster before they apply (Helm or Flux create them)."""
    wanted = {o["metadata"].get("namespace") for _, o in objects} | {
        o["metadata"]["name"] for _, o in objects if o["kind"] == "Namespace" and o["apiVersion"] == "v1"}
    for name in sorted(n for n in wanted if n):
        status, body = plane.request("POST", "/api/v1/namespaces",
                                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        assert status in (201, 409), body


def dry_run_apply(plane: ControlPlane, objects: list[dict[str, Any]], workdir: Path) -> tuple[int, str]:
    manifest = workdir / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all(objects, sort_keys=False), encoding="utf-8")
    res = plane.kubectl("apply", "--server-side", "--dry-run=server", "--force-conflicts", "--validate=strict",
                        f"--field-manager={MANAGER}", "-f", str(manifest), check=False)
    return res.returncode, res.stdout + res.stderr


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", blueprint_names())
def test_apiserver_accepts_every_rendered_object(control_plane: ControlPlane, crds: dict[str, list[str]],
                                                 name: str, engine: str, tmp_path: Path) -> None:
    fleet = render_blueprint(name, engine=engine, monitoring=True, progressive_delivery=True)
    objects = rendered_objects(fleet.root)
    assert objects, "the blueprint rendered no objects"
    families = {family_of(o["apiVersion"]) for _, o in objects if "." in o["apiVersion"].split("/")[0]}
    missing = sorted(f for f in families if f not in crds and f not in {"rbac.authorization.k8s.io"})
    assert not missing, f"no CRDs installed for {missing}"
    ensure_namespaces(control_plane, objects)
    code, output = dry_run_apply(control_plane, [o for _, o in objects], tmp_path)
    assert code == 0, output
    # kubectl reports each object; all of them went through the apiserver.
    assert output.count("serverside-applied (server dry run)") == len(objects), output


def broken(kind_doc: dict[str, Any]) -> dict[str, Any]:
    """The object with a spec field its schema does not have (strict field validation must refuse it)."""
    doc = json.loads(json.dumps(kind_doc))
    doc.setdefault("spec", {})["fleetstrapNotAField"] = {"injected": True}
    return doc


def test_each_crd_family_rejects_an_invalid_object(control_plane: ControlPlane, crds: dict[str, list[str]],
                                                   tmp_path: Path) -> None:
    samples: dict[str, dict[str, Any]] = {}
    for name in blueprint_names():
        for _, obj in rendered_objects(render_blueprint(name, monitoring=True, progressive_delivery=True).root):
            family = family_of(obj["apiVersion"])
            if family in crds and isinstance(obj.get("spec"), dict):
                samples.setdefault(family, obj)
    assert {"toolkit.fluxcd.io", "cert-manager.io", "monitoring.coreos.com", "argoproj.io"} <= set(samples)
    ensure_namespaces(control_plane, [("", o) for o in samples.values()])
    for family, obj in sorted(samples.items()):
        code, output = dry_run_apply(control_plane, [obj], tmp_path)
        assert code == 0, f"{family}: the valid sample is refused: {output}"
        code, output = dry_run_apply(control_plane, [broken(obj)], tmp_path)
        assert code != 0, f"{family}: {obj['kind']} with an unknown field was accepted: {output}"
        assert "fleetstrapNotAField" in output, output
