"""Both engines in one cluster (issue 26): the dual-engine blueprint bootstrapped on a real control plane with the
real Flux controllers and the real Argo CD controllers (v3.2.11, support.argocd) side by side.

init --blueprint dual-engine (its hub dev only) -> push over ssh -> one `bootstrap dev`: Flux first (components
committed, flux-system at the commit), then Argo CD (repository Secret, root app at the same commit). Each engine
reconciles its own part: Flux the cluster's Kustomizations and the infrastructure they apply (clusters/dev lists
them explicitly and leaves argocd/ alone), Argo CD the root app-of-apps and the services' Applications. Flux's
`apps` waits for the infrastructure, which needs the internet (closed proxy), so the service runs through Argo CD
only, as the generated README asks (one engine per release). Then a new commit is reconciled by both, and the
objects each engine manages survive the other's prune; a second bootstrap changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

pytest.importorskip("kubernetes", reason="the `cluster` extra (kubernetes client) is not installed")

from bootstrap_fixtures import Downloads, download_server, write_deploy_key
from fleetstrap.bootstrap.ssh import public_key_openssh
from fleetstrap.pins import pin
from fleetstrap.publish.auth import build_ssh_command
from gitservers import bare_repo, repo_log, start_sshd
from support import argocd as argo
from support import cluster_tools
from support.commands import cli, ok
from support.controlplane import ControlPlane, FluxControllers, running_flux
from support.controlplane import eventually as cp_eventually
from support.probes import (
    APPS,
    KUSTOMIZATIONS,
    commit_all,
    get,
    git,
    kustomization_applied,
    refresh,
    request_reconcile,
    synced_healthy_at,
)
from support.tools import scaled

pytestmark = pytest.mark.xdist_group("controlplane")

T = TypeVar("T")
# Bounds for a loaded 2-core CI machine, times $FLEETSTRAP_TEST_TIMEOUT_SCALE; every wait is for a condition.
SETTLE = scaled(300.0)


@pytest.fixture(scope="module")
def flux(control_plane: ControlPlane) -> Iterator[FluxControllers]:
    with running_flux(control_plane, pin("flux_version")) as controllers:
        yield controllers


@pytest.fixture(scope="module")
def argocd(control_plane: ControlPlane, flux: FluxControllers) -> Iterator[argo.ArgoCDControllers]:  # noqa: ARG001
    with argo.running_argocd(control_plane) as controllers:
        yield controllers


@pytest.fixture(scope="module")
def release(flux: FluxControllers, argocd: argo.ArgoCDControllers,  # noqa: ARG001 (controllers first)
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Downloads]:
    """Both install manifests on loopback: the pinned Flux release's and the Argo CD that runs here."""
    manifest = cluster_tools.flux_install_manifest(flux.build, tmp_path_factory.mktemp("flux-release"))
    with download_server() as downloads:
        downloads.publish_flux(pin("flux_version"), manifest)
        downloads.publish_argocd(argo.ARGOCD_RUNTIME_VERSION, argo.install_manifest())
        yield downloads


def logs(flux: FluxControllers, argocd: argo.ArgoCDControllers) -> str:
    return f"{flux.logs()}\n{argocd.logs()}"


def eventually(probe: Callable[[], T | None], what: str, flux: FluxControllers, argocd: argo.ArgoCDControllers,
               timeout: float = SETTLE) -> T:
    return cp_eventually(probe, what, flux.plane, lambda: logs(flux, argocd), timeout)


def reconcile_both(plane: ControlPlane) -> None:
    """What `flux reconcile source git flux-system` and `argocd app get --refresh` do."""
    request_reconcile(plane)
    for name in ("root", "dev-hello"):
        refresh(plane, name)


def uid(plane: ControlPlane, path: str) -> str:
    obj = get(plane, path)
    assert obj is not None, f"{path} is gone"
    return str(obj["metadata"]["uid"])


