"""Every check bootstrap makes before its first change; all problems reported together (once), each with its fix."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm

from fleetstrap import gitrepo
from fleetstrap.answers import FleetAnswers
from fleetstrap.bootstrap import manifests
from fleetstrap.bootstrap.kube import KubeClient
from fleetstrap.bootstrap.ssh import public_key_openssh, scan_known_hosts, ssh_host
from fleetstrap.cache import cache_dir
from fleetstrap.errors import FleetstrapError, PreflightError
from fleetstrap.pins import pin
from fleetstrap.publish.auth import remote_of
from fleetstrap.publish.keys import deploy_key_path
from fleetstrap.redact import redact

# (verb, group, resource): what installing an engine needs cluster-wide.
REQUIRED_ACCESS = (
    ("create", "", "namespaces"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("patch", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("create", "rbac.authorization.k8s.io", "clusterroles"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
)

Problem = tuple[str, str]  # (what failed, how to fix it)


@dataclass(frozen=True)
class Preflight:
    kube_version: str
    identity: str  # private key text; never printed
    known_hosts: str
    head: str


@dataclass(frozen=True)
class PreflightInput:
    """What preflight checks besides the cluster: the repo and the deploy key."""

    root: Path
    cluster: str
    remote: str
    deploy_key: Path | None
    known_hosts: Path | None


def check_cluster(client: KubeClient, problems: list[Problem]) -> str:
    try:
        version = client.version()
    except FleetstrapError as exc:
        problems.append((str(exc), "check --context/--kubeconfig and that the cluster is up"))
        return ""
    minimum = pin("kubernetes_min_version")
    try:
        too_old = tuple(int(p) for p in version.split(".")[:2]) < tuple(int(p) for p in minimum.split("."))
    except ValueError:
        too_old = False
    if too_old:
        problems.append((f"Kubernetes {version} is older than the supported {minimum}", "upgrade the cluster"))
    for verb, group, resource in REQUIRED_ACCESS:
        try:
            allowed = client.can_i(verb, group, resource)
        except FleetstrapError as exc:
            problems.append((str(exc), "check the cluster's API server"))
            break
        if not allowed:
            problems.append((f"not allowed to {verb} {resource}{'.' + group if group else ''}",
                             "use a cluster-admin context (bootstrap installs CRDs and cluster roles)"))
    return version


def check_git(root: Path, remote: str, branch: str, problems: list[Problem]) -> str:
    head = gitrepo.head_sha(root) or ""
    if not head:
        problems.append(("the fleet repo has no commit yet", "run `fleetstrap push` first"))
        return ""
    dirty = gitrepo.dirty_paths(root)
    if dirty:
        problems.append((f"uncommitted changes: {', '.join(dirty[:3])}{' …' if len(dirty) > 3 else ''}",
                         "commit them with `fleetstrap push` (bootstrap commits only its own files)"))
    target = remote_of(root, remote)
    if target is None:
        problems.append((f"no git remote {remote!r}", "run `fleetstrap push` to publish the repo"))
        return head
    try:
        pushed = gitrepo.remote_head(root, target, branch)
    except FleetstrapError as exc:
        problems.append((f"remote {remote!r} not reachable: {exc}", "check the network and git credentials"))
        return head
    if pushed is None:
        problems.append((f"branch {branch} is not on remote {remote!r}", "run `fleetstrap push`"))
    elif pushed != head:
        if gitrepo.is_ancestor(root, pushed, head):
            problems.append((f"commit {head[:12]} on {branch} is not pushed to {remote!r}", "run `fleetstrap push`"))
        else:
            problems.append((f"{remote}/{branch} is at {pushed[:12]}, which this checkout does not have",
                             f"git pull {remote} {branch}, then rerun"))
    return head


def check_keys(given: PreflightInput, fleet: FleetAnswers, problems: list[Problem]) -> tuple[str, str]:
    host = ssh_host(fleet.git_url)
    if host is None:
        problems.append((f"git_url {fleet.git_url} is not an ssh URL; deploy keys need ssh",
                         "set git_url to ssh://git@<host>/<owner>/<repo>.git in the fleet answers"))
        return "", ""
    key_path = given.deploy_key or deploy_key_path(fleet.owner, fleet.fleet_name, given.cluster)
    identity = ""
    if not key_path.is_file():
        problems.append((f"no deploy key for cluster {given.cluster} at {key_path}",
                         "run `fleetstrap push` (creates it) or pass --deploy-key FILE"))
    else:
        identity = key_path.read_text(encoding="utf-8")
        try:
            public_key_openssh(identity.encode())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            problems.append((f"deploy key {key_path} is not an unencrypted OpenSSH private key",
                             "pass --deploy-key with the key `fleetstrap push` created"))
            identity = ""
    if given.known_hosts is not None:
        try:
            known = given.known_hosts.read_text(encoding="utf-8")
        except OSError:
            problems.append((f"cannot read --known-hosts {given.known_hosts}", "pass a readable known_hosts file"))
            known = ""
    else:
        try:
            known = scan_known_hosts(*host)
        except FleetstrapError as exc:
            problems.append((str(exc), "pass --known-hosts FILE with the git host's keys"))
            known = ""
    return identity, known


def sync_path(cluster: str, engine: str) -> Path:
    """The file in the repo that points the engine at the repo (generated by `add cluster`)."""
    tail = ("flux-system", "gotk-sync.yaml") if engine == "flux" else ("argocd", "root.yaml")
    return Path("clusters", cluster, *tail)


def check_repo_files(root: Path, cluster: str, engines: Sequence[str], problems: list[Problem]) -> None:
    for engine in engines:
        rel = sync_path(cluster, engine)
        if not (root / rel).is_file():
            problems.append((f"{rel} is missing", f"run `fleetstrap add cluster {cluster}` to generate it"))


def check_preflight(given: PreflightInput, fleet: FleetAnswers, client: KubeClient) -> Preflight:
    """Every check before any change. Raises PreflightError with all problems; the CLI prints it once."""
    problems: list[Problem] = []
    version = check_cluster(client, problems)
    head = check_git(given.root, given.remote, fleet.branch, problems)
    identity, known = check_keys(given, fleet, problems)
    check_repo_files(given.root, given.cluster, fleet.engines, problems)
    if problems:
        raise PreflightError(problems)
    return Preflight(version, identity, known, head)


# ---------------------------------------------------------------- what a bootstrap needs, said before trying


def bootstrap_needs(root: Path, remote: str, branch: str, engines: Sequence[str],
                    downloads: manifests.Downloads) -> list[str]:
    """What bootstrap needs besides the cluster itself, one line each, from local state only (no network, no
    cluster): the `cluster` extra, the fleet pushed, each engine's install manifest. Said up front by a dry run,
    so a missing piece is named before anything is tried; the preflight checks then verify them for real."""
    lines = []
    if importlib.util.find_spec("kubernetes") is None:
        lines.append("needs the cluster extra (the Kubernetes Python client): missing - pip install "
                     "'fleetstrap[cluster]'")
    else:
        lines.append("needs the cluster extra (the Kubernetes Python client): installed")
    lines.append(_push_need(root, remote, branch))
    lines += [_download_need(engine, downloads) for engine in engines]
    return lines


def _push_need(root: Path, remote: str, branch: str) -> str:
    url = gitrepo.remote_url(root, remote)
    if url is None:
        return f"needs the fleet pushed (the cluster pulls it): no git remote {remote!r} yet - run `fleetstrap push`"
    head = gitrepo.head_sha(root) or ""
    tracked = gitrepo.run(root, "rev-parse", "-q", "--verify", f"refs/remotes/{remote}/{branch}^{{commit}}",
                          check=False).strip()
    where = f"{remote} ({redact(url)}) {branch}"
    if not head:
        return f"needs the fleet pushed to {where}: the repository has no commit yet - run `fleetstrap push`"
    if tracked == head:
        return f"needs the fleet pushed to {where}: {head[:12]} was pushed (preflight asks the remote)"
    return (f"needs the fleet pushed to {where}: {head[:12]} is not known to be pushed - run `fleetstrap push` "
            "(preflight asks the remote)")


def _download_need(engine: str, downloads: manifests.Downloads) -> str:
    root = (downloads.cache_dir or cache_dir()) / "manifests"
    if engine == "flux":
        version = pin("flux_version").removeprefix("v")
        flux = shutil.which("flux") if downloads.use_flux_cli else None
        if flux and manifests.flux_cli_version(flux) == version:
            return f"needs the Flux {version} install manifest: from the flux CLI on PATH ({flux})"
        path = root / f"flux-v{version}-install.yaml"
        url, _ = manifests.flux_urls(version, downloads.base_url)
        what = f"Flux {version}"
    else:
        version = pin("argocd_version")
        path = root / f"argocd-{version}-install.yaml"
        url = manifests.argocd_url(version, downloads.base_url)
        what = f"Argo CD {version}"
    if path.is_file():
        return f"needs the {what} install manifest: cached at {path}"
    return f"needs the {what} install manifest: downloads {redact(url)} once (cached under {root})"
