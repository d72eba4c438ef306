"""Split layout (each service in its own repository, its chart released to OCI) for Flux, Argo CD and both.

Parity: for the same answers, Flux (OCIRepository + HelmRelease valuesFrom) and Argo CD (multi-source
Application: OCI chart + `$values` from the fleet repo) deploy the same (cluster, release, chart reference,
namespace, merged values). The CLI tests run the real `fleetstrap init` / `add service` and `validate`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from fleetstrap.cli import run
from fleetstrap.pins import pin
from fleetstrap.validate import ValidateOptions, validate_repo
from support import k8s
from support.fleet import RenderedFleet, render_blueprint
from support.parity import appset_params, canonical, go_template, merge_values

BLUEPRINT = "multi-env"
SERVICES = ["hello", "billing"]
K8S_VERSION = pin("kubernetes_version")








def _services_appset(fleet: RenderedFleet) -> dict[str, Any]:
    appsets: list[dict[str, Any]] = [d for d in k8s.load_documents(fleet.root / "argocd/applicationsets/services.yaml")
                                     if d.get("kind") == "ApplicationSet"]
    (appset,) = appsets
    return appset




def _argo_sources(fleet: RenderedFleet) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The chart source and the `ref` sources of the services ApplicationSet's template."""
    spec = _services_appset(fleet)["spec"]["template"]["spec"]
    assert "source" not in spec, "split layout: the template must use `sources`"
    (chart,) = [s for s in spec["sources"] if "ref" not in s]
    return chart, {s["ref"]: s for s in spec["sources"] if "ref" in s}


def flux_split_services(fleet: RenderedFleet) -> set[tuple[str, str, tuple[str, str], str, str]]:
    """(cluster, release, (chart URL, version range), namespace, merged values) from each cluster's `apps`."""
    out = set()
    for c in fleet.answers.clusters:
        apps = k8s.load_documents(fleet.root / "clusters" / c.name / "apps.yaml")[0]
        objects = k8s.kustomize_build(fleet.root / apps["spec"]["path"])
        maps = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"] in {"ConfigMap", "Secret"}}
        oci = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]
               for o in objects if o["kind"] == "OCIRepository"}
        for o in objects:
            if o["kind"] != "HelmRelease":
                continue
            spec, namespace = o["spec"], o["metadata"]["namespace"]
            assert "chart" not in spec and spec["chartRef"]["kind"] == "OCIRepository"
            source = oci[(spec["chartRef"].get("namespace", namespace), spec["chartRef"]["name"])]
            assert source["layerSelector"]["mediaType"] == "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
            values: dict[str, Any] = {}
            for ref in spec.get("valuesFrom", []):
                data = maps[(ref["kind"], ref["name"])]["data"][ref.get("valuesKey", "values.yaml")]
                values = merge_values(values, yaml.safe_load(data) or {})
            values = merge_values(values, spec.get("values") or {})
            out.add((c.name, spec["releaseName"], (source["url"], source["ref"]["semver"]),
                     spec.get("targetNamespace", namespace), canonical(values)))
    return out


def argo_split_services(fleet: RenderedFleet) -> set[tuple[str, str, tuple[str, str], str, str]]:
    """The same tuples from the services ApplicationSet: OCI chart source + value files from the `ref` source."""
    appset = _services_appset(fleet)
    template = appset["spec"]["template"]["spec"]
    chart, refs = _argo_sources(fleet)
    out = set()
    for params in appset_params(appset, fleet.root):
        values: dict[str, Any] = {}
        for vf in chart["helm"]["valueFiles"]:
            name, _, rest = go_template(vf, params).partition("/")
            # `$values` is the root of the ref source, which must be this fleet repository.
            assert refs[name.removeprefix("$")]["repoURL"] == fleet.answers.git_url
            values = merge_values(values, yaml.safe_load((fleet.root / rest).read_text(encoding="utf-8")) or {})
        values = merge_values(values, chart["helm"].get("valuesObject") or {})
        out.add((params["name"], go_template(chart["helm"]["releaseName"], params),
                 (go_template(chart["repoURL"], params), go_template(chart["targetRevision"], params)),
                 go_template(template["destination"]["namespace"], params), canonical(values)))
    return out


@pytest.fixture(scope="module")
def engines() -> tuple[RenderedFleet, RenderedFleet]:
    data = {"services": SERVICES, "repo_layout": "split"}
    return render_blueprint(BLUEPRINT, engine="flux", **data), render_blueprint(BLUEPRINT, engine="argocd", **data)


@pytest.fixture(scope="module")
def both() -> RenderedFleet:
    return render_blueprint(BLUEPRINT, engine="both", services=SERVICES, repo_layout="split", image_automation=True)


