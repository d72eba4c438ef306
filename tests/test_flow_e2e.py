"""The whole mission in-process through `fleetstrap.cli.run`, on fleets generated from the REAL templates:
init -> validate -> push -> bootstrap -> status -> check-update/update, each rerun to prove it is a no-op.

Flux: the starter blueprint pushed to the fake GitHub (REST + git HTTP), bootstrapped against the Kubernetes API
double with the deploy key push stored, push and bootstrap traced to a real OTLP receiver.
Argo CD: the argocd-multi-cluster blueprint pushed with --remote to a bare file:// repo.
Each mission is one test: its steps depend on each other, and pytest-xdist may split a module's tests.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kubernetes", reason="the `cluster` extra (kubernetes client) is not installed")
pytest.importorskip("opentelemetry.sdk", reason="the otel extra (pip install 'fleetstrap[otel]') is not installed")
pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto (test extra) is not installed")

from bootstrap_fixtures import (
    KNOWN_HOSTS,
    Downloads,
    pinned_release_downloads,
    write_deploy_key,
)
from fake_github import FakeGitHub
from fake_github.server import DEPLOY_KEY_USER
from fake_github.spec import Spec
from fleetstrap import __version__
from fleetstrap.pins import pin
from fleetstrap.publish import keys
from fleetstrap.publish.auth import basic_credentials
from gitservers import bare_repo, files_containing, repo_log
from kube_double import KubeDouble, argocd_ready, flux_ready, serve, token_controller
from otlp_receiver import HttpReceiver, ReceivedSpan, http_receiver
from support.commands import cli, ok

TOKEN = "ghp_" + "E2e" * 12
OWNER = "fleet-org"  # the README's way: the blueprint with --data owner=…, an organization the token's user is in
FLEET = "fleet-infra"
TEMPLATE_VERSION = f"v{__version__}"


@pytest.fixture(scope="module")
def downloads() -> Iterator[Downloads]:
    with pinned_release_downloads() as d:
        yield d


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def env(tmp_path: Path, downloads: Downloads, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    # Keys, template mirror and manifest cache of this mission only (CI shares one cache dir between workers).
    monkeypatch.setenv("FLEETSTRAP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("FLEETSTRAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLEETSTRAP_DOWNLOAD_BASE_URL", downloads.base_url)
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    for var in ("GITHUB_TOKEN", "KUBECONFIG", "OTEL_EXPORTER_OTLP_ENDPOINT", "FLEETSTRAP_OTLP_ENDPOINT",
                "OTEL_TRACES_SAMPLER", "OTEL_EXPORTER_OTLP_PROTOCOL", "TRACEPARENT"):
        monkeypatch.delenv(var, raising=False)
    # A flux CLI on the machine must not replace the download path under test.
    monkeypatch.setattr("fleetstrap.bootstrap.manifests.flux_cli_version", lambda _flux: None)
    known = tmp_path / "known_hosts"
    known.write_text(KNOWN_HOSTS, encoding="utf-8")
    return {"known_hosts": known, "kubeconfig": tmp_path / "kubeconfig"}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout.strip()



def _public_blob(private: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private.encode(), None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return " ".join(public.decode().split()[:2])


def _release_push(gh: FakeGitHub, work: Path, private: str, version: str) -> subprocess.CompletedProcess[str]:
    """The generated gitops job's commit and push, as the deploy key whose private half is `private`.

    The fake serves git over HTTP only: a deploy key authenticates with user x-deploy-key and its public blob."""
    blob = _public_blob(private).split()[1]
    header = "Authorization: Basic " + base64.b64encode(f"{DEPLOY_KEY_USER}:{blob}".encode()).decode()
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "1",
           "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": header}
    subprocess.run(["git", "clone", "-q", f"{gh.url}/{OWNER}/{FLEET}.git", str(work)], env=env, check=True,
                   capture_output=True)
    values = work / "apps" / "dev" / "hello" / "values.yaml"
    doc = yaml.safe_load(values.read_text(encoding="utf-8")) or {}
    doc.setdefault("image", {})["tag"] = version
    values.write_text(yaml.safe_dump(doc), encoding="utf-8")
    git = ["git", "-C", str(work), "-c", "user.name=github-actions[bot]", "-c", "user.email=bot@example.invalid"]
    subprocess.run([*git, "commit", "-q", "-m", f"hello: deploy {version} to dev", "--", str(values)], check=True)
    return subprocess.run([*git, "push", "origin", "HEAD:main"], env=env, capture_output=True, text=True,
                          check=False)


def _docs(path: Path) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d}


def _rvs(double: KubeDouble) -> dict[Any, str]:
    return {k: v["metadata"]["resourceVersion"] for k, v in double.objects.items()}


def _traced(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver.store.clear()
    receiver.fail_with(0)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)


def _command_trace(spans: list[ReceivedSpan], command: str, stage: str) -> dict[str, ReceivedSpan]:
    """The spans of one command run: one root, the library's stage span under it, everything in one trace."""
    by_name = {s.name: s for s in spans}
    root = by_name[f"fleetstrap {command}"]
    assert root.parent_span_id == "" and root.attributes["fleetstrap.outcome"] == "ok"
    assert {s.trace_id for s in spans} == {root.trace_id}
    assert by_name[stage].parent_span_id == root.span_id
    ids = {s.span_id for s in spans}
    assert all(s.parent_span_id in ids for s in spans if s is not root), "a span whose parent was not exported"
    return by_name


