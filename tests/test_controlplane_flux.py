"""The Flux mission against a real control plane with the real Flux controllers (issue 15, items 2, 3 and 5).

init (starter) -> push over ssh with the deploy key to a loopback sshd -> bootstrap dev: the Flux install
manifest comes from a local download server with its own checksum file, assembled from the controllers' Go
modules; source-, kustomize-, helm- and notification-controller run as local processes and do the real
reconciling; kwok makes the Pods of the Deployments they create Ready. Then the change flows: a new service,
a second bootstrap (no-op) and a key rotation.

Only loopback: the controllers get an HTTP(S) proxy on a closed loopback port, so the infrastructure charts,
which live on the internet, fail fast with a source error instead of reaching out.
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
from fleetstrap.pins import pin
from fleetstrap.publish.auth import build_ssh_command
from gitservers import Server, bare_repo, repo_log, start_sshd
from support import cluster_tools
from support.commands import ok
from support.controlplane import ControlPlane, FluxControllers, running_flux
from support.controlplane import eventually as cp_eventually
from support.probes import (
    FLUX_NS,
    FLUX_SOURCE,
    KUSTOMIZATIONS,
    commit_all,
    get,
    git,
    kustomization_applied,
    ready,
    request_reconcile,
)
from support.tools import scaled

pytestmark = pytest.mark.xdist_group("controlplane")

T = TypeVar("T")
# Generous bounds for a loaded 2-core CI machine, times $FLEETSTRAP_TEST_TIMEOUT_SCALE; they only stop a broken
# run from hanging: every wait below is for a condition.
SETTLE = scaled(240.0)
BOOTSTRAP_TIMEOUT = str(int(scaled(180.0)))


@pytest.fixture(scope="module")
def flux(control_plane: ControlPlane) -> Iterator[FluxControllers]:
    with running_flux(control_plane, pin("flux_version")) as controllers:
        yield controllers


@pytest.fixture(scope="module")
def release(flux: FluxControllers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Downloads]:
    """The pinned Flux release's install.yaml and checksums file, served on loopback."""
    manifest = cluster_tools.flux_install_manifest(flux.build, tmp_path_factory.mktemp("flux-release"))
    with download_server() as downloads:
        downloads.publish_flux(pin("flux_version"), manifest)
        yield downloads


def eventually(probe: Callable[[], T | None], what: str, flux: FluxControllers, timeout: float = SETTLE) -> T:
    return cp_eventually(probe, what, flux.plane, flux.logs, timeout)


