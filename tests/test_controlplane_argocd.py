"""The Argo CD mission against a real control plane with the real Argo CD controllers (issue 26).

Argo CD version: the controllers here are Argo CD v3.2.11 (support.argocd.ARGOCD_RUNTIME_VERSION), the newest
release the Go module proxy can build; generated fleets pin a newer one (templates/pins.yml `argocd_version`,
v3.5.1). Bootstrap installs the install manifest of the version that runs (v3.2.11, served on loopback), so the
CRDs, RBAC and configuration the controllers read belong to them.

init --blueprint argocd-multi-cluster (the hub dev, and the spoke staging on a second control plane) -> push over
ssh with the deploy key to a loopback sshd -> bootstrap the hub (dev) with `--spoke-context staging=spoke`:
repository credentials, the spoke registered (ServiceAccount, RBAC and token on the spoke, cluster Secret on the
hub), the root app-of-apps; application-controller, repo-server (git, helm, kubectl's kustomize) and
applicationset-controller run as local processes with Redis on loopback and do the real syncing, on the hub and
on the spoke; kwok makes the Pods of the Deployments they create Ready on each. Then: status per Application, a
new service, a release the controller rolls out, `rollback --wait` on the real controller, a second bootstrap
that changes nothing, and `--rotate-keys`: the spoke's new token is the one Argo CD uses from then on.

Only loopback: the infrastructure charts live on the internet; the controllers get an HTTP(S) proxy on a closed
loopback port so those Applications fail fast with a source error instead of reaching out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytest.importorskip("kubernetes", reason="the `cluster` extra (kubernetes client) is not installed")

from bootstrap_fixtures import Downloads, download_server, write_deploy_key
from fleetstrap.bootstrap.ssh import public_key_openssh
from fleetstrap.publish.auth import build_ssh_command
from gitservers import bare_repo, repo_log, start_sshd
from support import argocd as argo
from support.commands import cli, ok
from support.controlplane import ControlPlane, write_kubeconfig
from support.controlplane import eventually as cp_eventually
from support.probes import APPS, application, git, refresh, running_tag, sync_health, synced_healthy_at
from support.tools import scaled

pytestmark = pytest.mark.xdist_group("controlplane")

T = TypeVar("T")
NS = argo.ARGOCD_NS
# One bound for every wait on a loaded 2-core CI machine, times $FLEETSTRAP_TEST_TIMEOUT_SCALE; it only stops a
# broken run from hanging.
SETTLE = scaled(300.0)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """This module's own control plane: the hub Argo CD runs on (the session's carries the Flux mission)."""
    from support.controlplane import control_plane_for_tests

    with control_plane_for_tests(tmp_path_factory.mktemp("argocd-hub")) as plane:
        yield plane


@pytest.fixture(scope="module")
def spoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A second control plane: the spoke cluster staging, which the hub registers and Argo CD deploys to."""
    from support.controlplane import control_plane_for_tests

    with control_plane_for_tests(tmp_path_factory.mktemp("argocd-spoke")) as plane:
        yield plane


@pytest.fixture(scope="module")
def argocd(hub: ControlPlane) -> Iterator[argo.ArgoCDControllers]:
    with argo.running_argocd(hub) as controllers:
        yield controllers


@pytest.fixture(scope="module")
def release(argocd: argo.ArgoCDControllers) -> Iterator[Downloads]:  # noqa: ARG001 (order: controllers first)
    """The runtime version's install.yaml, served where bootstrap downloads Argo CD's manifest from."""
    with download_server() as downloads:
        downloads.publish_argocd(argo.ARGOCD_RUNTIME_VERSION, argo.install_manifest())
        yield downloads


@pytest.fixture
def runtime_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bootstrap installs the Argo CD that runs here (v3.2.11), not the newer release fleets pin."""
    from fleetstrap.pins import pin

    monkeypatch.setattr("fleetstrap.bootstrap.engines.pin",
                        lambda name: argo.ARGOCD_RUNTIME_VERSION if name == "argocd_version" else pin(name))


def eventually(probe: Callable[[], T | None], what: str, controllers: argo.ArgoCDControllers,
               timeout: float = SETTLE) -> T:
    return cp_eventually(probe, what, controllers.plane, controllers.logs, timeout)


def applications(plane: ControlPlane) -> dict[str, dict[str, Any]]:
    status, body = plane.request("GET", APPS)
    assert status == 200, body
    return {a["metadata"]["name"]: a for a in body["items"]}


def deployment_available(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    status, dep = plane.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    if status != 200:
        return None
    conditions = (dep.get("status") or {}).get("conditions") or []
    return dep if any(c["type"] == "Available" and c["status"] == "True" for c in conditions) else None


def spoke_token(spoke: ControlPlane) -> tuple[str, str]:
    """(name, token) of the one token Secret the hub's registration made on the spoke."""
    import base64

    status, body = spoke.request("GET", "/api/v1/namespaces/kube-system/secrets")
    assert status == 200, body
    ours = [s for s in body["items"] if s.get("type") == "kubernetes.io/service-account-token"
            and s["metadata"].get("annotations", {}).get("kubernetes.io/service-account.name")
            == "fleetstrap-argocd-manager"]
    assert len(ours) == 1, [s["metadata"]["name"] for s in ours]
    return ours[0]["metadata"]["name"], base64.b64decode(ours[0]["data"]["token"]).decode()


