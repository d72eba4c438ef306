"""`rollback --wait`: what is refused before anything is written or pushed, and the Argo CD side of the wait
(no Argo CD controller runs in the suite: a cluster double through the KubeClient seam plays the Application
controller, answering the refresh request). The Flux side runs against the real controllers in
test_controlplane_flux_rollback.py."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetstrap.bootstrap.kube import Applied, OfficialClient
from fleetstrap.deploy.apply import DeployRequest, WaitOptions, run_deploy
from fleetstrap.errors import ClusterError
from gitservers import bare_repo, repo_log
from kube_double import BUILTIN, KubeDouble, Res, serve
from support.commands import cli
from support.deploy import SERVICE, clean, fleet_repo, git, head, release, rendered, tag_of


@pytest.fixture
def argocd_fleet(tmp_path: Path) -> tuple[Path, Path]:
    """An Argo CD fleet (split layout: multi-source Applications) with an origin it can push to."""
    root = fleet_repo(rendered("argocd", "split", True), tmp_path / "fleet")
    for version in ("0.2.0", "0.3.0"):
        release(root, version, by="argocd")
    bare = bare_repo(tmp_path / "remote", "fleet.git")
    git(root, "remote", "add", "origin", str(bare))
    git(root, "push", "-q", "origin", "main")
    return root, bare


class ArgoCluster:
    """Argo CD on a cluster: the Application answers a refresh by syncing the pushed commit; the Deployment then
    runs the values' tag. Before the refresh it is synced at the old commit, running the old tag."""

    def __init__(self, bare: Path, *, refreshes: bool = True) -> None:
        self.bare = bare
        self.refreshes = refreshes
        self.applied: list[dict[str, Any]] = []
        self.managers: list[str] = []
        self.synced = repo_log(bare)[0]
        self.running = "0.3.0"

    def version(self) -> str:
        return "1.34"

    def apply(self, obj: Mapping[str, Any], *, default_namespace: str = "",  # noqa: ARG002
              field_manager: str = "fleetstrap") -> Applied:
        self.applied.append(dict(obj))
        self.managers.append(field_manager)
        if self.refreshes and "argocd.argoproj.io/refresh" in obj["metadata"].get("annotations", {}):
            self.synced = repo_log(self.bare)[0]
            self.running = "0.2.0"
        return Applied(str(obj["kind"]), obj["metadata"]["namespace"], obj["metadata"]["name"], "configured")

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        if kind == "Application" and (name, namespace) == ("root", "argocd"):
            return {"status": {"sync": {"status": "Synced", "revision": self.synced}}}
        if kind == "Application" and (name, namespace) == (f"dev-{SERVICE}", "argocd"):
            # Multi-source (split layout): revisions, one per source (the chart's OCI digest, then git).
            return {"status": {"sync": {"status": "Synced", "revisions": ["sha256:" + "0" * 64, self.synced]},
                               "health": {"status": "Healthy"}}}
        if kind == "Deployment" and (name, namespace) == (SERVICE, SERVICE):
            return {"metadata": {"generation": 2}, "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": SERVICE, "image": f"ghcr.io/acme/{SERVICE}:{self.running}"}]}}},
                "status": {"observedGeneration": 2, "readyReplicas": 1}}
        if kind == "Rollout":
            raise ClusterError("the cluster does not serve Rollout")
        assert api_version
        return None


def test_argocd_refresh_then_wait_until_the_application_runs_the_rollback(argocd_fleet: tuple[Path, Path]) -> None:
    root, bare = argocd_fleet
    cluster = ArgoCluster(bare)

    report = run_deploy(DeployRequest(root, "rollback", SERVICE, "dev", wait=WaitOptions(timeout=5, interval=0.01)),
                        lambda _kc, _ctx: cluster)  # type: ignore[arg-type,return-value]

    assert repo_log(bare)[0] == head(root) and tag_of(root, "dev") == "0.2.0"
    # The root app (argocd/, with the ImageUpdater pin) and the service's Application are refreshed.
    assert [(o["kind"], o["metadata"]["name"]) for o in cluster.applied] == [("Application", "root"),
                                                                             ("Application", f"dev-{SERVICE}")]
    assert all(o["metadata"]["annotations"] == {"argocd.argoproj.io/refresh": "normal"} for o in cluster.applied)
    assert cluster.managers == ["fleetstrap-refresh"] * 2  # never bootstrap's manager (issue 26)
    assert report.clusters == (f"dev (argocd) runs {SERVICE} 0.2.0 at {head(root)[:12]}",)


