"""The CRD schemas bundled in the package: coverage of every custom kind the templates emit, provenance,
strictness, lookup order, $FLEETSTRAP_CRD_SCHEMAS, and a cross-check against the CRDs catalog (../shared)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from fleetstrap.cli import run
from fleetstrap.errors import EXIT_FINDINGS
from fleetstrap.validate import ValidateOptions, validate_repo
from fleetstrap.validate.schemas import (
    bundled_kinds,
    bundled_schema_dir,
    compile_schema,
    convert_crd_schema,
    is_core_group,
    split_api_version,
)

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
# The CRDs catalog beside the checkout (or wherever $FLEETSTRAP_CRD_SCHEMAS points): a cross-check only.
CATALOG = Path(os.environ.get("FLEETSTRAP_CRD_SCHEMAS") or REPO.parent / "shared" / "schemas" / "crds")
_API = re.compile(r'(?m)^apiVersion:\s*"?([^\s"{]+)"?\s*$')
_KIND = re.compile(r'(?m)^kind:\s*"?([A-Za-z]+)"?\s*$')
# Every group the issue asks to be bundled (Flux, Argo, OTel, cert-manager, prometheus-operator, ESO,
# sealed-secrets, Gateway API).
REQUIRED_GROUPS = {
    "source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io",
    "notification.toolkit.fluxcd.io", "image.toolkit.fluxcd.io", "source.extensions.fluxcd.io", "argoproj.io",
    "argocd-image-updater.argoproj.io", "opentelemetry.io", "cert-manager.io", "monitoring.coreos.com",
    "external-secrets.io", "bitnami.com", "gateway.networking.k8s.io",
}


def _emitted_custom_kinds() -> set[tuple[str, str, str]]:
    """(group, kind, version) of every custom object a template file declares at the top level."""
    out: set[tuple[str, str, str]] = set()
    for path in TEMPLATES.rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for doc in re.split(r"(?m)^---\s*$", text):
            api, kind = _API.search(doc), _KIND.search(doc)
            if not (api and kind):
                continue
            group, version = split_api_version(api.group(1))
            if "." in group and group != "kustomize.config.k8s.io" and not (
                    is_core_group(group) and not group.startswith("gateway.")):
                out.add((group, kind.group(1).lower(), version))
    return out


def test_every_custom_kind_the_templates_emit_has_a_bundled_schema() -> None:
    emitted = _emitted_custom_kinds()
    assert len(emitted) >= 20  # the scan itself works (HelmRelease, Application, OpenTelemetryCollector, ...)
    assert ("helm.toolkit.fluxcd.io", "helmrelease", "v2") in emitted
    assert sorted(emitted - bundled_kinds()) == []


def test_required_groups_are_bundled_with_provenance() -> None:
    index = json.loads((bundled_schema_dir() / "index.json").read_text(encoding="utf-8"))
    assert {k.split("/", 1)[0] for k in index["schemas"]} >= REQUIRED_GROUPS
    for rel, source in index["schemas"].items():
        assert (bundled_schema_dir() / rel).is_file(), rel
        assert source in index["sources"], rel
    on_disk = {p.relative_to(bundled_schema_dir()).as_posix() for p in bundled_schema_dir().glob("*/*.json")}
    assert on_disk == set(index["schemas"])
    # Versions come from templates/pins.yml (Flux controllers: the pinned flux2 release).
    pins = (REPO / "templates" / "pins.yml").read_text(encoding="utf-8")
    argocd = re.search(r'argocd_version: "(v[^"]+)"', pins)
    assert argocd and index["schemas"]["argoproj.io/application_v1alpha1.json"] == \
        f"github.com/argoproj/argo-cd/v3@{argocd.group(1)}"
    assert index["schemas"]["source.extensions.fluxcd.io/artifactgenerator_v1beta1.json"].startswith(
        "github.com/fluxcd/source-watcher/v2@")


def test_bundled_schemas_are_compact_and_strict() -> None:
    hr = json.loads((bundled_schema_dir() / "helm.toolkit.fluxcd.io/helmrelease_v2.json").read_text("utf-8"))
    text = json.dumps(hr)
    assert '"description"' not in text
    assert hr["additionalProperties"] is False and hr["properties"]["spec"]["additionalProperties"] is False
    # values preserves unknown fields: open; int-or-string became anyOf.
    assert "additionalProperties" not in hr["properties"]["spec"]["properties"]["values"]
    validate = compile_schema(hr, draft=7)
    ok = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "a"},
          "spec": {"interval": "5m", "chartRef": {"kind": "OCIRepository", "name": "a"}, "values": {"any": 1}}}
    assert validate(ok) == []
    bad = {**ok, "spc": {}, "spec": {**ok["spec"], "intervall": "5m"}}
    assert sorted(m for _, m in validate(bad)) == ["unknown field 'intervall'", "unknown field 'spc'"]


def test_crd_conversion_honours_kubernetes_extensions() -> None:
    schema = convert_crd_schema({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "note": {"type": "string", "nullable": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"known": {"type": "string"}}},
        }}}})
    validate = compile_schema(schema, draft=7)
    base = {"apiVersion": "x/v1", "kind": "X", "metadata": {}}
    assert validate({**base, "spec": {"port": 80, "note": None, "free": {"known": "a", "other": 1}}}) == []
    assert validate({**base, "spec": {"port": "http"}}) == []
    assert [m for _, m in validate({**base, "spec": {"port": 1.5, "extra": 1}})] != []


WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: helmreleases.helm.toolkit.fluxcd.io
spec:
  group: helm.toolkit.fluxcd.io
  names: {kind: HelmRelease, plural: helmreleases}
  scope: Namespaced
  versions:
    - name: v2
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                onlyInRepoCrd: {type: string}
"""
RELEASE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: r
spec:
  onlyInRepoCrd: x
