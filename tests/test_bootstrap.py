"""bootstrap/status against the in-process API double, through the real kubernetes client over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kubernetes", reason="the `cluster` extra (kubernetes client) is not installed")

from bootstrap_fixtures import (
    Downloads,
    FleetRepo,
    bootstrap_env,
    git,
    make_fleet_repo,
    pinned_release_downloads,
    write_deploy_key,
)
from fleetstrap.bootstrapper import BootstrapRequest, bootstrap_cluster
from fleetstrap.cli import run
from fleetstrap.errors import ClusterError
from fleetstrap.status import StatusRequest, fleet_status
from kube_double import KubeDouble, Res, argocd_ready, flux_never_ready, flux_ready, serve, set_condition


@pytest.fixture(scope="module")
def downloads() -> Iterator[Downloads]:
    with pinned_release_downloads() as d:
        yield d


@pytest.fixture
def env(tmp_path: Path, downloads: Downloads, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return bootstrap_env(tmp_path, downloads, monkeypatch)


def _revision_of(repo: FleetRepo) -> Any:
    return lambda _obj: f"main@sha1:{repo.remote_head()}"


def _request(repo: FleetRepo, env: dict[str, Path], **kw: Any) -> BootstrapRequest:
    base: dict[str, Any] = {"root": repo.root, "cluster": "dev", "kubeconfig": env["kubeconfig"],
                            "deploy_key": env["key"], "known_hosts": env["known_hosts"], "timeout": 5,
                            "poll_interval": 0.02}
    base.update(kw)
    return BootstrapRequest(**base)


def _cli_args(repo: FleetRepo, env: dict[str, Path], *extra: str) -> list[str]:
    return ["bootstrap", "dev", "-C", str(repo.root), "--kubeconfig", str(env["kubeconfig"]),
            "--deploy-key", str(env["key"]), "--known-hosts", str(env["known_hosts"]), "--timeout", "5", *extra]


def _rvs(d: KubeDouble) -> dict[Any, str]:
    return {k: v["metadata"]["resourceVersion"] for k, v in d.objects.items()}


def test_flux_happy_path_then_idempotent_rerun(tmp_path: Path, env: dict[str, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_fleet_repo(tmp_path)
    initial = repo.head()
    double = KubeDouble()
    double.controllers.update(flux_ready(_revision_of(repo)))
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        report = bootstrap_cluster(_request(repo, env))

        # generate -> commit -> push happened before the cluster was asked to sync that commit
        head = repo.head()
        assert head != initial and repo.remote_head() == head
        assert report.revision == f"main@sha1:{head}"
        tree = git(repo.root, "ls-tree", "-r", "--name-only", "HEAD")
        assert "clusters/dev/flux-system/gotk-components.yaml" in tree
        kust = (repo.root / "clusters/dev/flux-system/kustomization.yaml").read_text()
        assert "gotk-components.yaml" in kust and "gotk-sync.yaml" in kust

        # every write is a server-side apply by our field manager
        writes = double.writes()
        assert writes and all(m == "PATCH" and q.get("fieldManager") == ["fleetstrap"] for m, _, q in writes)
        secret = double.find("Secret", "flux-system", "flux-system")
        assert secret is not None and set(secret["data"]) == {"identity", "identity.pub", "known_hosts"}
        repo_obj = double.find("GitRepository", "flux-system", "flux-system")
        assert repo_obj is not None and repo_obj["status"]["artifact"]["revision"] == report.revision
        # components before the secret before the sync objects (Flux's order)
        paths = [p for _, p, _ in writes]
        assert paths.index("/api/v1/namespaces/flux-system") < paths.index(
            "/api/v1/namespaces/flux-system/secrets/flux-system") < paths.index(
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/flux-system")
        assert report.changed

        # second run: no commit, no object changed, says so
        before = _rvs(double)
        capsys.readouterr()
        assert run(_cli_args(repo, env)) == 0
        assert repo.head() == head
        assert _rvs(double) == before
        err = capsys.readouterr().err
        assert "already bootstrapped: nothing changed" in err

        # status: template versions, pushed commit, cluster sync state
        assert run(["status", "-C", str(repo.root), "--kubeconfig", str(env["kubeconfig"]),
                    "--format", "json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert {"name": "cluster/dev", "template_version": "v0.1.0"} in status["components"]
        assert status["pushed_commit"] == head
        (cluster,) = status["clusters"]
        assert cluster["reachable"] and cluster["revision"] == report.revision
        assert cluster["state"] == "GitRepository Ready; Kustomization Ready"


def test_rotate_keys_replaces_existing_secret(tmp_path: Path, env: dict[str, Path]) -> None:
    repo = make_fleet_repo(tmp_path)
    double = KubeDouble()
    double.controllers.update(flux_ready(_revision_of(repo), reads_before_ready=0))
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        bootstrap_cluster(_request(repo, env))
        first = double.find("Secret", "flux-system", "flux-system")
        write_deploy_key(env["key"])
        kept = bootstrap_cluster(_request(repo, env))
        assert not kept.changed
        assert double.find("Secret", "flux-system", "flux-system") == first
        rotated = bootstrap_cluster(_request(repo, env, rotate_keys=True))
        assert [c.ref for c in rotated.changes if c.changed] == ["Secret flux-system/flux-system"]
        second = double.find("Secret", "flux-system", "flux-system")
        assert second is not None and first is not None
        assert second["data"]["identity"] != first["data"]["identity"]


def test_reconciled_objects_that_fail_are_reported_not_ready_with_their_reason(
        tmp_path: Path, env: dict[str, Path]) -> None:
    repo = make_fleet_repo(tmp_path)
    double = KubeDouble()
    double.controllers.update(flux_ready(_revision_of(repo), reads_before_ready=0))
    failed: dict[str, Any] = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                              "metadata": {"name": "cert-manager", "namespace": "cert-manager", "generation": 1}}
    set_condition(failed, "False", "ArtifactFailed", "HelmChart 'cert-manager/cert-manager' is not ready")
    double.resources.append(Res("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease", True))
    double.objects[("helm.toolkit.fluxcd.io", "helmreleases", "cert-manager", "cert-manager")] = failed
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        report = bootstrap_cluster(_request(repo, env))
    assert ("HelmRelease cert-manager/cert-manager not ready: Ready=False ArtifactFailed: "
            "HelmChart 'cert-manager/cert-manager' is not ready") in report.notes
    assert not any("flux-system" in n for n in report.notes)


def test_never_ready_times_out_naming_objects_and_conditions(tmp_path: Path, env: dict[str, Path]) -> None:
    repo = make_fleet_repo(tmp_path)
    double = KubeDouble()
    double.controllers.update(flux_never_ready())
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        with pytest.raises(ClusterError) as info:
            bootstrap_cluster(_request(repo, env, timeout=0.3))
    msg = str(info.value)
    assert "timed out" in msg
    assert "GitRepository flux-system/flux-system: Ready=False GitOperationFailed" in msg
    assert "Kustomization flux-system/flux-system: Ready=False ArtifactFailed" in msg
    assert "\n" not in msg


def test_rbac_refusal_fails_preflight_with_every_problem_and_changes_nothing(
        tmp_path: Path, env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_fleet_repo(tmp_path)
    initial = repo.head()
    double = KubeDouble(denied={("create", "apiextensions.k8s.io", "customresourcedefinitions"),
                                ("create", "rbac.authorization.k8s.io", "clusterroles")})
    env["key"].unlink()  # a second, unrelated failure must be reported in the same run
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        assert run(_cli_args(repo, env)) == 1
    err = capsys.readouterr().err
    assert "not allowed to create customresourcedefinitions.apiextensions.k8s.io" in err
    assert "not allowed to create clusterroles.rbac.authorization.k8s.io" in err
    assert "no deploy key for cluster dev" in err
    assert "cluster-admin" in err  # the fix is printed
    assert double.writes() == []
    assert repo.head() == initial
    assert not (repo.root / "clusters/dev/flux-system/gotk-components.yaml").exists()


def test_unpushed_commit_fails_preflight(tmp_path: Path, env: dict[str, Path]) -> None:
    repo = make_fleet_repo(tmp_path)
    (repo.root / "README.md").write_text("local only\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "not pushed")
    double = KubeDouble()
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        with pytest.raises(ClusterError, match=r"commit [0-9a-f]{12} on main is not pushed to 'origin'"):
            bootstrap_cluster(_request(repo, env))
    assert double.writes() == []


def test_old_cluster_and_unreachable_cluster_fail_preflight(tmp_path: Path, env: dict[str, Path]) -> None:
    repo = make_fleet_repo(tmp_path)
    double = KubeDouble(version=("1", "30"))
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        with pytest.raises(ClusterError, match=r"Kubernetes 1\.30 is older than the supported"):
            bootstrap_cluster(_request(repo, env))
    # the double is gone now: the same kubeconfig points at a closed port
    with pytest.raises(ClusterError, match="does not answer"):
        bootstrap_cluster(_request(repo, env))


def test_dry_run_prints_objects_and_git_changes_and_touches_nothing(
        tmp_path: Path, env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_fleet_repo(tmp_path)
    initial = repo.head()
    double = KubeDouble()
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        assert run(_cli_args(repo, env, "--dry-run")) == 0
    captured = capsys.readouterr()
    assert double.writes() == []
    assert repo.head() == initial and repo.remote_head() == initial
    assert not (repo.root / "clusters/dev/flux-system/gotk-components.yaml").exists()
    assert "would create clusters/dev/flux-system/gotk-components.yaml" in captured.err
    assert "would update clusters/dev/flux-system/kustomization.yaml" in captured.err
    assert "kind: GitRepository" in captured.out and "kind: CustomResourceDefinition" in captured.out
    assert "identity: <redacted>" in captured.out
    assert "PRIVATE KEY" not in captured.out + captured.err


def test_argocd_happy_path(tmp_path: Path, env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_fleet_repo(tmp_path, engine="argocd")
    double = KubeDouble()
    double.controllers.update(argocd_ready(lambda _obj: repo.remote_head()))
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        assert run(_cli_args(repo, env)) == 0
        err = capsys.readouterr().err
        secret = double.find("Secret", "repo-fleet-infra", "argocd")
        assert secret is not None
        assert secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repository"
        assert double.find("Deployment", "argocd-server", "argocd") is not None  # defaulted namespace
        app = double.find("Application", "root", "argocd")
        assert app is not None and app["status"]["sync"]["status"] == "Synced"
        assert "port-forward svc/argocd-server" in err and "initial-password" in err
        report = bootstrap_cluster(_request(repo, env))
        assert not report.changed


def test_argocd_version_must_not_be_stable(tmp_path: Path) -> None:
    from fleetstrap.bootstrap.manifests import Downloads as Source
    from fleetstrap.bootstrap.manifests import argocd_install
    from fleetstrap.errors import UserError

    with pytest.raises(UserError, match="not 'stable'"):
        argocd_install("stable", Source(cache_dir=tmp_path))


def test_status_lists_unreachable_cluster(tmp_path: Path, env: dict[str, Path]) -> None:
    repo = make_fleet_repo(tmp_path)
    with serve(KubeDouble()) as double:
        double.kubeconfig(env["kubeconfig"])
    report = fleet_status(StatusRequest(root=repo.root, kubeconfig=env["kubeconfig"]))
    assert report.pushed_commit == repo.head()
    (cluster,) = report.clusters
    assert not cluster.reachable and cluster.state.startswith("unreachable")


def test_apply_rejection_names_the_api_servers_reason(env: dict[str, Path]) -> None:
    from fleetstrap.bootstrap.kube import OfficialClient

    with serve(KubeDouble()) as double:
        double.kubeconfig(env["kubeconfig"])
        client = OfficialClient(env["kubeconfig"])
        with pytest.raises(ClusterError, match=r'apply ConfigMap c failed: HTTP 404 .*namespaces "nowhere" not found'):
            client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "nowhere"}})


def test_preflight_problems_are_reported_once(tmp_path: Path, env: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_fleet_repo(tmp_path)
    double = KubeDouble(denied={("create", "rbac.authorization.k8s.io", "clusterroles")})
    env["key"].unlink()
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        assert run(_cli_args(repo, env)) == 1
    err = capsys.readouterr().err
    assert err.count("not allowed to create clusterroles") == 1
    assert err.count("no deploy key for cluster dev") == 1
    assert "run `fleetstrap push` (creates it)" in err  # each fix still shown


def test_dry_run_without_any_cluster_prints_every_object_marked_not_compared(
        tmp_path: Path, env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_fleet_repo(tmp_path)
    initial = repo.head()
    # No cluster at all: the kubeconfig file does not exist.
    assert run(_cli_args(repo, env, "--dry-run")) == 0
    captured = capsys.readouterr()
    assert "kind: GitRepository" in captured.out and "kind: CustomResourceDefinition" in captured.out
    assert "identity: <redacted>" in captured.out and "PRIVATE KEY" not in captured.out + captured.err
    assert "no cluster reachable" in captured.err and "not compared" in captured.err
    assert "would create clusters/dev/flux-system/gotk-components.yaml" in captured.err
    assert repo.head() == initial and repo.remote_head() == initial
    assert not (repo.root / "clusters/dev/flux-system/gotk-components.yaml").exists()
    report = bootstrap_cluster(_request(repo, env, dry_run=True))
    applies = [c for c in report.changes if c.what == "apply"]
    assert applies and {c.outcome for c in applies} == {"not compared"}
    assert report.offline and len(report.objects) == len(applies)


def test_dry_run_against_a_cluster_shows_the_diff(tmp_path: Path, env: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_fleet_repo(tmp_path)
    double = KubeDouble()
    double.controllers.update(flux_ready(_revision_of(repo)))
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        bootstrap_cluster(_request(repo, env))
        # Someone changes the sync interval on the cluster by hand: the dry run shows it would be put back.
        with double._lock:
            (live,) = [o for o in double.objects.values() if o.get("kind") == "GitRepository"]
            wanted_interval = live["spec"]["interval"]
            live["spec"]["interval"] = "59m"
        writes = len(double.writes())
        report = bootstrap_cluster(_request(repo, env, dry_run=True))
        outcomes = {c.ref: c.outcome for c in report.changes if c.what == "apply"}
        assert outcomes["GitRepository flux-system/flux-system"] == "would configure"
        assert outcomes["Namespace flux-system"] == "unchanged"
        (diff,) = [d for d in report.diffs if "GitRepository flux-system/flux-system" in d]
        assert "-  interval: 59m" in diff and f"+  interval: {wanted_interval}" in diff
        assert not report.offline and len(double.writes()) == writes  # nothing was applied
        assert run(_cli_args(repo, env, "--dry-run")) == 0
        assert "+  interval:" in capsys.readouterr().out