def test_split_parity_flux_and_argo(engines: tuple[RenderedFleet, RenderedFleet]) -> None:
    flux, argo = engines
    flux_set, argo_set = flux_split_services(flux), argo_split_services(argo)
    assert len(argo_set) == len(argo.answers.clusters) * len(SERVICES)
    assert {t[2][0] for t in flux_set} == {f"oci://{flux.answers.registry}/charts/{s}" for s in SERVICES}
    assert flux_set == argo_set


def test_argo_chart_source_is_native_oci(engines: tuple[RenderedFleet, RenderedFleet]) -> None:
    _, argo = engines
    chart, refs = _argo_sources(argo)
    # Argo CD treats an oci:// repoURL as an OCI source; a Helm chart artifact is used with path ".".
    assert chart["repoURL"].startswith("oci://") and chart["path"] == "." and "chart" not in chart
    assert list(refs) == ["values"]
    assert refs["values"] == {"repoURL": argo.answers.git_url, "targetRevision": argo.answers.branch,
                              "ref": "values"}
    assert not (argo.root / "charts").exists() and not (argo.root / "services").exists()


def test_argo_project_allows_every_source(engines: tuple[RenderedFleet, RenderedFleet]) -> None:
    _, argo = engines
    appset = _services_appset(argo)
    project_name = appset["spec"]["template"]["spec"]["project"]
    project = k8s.load_documents(argo.root / "argocd/projects" / f"{project_name}.yaml")[0]
    allowed = set(project["spec"]["sourceRepos"])
    chart, refs = _argo_sources(argo)
    used = {go_template(s["repoURL"], p) for p in appset_params(appset, argo.root)
            for s in [chart, *refs.values()]}
    assert used == allowed, "the AppProject allows exactly the fleet repo and each service's chart"
    # Other teams' projects gain nothing from the split layout.
    for other in argo.answers.teams[1:]:
        doc = k8s.load_documents(argo.root / "argocd/projects" / f"{other}.yaml")[0]
        assert doc["spec"]["sourceRepos"] == [argo.answers.git_url]


@pytest.mark.usefixtures("crd_schemas")
def test_argo_split_objects_validate_strictly(engines: tuple[RenderedFleet, RenderedFleet]) -> None:
    _, argo = engines
    docs = [(str(p.relative_to(argo.root)), d) for p in sorted((argo.root / "argocd").rglob("*.yaml"))
            for d in k8s.load_documents(p) if isinstance(d, dict) and d.get("apiVersion") == "argoproj.io/v1alpha1"]
    assert any(d["kind"] == "ApplicationSet" for _, d in docs) and any(d["kind"] == "AppProject" for _, d in docs)
    problems = k8s.validate_objects(docs, K8S_VERSION)
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.usefixtures("crd_schemas")
def test_both_engines_split_with_image_automation(both: RenderedFleet) -> None:
    for s in SERVICES:
        source = yaml.safe_load((both.root / "apps/base" / s / "chart-source.yaml").read_text(encoding="utf-8"))
        assert source["spec"]["url"] == f"oci://{both.answers.registry}/charts/{s}"
        # Image Updater: the Applications' Helm source is the OCI chart, so the write-back repository is explicit.
        for doc in k8s.load_documents(both.root / "argocd/image-updater" / f"{s}.yaml"):
            for app_ref in doc["spec"]["applicationRefs"]:
                git_config = app_ref["writeBackConfig"]["gitConfig"]
                assert git_config["repository"] == both.answers.git_url
                target = git_config["writeBackTarget"].removeprefix("helmvalues:/")
                assert (both.root / target).is_file(), target
    for d in sorted(p.parent for p in both.root.rglob("kustomization.yaml")):
        objects = k8s.kustomize_build(d)
        problems = k8s.validate_objects([(str(d.relative_to(both.root)), o) for o in objects], K8S_VERSION)
        assert not problems, "\n".join(map(str, problems))
    assert flux_split_services(both) == argo_split_services(both)


# ---------------------------------------------------------------- the CLI on a real split Argo CD fleet


def _errors(root: Path, crd_schemas: Path) -> list[str]:
    report = validate_repo(root, ValidateOptions(schema_locations=(str(crd_schemas),), catalog_url=None))
    return [f"{f.file}: {f.message}" for f in report.findings if f.severity == "error"]


