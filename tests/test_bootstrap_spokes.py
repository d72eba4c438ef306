"""An Argo CD hub registers its spokes (issue 26), against two API doubles (hub and spoke) through the real
kubernetes client: the objects on each side, idempotence, --rotate-keys, dry-run redaction, preflight refusal, and
the RBAC derived from the AppProjects. The real controllers prove it in test_controlplane_argocd.py."""

from __future__ import annotations

import base64
import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kubernetes", reason="the `cluster` extra (kubernetes client) is not installed")

from bootstrap_fixtures import (
    Downloads,
    FleetRepo,
    bootstrap_env,
    git,
    make_fleet_repo,
    pinned_release_downloads,
)
from fleetstrap.bootstrap.spokes import MANAGER, NAMESPACED_ROLE, Spoke, build_access, build_spoke_objects
from fleetstrap.bootstrapper import BootstrapRequest, bootstrap_cluster
from fleetstrap.cli import run
from fleetstrap.errors import UserError
from kube_double import KubeDouble, argocd_ready, serve, token_controller

SPOKE_SERVER = "https://staging.k8s.example.com:6443"
PROJECT = """\
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: platform
  namespace: argocd
spec:
  sourceRepos: ["*"]
  destinations:
    - server: https://kubernetes.default.svc
      namespace: hello
    - server: {server}
      namespace: hello
  clusterResourceWhitelist:
    - group: ""
      kind: Namespace
"""


@pytest.fixture(scope="module")
def downloads() -> Iterator[Downloads]:
    with pinned_release_downloads() as d:
        yield d


@pytest.fixture
def env(tmp_path: Path, downloads: Downloads, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return bootstrap_env(tmp_path, downloads, monkeypatch)


def hub_fleet(base: Path, *, spoke_context: str = "") -> FleetRepo:
    """An Argo CD fleet whose hub dev deploys (AppProject platform) to itself and to spoke staging."""
    repo = make_fleet_repo(base, engine="argocd")
    answers = repo.root / ".fleetstrap" / "answers" / "fleet.yml"
    data = yaml.safe_load(answers.read_text())
    staging = {"name": "staging", "environment": "dev", "server": SPOKE_SERVER}
    if spoke_context:
        staging["context"] = spoke_context
    data["clusters"].append(staging)
    answers.write_text(yaml.safe_dump(data))
    apps = repo.root / "clusters" / "dev" / "argocd" / "apps"
    apps.mkdir(parents=True)
    (apps / "project.yaml").write_text(PROJECT.format(server=SPOKE_SERVER))
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "A spoke")
    git(repo.root, "push", "-q", "origin", "HEAD:refs/heads/main")
    return repo