"""


def test_lookup_order_location_then_repo_crd_then_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETSTRAP_CRD_SCHEMAS", raising=False)
    (tmp_path / "release.yaml").write_text(RELEASE, encoding="utf-8")
    opts = ValidateOptions(offline=True, catalog_url=None, fast=True, disabled=frozenset({"xref", "kustomize"}))
    bundled = validate_repo(tmp_path, opts)
    assert "spec.onlyInRepoCrd" in [f.path for f in bundled.errors]  # the bundled (real) schema rejects it
    (tmp_path / "crd.yaml").write_text(WIDGET_CRD, encoding="utf-8")
    assert validate_repo(tmp_path, opts).errors == ()  # the repo's own CRD comes before the bundled set
    loc = tmp_path.parent / "loc"
    (loc / "helm.toolkit.fluxcd.io").mkdir(parents=True)
    (loc / "helm.toolkit.fluxcd.io/helmrelease_v2.json").write_text(json.dumps(
        {"type": "object", "properties": {"spec": {"type": "object", "additionalProperties": False}}}))
    first = validate_repo(tmp_path, ValidateOptions(**{**opts.__dict__, "schema_locations": (str(loc),)}))
    # --schema-location wins over both: its schema closes spec (an error), but requires nothing, unlike the
    # bundled HelmRelease schema.
    assert first.errors and not [f for f in first.errors if "required" in f.message]


def test_env_schema_location_is_honoured_by_validate_and_the_gate(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from fleetstrap.errors import FindingsError
    from fleetstrap.validate import gate

    monkeypatch.delenv("FLEETSTRAP_CRD_SCHEMAS", raising=False)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo/release.yaml").write_text(RELEASE.replace("onlyInRepoCrd: x", "interval: 5m\n  chartRef:\n"
                                                                "    kind: OCIRepository\n    name: a"))
    loc = tmp_path / "loc" / "helm.toolkit.fluxcd.io"
    loc.mkdir(parents=True)
    (loc / "helmrelease_v2.json").write_text(json.dumps({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"interval": {"type": "integer"}}}}}))
    args = ["validate", "--offline", "--disable", "xref", "--format", "json", str(tmp_path / "repo")]
    assert run(args) == 0
    capsys.readouterr()
    monkeypatch.setenv("FLEETSTRAP_CRD_SCHEMAS", str(tmp_path / "loc"))
    assert run(args) == EXIT_FINDINGS
    assert [f["path"] for f in json.loads(capsys.readouterr().out)["findings"]] == ["spec.interval"]
    with pytest.raises(FindingsError, match="5m"):
        gate(tmp_path / "repo", ValidateOptions(fast=True, offline=True, disabled=frozenset({"xref"})))


def test_object_without_a_name_is_shown_as_such(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n"
                                     "  name:\nspec:\n  interval: 5\n", encoding="utf-8")
    report = validate_repo(tmp_path, ValidateOptions(offline=True, catalog_url=None, fast=True))
    assert report.errors and {f.object for f in report.errors} == {"HelmRelease/(no name)"}


@pytest.mark.skipif(not CATALOG.is_dir(), reason="no CRDs catalog at ../shared/schemas/crds (cross-check only)")
def test_cross_check_with_the_crds_catalog(tmp_path: Path) -> None:
    """The fixture repos validate the same (0 errors) against the catalog as against the bundled set, and
    every catalog kind of a bundled group at a bundled version exists in the bundle."""
    from defects.realworld import REPOS

    for repo in REPOS:
        root = tmp_path / repo.name
        for rel, text in repo.files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        catalog = validate_repo(root, ValidateOptions(schema_locations=(str(CATALOG),), bundled_schemas=False,
                                                      offline=True, catalog_url=None, fast=True))
        assert [f for f in catalog.errors if "no schema" not in f.message] == [], repo.name
    # Every kind the catalog has for a bundled group is bundled too (at the versions its current CRD serves).
    bundled = {(g, k) for g, k, _ in bundled_kinds()}
    groups = {g for g, _ in bundled}
    in_catalog = {(p.parent.name, p.stem.rsplit("_", 1)[0]) for p in CATALOG.glob("*/*.json")}
    assert sorted(k for k in in_catalog if k[0] in groups and k not in bundled) == []
