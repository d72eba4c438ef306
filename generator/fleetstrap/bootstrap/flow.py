"""`fleetstrap bootstrap`: Flux's own order — preflight, generate, commit/push, apply, wait for that revision."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import UnsupportedAlgorithm

from fleetstrap import output, trace
from fleetstrap.bootstrap import fleetrepo, manifests, objects
from fleetstrap.bootstrap.kube import Applied, KubeClient, connect, obj_ref
from fleetstrap.bootstrap.status import flux_object_states
from fleetstrap.bootstrap.wait import Target, argocd_check, flux_check, wait_ready, wait_settled, workload_check
from fleetstrap.errors import ClusterError, FleetstrapError, UserError
from fleetstrap.gitrepo import ensure_commit
from fleetstrap.pins import pin

# (verb, group, resource): what installing an engine needs cluster-wide.
REQUIRED_ACCESS = (
    ("create", "", "namespaces"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("patch", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("create", "rbac.authorization.k8s.io", "clusterroles"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
)


@dataclass(frozen=True)
class BootstrapRequest:
    root: Path
    cluster: str
    context: str | None = None
    kubeconfig: Path | None = None
    deploy_key: Path | None = None
    known_hosts: Path | None = None
    rotate_keys: bool = False
    dry_run: bool = False
    timeout: float = 300.0
    poll_interval: float = 2.0
    remote: str = "origin"
    download_base_url: str | None = None
    cache_dir: Path | None = None
    crd_schemas: Path | None = None
    use_flux_cli: bool = True


@dataclass(frozen=True)
class Change:
    """One thing bootstrap did (or, in a dry run, would do)."""

    what: str  # "file", "commit", "push", "apply", "secret"
    ref: str
    outcome: str  # created / configured / unchanged / kept / pushed ...

    @property
    def changed(self) -> bool:
        return self.outcome not in {"unchanged", "kept"}


@dataclass(frozen=True)
class BootstrapReport:
    cluster: str
    engines: tuple[str, ...]
    commit: str
    revision: str
    dry_run: bool
    changes: tuple[Change, ...]
    objects: tuple[str, ...] = ()  # dry run: the validated objects it would apply (secrets redacted), YAML
    notes: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.changes)


@dataclass(frozen=True)
class Preflight:
    kube_version: str
    identity: str  # private key text; never printed
    known_hosts: str
    head: str


@dataclass
class _Run:
    """Mutable bookkeeping of one run (local to bootstrap_cluster, never passed between stages)."""

    changes: list[Change] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- preflight


Problem = tuple[str, str]  # (what failed, how to fix it)


def _check_cluster(client: KubeClient, problems: list[Problem]) -> str:
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


def _check_git(root: Path, remote: str, branch: str, problems: list[Problem]) -> str:
    head = fleetrepo.head_sha(root) or ""
    if not head:
        problems.append(("the fleet repo has no commit yet", "run `fleetstrap push` first"))
        return ""
    dirty = fleetrepo.dirty_paths(root)
    if dirty:
        problems.append((f"uncommitted changes: {', '.join(dirty[:3])}{' …' if len(dirty) > 3 else ''}",
                         "commit them with `fleetstrap push` (bootstrap commits only its own files)"))
    if fleetrepo.remote_url(root, remote) is None:
        problems.append((f"no git remote {remote!r}", "run `fleetstrap push` to publish the repo"))
        return head
    try:
        pushed = fleetrepo.remote_head(root, remote, branch)
    except FleetstrapError as exc:
        problems.append((f"remote {remote!r} not reachable: {exc}", "check the network and git credentials"))
        return head
    if pushed is None:
        problems.append((f"branch {branch} is not on remote {remote!r}", "run `fleetstrap push`"))
    elif pushed != head:
        if fleetrepo.is_ancestor(root, pushed, head):
            problems.append((f"commit {head[:12]} on {branch} is not pushed to {remote!r}", "run `fleetstrap push`"))
        else:
            problems.append((f"{remote}/{branch} is at {pushed[:12]}, which this checkout does not have",
                             f"git pull {remote} {branch}, then rerun"))
    return head


def _check_keys(req: BootstrapRequest, fleet: fleetrepo.FleetInfo, problems: list[Problem]) -> tuple[str, str]:
    host = fleetrepo.ssh_host(fleet.git_url)
    if host is None:
        problems.append((f"git_url {fleet.git_url} is not an ssh URL; deploy keys need ssh",
                         "set git_url to ssh://git@<host>/<owner>/<repo>.git in the fleet answers"))
        return "", ""
    key_path = req.deploy_key or fleetrepo.deploy_key_default(fleet.owner, fleet.fleet_name, req.cluster)
    identity = ""
    if key_path is None or not key_path.is_file():
        problems.append((f"no deploy key for cluster {req.cluster}" + (f" at {key_path}" if key_path else ""),
                         "run `fleetstrap push` (creates it) or pass --deploy-key FILE"))
    else:
        identity = key_path.read_text(encoding="utf-8")
        try:
            fleetrepo.public_key_openssh(identity.encode())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            problems.append((f"deploy key {key_path} is not an unencrypted OpenSSH private key",
                             "pass --deploy-key with the key `fleetstrap push` created"))
            identity = ""
    if req.known_hosts is not None:
        try:
            known = req.known_hosts.read_text(encoding="utf-8")
        except OSError:
            problems.append((f"cannot read --known-hosts {req.known_hosts}", "pass a readable known_hosts file"))
            known = ""
    else:
        try:
            known = fleetrepo.scan_known_hosts(*host)
        except FleetstrapError as exc:
            problems.append((str(exc), "pass --known-hosts FILE with the git host's keys"))
            known = ""
    return identity, known


def _check_repo_files(root: Path, cluster: str, engines: Sequence[str], problems: list[Problem]) -> None:
    for engine in engines:
        rel = _sync_path(cluster, engine)
        if not (root / rel).is_file():
            problems.append((f"{rel} is missing", f"run `fleetstrap add cluster {cluster}` to generate it"))


def _sync_path(cluster: str, engine: str) -> Path:
    return Path("clusters", cluster, *(("flux-system", "gotk-sync.yaml") if engine == "flux" else ("argocd",
                                                                                                   "root.yaml")))


def ensure_preflight(req: BootstrapRequest, fleet: fleetrepo.FleetInfo, client: KubeClient) -> Preflight:
    """Every check before any change; all failures reported together, each with its fix."""
    with trace.stage("bootstrap.preflight", cluster=req.cluster):
        problems: list[Problem] = []
        version = _check_cluster(client, problems)
        head = _check_git(req.root, req.remote, fleet.branch, problems)
        identity, known = _check_keys(req, fleet, problems)
        _check_repo_files(req.root, req.cluster, fleet.engines, problems)
    if problems:
        for what, fix in problems:
            output.error(what, fix)
        raise ClusterError(f"preflight failed ({len(problems)}): " + "; ".join(w for w, _ in problems))
    output.success(f"preflight passed: Kubernetes {version}, {fleet.branch}@{head[:12]} pushed")
    return Preflight(version, identity, known, head)


# ---------------------------------------------------------------- steps


def _load_docs(path: Path) -> list[dict[str, Any]]:
    return manifests.documents(path.read_text(encoding="utf-8"), str(path))


def build_flux_kustomization(existing: str | None) -> str:
    """clusters/<c>/flux-system/kustomization.yaml listing the components and the sync objects."""
    data: dict[str, Any] = {}
    if existing:
        loaded = yaml.safe_load(existing)
        data = loaded if isinstance(loaded, dict) else {}
    data.setdefault("apiVersion", "kustomize.config.k8s.io/v1beta1")
    data.setdefault("kind", "Kustomization")
    resources = list(data.get("resources") or [])
    for r in ("gotk-components.yaml", "gotk-sync.yaml"):
        if r not in resources:
            resources.append(r)
    data["resources"] = resources
    return yaml.safe_dump(data, sort_keys=False)


def ensure_flux_files(req: BootstrapRequest, components: str, run: _Run) -> None:
    """Write the components and kustomization when they differ (dry run: only say so)."""
    base = req.root / "clusters" / req.cluster / "flux-system"
    kust_path = base / "kustomization.yaml"
    wanted = {
        base / "gotk-components.yaml": components,
        kust_path: build_flux_kustomization(kust_path.read_text(encoding="utf-8") if kust_path.exists() else None),
    }
    for path, text in wanted.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        rel = str(path.relative_to(req.root))
        if current == text:
            run.changes.append(Change("file", rel, "unchanged"))
            continue
        run.changes.append(Change("file", rel, "created" if current is None else "updated"))
        if not req.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def ensure_pushed(req: BootstrapRequest, fleet: fleetrepo.FleetInfo, head: str, run: _Run) -> str:
    """Commit bootstrap's files and push; returns the commit the cluster must reach."""
    if req.dry_run or not any(c.what == "file" and c.changed for c in run.changes):
        return head
    with trace.stage("bootstrap.push", cluster=req.cluster):
        sha = ensure_commit(req.root, f"Add Flux v{pin('flux_version').removeprefix('v')} components for "
                            f"{req.cluster}", branch=fleet.branch) or head
        run.changes.append(Change("commit", sha[:12], "created"))
        fleetrepo.push(req.root, req.remote, fleet.branch)
        run.changes.append(Change("push", f"{req.remote}/{fleet.branch}", "pushed"))
    return sha