def test_the_refresh_leaves_what_bootstrap_applied_to_the_root_application(
        argocd_fleet: tuple[Path, Path], tmp_path: Path) -> None:
    """Issue 26, found by the real Argo CD controller: the refresh annotation applied under bootstrap's field
    manager is, to server-side apply, that manager's whole intent for root, so root's spec would be removed and the
    API server refuses (422: spec.project, spec.destination required). Over HTTP to the API double, which owns
    fields per manager as the API server does; Argo CD's part (the refresh answered by a sync) is played by its
    controllers."""
    root, bare = argocd_fleet
    app_res = Res("argoproj.io", "v1alpha1", "applications", "Application", True)

    def application(obj: dict[str, Any]) -> None:
        # The application controller takes the refresh annotation away and compares with git.
        if (obj["metadata"].get("annotations") or {}).pop("argocd.argoproj.io/refresh", None):
            obj["status"] = {"sync": {"status": "Synced", "revision": repo_log(bare)[0]}}

    def deployment(obj: dict[str, Any]) -> None:
        synced = (double.find("Application", f"dev-{SERVICE}", "argocd") or {}).get("status", {}).get("sync", {})
        if synced.get("revision") == repo_log(bare)[0]:
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = f"ghcr.io/acme/{SERVICE}:0.2.0"
        obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "readyReplicas": 1}

    with serve(KubeDouble(resources=[*BUILTIN, app_res],
                          controllers={"Application": application, "Deployment": deployment})) as double:
        kubeconfig = double.kubeconfig(tmp_path / "kubeconfig")
        seed = OfficialClient(kubeconfig)
        for ns in ("argocd", SERVICE):
            seed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        bootstrapped = yaml.safe_load((root / "clusters" / "dev" / "argocd" / "root.yaml").read_text("utf-8"))
        seed.apply(bootstrapped)  # bootstrap's apply, under its manager
        seed.apply({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                    "metadata": {"name": f"dev-{SERVICE}", "namespace": "argocd"},
                    "spec": {"project": "default", "destination": {"name": "in-cluster", "namespace": SERVICE},
                             "source": {"repoURL": "ssh://git@git.example/fleet.git", "path": f"apps/{SERVICE}"}}},
                   field_manager="argocd-applicationset-controller")
        seed.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": SERVICE, "namespace": SERVICE},
                    "spec": {"replicas": 1, "template": {"spec": {"containers": [
                        {"name": SERVICE, "image": f"ghcr.io/acme/{SERVICE}:0.3.0"}]}}}},
                   field_manager="argocd-controller")

        report = run_deploy(DeployRequest(root, "rollback", SERVICE, "dev",
                                          wait=WaitOptions(timeout=10, interval=0.01)),
                            lambda _kc, _ctx: OfficialClient(kubeconfig))

        live = double.find("Application", "root", "argocd")
        assert live is not None and live["spec"] == bootstrapped["spec"]
        refreshes = [q["fieldManager"] for m, path, q in double.writes() if m == "PATCH" and "applications" in path]
        assert refreshes[-2:] == [["fleetstrap-refresh"], ["fleetstrap-refresh"]]
    assert report.clusters == (f"dev (argocd) runs {SERVICE} 0.2.0 at {head(root)[:12]}",)