@pytest.fixture
def runtime_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bootstrap installs the Argo CD that runs here (v3.2.11), not the newer release fleets pin."""
    monkeypatch.setattr("fleetstrap.bootstrap.engines.pin",
                        lambda name: argo.ARGOCD_RUNTIME_VERSION if name == "argocd_version" else pin(name))


@pytest.mark.usefixtures("runtime_pin")
def test_both_engines_on_one_control_plane(control_plane: ControlPlane, flux: FluxControllers,
                                           argocd: argo.ArgoCDControllers, release: Downloads, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSTRAP_DOWNLOAD_BASE_URL", release.base_url)
    monkeypatch.setenv("FLEETSTRAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLEETSTRAP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr("fleetstrap.bootstrap.manifests.flux_cli_version", lambda _flux: None)
    plane = control_plane
    kc = str(plane.kubeconfig)
    key = write_deploy_key(tmp_path / "dev.key")
    server = start_sshd(tmp_path / "ssh", [public_key_openssh(key.read_bytes())])
    try:
        bare = bare_repo(server.root, "fleet-infra.git")
        url = f"{server.url}{bare}"
        known = server.extra["known_hosts"]
        fleet = tmp_path / "fleet-infra"
        monkeypatch.setenv("GIT_SSH_COMMAND", build_ssh_command(str(key), known))

        # 1. init (the blueprint's hub dev; its spoke prod is the spoke test's subject) + push over ssh.
        ok(capsys, "-q", "init", "--blueprint", "dual-engine", "-d", f"git_url={url}",
           "-d", "clusters=[{name: dev, environment: dev}]", str(fleet))
        push = ["push", str(fleet), "--remote", url, "--ssh-key", str(key), "--known-hosts", known]
        ok(capsys, *push)

        # 2. One bootstrap, both engines: it returns once flux-system and root run the same commit.
        boot = ["bootstrap", "dev", "-C", str(fleet), "--kubeconfig", kc, "--deploy-key", str(key),
                "--known-hosts", known, "--timeout", str(int(SETTLE))]
        code, out, err = cli(capsys, *boot, "--format", "json")
        assert code == 0, f"{err[-3000:]}\n{logs(flux, argocd)}"
        report = json.loads(out)
        head = git(fleet, "rev-parse", "HEAD")
        assert report["engines"] == ["flux", "argocd"]
        assert report["commit"] == head == repo_log(bare)[0]  # the commit with gotk-components.yaml
        assert kustomization_applied(plane, "flux-system", f"main@sha1:{head}") is not None
        assert synced_healthy_at(plane, "root", head) is not None

        # Each engine reconciles its own part: Flux the infrastructure Kustomization (its HelmRepository), Argo
        # CD the service (its Deployment, tracked by annotation).
        jetstack = "/apis/source.toolkit.fluxcd.io/v1/namespaces/cert-manager/helmrepositories/jetstack"
        repo = eventually(lambda: get(plane, jetstack), "Flux's HelmRepository cert-manager/jetstack", flux, argocd)
        assert repo["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "infra-controllers"
        eventually(lambda: synced_healthy_at(plane, "dev-hello", head), "dev-hello Synced and Healthy", flux, argocd)
        hello = "/apis/apps/v1/namespaces/hello/deployments/hello"
        deployment = get(plane, hello)
        assert deployment is not None
        assert deployment["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"].startswith("dev-hello:")
        assert "kustomize.toolkit.fluxcd.io/name" not in (deployment["metadata"].get("labels") or {})
        survivors = {path: uid(plane, path) for path in (
            jetstack, f"{KUSTOMIZATIONS}/apps", "/api/v1/namespaces/cert-manager",  # Flux's
            hello, "/apis/argoproj.io/v1alpha1/namespaces/argocd/appprojects/platform", f"{APPS}/dev-hello",  # Argo's
        )}

        # 3. A new commit, reconciled by both (each prunes what it no longer finds in it).
        values = fleet / "apps" / "dev" / "hello" / "values.yaml"
        values.write_text(values.read_text(encoding="utf-8") + "\n# reconciled by both engines\n", encoding="utf-8")
        head = commit_all(fleet, "touch")
        ok(capsys, *push)
        reconcile_both(plane)
        eventually(lambda: kustomization_applied(plane, "flux-system", f"main@sha1:{head}"),
                   "flux-system at the new commit", flux, argocd)
        eventually(lambda: synced_healthy_at(plane, "root", head), "root at the new commit", flux, argocd)
        eventually(lambda: synced_healthy_at(plane, "dev-hello", head), "dev-hello at the new commit", flux, argocd)
        # Neither pruned the other's objects: each is the same object as before.
        assert {path: uid(plane, path) for path in survivors} == survivors

        # 4. A second bootstrap changes nothing, for both engines.
        _, err = ok(capsys, *boot)
        assert "already bootstrapped: nothing changed" in err, err
        assert git(fleet, "rev-parse", "HEAD") == head == repo_log(bare)[0]
        assert {path: uid(plane, path) for path in survivors} == survivors
    finally:
        server.stop()
