"""progressive_delivery: Argo Rollouts on every cluster (both engines) and blue-green services.

One fleet per engine (multi-env blueprint, two services) renders once per process; the checks are strict
schemas (incl. argoproj.io Rollout), `kubectl kustomize` builds, Flux/Argo CD parity of the controllers,
the service values switching the chart to a Rollout (real Helm engine), and the validate gate.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fleetstrap.answers import build_answers
from fleetstrap.pins import pin
from support import k8s
from support.fleet import RenderedFleet, render_blueprint
from support_service import render_chart
from test_fleet_template import (
    _argo_appsets,
    _kustomization_dirs,
    _objects,
    argo_infrastructure,
    flux_infrastructure,
    flux_services,
)

BLUEPRINT = "multi-env"
SERVICES = ["hello", "billing"]
K8S_VERSION = pin("kubernetes_version")


@pytest.fixture(scope="module", params=["flux", "argocd"])
def fleet(request: pytest.FixtureRequest) -> RenderedFleet:
    return render_blueprint(BLUEPRINT, engine=request.param, progressive_delivery=True, services=SERVICES)


@pytest.fixture(scope="module")
def engines() -> tuple[RenderedFleet, RenderedFleet]:
    return (render_blueprint(BLUEPRINT, engine="flux", progressive_delivery=True, services=SERVICES),
            render_blueprint(BLUEPRINT, engine="argocd", progressive_delivery=True, services=SERVICES))


def _values(fleet: RenderedFleet, env: str, service: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((fleet.root / "apps" / env / service / "values.yaml").read_text())
    return loaded


# ---------------------------------------------------------------- answers


def test_answer_defaults_off_and_parses() -> None:
    base = {"owner": "acme", "service": "hello"}
    assert build_answers(base).progressive_delivery == "none"
    on = build_answers({**base, "progressive_delivery": "argo-rollouts"})
    assert on.progressive_delivery == "argo-rollouts"
    assert on.to_copier_data()["progressive_delivery"] == "argo-rollouts"
    assert build_answers(on.to_mapping()).progressive_delivery == "argo-rollouts"
    # The boolean of fleetstrap 0.1 (answers files, blueprints, --data) still reads: true is Argo Rollouts.
    for legacy, meaning in ((True, "argo-rollouts"), ("yes", "argo-rollouts"), (False, "none"), ("off", "none")):
        assert build_answers({**base, "progressive_delivery": legacy}).progressive_delivery == meaning, legacy


def test_answers_files_record_it_only_when_on(fleet: RenderedFleet) -> None:
    # The fixture answers with the legacy boolean: the answers files record today's value.
    for name in ("fleet.yml", "cluster-dev.yml", "service-hello.yml"):
        recorded = yaml.safe_load((fleet.root / ".fleetstrap/answers" / name).read_text())
        assert recorded["progressive_delivery"] == "argo-rollouts", name
    off = render_blueprint("starter")
    assert "progressive_delivery" not in (off.root / ".fleetstrap/answers/fleet.yml").read_text()
    assert not any("argo-rollouts" in rel for rel, _ in off.own_files)


# ---------------------------------------------------------------- the controller


def test_controller_is_installed_on_every_cluster(fleet: RenderedFleet) -> None:
    if fleet.answers.engine == "flux":
        objects = k8s.kustomize_build(fleet.root / "infrastructure/controllers")
        (release,) = [o for o in objects if o["kind"] == "HelmRelease" and o["metadata"]["name"] == "argo-rollouts"]
        chart = release["spec"]["chart"]["spec"]
        assert (chart["chart"], chart["version"]) == ("argo-rollouts", pin("argo_rollouts_chart_version"))
        (repo,) = [o for o in objects if o["kind"] == "HelmRepository" and o["metadata"]["name"] == "argo"]
        assert repo["spec"]["url"] == pin("argo_helm_repo")
        assert release["spec"]["values"]["controller"]["image"]["tag"] == pin("argo_rollouts_version")
        namespaces = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Namespace"}
        assert namespaces["argo-rollouts"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
        return
    (appset,) = [a for a in _argo_appsets(fleet, "infrastructure") if a["metadata"]["name"] == "infra-argo-rollouts"]
    elements = appset["spec"]["generators"][0]["list"]["elements"]
    assert {e["name"] for e in elements} == {c.name for c in fleet.answers.clusters}
    source = appset["spec"]["template"]["spec"]["source"]
    assert (source["chart"], source["targetRevision"]) == ("argo-rollouts", pin("argo_rollouts_chart_version"))
    project = k8s.load_documents(fleet.root / "argocd/infrastructure/project.yaml")[0]["spec"]
    assert pin("argo_helm_repo") in project["sourceRepos"]
    assert {d["namespace"] for d in project["destinations"]} >= {"argo-rollouts"}
    windows = [w for w in project.get("syncWindows", []) if "prod-infra-argo-rollouts" in w["applications"]]
    assert len(windows) == 2, "production controllers sync inside business hours only"


def test_parity_of_infrastructure_controllers(engines: tuple[RenderedFleet, RenderedFleet]) -> None:
    flux, argo = engines
    flux_set, argo_set = flux_infrastructure(flux), argo_infrastructure(argo)
    assert {(r[0], r[1]) for r in flux_set if r[1] == "argo-rollouts"} == {
        (c.name, "argo-rollouts") for c in flux.answers.clusters}
    assert flux_set == argo_set


# ---------------------------------------------------------------- strict schemas and builds


def test_objects_validate_strictly(fleet: RenderedFleet) -> None:
    objects = _objects(fleet)
    assert any(d["kind"] == "HelmRelease" for _, d in objects) or fleet.answers.engine == "argocd"
    problems = k8s.validate_objects(objects, K8S_VERSION)
    assert not problems, "\n".join(map(str, problems))


def test_every_kustomization_builds_and_validates(fleet: RenderedFleet) -> None:
    for d in _kustomization_dirs(fleet):
        rel = d.relative_to(fleet.root)
        problems = k8s.validate_objects([(f"{rel} (built)", o) for o in k8s.kustomize_build(d)], K8S_VERSION)
        assert not problems, "\n".join(map(str, problems))


# ---------------------------------------------------------------- services go blue-green


def test_service_values_enable_blue_green(fleet: RenderedFleet) -> None:
    envs = fleet.answers.environments
    for env in envs:
        for s in SERVICES:
            rollout = _values(fleet, env, s)["rollout"]
            assert rollout["enabled"] is True
            # Production waits for a human to promote; earlier environments promote once ready.
            assert rollout["autoPromotionEnabled"] is (env != envs[-1])
    off = render_blueprint("starter")
    assert "rollout" not in _values(off, "dev", "hello")


def test_flux_release_waits_without_kstatus_on_the_rollout(engines: tuple[RenderedFleet, RenderedFleet]) -> None:
    flux, _ = engines
    release = k8s.load_documents(flux.root / "apps/base/hello/helmrelease.yaml")[0]
    assert release["spec"]["waitStrategy"] == {"name": "legacy"}
    # Both engines still deploy the same values (the rollout switch included).
    values = {v for *_, v in flux_services(flux)}
    assert all('"rollout": {"autoPromotionEnabled"' in v for v in values)
    starter = k8s.load_documents(render_blueprint("starter").root / "apps/base/hello/helmrelease.yaml")[0]
    assert "waitStrategy" not in starter["spec"]


@pytest.mark.parametrize("env", ["dev", "production"])
def test_chart_renders_a_rollout_with_the_values(engines: tuple[RenderedFleet, RenderedFleet], env: str) -> None:
    flux, _ = engines
    chart = flux.root / "charts" / "hello"
    objects = render_chart(chart, _values(flux, env, "hello"))
    kinds = [d["kind"] for _, d in objects]
    assert "Rollout" in kinds and "Deployment" not in kinds
    (rollout,) = [d for _, d in objects if d["kind"] == "Rollout"]
    blue_green = rollout["spec"]["strategy"]["blueGreen"]
    services = {d["metadata"]["name"] for _, d in objects if d["kind"] == "Service"}
    assert {blue_green["activeService"], blue_green["previewService"]} <= services
    assert blue_green["autoPromotionEnabled"] is (env != "production")
    if env == "production":
        (hpa,) = [d for _, d in objects if d["kind"] == "HorizontalPodAutoscaler"]
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Rollout"
    problems = k8s.validate_objects([(f"charts/hello {t}", d) for t, d in objects], K8S_VERSION)
    assert not problems, "\n".join(map(str, problems))


# ---------------------------------------------------------------- the validate gate


def test_fleet_validates_clean(fleet: RenderedFleet) -> None:
    from fleetstrap.validate import ValidateOptions, validate_repo

    schemas = k8s.crd_schema_dir()
    report = validate_repo(fleet.root, ValidateOptions(schema_locations=(str(schemas),), offline=True,
                                                       catalog_url=None))
    assert report.findings == (), [f.as_dict() for f in report.findings]