def test_the_double_owns_fields_per_manager(tmp_path: Path) -> None:
    """What the test above relies on: an apply is its manager's whole intent (fields it no longer sends go,
    unless another manager owns them); an Application without its required fields is refused with 422."""
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": "root", "namespace": "argocd"},
           "spec": {"project": "fleet", "destination": {"name": "in-cluster"},
                    "source": {"repoURL": "ssh://git@git.example/fleet.git", "path": "clusters/dev"}}}
    refresh = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": "root", "namespace": "argocd",
                            "annotations": {"argocd.argoproj.io/refresh": "normal"}}}
    app_res = Res("argoproj.io", "v1alpha1", "applications", "Application", True)
    with serve(KubeDouble(resources=[*BUILTIN, app_res])) as double:
        client = OfficialClient(double.kubeconfig(tmp_path / "kubeconfig"))
        client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}})
        client.apply(app)
        with pytest.raises(ClusterError, match=r"HTTP 422.*spec.source.repoURL: Required value.*"
                                               r"spec.destination: Required value, spec.project: Required value"):
            client.apply(refresh)  # the same manager: root's spec would go
        assert client.apply(refresh, field_manager="fleetstrap-refresh").outcome == "configured"
        live = double.find("Application", "root", "argocd")
        assert live is not None and live["spec"] == app["spec"]
        assert live["metadata"]["annotations"] == {"argocd.argoproj.io/refresh": "normal"}
        # Bootstrap's manager drops a field it applied before: it goes; one another manager also applies stays.
        client.apply({**app, "spec": {**app["spec"], "revisionHistoryLimit": 3}}, field_manager="other")
        client.apply({**app, "spec": {k: v for k, v in app["spec"].items() if k != "source"}
                      | {"sources": [app["spec"]["source"]]}})
        live = double.find("Application", "root", "argocd")
        assert live is not None and "source" in live["spec"]  # "other" applied it too
        client.apply({**app, "spec": {"revisionHistoryLimit": 3}}, field_manager="other")
        live = double.find("Application", "root", "argocd")
        assert live is not None and "source" not in live["spec"] and live["spec"]["sources"]
        assert live["metadata"]["annotations"] == {"argocd.argoproj.io/refresh": "normal"}