def kubeconfig(path: Path, hub: KubeDouble, spoke: KubeDouble) -> Path:
    """One kubeconfig with two contexts: hub and spoke."""
    cfg: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": "hub",
                           "users": [{"name": "tester", "user": {"token": "double-token"}}],
                           "clusters": [], "contexts": []}
    for name, double in (("hub", hub), ("spoke", spoke)):
        cfg["clusters"].append({"name": name, "cluster": {"server": f"http://127.0.0.1:{double.port}"}})
        cfg["contexts"].append({"name": name, "context": {"cluster": name, "user": "tester"}})
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def doubles(repo: FleetRepo) -> tuple[KubeDouble, KubeDouble]:
    hub = KubeDouble()
    hub.controllers.update(argocd_ready(lambda _obj: repo.remote_head()))
    spoke = KubeDouble()
    spoke.objects[("", "namespaces", "", "kube-system")] = {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system", "resourceVersion": "1"}}
    spoke.controllers["Secret"] = token_controller(spoke)
    return hub, spoke


def request(repo: FleetRepo, env: dict[str, Path], **kw: Any) -> BootstrapRequest:
    base: dict[str, Any] = {"root": repo.root, "cluster": "dev", "context": "hub", "kubeconfig": env["kubeconfig"],
                            "deploy_key": env["key"], "known_hosts": env["known_hosts"], "timeout": 5,
                            "poll_interval": 0.02, "spoke_contexts": ("staging=spoke",)}
    base.update(kw)
    return BootstrapRequest(**base)


def cli_args(repo: FleetRepo, env: dict[str, Path], *extra: str) -> list[str]:
    return ["bootstrap", "dev", "-C", str(repo.root), "--kubeconfig", str(env["kubeconfig"]), "--context", "hub",
            "--deploy-key", str(env["key"]), "--known-hosts", str(env["known_hosts"]), "--timeout", "5", *extra]


def tokens(spoke: KubeDouble) -> dict[str, dict[str, Any]]:
    return {k[3]: o for k, o in spoke.objects.items()
            if o.get("kind") == "Secret" and o.get("type") == "kubernetes.io/service-account-token"}


def cluster_config(hub: KubeDouble) -> tuple[dict[str, str], dict[str, Any]]:
    secret = hub.find("Secret", "cluster-staging", "argocd")
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "cluster"
    return data, json.loads(data["config"])


def rvs(d: KubeDouble) -> dict[Any, str]:
    return {k: v["metadata"]["resourceVersion"] for k, v in d.objects.items()}


def no_token_anywhere(token: str, repo: FleetRepo, *texts: str) -> None:
    assert all(token not in t for t in texts)
    for path in repo.root.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_the_hub_registers_its_spoke_then_a_rerun_changes_nothing(
        tmp_path: Path, env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    repo = hub_fleet(tmp_path)
    hub, spoke = doubles(repo)
    with serve(hub), serve(spoke):
        kubeconfig(env["kubeconfig"], hub, spoke)
        assert run(cli_args(repo, env, "--spoke-context", "staging=spoke")) == 0
        out, err = capsys.readouterr()

        # On the spoke: the ServiceAccount, its RBAC (from the AppProject: namespace hello and Namespaces), the token.
        assert spoke.find("ServiceAccount", MANAGER, "kube-system") is not None
        role = spoke.find("ClusterRole", MANAGER)
        assert role is not None
        assert role["rules"] == [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create", "update", "patch", "delete"]}]
        binding = spoke.find("RoleBinding", MANAGER, "hello")
        assert binding is not None and binding["roleRef"]["name"] == NAMESPACED_ROLE
        assert spoke.find("ClusterRoleBinding", MANAGER)["subjects"] == [  # type: ignore[index]
            {"kind": "ServiceAccount", "name": MANAGER, "namespace": "kube-system"}]
        (token_secret,) = tokens(spoke).values()
        token = base64.b64decode(token_secret["data"]["token"]).decode()

        # On the hub: the cluster Secret with the spoke's server (as the Applications name it), CA and token.
        data, config = cluster_config(hub)
        assert (data["name"], data["server"]) == ("staging", SPOKE_SERVER)
        assert config == {"bearerToken": token, "tlsClientConfig": {
            "insecure": False, "caData": token_secret["data"]["ca.crt"]}}
        assert "spoke staging registered" in err
        no_token_anywhere(token, repo, out, err)

        # Again: nothing written on either cluster, the same token.
        before_hub, before_spoke = rvs(hub), rvs(spoke)
        report = bootstrap_cluster(request(repo, env))
        assert not report.changed, [c for c in report.changes if c.changed]
        assert (rvs(hub), rvs(spoke)) == (before_hub, before_spoke)
        assert any(c.what == "secret" and c.outcome == "kept" and "staging:" in c.ref for c in report.changes)


def test_rotate_keys_replaces_the_spoke_token(tmp_path: Path, env: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    repo = hub_fleet(tmp_path, spoke_context="spoke")  # the context from the cluster's answer
    hub, spoke = doubles(repo)
    spoke.requests = hub.requests  # one log of both clusters' requests, in the order they came
    with serve(hub), serve(spoke):
        kubeconfig(env["kubeconfig"], hub, spoke)
        bootstrap_cluster(request(repo, env, spoke_contexts=()))
        (old,) = tokens(spoke)
        old_token = cluster_config(hub)[1]["bearerToken"]

        report = bootstrap_cluster(request(repo, env, spoke_contexts=(), rotate_keys=True))
        (new,) = tokens(spoke)
        assert new != old  # a new Secret, the old one deleted
        new_token = cluster_config(hub)[1]["bearerToken"]
        assert new_token != old_token
        assert new_token == base64.b64decode(tokens(spoke)[new]["data"]["token"]).decode()
        assert ("delete", f"staging: Secret kube-system/{old}", "deleted") in [
            (c.what, c.ref, c.outcome) for c in report.changes]
        # The hub got the new token before the old Secret went.
        writes = [(m, p) for m, p, _ in hub.writes()]
        deletes = [i for i, (m, _) in enumerate(writes) if m == "DELETE"]
        assert [writes[i][1] for i in deletes] == [f"/api/v1/namespaces/kube-system/secrets/{old}"]
        cluster_secret = ("PATCH", "/api/v1/namespaces/argocd/secrets/cluster-staging")
        hub_updates = [i for i, w in enumerate(writes) if w == cluster_secret]
        assert len(hub_updates) == 2 and hub_updates[-1] < deletes[0]
        no_token_anywhere(new_token, repo, *capsys.readouterr())


def test_dry_run_shows_the_registration_with_tokens_redacted(tmp_path: Path, env: dict[str, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    repo = hub_fleet(tmp_path)
    hub, spoke = doubles(repo)
    with serve(hub), serve(spoke):
        kubeconfig(env["kubeconfig"], hub, spoke)
        bootstrap_cluster(request(repo, env))
        token = cluster_config(hub)[1]["bearerToken"]
        before_hub, before_spoke = rvs(hub), rvs(spoke)

        assert run(cli_args(repo, env, "--spoke-context", "staging=spoke", "--dry-run", "--rotate-keys")) == 0
        out, err = capsys.readouterr()
        assert (rvs(hub), rvs(spoke)) == (before_hub, before_spoke)
        assert not [w for w in hub.writes() + spoke.writes() if w[0] == "DELETE"]
        docs = [d for d in yaml.safe_load_all(out) if isinstance(d, dict)]
        cluster = [d for d in docs if d["metadata"]["name"] == "cluster-staging"]
        assert cluster and cluster[0]["data"] == {"name": "<redacted>", "server": "<redacted>",
                                                  "config": "<redacted>"}
        assert any(d["kind"] == "ClusterRole" and d["metadata"]["name"] == MANAGER for d in docs)
        assert any(d.get("type") == "kubernetes.io/service-account-token" for d in docs)
        no_token_anywhere(token, repo, out, err)


def test_preflight_refuses_a_spoke_without_context_before_writing(tmp_path: Path, env: dict[str, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    repo = hub_fleet(tmp_path)
    head = repo.head()
    hub, spoke = doubles(repo)
    with serve(hub), serve(spoke):
        kubeconfig(env["kubeconfig"], hub, spoke)
        assert run(cli_args(repo, env)) == 1
        err = capsys.readouterr().err
        assert "spoke staging (https://staging.k8s.example.com:6443) has no kube context" in err
        assert "--spoke-context staging=CONTEXT" in err
        assert hub.writes() == [] and spoke.writes() == [] and repo.head() == head

        # A spoke that answers but does not let this identity create ClusterRoles: refused as well.
        spoke.denied.add(("create", "rbac.authorization.k8s.io", "clusterroles"))
        assert run(cli_args(repo, env, "--spoke-context", "staging=spoke")) == 1
        err = capsys.readouterr().err
        assert "spoke staging: not allowed to create clusterroles.rbac.authorization.k8s.io" in err
        assert hub.writes() == [] and spoke.writes() == []

        # A spoke context that does not exist in the kubeconfig.
        assert run(cli_args(repo, env, "--spoke-context", "staging=nowhere")) == 1
        assert "spoke staging (context nowhere)" in capsys.readouterr().err
        assert hub.writes() == [] and spoke.writes() == []


@pytest.mark.parametrize(("given", "message"), [
    ("staging", "is not NAME=CONTEXT"), ("=spoke", "is not NAME=CONTEXT"),
    ("prod=spoke", "'prod' is not a spoke of the Argo CD hub dev (its spokes: staging)"),
    ("dev=spoke", "'dev' is not a spoke"),
])
def test_bad_spoke_context_is_one_line(tmp_path: Path, env: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                       given: str, message: str) -> None:
    repo = hub_fleet(tmp_path)
    assert run(cli_args(repo, env, "--spoke-context", given)) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_flux_fleet_has_no_spokes(tmp_path: Path) -> None:
    from fleetstrap.bootstrap.spokes import build_spokes
    from fleetstrap.repo import load_fleet_answers

    repo = make_fleet_repo(tmp_path, engine="flux")
    fleet = load_fleet_answers(repo.root)
    assert build_spokes(fleet, "dev", ()) == ()
    with pytest.raises(UserError, match="not a spoke"):
        build_spokes(fleet, "dev", ("dev=x",))


# ---------------------------------------------------------------- the RBAC, from the AppProjects

SPOKE = Spoke("staging", SPOKE_SERVER, "spoke")


def project(dests: list[dict[str, str]], kinds: list[dict[str, str]] | None = None,
            name: str = "p") -> dict[str, Any]:
    return {"kind": "AppProject", "metadata": {"name": name},
            "spec": {"destinations": dests, "clusterResourceWhitelist": kinds or []}}


def test_no_project_for_the_spoke_is_read_only() -> None:
    access = build_access([project([{"server": "https://kubernetes.default.svc", "namespace": "*"}],
                                   [{"group": "*", "kind": "*"}])], SPOKE)
    assert access.rules == ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},)
    assert access.namespaces == () and "read-only" in access.why


def test_a_project_with_every_cluster_kind_needs_full_access() -> None:
    access = build_access([project([{"server": SPOKE_SERVER, "namespace": "cert-manager"}],
                                   [{"group": "*", "kind": "*"}], name="fleet-infrastructure")], SPOKE)
    assert access.rules == ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},)
    assert "fleet-infrastructure" in access.why


def test_literal_namespaces_are_bound_one_by_one() -> None:
    access = build_access([
        project([{"server": "https://*.k8s.example.com:6443", "namespace": "hello"}],
                [{"group": "", "kind": "Namespace"}, {"group": "networking.k8s.io", "kind": "IngressClass"},
                 {"group": "policy", "kind": "PodSecurityPolicy"}]),
        project([{"name": "staging", "namespace": "payments"}]),
        project([{"server": "!" + SPOKE_SERVER, "namespace": "denied"}]),
    ], SPOKE)
    assert access.namespaces == ("hello", "payments")
    assert [r["resources"] for r in access.rules[1:]] == [["namespaces"], ["ingressclasses"],
                                                           ["podsecuritypolicies"]]
    objs = build_spoke_objects(access)
    assert [(o["kind"], o["metadata"].get("namespace", "")) for o in objs if o["kind"] in {
        "Namespace", "RoleBinding"}] == [("Namespace", ""), ("RoleBinding", "hello"), ("Namespace", ""),
                                         ("RoleBinding", "payments")]


def test_a_namespace_pattern_cannot_be_bound_per_namespace() -> None:
    access = build_access([project([{"server": SPOKE_SERVER, "namespace": "payments-*"}])], SPOKE)
    assert access.namespaces == ()
    assert {"apiGroups": ["*"], "resources": ["*"], "verbs": ["create", "update", "patch", "delete"]} in access.rules
    assert "payments-*" in access.why


SERVERS = [SPOKE_SERVER, "https://kubernetes.default.svc", "https://*.k8s.example.com:6443", "*",
           "!" + SPOKE_SERVER, "https://prod.k8s.example.com:6443"]
NAMESPACES = ["hello", "payments", "payments-*", "*", "", "kube-system"]
KINDS = [("", "Namespace"), ("*", "*"), ("networking.k8s.io", "IngressClass"), ("apiextensions.k8s.io", "*")]


def test_the_rbac_is_never_wider_than_the_projects_ask() -> None:
    """For any AppProjects: full access only from a project that whitelists every cluster-scoped kind for the
    spoke, cluster-wide writes only with it or a namespace pattern, RoleBindings only in namespaces a matching
    destination names literally, and nothing but reading without a matching destination."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    dest = st.builds(lambda s, n: {"server": s, "namespace": n}, st.sampled_from(SERVERS), st.sampled_from(NAMESPACES))
    kinds = st.lists(st.sampled_from(KINDS), max_size=3).map(lambda ks: [{"group": g, "kind": k} for g, k in ks])
    projects = st.lists(st.builds(project, st.lists(dest, max_size=4), kinds), max_size=4)

    @settings(max_examples=300, deadline=None)
    @given(projects)
    def check(projs: list[dict[str, Any]]) -> None:
        access = build_access(projs, SPOKE)
        matching = [(p, d) for p in projs for d in p["spec"]["destinations"]
                    if not d["server"].startswith("!") and fnmatch.fnmatchcase(SPOKE_SERVER, d["server"])]
        full = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
        write_all = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["create", "update", "patch", "delete"]}
        if not matching:
            assert access.rules == ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},)
            return
        everything = any({"group": "*", "kind": "*"} in p["spec"]["clusterResourceWhitelist"] for p, _ in matching)
        assert (full in access.rules) == everything
        patterns = any(not d["namespace"] or "*" in d["namespace"] for _, d in matching)
        assert (write_all in access.rules) == (patterns and not everything)
        assert set(access.namespaces) <= {d["namespace"] for _, d in matching}
        assert all("*" not in n and n for n in access.namespaces)

    check()