def helmrelease(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    return get(plane, f"/apis/helm.toolkit.fluxcd.io/v2/namespaces/{namespace}/helmreleases/{name}")


def helmrelease_when(plane: ControlPlane, namespace: str, name: str, ready_status: str) -> dict[str, Any] | None:
    """The HelmRelease once helm-controller has finished with its current generation and its Ready condition
    has `ready_status`, else None. What `rollback --wait` waits for (deploy/wait.py helmrelease_check): Ready=True
    alone is not enough, helm-controller sets it before it records the release (status.history) and observes the
    generation."""
    release = helmrelease(plane, namespace, name)
    if release is None or ready(release)[0] != ready_status:
        return None
    status = release.get("status") or {}
    if ready_status == "True" and (int(status.get("observedGeneration") or -1) < release["metadata"]["generation"]
                                   or not status.get("history")):
        return None
    return release


def helmrepository_failed(plane: ControlPlane, namespace: str) -> dict[str, Any] | None:
    """A HelmRepository of `namespace` that source-controller failed to fetch, else None."""
    repos = get(plane, f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/helmrepositories")
    return next((r for r in (repos or {}).get("items") or [] if ready(r)[0] == "False"), None)


def gitrepository_revision(plane: ControlPlane) -> str:
    repo = get(plane, FLUX_SOURCE)
    return str((((repo or {}).get("status") or {}).get("artifact") or {}).get("revision") or "")


def deployment_available(plane: ControlPlane, namespace: str) -> dict[str, Any] | None:
    status, body = plane.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments")
    assert status == 200, body
    for dep in body["items"]:
        conditions = (dep.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Available" and c["status"] == "True" for c in conditions):
            return dict(dep)
    return None


def authorize(server: Server, *keys: Path) -> None:
    lines = [public_key_openssh(k.read_bytes()) for k in keys]
    (server.root / "authorized_keys").write_text("".join(f"{line.strip()}\n" for line in lines), encoding="utf-8")


def test_flux_mission_on_a_real_control_plane(control_plane: ControlPlane, flux: FluxControllers,
                                             release: Downloads, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSTRAP_DOWNLOAD_BASE_URL", release.base_url)
    monkeypatch.setenv("FLEETSTRAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLEETSTRAP_CONFIG_DIR", str(tmp_path / "config"))
    # A flux CLI on the machine must not replace the download path under test.
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
        # bootstrap's own git checks (ls-remote, push) use the ambient ssh setup, like a person's shell.
        monkeypatch.setenv("GIT_SSH_COMMAND", build_ssh_command(str(key), known))

        # 1. init + push over ssh with the deploy key.
        ok(capsys, "-q", "init", "--blueprint", "starter", "-d", f"git_url={url}", str(fleet))
        push = ["push", str(fleet), "--remote", url, "--ssh-key", str(key), "--known-hosts", known]
        ok(capsys, *push)

        # 2. bootstrap: install manifest from the local release (checksum verified), then the real controllers
        # reconcile flux-system; bootstrap returns once that revision is applied.
        boot = ["bootstrap", "dev", "-C", str(fleet), "--kubeconfig", kc, "--deploy-key", str(key),
                "--known-hosts", known, "--timeout", BOOTSTRAP_TIMEOUT]
        out, _ = ok(capsys, *boot, "--format", "json")
        report = json.loads(out)
        head = git(fleet, "rev-parse", "HEAD")
        assert report["commit"] == head == repo_log(bare)[0]  # bootstrap committed gotk-components.yaml
        assert any(h.endswith("/install.yaml") for h in release.hits)
        assert any(h.endswith(f"flux_{pin('flux_version')}_checksums.txt") for h in release.hits)
        revision = f"main@sha1:{head}"
        assert report["revision"] == revision
        kust = get(plane, f"{KUSTOMIZATIONS}/flux-system")
        assert kust is not None and kust["status"]["lastAppliedRevision"] == revision
        assert gitrepository_revision(plane) == revision
        # The Flux Deployments from the install manifest run on the kwok node.
        assert deployment_available(plane, FLUX_NS) is not None

        # Infrastructure charts live on the internet: their HelmReleases fail with the source error, and
        # bootstrap said so (not ready, with the reason) instead of hanging.
        infra = [(c, n) for c, n in (("cert-manager", "cert-manager"),) if helmrelease(plane, c, n) is not None]
        assert infra, "the starter's infrastructure HelmReleases were not applied"
        for namespace, name in infra:
            # The verdict bootstrap waited for: the release failed because its chart repository did (status
            # below names the repository's error).
            eventually(lambda ns=namespace, n=name: helmrelease_when(plane, ns, n, "False") and
                       helmrepository_failed(plane, ns), f"HelmRelease {namespace}/{name} failed", flux)
        notes = "\n".join(report["notes"])
        assert "HelmRelease cert-manager/cert-manager not ready: Ready=False" in notes, notes

        # status: the revision, and every Kustomization and HelmRelease with its state.
        out, _ = ok(capsys, "status", "-C", str(fleet), "--kubeconfig", kc, "--format", "json")
        (cluster,) = json.loads(out)["clusters"]
        assert cluster["revision"] == revision
        states = dict(cluster["objects"])
        assert states[f"Kustomization {FLUX_NS}/flux-system"] == "Ready"
        # helm-controller only says the chart is not ready; status adds the source's error (the closed proxy).
        failed = states["HelmRelease cert-manager/cert-manager"]
        assert failed.startswith("Ready=False") and "HelmRepository cert-manager/" in failed, failed
        assert "127.0.0.1" in failed or "charts.jetstack.io" in failed, failed
        assert {f"Kustomization {FLUX_NS}/{n}" for n in ("infra-controllers", "infra-configs", "apps")} <= set(states)

        # The services wait for the infrastructure (apps dependsOn infra-configs), which cannot become ready
        # without the internet: this cluster's operator lets the services go first, in the repo, GitOps style.
        apps = fleet / "clusters" / "dev" / "apps.yaml"
        apps.write_text(apps.read_text(encoding="utf-8").replace("  dependsOn:\n    - name: infra-configs\n", ""),
                        encoding="utf-8")
        head = commit_all(fleet, "dev: deploy services before the infrastructure is ready")
        ok(capsys, *push)
        request_reconcile(plane)
        eventually(lambda: gitrepository_revision(plane) == f"main@sha1:{head}", "the new commit", flux)

        # The service's chart (from the repo) installs through helm-controller; kwok runs its Pods.
        hello = eventually(lambda: helmrelease_when(plane, "hello", "hello", "True"), "HelmRelease hello Ready", flux)
        assert hello["status"]["history"][0]["chartName"] == "hello"
        assert deployment_available(plane, "hello") is not None

        # 3. A new service: add + push -> Flux picks up the commit, the new HelmRelease becomes Ready.
        ok(capsys, "-q", "add", "service", "payments", "-C", str(fleet), "--commit")
        ok(capsys, *push)
        head = git(fleet, "rev-parse", "HEAD")
        request_reconcile(plane)
        eventually(lambda: helmrelease_when(plane, "payments", "payments", "True"), "HelmRelease payments Ready", flux)
        assert deployment_available(plane, "payments") is not None
        # status reports flux-system's applied revision: wait until that Kustomization applied the commit too
        # (it reconciles beside `apps`, which created payments).
        eventually(lambda: kustomization_applied(plane, "flux-system", f"main@sha1:{head}"),
                   "flux-system at the new commit", flux)
        out, _ = ok(capsys, "status", "-C", str(fleet), "--kubeconfig", kc, "--format", "json")
        (cluster,) = json.loads(out)["clusters"]
        assert cluster["revision"] == f"main@sha1:{head}"
        assert dict(cluster["objects"])["HelmRelease payments/payments"] == "Ready"

        # A second bootstrap changes nothing.
        _, err = ok(capsys, *boot)
        assert "already bootstrapped: nothing changed" in err, err
        assert git(fleet, "rev-parse", "HEAD") == head == repo_log(bare)[0]

        # --rotate-keys: a new deploy key replaces the source Secret; with only the new key accepted by the
        # git server, Flux still fetches the next commit.
        new_key = write_deploy_key(tmp_path / "dev-rotated.key")
        authorize(server, new_key)
        monkeypatch.setenv("GIT_SSH_COMMAND", build_ssh_command(str(new_key), known))
        out, _ = ok(capsys, *[a if a != str(key) else str(new_key) for a in boot], "--rotate-keys", "--format",
                    "json")
        assert any(c["what"] == "apply" and c["ref"] == f"Secret {FLUX_NS}/flux-system" and
                   c["outcome"] == "configured" for c in json.loads(out)["changes"])
        values = fleet / "apps" / "dev" / "hello" / "values.yaml"
        values.write_text(values.read_text(encoding="utf-8") + "\n# rotated\n", encoding="utf-8")
        head = commit_all(fleet, "touch")
        ok(capsys, *[a if a != str(key) else str(new_key) for a in push])
        request_reconcile(plane)
        eventually(lambda: gitrepository_revision(plane) == f"main@sha1:{head}",
                   "a fetch with the rotated key", flux)
    finally:
        server.stop()