def api_status(plane: ControlPlane, token: str) -> int:
    """The HTTP status the plane's API server answers a request for namespaces with `token`."""
    import ssl
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{plane.server}/api/v1/namespaces", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(plane.pki / "ca.crt")),
                                    timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.usefixtures("runtime_pin")
def test_argocd_mission_on_a_real_control_plane(hub: ControlPlane, spoke: ControlPlane,
                                               argocd: argo.ArgoCDControllers, release: Downloads, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from support.deploy import release as land_release

    monkeypatch.setenv("FLEETSTRAP_DOWNLOAD_BASE_URL", release.base_url)
    monkeypatch.setenv("FLEETSTRAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLEETSTRAP_CONFIG_DIR", str(tmp_path / "config"))
    plane = hub
    kc = str(write_kubeconfig(tmp_path / "kubeconfig", {"hub": hub, "spoke": spoke}))
    key = write_deploy_key(tmp_path / "hub.key")
    server = start_sshd(tmp_path / "ssh", [public_key_openssh(key.read_bytes())])
    try:
        bare = bare_repo(server.root, "fleet-infra.git")
        url = f"{server.url}{bare}"
        known = server.extra["known_hosts"]
        fleet = tmp_path / "fleet-infra"
        monkeypatch.setenv("GIT_SSH_COMMAND", build_ssh_command(str(key), known))

        # 1. init + push over ssh with the deploy key.
        # The blueprint's hub dev and one spoke, staging, at the second control plane's API server.
        clusters = (f"clusters=[{{name: dev, environment: dev}}, "
                    f"{{name: staging, environment: staging, server: '{spoke.server}'}}]")
        ok(capsys, "-q", "init", "--blueprint", "argocd-multi-cluster", "-d", f"git_url={url}", "-d", clusters,
           str(fleet))
        push = ["push", str(fleet), "--remote", url, "--ssh-key", str(key), "--known-hosts", known]
        ok(capsys, *push)
        head = git(fleet, "rev-parse", "HEAD")

        # 2. bootstrap the hub: install manifest of the version that runs, repository credentials, the spoke
        # registered, the root app; it returns once the real application-controller reports root Synced and
        # Healthy at the commit (root is Degraded while an ApplicationSet names a cluster Argo CD does not know).
        boot = ["bootstrap", "dev", "-C", str(fleet), "--kubeconfig", kc, "--context", "hub",
                "--spoke-context", "staging=spoke", "--deploy-key", str(key), "--known-hosts", known,
                "--timeout", str(int(SETTLE))]
        code, out, err = cli(capsys, *boot, "--format", "json")
        assert code == 0, f"{err[-3000:]}\n{argocd.logs()}"
        report = json.loads(out)
        assert report["commit"] == head == repo_log(bare)[0]
        assert any(h.endswith(f"/argoproj/argo-cd/{argo.ARGOCD_RUNTIME_VERSION}/manifests/install.yaml")
                   for h in release.hits)
        assert synced_healthy_at(plane, "root", head) is not None
        # The Argo CD workloads of the install manifest run on the kwok node (the real ones run beside it).
        assert deployment_available(plane, NS, "argocd-repo-server") is not None

        # The root app applied the AppProjects and ApplicationSets; applicationset-controller generated every
        # Application; the hub's service syncs through the repo-server's helm and kwok runs its Pods.
        hello = eventually(lambda: synced_healthy_at(plane, "dev-hello", head), "dev-hello Synced and Healthy",
                           argocd)
        assert hello["spec"]["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "hello"}
        assert hello["spec"]["project"] == "platform"
        assert deployment_available(plane, "hello", "hello") is not None
        names = set(applications(plane))
        assert {"dev-hello", "staging-hello", "dev-infra-cert-manager", "dev-infra-configs"} <= names, names

        # The spoke: registered with the RBAC the AppProjects need there (fleet-infrastructure installs
        # cluster-scoped kinds: full access), and the service syncs onto it with the spoke's own token.
        status, role = spoke.request("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/"
                                            "fleetstrap-argocd-manager")
        assert status == 200 and "fleet-infrastructure" in role["metadata"]["annotations"][
            "kubernetes.io/description"], role
        staging = eventually(lambda: synced_healthy_at(plane, "staging-hello", head, runs_on=spoke),
                             "staging-hello Synced and Healthy on the spoke", argocd)
        assert staging["spec"]["destination"] == {"server": spoke.server, "namespace": "hello"}
        assert deployment_available(spoke, "hello", "hello") is not None
        first_token = spoke_token(spoke)

        # The chart repositories are on the internet: the controller reports the fetch error (the closed proxy).
        eventually(lambda: any("charts.jetstack.io" in str(c.get("message")) for c in (
            (application(plane, "dev-infra-cert-manager") or {}).get("status") or {}).get("conditions") or []),
            "dev-infra-cert-manager's chart source error", argocd)

        # 3. status: sync and health of every Application, as the controller reports them.
        out, _ = ok(capsys, "status", "-C", str(fleet), "--kubeconfig", kc, "--format", "json")
        (cluster,) = [c for c in json.loads(out)["clusters"] if c["name"] == "dev"]
        assert cluster["revision"] == head
        states = dict(cluster["objects"])
        assert states["Application argocd/root"] == "Synced/Healthy"
        assert states["Application argocd/dev-hello"] == "Synced/Healthy"
        assert set(states) == {f"Application argocd/{n}" for n in applications(plane)}
        # The chart repositories are on the internet: the controller says why, and so does status.
        cert_manager = states["Application argocd/dev-infra-cert-manager"]
        assert not cert_manager.startswith("Synced/Healthy") and "charts.jetstack.io" in cert_manager, cert_manager

        # 4. A new service: add + push -> root syncs the ApplicationSet, the new Application syncs.
        ok(capsys, "-q", "add", "service", "payments", "-C", str(fleet), "--commit")
        ok(capsys, *push)
        head = git(fleet, "rev-parse", "HEAD")
        refresh(plane, "root")
        eventually(lambda: synced_healthy_at(plane, "dev-payments", head), "dev-payments Synced and Healthy",
                   argocd)
        assert deployment_available(plane, "payments", "payments") is not None

        # 5. A release lands (the release workflow's commit) and the controller runs it; `rollback --wait` pushes
        # the rollback, asks for a refresh and returns once the real controller synced it. Its refresh requests
        # go under their own field manager: under bootstrap's, the API server refused them (422, root's spec
        # would have been removed).
        assert running_tag(plane, "hello") == "0.1.0"
        assert land_release(fleet, "0.2.0") is not None
        git(fleet, "push", "-q", "origin", "main")
        refresh(plane, "dev-hello")
        eventually(lambda: running_tag(plane, "hello") == "0.2.0" or None, "hello 0.2.0 running", argocd)
        code, _, err = cli(capsys, "rollback", "hello", "--env", "dev", "-C", str(fleet), "--wait",
                           "--kubeconfig", kc, "--timeout", str(int(SETTLE)))
        assert code == 0, f"{err[-3000:]}\n{argocd.logs()}"
        head = git(fleet, "rev-parse", "HEAD")
        assert repo_log(bare)[0] == head  # pushed
        assert "requested a reconcile of Application argocd/root" in err, err
        assert f"dev (argocd) runs hello 0.1.0 at {head[:12]}" in err, err
        # When the command returned, the cluster already ran the rollback: no polling here.
        assert running_tag(plane, "hello") == "0.1.0"
        assert sync_health(application(plane, "dev-hello"))[2] == head
        root = application(plane, "root")
        assert root is not None, "root Application gone"
        # The refresh left root's spec as bootstrap applied it.
        assert (root["spec"]["project"], root["spec"]["source"]["path"], root["spec"]["destination"]["namespace"]) \
            == ("default", "argocd", "argocd"), root["spec"]

        # 6. A second bootstrap changes nothing.
        _, err = ok(capsys, *boot)
        assert "already bootstrapped: nothing changed" in err, err
        assert git(fleet, "rev-parse", "HEAD") == head == repo_log(bare)[0]
        assert spoke_token(spoke) == first_token

        # 7. --rotate-keys: a new token Secret on the spoke, the old one deleted (the spoke's API server no longer
        # takes its token). Argo CD keeps the spoke in sync with the new one: a Deployment deleted there comes
        # back (staging self-heals).
        code, _, err = cli(capsys, *boot, "--rotate-keys")
        assert code == 0, f"{err[-3000:]}\n{argocd.logs()}"
        rotated = spoke_token(spoke)
        assert rotated[0] != first_token[0], "no new token Secret"
        # The old token goes with its Secret (once the API server's Secret cache has seen the delete).
        eventually(lambda: api_status(spoke, first_token[1]) == 401 or None, "the old token refused", argocd)
        assert api_status(spoke, rotated[1]) == 200
        _, before = spoke.request("GET", "/apis/apps/v1/namespaces/hello/deployments/hello")
        status, _ = spoke.request("DELETE", "/apis/apps/v1/namespaces/hello/deployments/hello")
        assert status == 200
        # The controller dropped its cache of the spoke when the cluster Secret changed; a refresh rebuilds it now
        # (with the new token) instead of at the next periodic reconcile.
        refresh(plane, "staging-hello")

        def recreated() -> dict[str, Any] | None:
            dep = deployment_available(spoke, "hello", "hello")
            return dep if dep is not None and dep["metadata"]["uid"] != before["metadata"]["uid"] else None

        eventually(recreated, "hello recreated on the spoke", argocd)
        assert running_tag(spoke, "hello") == "0.1.0"
    finally:
        server.stop()
