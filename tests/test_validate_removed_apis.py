"""An API version the pinned controllers no longer serve is an error naming the API, the release that removed it
(where known) and the version to use; never a quiet "no schema" warning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetstrap.validate import ValidateOptions, validate_repo
from fleetstrap.validate.schemas import BUNDLED_SCHEMAS, api_versions, deprecated_api, removed_api, version_key

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
    (HELMRELEASE.format(version="v2beta1"), "helm.toolkit.fluxcd.io/v2beta1", "helm.toolkit.fluxcd.io/v2",
     "Flux 2.7"),
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


def _obj(api: str, kind: str, spec: str = "") -> str:
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: x\n  namespace: apps\n{spec}"


# One removed version of each bundled controller that ever removed one; the release comes from the generated table
# (scripts/gen_crd_schemas.py walks the controller's releases on the Go module proxy).
@pytest.mark.parametrize(("api", "kind", "use", "release"), [
    ("kustomize.toolkit.fluxcd.io/v1beta2", "Kustomization", "kustomize.toolkit.fluxcd.io/v1", "Flux 2.8"),
    ("notification.toolkit.fluxcd.io/v1beta2", "Alert", "notification.toolkit.fluxcd.io/v1beta3", "Flux 2.9"),
    ("image.toolkit.fluxcd.io/v1beta1", "ImagePolicy", "image.toolkit.fluxcd.io/v1", "Flux 2.7"),
    ("cert-manager.io/v1alpha2", "Certificate", "cert-manager.io/v1", "cert-manager 1.6"),
    ("gateway.networking.k8s.io/v1alpha2", "HTTPRoute", "gateway.networking.k8s.io/v1", "Gateway API 0.8"),
    ("gateway.networking.k8s.io/v1alpha2", "ReferenceGrant", "gateway.networking.k8s.io/v1", "Gateway API 1.2"),
    ("external-secrets.io/v1alpha1", "SecretStore", "external-secrets.io/v1", "External Secrets Operator 0.15-0.16"),
    ("kyverno.io/v2alpha1", "PolicyException", "kyverno.io/v2", "Kyverno 1.12"),
])
def test_removed_versions_of_every_controller_name_the_release(tmp_path: Path, api: str, kind: str, use: str,
                                                                release: str) -> None:
    findings = _validate(tmp_path, {"apps/x.yaml": _obj(api, kind)})
    assert [(s, f) for s, f, _ in findings] == [("error", "apps/x.yaml")], findings
    message = findings[0][2]
    assert f"{api} {kind} is no longer served (removed in {release};" in message
    assert message.endswith(f"use apiVersion {use}")


@pytest.mark.parametrize(("api", "kind", "use"), [
    # Still in the pinned CRD but served: false (the bundled schema alone let these pass before).
    ("external-secrets.io/v1beta1", "ExternalSecret", "external-secrets.io/v1"),
    ("kyverno.io/v1beta1", "UpdateRequest", "kyverno.io/v2"),
])
def test_a_version_the_pinned_crd_lists_but_does_not_serve_is_an_error(tmp_path: Path, api: str, kind: str,
                                                                        use: str) -> None:
    findings = _validate(tmp_path, {"apps/x.yaml": _obj(api, kind)})
    assert [(s, f) for s, f, _ in findings] == [("error", "apps/x.yaml")], findings
    assert "is no longer served" in findings[0][2] and findings[0][2].endswith(f"use apiVersion {use}")


@pytest.mark.parametrize(("api", "kind", "spec", "says"), [
    ("gateway.networking.k8s.io/v1alpha2", "TLSRoute", "spec:\n  rules: []\n",
     "(Gateway API 1.6.3 still serves it): use apiVersion gateway.networking.k8s.io/v1"),
    ("policies.kyverno.io/v1alpha1", "ValidatingPolicy", "", "use apiVersion policies.kyverno.io/v1"),
    ("kyverno.io/v2alpha1", "GlobalContextEntry", "", "use apiVersion kyverno.io/v2"),
    # Every served version of the kind is deprecated: the CRD's own warning names the kinds that replace it.
    ("kyverno.io/v1", "ClusterPolicy", "spec:\n  rules: []\n",
     "migrate to ValidatingPolicy, MutatingPolicy, GeneratingPolicy or ImageValidatingPolicy (policies.kyverno.io)"),
])
def test_deprecated_but_served_versions_are_warnings_naming_what_to_use(tmp_path: Path, api: str, kind: str,
                                                                         spec: str, says: str) -> None:
    findings = _validate(tmp_path, {"apps/x.yaml": "# a comment line\n" + _obj(api, kind, spec)})
    deprecations = [f for f in findings if "deprecated" in f[2]]
    assert [(s, f) for s, f, _ in deprecations] == [("warning", "apps/x.yaml")], findings
    assert f"{api} {kind} is deprecated" in deprecations[0][2] and says in deprecations[0][2]


def test_a_deprecation_warning_points_at_the_api_version_line(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps/x.yaml").write_text("---\n# c\nkind: TLSRoute\napiVersion: gateway.networking.k8s.io/v1alpha2\n"
                                          "metadata:\n  name: x\nspec:\n  rules: []\n", encoding="utf-8")
    report = validate_repo(tmp_path, ValidateOptions(offline=True, catalog_url=None))
    assert [(f.severity, f.line, f.path) for f in report.findings if "deprecated" in f.message] == [
        ("warning", 4, "apiVersion")]


def test_the_served_table_is_generated_for_every_bundled_controller() -> None:
    index = json.loads((BUNDLED_SCHEMAS / "index.json").read_text(encoding="utf-8"))
    releases = {entry["release"].rsplit(" ", 1)[0] for entry in index["apis"].values()}
    assert releases >= {"Flux", "Argo CD", "Argo Rollouts", "cert-manager", "prometheus-operator",
                        "External Secrets Operator", "Gateway API", "Kyverno", "Flagger"}
    for api, entry in index["apis"].items():
        group, kind = api.split("/")
        served = [v for v, row in entry["versions"].items() if row["served"]]
        # Every served version has its schema; exactly one version is stored; a removed version is not served.
        assert all((BUNDLED_SCHEMAS / group / f"{kind}_{v}.json").is_file() for v in served), api
        assert sum(row["storage"] for row in entry["versions"].values()) == 1, api
        assert not set(entry.get("removed", {})) & set(served), api
        table = api_versions(group, kind)
        assert table is not None
        for version in table.deprecated:  # every deprecated version says what to use instead
            message = deprecated_api(f"{group}/{version}", entry["kind"])
            assert message and ("use apiVersion" in message or "migrate to" in message), (api, version)


def _gen_script() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "gen_crd_schemas.py"
    spec = importlib.util.spec_from_file_location("gen_crd_schemas", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_release_walk_names_the_first_release_that_stops_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator's walk (offline, over made-up releases): a version is removed in the first release that no
    longer serves it; a gap the proxy cannot fill gives the range; a version served again is not removed."""
    gen = _gen_script()
    served = {
        "1.0": {("x.io/widget", "v1alpha1"), ("x.io/widget", "v1beta1"), ("x.io/gadget", "v1alpha1")},
        "1.1": {("x.io/widget", "v1beta1"), ("x.io/widget", "v1"), ("x.io/gadget", "v1alpha1")},
        "1.2": None,  # not on the proxy
        "1.3": {("x.io/widget", "v1")},
        "1.4": {("x.io/widget", "v1"), ("x.io/gadget", "v1alpha1")},
    }
    monkeypatch.setattr(gen, "_history", lambda _pins: [[(f"X {v}", lambda v=v: v) for v in served]])
    monkeypatch.setattr(gen, "_served_at", lambda release: served[release])
    assert gen.removals({}) == {"x.io/widget": {"v1alpha1": "X 1.1", "v1beta1": "X 1.2-1.3"}}


def test_a_kind_two_channels_define_is_served_where_either_serves_it() -> None:
    gen = _gen_script()
    apis: dict[str, Any] = {}

    def crd(served: bool, warning: str | None) -> dict[str, Any]:
        row = {"name": "v1alpha3", "served": served, "storage": False, "deprecated": True,
               **({"deprecationWarning": warning} if warning else {})}
        return {"spec": {"group": "g.io", "names": {"kind": "Policy"},
                         "versions": [row, {"name": "v1", "served": True, "storage": True}]}}

    gen._record_versions(apis, crd(False, None), "Gateway API 1.6.3")  # standard channel: listed, not served
    gen._record_versions(apis, crd(True, "use v1"), "Gateway API 1.6.3")  # experimental: served
    assert apis["g.io/policy"]["versions"] == {
        "v1alpha3": {"served": True, "storage": False, "deprecated": True, "warning": "use v1"},
        "v1": {"served": True, "storage": True, "deprecated": False}}