def test_argocd_split_init_validates_and_adds_a_service(tmp_path: Path, crd_schemas: Path) -> None:
    fleet = tmp_path / "fleet"
    assert run(["-q", "init", "-b", "argocd-multi-cluster", "-d", "repo_layout=split", str(fleet)]) == 0
    assert _errors(fleet, crd_schemas) == []
    for d in sorted(p.parent for p in fleet.rglob("kustomization.yaml") if ".git" not in p.parts):
        assert k8s.kustomize_build(d) is not None
    assert run(["-q", "add", "service", "payments", "-C", str(fleet), "--commit"]) == 0
    registry = yaml.safe_load((fleet / ".fleetstrap/answers/fleet.yml").read_text(encoding="utf-8"))["registry"]
    for service in ("hello", "payments"):
        repo = tmp_path / service
        assert (repo / "charts" / service / "Chart.yaml").is_file() and (repo / "Cargo.toml").is_file()
        assert not git.Repo(repo).is_dirty(untracked_files=True)
        assert not (fleet / "charts" / service).exists() and not (fleet / "services" / service).exists()
        for env in ("dev", "staging", "production"):
            assert (fleet / "apps" / env / service / "values.yaml").is_file()
    text = (fleet / "argocd/applicationsets/services.yaml").read_text(encoding="utf-8")
    appset = yaml.safe_load(text)
    # The git files generator finds each service's chart-version.yaml in every environment.
    params = appset_params(appset, fleet)
    assert {(p["environment"], p["data"]["service"]) for p in params} == {
        (env, s) for env in ("dev", "staging", "production") for s in ("hello", "payments")}
    assert {p["data"]["version"] for p in params} == {"0.1.0"}
    project = yaml.safe_load((fleet / "argocd/projects/platform.yaml").read_text(encoding="utf-8"))
    assert {f"oci://{registry}/charts/{s}" for s in ("hello", "payments")} <= set(project["spec"]["sourceRepos"])
    assert _errors(fleet, crd_schemas) == []
    assert not git.Repo(fleet).is_dirty(untracked_files=True)


# ---------------------------------------------------------------- validate: multi-source `$values` references

_APP = """\
apiVersion: argoproj.io/v1alpha1
kind: {kind}
metadata:
  name: web
  namespace: argocd
spec:
{body}
"""
_SPEC = """\
project: default
destination:
  server: https://kubernetes.default.svc
  namespace: web
sources:
  - repoURL: oci://ghcr.io/acme/charts/web
    targetRevision: ">=0.1.0"
    path: .
    helm:
      valueFiles:
        - {value_file}
  - repoURL: ssh://git@github.com/acme/fleet-infra.git
    targetRevision: main
    ref: {ref}
"""


def _xref_repo(root: Path, value_file: str, ref: str = "values", appset: bool = False) -> Path:
    (root / ".fleetstrap/answers").mkdir(parents=True)
    (root / ".fleetstrap/answers/fleet.yml").write_text("git_url: ssh://git@github.com/acme/fleet-infra.git\n")
    (root / "apps/dev/web").mkdir(parents=True)
    (root / "apps/dev/web/values.yaml").write_text("replicaCount: 1\n")
    spec = _SPEC.format(value_file=value_file, ref=ref)
    if appset:
        # Not a Go template (those files are skipped by the loader): a matrix of two list generators.
        body = ("generators:\n  - matrix:\n      generators:\n        - list:\n            elements:\n"
                "              - env: dev\n        - list:\n            elements:\n              - svc: web\n"
                "template:\n  metadata:\n    name: '{{env}}-{{svc}}'\n  spec:\n" + textwrap.indent(spec, "    "))
        text = _APP.format(kind="ApplicationSet", body=textwrap.indent(body, "  "))
    else:
        text = _APP.format(kind="Application", body=textwrap.indent(spec, "  "))
    (root / "app.yaml").write_text(text)
    return root


def _xref(root: Path) -> list[str]:
    disabled = frozenset({"schema", "kustomize", "helm", "otel", "workflows", "dockerfile"})
    report = validate_repo(root, ValidateOptions(disabled=disabled, catalog_url=None, offline=True))
    return [f.message for f in report.findings if f.check == "xref"]


@pytest.mark.parametrize(("value_file", "ref", "appset", "expected"), [
    ("$values/apps/dev/web/values.yaml", "values", False, None),
    ("$values/apps/dev/nope/values.yaml", "values", False, "does not exist in the repo"),
    ("$values/apps/dev/web/values.yaml", "vals", False, "no source has ref 'values'"),
    ("$values/apps/{{env}}/{{svc}}/values.yaml", "values", True, None),
    ("$values/apps/{{env}}/x-{{svc}}/values.yaml", "values", True, "does not exist in the repo"),
])
def test_validate_checks_multi_source_value_files(tmp_path: Path, value_file: str, ref: str, appset: bool,
                                                  expected: str | None) -> None:
    messages = _xref(_xref_repo(tmp_path / "repo", value_file, ref, appset))
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0], messages