def _validate(objs: Sequence[Mapping[str, Any]], req: BootstrapRequest, kube_version: str) -> None:
    problems = [p for o in objs if (p := objects.validate_object(o, kube_version, req.crd_schemas))]
    if problems:
        raise ClusterError(f"generated objects are invalid: {'; '.join(problems[:3])}")


def ensure_applied(client: KubeClient, objs: Sequence[Mapping[str, Any]], namespace: str, req: BootstrapRequest,
                   run: _Run) -> None:
    for obj in manifests.install_order([dict(o) for o in objs]):
        run.objects.append(objects.redacted(obj))
        if req.dry_run:
            run.changes.append(Change("apply", obj_ref(obj), "would apply"))
            continue
        applied: Applied = client.apply(obj, default_namespace=namespace)
        run.changes.append(Change("apply", applied.ref, applied.outcome))
        if applied.outcome != "unchanged":
            output.step(f"{applied.ref} {applied.outcome}")


def ensure_secret(client: KubeClient, secret: Mapping[str, Any], req: BootstrapRequest, run: _Run) -> None:
    """Create the source Secret; an existing one is kept (its key may be registered) unless --rotate-keys."""
    meta = secret["metadata"]
    existing = client.get("v1", "Secret", meta["name"], meta["namespace"])
    ref = f"Secret {meta['namespace']}/{meta['name']}"
    if existing is not None and not req.rotate_keys:
        run.changes.append(Change("secret", ref, "kept"))
        return
    ensure_applied(client, [secret], meta["namespace"], req, run)