def _attribute_values(spans: list[ReceivedSpan]) -> str:
    parts = []
    for s in spans:
        parts += [f"{k}={v}" for k, v in (*s.attributes.items(), *s.resource.items())]
        parts += [f"{k}={v}" for _, attrs in s.events for k, v in attrs.items()]
    return "\n".join(parts)


def _children(by_name: dict[str, ReceivedSpan], parent: str) -> set[str]:
    return {name for name, s in by_name.items() if s.parent_span_id == by_name[parent].span_id}


# ---------------------------------------------------------------------------------------------------- Flux


def test_starter_mission_on_flux_through_fake_github(
        tmp_path: Path, env: dict[str, Path], crd_schemas: Path, receiver: HttpReceiver, downloads: Downloads,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / FLEET
    kc = str(env["kubeconfig"])

    # 1. init from the starter blueprint; the generated repo passes the offline gate.
    ok(capsys, "init", "--blueprint", "starter", "--data", f"owner={OWNER}", str(fleet))
    initial = _git(fleet, "rev-parse", "HEAD")
    ok(capsys, "validate", "--offline", "--schema-location", str(crd_schemas), str(fleet))

    gh = FakeGitHub(tmp_path / "github", Spec()).start()
    try:
        gh.add_user("octo")
        gh.add_user(OWNER, org=True)
        gh.add_token(TOKEN, "octo")

        # 2. push (traced): org repo created, the init commit published as is, the cluster's deploy key, the
        # release workflow's write key (private half only in the FLEET_DEPLOY_KEY secret), the branch ruleset.
        _traced(receiver, monkeypatch)
        out, _ = ok(capsys, "push", str(fleet), "--github-url", gh.url, "--api-delay", "0", "--json")
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
        pushed = json.loads(out)
        repo = gh.repo(OWNER, FLEET)
        assert repo is not None and repo.private
        assert ("POST", f"/orgs/{OWNER}/repos", 201) in gh.requests
        assert repo.log() == [initial] and pushed["commit"] == initial  # nothing left to commit after init
        assert _git(fleet, "remote", "get-url", "origin") == f"{gh.url}/{OWNER}/{FLEET}.git"
        stored = keys.load_deploy_key(OWNER, FLEET, "dev")
        by_title = {k["title"]: k for k in repo.keys.values()}
        assert set(by_title) == {"fleetstrap-dev", "fleetstrap-release"}
        key = by_title["fleetstrap-dev"]
        assert key["read_only"] is True  # starter: no image automation
        assert key["key"] == stored.public_blob and not stored.path.is_relative_to(fleet)
        release_key = by_title["fleetstrap-release"]
        assert release_key["read_only"] is False and set(repo.secrets) == {"FLEET_DEPLOY_KEY"}
        release_private = repo.secrets["FLEET_DEPLOY_KEY"]
        assert _public_blob(release_private) == release_key["key"]
        assert files_containing(tmp_path, release_private.splitlines()[2:-1]) == []
        # Required checks: the PR jobs of the generated workflows that run on every pull request. hello-ci
        # only runs when the service's paths change; requiring its jobs would block every other PR forever.
        assert repo.protection is None
        (ruleset,) = repo.rulesets.values()
        assert ruleset["name"] == "fleetstrap main" and ruleset["enforcement"] == "active"
        (checks,) = [r["parameters"] for r in ruleset["rules"] if r["type"] == "required_status_checks"]
        assert checks["required_status_checks"] == [{"context": "validate"}]
        assert {"actor_id": None, "actor_type": "DeployKey", "bypass_mode": "always"} in ruleset["bypass_actors"]
        assert any("hello-ci" in w and "paths" in w for w in pushed["warnings"]), pushed["warnings"]
        assert set(repo.environments) == {"dev"}

        spans = list(receiver.store.spans)
        by_name = _command_trace(spans, "push", "push")
        assert {"github.preflight", "git.preflight", "github.repository", "git.commit", "github.deploy_keys",
                "github.branch_protection"} <= _children(by_name, "push")
        values = _attribute_values(spans)
        assert TOKEN not in values and basic_credentials(TOKEN) not in values
        assert stored.private.splitlines()[1] not in values

        # A second push changes nothing: no commit, no API write, everything reported in place.
        writes = len(gh.writes())
        out, _ = ok(capsys, "push", str(fleet), "--github-url", gh.url, "--api-delay", "0", "--json")
        again = json.loads(out)
        assert again["created"] == [] and again["updated"] == [], again
        assert {"deploy key fleetstrap-dev", "deploy key fleetstrap-release", "secret FLEET_DEPLOY_KEY",
                "ruleset 'fleetstrap main' on main"} <= set(again["in_place"]), again
        assert len(gh.writes()) == writes and repo.log() == [initial]

        # 3. bootstrap dev against the API double with the key push stored (no --deploy-key).
        double = KubeDouble()
        double.controllers.update(flux_ready(lambda _obj: f"main@sha1:{repo.head()}"))
        boot = ["bootstrap", "dev", "-C", str(fleet), "--kubeconfig", kc, "--known-hosts",
                str(env["known_hosts"]), "--timeout", "10"]
        with serve(double):
            double.kubeconfig(env["kubeconfig"])
            _traced(receiver, monkeypatch)
            out, err = ok(capsys, *boot, "--format", "json")
            monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
            report = json.loads(out)
            head = _git(fleet, "rev-parse", "HEAD")
            assert head != initial and repo.head() == head  # the components commit reached the fake GitHub
            assert _git(fleet, "rev-parse", "HEAD~1") == initial
            assert report["revision"] == f"main@sha1:{head}"
            assert "clusters/dev/flux-system/gotk-components.yaml" in _git(fleet, "ls-tree", "-r", "--name-only",
                                                                           "HEAD")
            # What reached the cluster is the generated gotk-sync.yaml, at the pushed revision.
            generated = _docs(fleet / "clusters/dev/flux-system/gotk-sync.yaml")
            for kind in ("GitRepository", "Kustomization"):
                applied = double.find(kind, "flux-system", "flux-system")
                assert applied is not None, kind
                assert applied["spec"] == generated[kind]["spec"], kind
                assert applied["metadata"]["managedFields"][-1]["manager"] == "fleetstrap"
            git_repo = double.find("GitRepository", "flux-system", "flux-system")
            kustomization = double.find("Kustomization", "flux-system", "flux-system")
            assert git_repo is not None and kustomization is not None
            assert git_repo["status"]["artifact"]["revision"] == report["revision"]
            assert kustomization["status"]["lastAppliedRevision"] == report["revision"]
            secret = double.find("Secret", "flux-system", "flux-system")
            assert secret is not None
            assert base64.b64decode(secret["data"]["identity"]).decode() == stored.private
            assert base64.b64decode(secret["data"]["known_hosts"]).decode() == KNOWN_HOSTS
            flux_root = f"/fluxcd/flux2/releases/download/v{pin('flux_version')}"
            assert f"{flux_root}/install.yaml" in downloads.hits  # the pinned release, checksum-verified

            spans = list(receiver.store.spans)
            by_name = _command_trace(spans, "bootstrap", "bootstrap")
            assert {"bootstrap.preflight", "bootstrap.components", "bootstrap.push", "bootstrap.apply",
                    "wait.components", "wait.sync"} <= _children(by_name, "bootstrap")
            values = _attribute_values(spans)
            assert TOKEN not in values and stored.private.splitlines()[1] not in values

            # A second bootstrap is a no-op: no commit, no object written.
            before = _rvs(double)
            _, err = ok(capsys, *boot)
            assert "already bootstrapped: nothing changed" in err
            assert _git(fleet, "rev-parse", "HEAD") == head and repo.head() == head
            assert _rvs(double) == before

            # status: each component's template version, the pushed commit, the cluster's sync state.
            out, _ = ok(capsys, "status", "-C", str(fleet), "--kubeconfig", kc, "--format", "json")
            status = json.loads(out)
            assert {(c["name"], c["template_version"]) for c in status["components"]} == {
                ("fleet", TEMPLATE_VERSION), ("cluster/dev", TEMPLATE_VERSION), ("service/hello", TEMPLATE_VERSION)}
            assert status["pushed_commit"] == head == status["local_commit"]
            (cluster,) = status["clusters"]
            assert (cluster["name"], cluster["engine"], cluster["reachable"]) == ("dev", "flux", True)
            assert cluster["revision"] == report["revision"]
            assert cluster["state"] == "GitRepository Ready; Kustomization Ready"

        # push after bootstrap: the remote already has bootstrap's commit; nothing to do.
        out, _ = ok(capsys, "push", str(fleet), "--github-url", gh.url, "--api-delay", "0", "--json")
        assert json.loads(out)["created"] == [] and len(gh.writes()) == writes and repo.log()[0] == head

        # 4. templates are current: check-update exit 0, update makes no commit and touches no file.
        out, _ = ok(capsys, "check-update", str(fleet), "--format", "json")
        check = json.loads(out)
        assert check["update_available"] is False
        assert {c["status"] for c in check["components"]} == {"up-to-date"}
        ok(capsys, "update", str(fleet), "--commit")
        assert _git(fleet, "rev-parse", "HEAD") == head and _git(fleet, "status", "--porcelain") == ""

        # The repo after bootstrap still passes the gate (gotk-components.yaml is part of it now).
        ok(capsys, "validate", "--offline", "--fast", "--schema-location", str(crd_schemas), str(fleet))

        # 5. what the release workflow's gitops job does with FLEET_DEPLOY_KEY: commit the new image tag for dev
        # and push it straight to main (the ruleset lets the deploy key through; a plain token user would not be).
        released = _release_push(gh, tmp_path / "release", release_private, "1.2.3")
        assert released.returncode == 0, released.stderr
        assert repo.head() == _git(tmp_path / "release", "rev-parse", "HEAD") != head
        assert gh.violations == [], "requests or responses outside GitHub's OpenAPI description"
    finally:
        gh.stop()
    # The token is in no file: the fleet (including .git/config), the key store, the fake's repos.
    assert files_containing(tmp_path, [TOKEN, basic_credentials(TOKEN)]) == []


# ---------------------------------------------------------------------------------------------------- Argo CD


def test_argocd_multi_cluster_mission_through_a_plain_git_remote(
        tmp_path: Path, env: dict[str, Path], crd_schemas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / FLEET
    kc = str(env["kubeconfig"])
    ok(capsys, "init", "--blueprint", "argocd-multi-cluster", str(fleet))
    initial = _git(fleet, "rev-parse", "HEAD")
    ok(capsys, "validate", "--offline", "--schema-location", str(crd_schemas), str(fleet))

    # push --remote: a plain git remote, no GitHub API (and no GitHub token may reach it).
    bare = bare_repo(tmp_path / "remotes", "fleet-infra.git")
    remote = bare.resolve().as_uri()
    out, _ = ok(capsys, "push", str(fleet), "--remote", remote, "--json")
    assert repo_log(bare) == [initial] and json.loads(out)["commit"] == initial
    out, _ = ok(capsys, "push", str(fleet), "--remote", remote, "--json")
    again = json.loads(out)
    assert again["created"] == [] and again["updated"] == [] and repo_log(bare) == [initial], again

    key = write_deploy_key(tmp_path / "dev.key")
    double = KubeDouble()
    double.controllers.update(argocd_ready(lambda _obj: repo_log(bare)[0]))
    # The hub registers its spokes; here the double plays all of them (test_bootstrap_spokes has one per spoke).
    double.controllers["Secret"] = token_controller(double)
    double.objects[("", "namespaces", "", "kube-system")] = {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system", "resourceVersion": "1"}}
    boot = ["bootstrap", "dev", "-C", str(fleet), "--kubeconfig", kc, "--deploy-key", str(key),
            "--known-hosts", str(env["known_hosts"]), "--timeout", "10",
            *(a for s in ("staging", "prod-eu", "prod-us") for a in ("--spoke-context", f"{s}=double"))]
    with serve(double):
        double.kubeconfig(env["kubeconfig"])
        out, _ = ok(capsys, *boot, "--format", "json")
        report = json.loads(out)
        assert report["commit"] == initial and report["engines"] == ["argocd"]
        assert repo_log(bare) == [initial]  # Argo CD needs no files in the repo: nothing committed
        generated = _docs(fleet / "clusters/dev/argocd/root.yaml")["Application"]
        app = double.find("Application", "root", "argocd")
        assert app is not None and app["spec"] == generated["spec"]
        assert app["status"]["sync"] == {"status": "Synced", "revision": initial}
        secret = double.find("Secret", f"repo-{FLEET}", "argocd")
        assert secret is not None
        assert secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repository"

        before = _rvs(double)
        _, err = ok(capsys, *boot)
        assert "already bootstrapped: nothing changed" in err and _rvs(double) == before, err

        out, _ = ok(capsys, "status", "dev", "-C", str(fleet), "--kubeconfig", kc, "--format", "json")
        status = json.loads(out)
        assert status["pushed_commit"] == initial
        assert {c["template_version"] for c in status["components"]} == {TEMPLATE_VERSION}
        assert {c["name"] for c in status["components"]} >= {"fleet", "cluster/dev", "cluster/prod-eu"}
        (cluster,) = status["clusters"]
        assert (cluster["engine"], cluster["revision"], cluster["state"]) == ("argocd", initial,
                                                                             "root: Synced/Healthy")

    assert cli(capsys, "check-update", str(fleet))[0] == 0
    ok(capsys, "update", str(fleet), "--commit")
    assert _git(fleet, "rev-parse", "HEAD") == initial and _git(fleet, "status", "--porcelain") == ""