def test_wait_times_out_naming_what_the_cluster_runs(argocd_fleet: tuple[Path, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root, bare = argocd_fleet
    cluster = ArgoCluster(bare, refreshes=False)

    with pytest.raises(ClusterError) as failed:
        run_deploy(DeployRequest(root, "rollback", SERVICE, "dev", wait=WaitOptions(timeout=0.05, interval=0.01)),
                   lambda _kc, _ctx: cluster)  # type: ignore[arg-type,return-value]

    assert "timed out" in failed.value.message
    assert "Application argocd/root: Synced at" in failed.value.message
    assert f"Application argocd/dev-{SERVICE}: Synced at" in failed.value.message
    assert f"Deployment {SERVICE}/{SERVICE}: runs 0.3.0, waiting for 0.2.0" in failed.value.message
    assert repo_log(bare)[0] == head(root)  # the rollback itself is pushed: a rerun of --wait just waits
    capsys.readouterr()


@pytest.mark.parametrize(("extra", "needle"), [
    (("--pr",), "not with --pr"),
    (("--dry-run",), "or --dry-run"),
])
def test_wait_refusals_write_nothing(argocd_fleet: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                     extra: tuple[str, ...], needle: str) -> None:
    root, bare = argocd_fleet
    before = head(root)
    code, _, err = cli(capsys, "rollback", SERVICE, "--env", "dev", "--wait", *extra, "-C", str(root))
    assert code == 1 and needle in err
    assert head(root) == before and clean(root) and repo_log(bare)[0] == before


def test_wait_from_another_branch_is_refused(argocd_fleet: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = argocd_fleet
    git(root, "switch", "-q", "-c", "hotfix")
    code, _, err = cli(capsys, "rollback", SERVICE, "--env", "dev", "--wait", "-C", str(root))
    assert code == 1 and "--wait pushes to main, which the clusters follow" in err and "hotfix" in err
    assert tag_of(root, "dev") == "0.3.0"


def test_a_rollout_is_ready_by_its_phase() -> None:
    from fleetstrap.deploy.wait import running_check

    check = running_check(SERVICE, "0.2.0", "Rollout")
    pod = {"template": {"spec": {"containers": [{"name": SERVICE, "image": f"r/{SERVICE}:0.2.0"}]}}}
    # Argo Rollouts' observedGeneration is a string, not the generation: never read as a number.
    paused = {"metadata": {"generation": 3}, "spec": pod,
              "status": {"observedGeneration": "7c9f4d", "phase": "Paused", "message": "BlueGreenPause"}}
    assert check(paused) == "phase Paused: BlueGreenPause"
    assert check({**paused, "status": {"observedGeneration": "7c9f4d", "phase": "Healthy"}}) is None
    old = {**paused, "spec": {"template": {"spec": {"containers": [{"name": SERVICE, "image": f"r/{SERVICE}:0.3.0"}]}}}}
    assert check(old) == "runs 0.3.0, waiting for 0.2.0"


class FlaggerCluster:
    """Flux with a Flagger canary: the apps Kustomization applies the pushed commit at once, the canary
    Deployment `hello` gets the new tag (and is scaled to 0 after the analysis), and the primary, which serves
    the traffic, takes the tag only after `analysis` more polls of it."""

    def __init__(self, bare: Path, analysis: int) -> None:
        self.bare = bare
        self.analysis = analysis
        self.primary_polls = 0

    def version(self) -> str:
        return "1.34"

    def apply(self, obj: Mapping[str, Any], *, default_namespace: str = "",  # noqa: ARG002
              field_manager: str = "fleetstrap") -> Applied:  # noqa: ARG002
        return Applied(str(obj["kind"]), obj["metadata"]["namespace"], obj["metadata"]["name"], "configured")

    @staticmethod
    def _deployment(tag: str, replicas: int) -> dict[str, Any]:
        return {"metadata": {"generation": 1}, "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": SERVICE, "image": f"ghcr.io/acme/{SERVICE}:{tag}"}]}}},
            "status": {"observedGeneration": 1, "readyReplicas": replicas}}

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        assert api_version
        if kind == "Kustomization" and (name, namespace) == ("apps", "flux-system"):
            return {"metadata": {"generation": 1}, "status": {
                "observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}],
                "lastAppliedRevision": f"main@sha1:{repo_log(self.bare)[0]}"}}
        if kind == "HelmRelease" and (name, namespace) == (SERVICE, SERVICE):
            return {"metadata": {"generation": 2}, "status": {
                "observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}}
        if kind == "Deployment" and (name, namespace) == (SERVICE, SERVICE):
            return self._deployment("0.2.0", 0)  # the canary, idle again after the analysis
        if kind == "Deployment" and (name, namespace) == (f"{SERVICE}-primary", SERVICE):
            self.primary_polls += 1
            return self._deployment("0.2.0" if self.primary_polls > self.analysis else "0.3.0", 2)
        if kind == "Rollout":
            raise ClusterError("the cluster does not serve Rollout")
        return None


def test_with_flagger_the_wait_lasts_until_the_primary_runs_the_rollback(tmp_path: Path) -> None:
    root = fleet_repo(rendered("flux", "monorepo", False), tmp_path / "fleet")
    for version in ("0.2.0", "0.3.0"):
        release(root, version)
    bare = bare_repo(tmp_path / "remote", "fleet.git")
    git(root, "remote", "add", "origin", str(bare))
    git(root, "push", "-q", "origin", "main")
    cluster = FlaggerCluster(bare, analysis=3)

    report = run_deploy(DeployRequest(root, "rollback", SERVICE, "dev", wait=WaitOptions(timeout=5, interval=0.01)),
                        lambda _kc, _ctx: cluster)  # type: ignore[arg-type,return-value]

    assert cluster.primary_polls > 3  # it waited through the analysis
    assert report.clusters == (f"dev (flux) runs {SERVICE} 0.2.0 at {head(root)[:12]}",)