def _workloads(objs: Sequence[Mapping[str, Any]], namespace: str) -> list[Target]:
    return [
        Target(str(o["apiVersion"]), str(o["kind"]), str(o["metadata"]["name"]),
               str(o["metadata"].get("namespace") or namespace), workload_check)
        for o in objs if o.get("kind") in {"Deployment", "StatefulSet"}
    ]


def bootstrap_flux(req: BootstrapRequest, fleet: fleetrepo.FleetInfo, client: KubeClient, pre: Preflight,
                   run: _Run) -> str:
    with trace.stage("bootstrap.components", engine="flux"):
        manifest = manifests.flux_components(
            pin("flux_version"), pinned_sha256=pin("flux_install_sha256"), base_url=req.download_base_url,
            cache=req.cache_dir, use_cli=req.use_flux_cli)
        components = manifests.documents(manifest.text, "Flux components manifest")
    ensure_flux_files(req, manifest.text, run)
    sync = _load_docs(req.root / _sync_path(req.cluster, "flux"))
    secret = objects.build_flux_secret(pre.identity, fleetrepo.public_key_openssh(pre.identity.encode()),
                                       pre.known_hosts)
    _validate([*sync, secret], req, pre.kube_version)
    sha = ensure_pushed(req, fleet, pre.head, run)
    with trace.stage("bootstrap.apply", engine="flux", what="components"):
        ensure_applied(client, components, objects.FLUX_NS, req, run)
    if not req.dry_run:
        with trace.stage("wait.components", engine="flux"):
            wait_ready(client, _workloads(components, objects.FLUX_NS), what="Flux controllers",
                       timeout=req.timeout, interval=req.poll_interval)
    with trace.stage("bootstrap.apply", engine="flux", what="sync"):
        ensure_secret(client, secret, req, run)
        ensure_applied(client, sync, objects.FLUX_NS, req, run)
    targets = []
    for o in sync:
        if o.get("kind") not in {"GitRepository", "Kustomization"}:
            continue
        branch = str(((o.get("spec") or {}).get("ref") or {}).get("branch") or fleet.branch)
        field_name = "artifact" if o["kind"] == "GitRepository" else "lastAppliedRevision"
        targets.append(Target(str(o["apiVersion"]), str(o["kind"]), str(o["metadata"]["name"]),
                              str(o["metadata"].get("namespace") or objects.FLUX_NS),
                              flux_check(field_name, f"{branch}@sha1:{sha}")))
    if not req.dry_run:
        with trace.stage("wait.sync", engine="flux"):
            wait_ready(client, targets, what=f"Flux to sync {sha[:12]}", timeout=req.timeout,
                       interval=req.poll_interval)
        # flux-system applied the revision; what it created (infrastructure, services) reconciles on its own.
        # Report what does not become ready (e.g. a chart source that is unreachable) instead of hiding it.
        with trace.stage("wait.reconciled", engine="flux"):
            for ref, why in wait_settled(lambda: flux_object_states(client), timeout=req.timeout,
                                         interval=req.poll_interval):
                output.warn(f"{ref} not ready: {why}")
                run.notes.append(f"{ref} not ready: {why}")
    return sha


