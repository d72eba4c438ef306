"""The whole bootstrap flow against a real cluster (kind in .github/workflows/e2e-kind.yml).

Needs: FLEETSTRAP_E2E_KUBECONFIG (the cluster), FLEETSTRAP_E2E_GIT_URL (an ssh git URL that both this machine
and the cluster reach; pushed with the ambient GIT_SSH_COMMAND), FLEETSTRAP_E2E_DEPLOY_KEY (its private key),
and internet access for Flux's release assets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

KUBECONFIG = os.environ.get("FLEETSTRAP_E2E_KUBECONFIG", "")


@pytest.mark.skipif(not KUBECONFIG, reason="FLEETSTRAP_E2E_KUBECONFIG is not set (real cluster e2e)")
def test_bootstrap_flux_on_real_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("kubernetes", reason="the `cluster` extra is not installed")
    from bootstrap_fixtures import make_fleet_repo
    from fleetstrap.cli import run

    git_url = os.environ["FLEETSTRAP_E2E_GIT_URL"]
    key = os.environ["FLEETSTRAP_E2E_DEPLOY_KEY"]
    repo = make_fleet_repo(tmp_path, git_url=git_url, remote=git_url)
    args = ["bootstrap", "dev", "-C", str(repo.root), "--kubeconfig", KUBECONFIG, "--deploy-key", key,
            "--timeout", "600"]
    assert run(args) == 0
    head = repo.head()
    capsys.readouterr()

    assert run(args) == 0  # idempotent
    assert repo.head() == head
    assert "nothing changed" in capsys.readouterr().err

    assert run(["status", "-C", str(repo.root), "--kubeconfig", KUBECONFIG, "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    (cluster,) = status["clusters"]
    assert cluster["revision"] == f"main@sha1:{head}"
    assert cluster["state"] == "GitRepository Ready; Kustomization Ready"
