"""`bootstrap --dry-run` says up front what bootstrap needs (the `cluster` extra, the fleet pushed, each engine's
install manifest), one line each, before it tries any of it: from local state only, then preflight checks them
against the remote and the cluster."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap_fixtures import (
    Downloads,
    bootstrap_env,
    git,
    make_fleet_repo,
    pinned_release_downloads,
)
from fleetstrap.bootstrap import preflight
from fleetstrap.cli import run
from fleetstrap.pins import pin


@pytest.fixture(scope="module")
def downloads() -> Iterator[Downloads]:
    with pinned_release_downloads() as d:
        yield d


@pytest.fixture
def env(tmp_path: Path, downloads: Downloads, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return bootstrap_env(tmp_path, downloads, monkeypatch)


def _dry_run(root: Path, env: dict[str, Path]) -> list[str]:
    return ["bootstrap", "dev", "-C", str(root), "--kubeconfig", str(env["kubeconfig"]), "--deploy-key",
            str(env["key"]), "--known-hosts", str(env["known_hosts"]), "--timeout", "5", "--dry-run"]


def _needs(err: str) -> list[str]:
    return [line.strip() for line in err.splitlines() if line.strip().startswith("needs ")]


@pytest.mark.parametrize("engine", ["flux", "argocd"])
def test_dry_run_names_what_it_needs_before_trying(engine: str, tmp_path: Path, env: dict[str, Path],
                                                   downloads: Downloads, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("kubernetes", reason="the `cluster` extra (kubernetes client) is not installed")
    repo = make_fleet_repo(tmp_path, engine=engine)
    downloads.hits.clear()

    assert run(_dry_run(repo.root, env)) == 0

    err = capsys.readouterr().err
    needs = _needs(err)
    assert len(needs) == 3, err
    assert needs[0] == "needs the cluster extra (the Kubernetes Python client): installed"
    assert needs[1].startswith("needs the fleet pushed to origin (") and f"{repo.head()[:12]} was pushed" in needs[1]
    name = f"Flux {pin('flux_version')}" if engine == "flux" else f"Argo CD {pin('argocd_version')}"
    assert needs[2].startswith(f"needs the {name} install manifest: downloads {downloads.base_url}/")
    # Said before it tried: the lines come first, and the download happened after them.
    assert err.index(needs[2]) < err.index("no cluster reachable")
    assert downloads.hits

    assert run(_dry_run(repo.root, env)) == 0  # the manifest is cached now, and it says so
    (cached,) = [n for n in _needs(capsys.readouterr().err) if "install manifest" in n]
    assert f"cached at {env['cache']}" in cached


def test_an_unpushed_commit_and_a_missing_remote_are_named(tmp_path: Path) -> None:
    repo = make_fleet_repo(tmp_path)
    (repo.root / "README.md").write_text("local change\n")
    git(repo.root, "add", "README.md")
    git(repo.root, "commit", "-q", "-m", "not pushed")
    push = preflight._push_need(repo.root, "origin", "main")
    assert push.endswith("is not known to be pushed - run `fleetstrap push` (preflight asks the remote)")
    git(repo.root, "remote", "remove", "origin")
    assert preflight._push_need(repo.root, "origin", "main") == (
        "needs the fleet pushed (the cluster pulls it): no git remote 'origin' yet - run `fleetstrap push`")


@pytest.mark.usefixtures("env")
def test_a_missing_cluster_extra_is_named_with_its_install_line(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_kubernetes(name: str, *args: Any) -> Any:
        return None if name == "kubernetes" else real(name, *args)

    monkeypatch.setattr(preflight.importlib.util, "find_spec", without_kubernetes)
    repo = make_fleet_repo(tmp_path)
    needs = preflight.bootstrap_needs(repo.root, "origin", "main", ("flux",), preflight.manifests.Downloads())
    assert needs[0] == ("needs the cluster extra (the Kubernetes Python client): missing - pip install "
                        "'fleetstrap[cluster]'")