def bootstrap_argocd(req: BootstrapRequest, fleet: fleetrepo.FleetInfo, client: KubeClient, pre: Preflight,
                     sha: str, run: _Run) -> None:
    with trace.stage("bootstrap.components", engine="argocd"):
        manifest = manifests.argocd_install(
            pin("argocd_version"), pinned_sha256=pin("argocd_install_sha256"), base_url=req.download_base_url,
            cache=req.cache_dir)
        install = manifests.documents(manifest.text, "Argo CD install manifest")
    root_app = _load_docs(req.root / _sync_path(req.cluster, "argocd"))
    namespace = objects.build_namespace(objects.ARGOCD_NS)
    secret = objects.build_argocd_repo_secret(fleet.fleet_name, fleet.git_url, pre.identity)
    _validate([namespace, secret, *root_app], req, pre.kube_version)
    with trace.stage("bootstrap.apply", engine="argocd", what="install"):
        ensure_applied(client, [namespace, *install], objects.ARGOCD_NS, req, run)
    if not req.dry_run:
        with trace.stage("wait.components", engine="argocd"):
            wait_ready(client, _workloads(install, objects.ARGOCD_NS), what="Argo CD components",
                       timeout=req.timeout, interval=req.poll_interval)
    with trace.stage("bootstrap.apply", engine="argocd", what="root"):
        ensure_secret(client, secret, req, run)
        ensure_applied(client, root_app, objects.ARGOCD_NS, req, run)
    apps = [Target(str(o["apiVersion"]), "Application", str(o["metadata"]["name"]),
                   str(o["metadata"].get("namespace") or objects.ARGOCD_NS), argocd_check(sha))
            for o in root_app if o.get("kind") == "Application"]
    if not req.dry_run:
        with trace.stage("wait.sync", engine="argocd"):
            wait_ready(client, apps, what=f"Argo CD to sync {sha[:12]}", timeout=req.timeout,
                       interval=req.poll_interval)
    run.notes.extend([
        f"Argo CD UI: kubectl -n {objects.ARGOCD_NS} port-forward svc/argocd-server 8080:443, "
        "then open https://localhost:8080 (user admin)",
        f"initial admin password: argocd admin initial-password -n {objects.ARGOCD_NS}  (or: kubectl -n "
        f"{objects.ARGOCD_NS} get secret argocd-initial-admin-secret -o jsonpath='{{.data.password}}' | base64 -d)",
    ])


def bootstrap_cluster(request: BootstrapRequest,
                      connector: Callable[[Path | None, str | None], KubeClient] = connect) -> BootstrapReport:
    """Install the fleet's engine(s) on one cluster and wait until it runs the pushed commit."""
    fleet = fleetrepo.load_fleet(request.root)
    spec = fleet.cluster(request.cluster)
    with trace.stage("bootstrap", cluster=request.cluster, engine=fleet.engine, dry_run=request.dry_run):
        client = connector(request.kubeconfig, request.context or spec.context or None)
        pre = ensure_preflight(request, fleet, client)
        run = _Run()
        sha = pre.head
        try:
            if "flux" in fleet.engines:
                sha = bootstrap_flux(request, fleet, client, pre, run)
            if "argocd" in fleet.engines:
                bootstrap_argocd(request, fleet, client, pre, sha, run)
        except OSError as exc:
            raise UserError(f"bootstrap could not write to {request.root}: {exc.strerror}") from exc
        trace.annotate(commit=sha, changed=any(c.changed for c in run.changes))
    unchecked = objects.unchecked_kinds(run.objects, request.crd_schemas)
    return BootstrapReport(
        cluster=request.cluster, engines=fleet.engines, commit=sha, revision=f"{fleet.branch}@sha1:{sha}",
        dry_run=request.dry_run, changes=tuple(run.changes),
        objects=tuple(objects.to_yaml([o]) for o in run.objects) if request.dry_run else (),
        notes=tuple(run.notes), unchecked=tuple(unchecked),
    )
