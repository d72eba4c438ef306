"""The built-in blueprints: each builds valid answers, the extends chains compose as documented,
and each renders the fleet shape it promises (engines, clusters, sync windows, monitoring)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fleetstrap.answers import KNOWN_KEYS, build_answers
from fleetstrap.blueprints import list_blueprints, resolve_blueprint
from support.fleet import render_blueprint

EXPECTED = {"starter", "multi-env", "argocd-multi-cluster", "dual-engine", "observability"}


def _load(path: Any) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_builtin_blueprints_exist_and_are_well_formed() -> None:
    blueprints = {b.name: b for b in list_blueprints()}
    assert set(blueprints) >= EXPECTED
    for name, bp in blueprints.items():
        raw = _load(bp.path)
        assert raw["name"] == name == bp.path.stem
        assert raw["description"].strip()
        assert set(raw) <= {"name", "description", "extends", "answers"}
        assert set(raw["answers"]) <= KNOWN_KEYS
        build_answers(resolve_blueprint(name))  # raises AnswersError on any bad answer


def test_starter() -> None:
    a = build_answers(resolve_blueprint("starter"))
    assert (a.owner, a.engine, a.services) == ("example-org", "flux", ("hello",))
    assert [(c.name, c.environment) for c in a.clusters] == [("dev", "dev")]


def test_multi_env_extends_starter() -> None:
    a = build_answers(resolve_blueprint("multi-env"))
    assert a.owner == "example-org" and a.services == ("hello",) and a.engine == "flux"
    assert a.environments == ("dev", "staging", "production")
    assert [(c.name, c.environment) for c in a.clusters] == [
        ("dev", "dev"), ("staging", "staging"), ("prod", "production")]


def test_argocd_multi_cluster() -> None:
    a = build_answers(resolve_blueprint("argocd-multi-cluster"))
    assert a.engine == "argocd" and a.environments == ("dev", "staging", "production")
    prod = [c for c in a.clusters if c.environment == "production"]
    assert len(prod) == 2 and all(c.server.startswith("https://") and "kubernetes.default" not in c.server
                                  for c in prod)
    servers = [c.server for c in a.clusters]
    assert len(set(servers)) == len(servers), "a hub deploys by server URL: one cluster per server"


def test_dual_engine_and_observability() -> None:
    dual = build_answers(resolve_blueprint("dual-engine"))
    assert dual.engine == "both"
    obs = build_answers(resolve_blueprint("observability"))
    assert obs.monitoring is True and obs.notifications == "slack" and obs.engine == "flux"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rendered_shape_matches_engine(name: str) -> None:
    fleet = render_blueprint(name)
    root, a = fleet.root, fleet.answers
    flux, argo = a.engine in ("flux", "both"), a.engine in ("argocd", "both")
    assert (root / "argocd/applicationsets/services.yaml").is_file() is argo
    assert (root / "argocd/projects").is_dir() is argo
    assert (root / "infrastructure/controllers/kustomization.yaml").is_file() is flux
    assert (root / "infrastructure/configs/kustomization.yaml").is_file()
    for c in a.clusters:
        cdir = root / "clusters" / c.name
        assert (cdir / "flux-system/gotk-sync.yaml").is_file() is flux
        assert (cdir / "argocd/root.yaml").is_file() is argo
        if flux:
            # Flux applies exactly the listed pieces, never the Argo CD root app.
            assert _load(cdir / "kustomization.yaml")["resources"] == ["flux-system", "infrastructure.yaml",
                                                                     "apps.yaml"]
            sync = list(yaml.safe_load_all((cdir / "flux-system/gotk-sync.yaml").read_text()))
            assert sync[0]["spec"]["url"] == a.git_url and sync[1]["spec"]["path"] == f"./clusters/{c.name}"
            apps = _load(cdir / "apps.yaml")
            assert apps["spec"]["path"] == f"./apps/{c.environment}"
            assert apps["spec"]["dependsOn"] == [{"name": "infra-configs"}]
            infra = list(yaml.safe_load_all((cdir / "infrastructure.yaml").read_text()))
            assert [d["metadata"]["name"] for d in infra] == ["infra-controllers", "infra-configs"]
            assert infra[1]["spec"]["dependsOn"] == [{"name": "infra-controllers"}]
    for env in a.environments:
        resources = _load(root / "apps" / env / "kustomization.yaml")["resources"]
        assert resources == [f"./{s}" for s in a.services]


def test_production_sync_windows() -> None:
    fleet = render_blueprint("argocd-multi-cluster")
    prod = [c.name for c in fleet.answers.clusters if c.environment == "production"]
    for team in fleet.answers.teams:
        project = _load(fleet.root / "argocd/projects" / f"{team}.yaml")
        assert project["spec"]["sourceRepos"] == [fleet.answers.git_url]
        windows = project["spec"].get("syncWindows", [])
        if team == fleet.answers.teams[0]:
            assert windows and all(w["kind"] == "deny" and w["manualSync"] for w in windows)
            assert {app for w in windows for app in w["applications"]} == {
                f"{c}-{s}" for c in prod for s in fleet.answers.services}
        else:
            assert not windows
    infra = _load(fleet.root / "argocd/infrastructure/project.yaml")
    apps = {app for w in infra["spec"]["syncWindows"] for app in w["applications"]}
    assert {f"{c}-infra-configs" for c in prod} <= apps
    assert not any(a.startswith(("dev-", "staging-")) for a in apps)


def test_no_sync_windows_without_production() -> None:
    fleet = render_blueprint("dual-engine", environments=["dev"], clusters=[{"name": "dev", "environment": "dev"}])
    project = _load(fleet.root / "argocd/projects/platform.yaml")
    assert "syncWindows" not in project["spec"]
