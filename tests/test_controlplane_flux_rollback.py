"""`fleetstrap rollback --wait` against the real control plane with the real Flux controllers.

A starter fleet is pushed over ssh and bootstrapped (as in test_controlplane_flux, whose fixtures this module
shares); a release lands the way the release workflow commits it and the cluster runs it; then
`rollback --wait` pushes the rollback, asks source-controller to fetch now (reconcile.fluxcd.io/requestedAt)
and returns only once the apps Kustomization applied that commit, helm-controller upgraded the release and the
Deployment runs the rolled-back tag.

Like every module that uses `control_plane` (tests/conftest.py), this one has a control plane of its own: the
Flux mission's objects (its repository, its services) never meet this story, in any order of the modules.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("kubernetes", reason="the `cluster` extra (kubernetes client) is not installed")

from bootstrap_fixtures import Downloads, write_deploy_key
from fleetstrap.bootstrap.ssh import public_key_openssh
from fleetstrap.publish.auth import build_ssh_command
from gitservers import bare_repo, repo_log, start_sshd
from support.commands import cli, ok
from support.controlplane import ControlPlane, FluxControllers
from support.deploy import release as land_release
from support.probes import KUSTOMIZATIONS, get, git, request_reconcile, running_tag
from support.tools import scaled
from test_controlplane_flux import (  # noqa: F401 (fixtures shared with the mission test)
    BOOTSTRAP_TIMEOUT,
    eventually,
    flux,
    helmrelease_when,
    release,
)

pytestmark = pytest.mark.xdist_group("controlplane")


def test_rollback_waits_until_the_cluster_runs_the_previous_version(
        control_plane: ControlPlane, flux: FluxControllers, release: Downloads,  # noqa: F811
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
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
        ok(capsys, "-q", "init", "--blueprint", "starter", "-d", f"git_url={url}", str(fleet))
        # The infrastructure charts live on the internet: the services go first (as in the mission test).
        apps = fleet / "clusters" / "dev" / "apps.yaml"
        apps.write_text(apps.read_text(encoding="utf-8").replace("  dependsOn:\n    - name: infra-configs\n", ""),
                        encoding="utf-8")
        push = ["push", str(fleet), "--remote", url, "--ssh-key", str(key), "--known-hosts", known]
        ok(capsys, *push)
        ok(capsys, "bootstrap", "dev", "-C", str(fleet), "--kubeconfig", kc, "--deploy-key", str(key),
           "--known-hosts", known, "--timeout", BOOTSTRAP_TIMEOUT)
        eventually(lambda: running_tag(plane, "hello") == "0.1.0" or None, "hello 0.1.0 running", flux)

        # Release 0.2.0 the way the release workflow commits it; the cluster runs it.
        assert land_release(fleet, "0.2.0") is not None
        git(fleet, "push", "-q", "origin", "main")
        request_reconcile(plane)
        eventually(lambda: running_tag(plane, "hello") == "0.2.0" or None, "hello 0.2.0 running", flux)

        code, _, err = cli(capsys, "rollback", "hello", "--env", "dev", "-C", str(fleet), "--wait",
                             "--kubeconfig", kc, "--timeout", str(int(scaled(240))))

        assert code == 0, f"{err[-3000:]}\n{flux.logs()}"
        head = git(fleet, "rev-parse", "HEAD")
        assert repo_log(bare)[0] == head  # pushed
        assert re.search(rf"dev \(flux\) runs hello 0\.1\.0 at {head[:12]}", err), err
        assert "requested a reconcile of GitRepository flux-system/flux-system" in err
        # When the command returned, the cluster already ran the rollback: no polling needed here.
        assert running_tag(plane, "hello") == "0.1.0"
        kust = get(plane, f"{KUSTOMIZATIONS}/apps")
        assert kust is not None and kust["status"]["lastAppliedRevision"] == f"main@sha1:{head}"
        assert helmrelease_when(plane, "hello", "hello", "True") is not None
    finally:
        server.stop()

