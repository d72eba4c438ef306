"""`fleetstrap bootstrap`: Flux's own order — preflight, generate, commit/push, apply, wait for that revision.

Shaped like Flux's pkg/bootstrap: `Bootstrapper` holds its clients (cluster, repo files, git, waiter) and
`run()` is the short list of idempotent steps. A dry run is the same run with recording clients
(`connect_clients`): nothing is written, pushed or applied, and without a reachable cluster the objects are
still built, validated and printed, marked as not compared."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fleetstrap import gitrepo, output, trace
from fleetstrap.answers import FleetAnswers
from fleetstrap.bootstrap import manifests, objects, spokes
from fleetstrap.bootstrap.engines import Engine, build_engines, build_workload_targets
from fleetstrap.bootstrap.kube import Applied, DryRunJournal, KubeClient, RecordingClient, connect
from fleetstrap.bootstrap.manifests import Downloads
from fleetstrap.bootstrap.preflight import Preflight, PreflightInput, bootstrap_needs, check_preflight
from fleetstrap.bootstrap.wait import RecordingWaiter, States, Target, Waiter
from fleetstrap.errors import ClusterError, GitError, PreflightError, UserError
from fleetstrap.publish.auth import remote_of
from fleetstrap.repo import load_fleet_answers

Connector = Callable[[Path | None, str | None], KubeClient]


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
    spoke_contexts: tuple[str, ...] = ()  # "NAME=CONTEXT": the kube context of each spoke an Argo CD hub registers


@dataclass(frozen=True)
class Change:
    """One thing bootstrap did (or, in a dry run, would do)."""

    what: str  # "file", "commit", "push", "apply", "secret"
    ref: str
    outcome: str  # created / configured / unchanged / kept / pushed / would create / not compared ...

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
    diffs: tuple[str, ...] = ()  # dry run against a cluster: unified diffs of the objects it would change
    offline: str = ""  # dry run without a cluster: why (the objects were not compared)

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.changes)


# ---------------------------------------------------------------- clients
class RepoFiles(Protocol):
    def write(self, path: Path, text: str) -> None: ...


class RepoGit(Protocol):
    def publish(self, message: str, branch: str) -> str | None:
        """Commit everything and push; the new commit, or None when nothing was committed or pushed."""
        ...


class WorkTreeFiles:
    def write(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


class FleetGit:
    """Commit and push bootstrap's own files, with the auth `fleetstrap push` uses for the remote."""

    def __init__(self, root: Path, remote: str) -> None:
        self.root = root
        self.remote = remote

    def publish(self, message: str, branch: str) -> str | None:
        sha = gitrepo.ensure_commit(self.root, message, branch=branch)
        remote = remote_of(self.root, self.remote)
        if remote is None:  # preflight checked it; only a concurrent change gets here
            raise GitError(f"no git remote {self.remote!r} to push to")
        gitrepo.push(self.root, remote, branch)
        return sha


class RecordingFiles:
    def write(self, path: Path, text: str) -> None:  # noqa: ARG002 (protocol)
        return None


class RecordingGit:
    def publish(self, message: str, branch: str) -> str | None:  # noqa: ARG002 (protocol)
        return None


class Waits(Protocol):
    def wait(self, targets: Sequence[Target], what: str) -> None: ...

    def wait_settled(self, states: States) -> list[tuple[str, str]]:
        """Wait (bounded) until what the engine reconciles has a verdict; the objects that are not ready."""
        ...


@dataclass
class Clients:
    kube: KubeClient
    files: RepoFiles
    git: RepoGit
    waiter: Waits
    journal: DryRunJournal = field(default_factory=DryRunJournal)


def connect_clients(request: BootstrapRequest, context: str | None, connector: Connector, *,
                    dry_run: bool) -> Clients:
    """Connect to the cluster: the real clients, or for a dry run the recording ones (reads still go to a cluster
    that answers). Chosen once, where bootstrap starts."""
    if not dry_run:
        kube = connector(request.kubeconfig, context)
        return Clients(kube, WorkTreeFiles(), FleetGit(request.root, request.remote),
                       Waiter(kube, timeout=request.timeout, interval=request.poll_interval))
    journal = DryRunJournal()
    inner: KubeClient | None
    try:
        inner = connector(request.kubeconfig, context)
        inner.version()
    except ClusterError as exc:
        inner, journal.offline = None, str(exc)
    return Clients(RecordingClient(inner, journal), RecordingFiles(), RecordingGit(), RecordingWaiter(), journal)


# ---------------------------------------------------------------- the runner
class Bootstrapper:
    def __init__(self, request: BootstrapRequest, fleet: FleetAnswers, clients: Clients,
                 registrar: spokes.SpokeRegistrar | None = None) -> None:
        self.request = request
        self.spokes = registrar
        self.fleet = fleet
        self.clients = clients
        self.kube = clients.kube
        self.changes: list[Change] = []
        self.notes: list[str] = []
        self.engines = build_engines(fleet, request.cluster, Downloads(
            request.download_base_url, request.cache_dir, request.use_flux_cli))

    def run(self) -> BootstrapReport:
        request = self.request
        with trace.stage("bootstrap.preflight", cluster=request.cluster):
            spoke_problems = self.spokes.check() if self.spokes else []
            try:
                pre = check_preflight(PreflightInput(request.root, request.cluster, request.remote,
                                                     request.deploy_key, request.known_hosts), self.fleet, self.kube)
            except PreflightError as exc:
                raise PreflightError([*exc.problems, *spoke_problems]) from exc
            if spoke_problems:
                raise PreflightError(spoke_problems)
        self.report_preflight(pre)
        sha = pre.head
        try:
            for engine in self.engines:
                sha = self.run_engine(engine, pre, sha)
        except OSError as exc:
            raise UserError(f"bootstrap could not write to {request.root}: {exc.strerror}") from exc
        trace.annotate(commit=sha, changed=any(c.changed for c in self.changes))
        self.notes.extend(self.spokes.notes if self.spokes else ())
        journal = self.clients.journal
        return BootstrapReport(
            cluster=request.cluster, engines=self.fleet.engines, commit=sha,
            revision=f"{self.fleet.branch}@sha1:{sha}", dry_run=request.dry_run, changes=tuple(self.changes),
            objects=tuple(objects.to_yaml([o]) for o in journal.objects), notes=tuple(self.notes),
            unchecked=tuple(objects.unchecked_kinds(journal.objects, request.crd_schemas)),
            diffs=tuple(journal.diffs), offline=journal.offline)

    def report_preflight(self, pre: Preflight) -> None:
        if self.clients.journal.offline:
            self.notes.append(f"no cluster to compare with ({self.clients.journal.offline}): objects are checked "
                              f"against Kubernetes {pre.kube_version} schemas and marked 'not compared'")
        else:
            output.success(f"preflight passed: Kubernetes {pre.kube_version}, {self.fleet.branch}@{pre.head[:12]} "
                           "pushed")

    def run_engine(self, engine: Engine, pre: Preflight, head: str) -> str:
        """One engine's steps; returns the commit the cluster must reach."""
        with trace.stage("bootstrap.components", engine=engine.name):
            install = engine.install()
        self.ensure_files(engine.build_files(self.request.root, install))
        sync = engine.read_sync(self.request.root)
        secret = engine.build_secret(pre)
        self.check_objects([secret, *sync], pre.kube_version)
        sha = self.ensure_pushed(engine.commit_message(), head)
        components = engine.build_components(install, pre)
        with trace.stage("bootstrap.apply", engine=engine.name, what="components"):
            self.ensure_applied(components, engine.namespace)
        with trace.stage("wait.components", engine=engine.name):
            self.clients.waiter.wait(build_workload_targets(components, engine.namespace), engine.workloads)
        with trace.stage("bootstrap.apply", engine=engine.name, what="sync"):
            self.ensure_secret(secret)
            if engine.name == "argocd" and self.spokes:  # before the root app: its ApplicationSets name them
                self.changes.extend(Change(*r) for r in self.spokes.ensure(self.kube))
            self.ensure_applied(sync, engine.namespace)
        with trace.stage("wait.sync", engine=engine.name):
            self.clients.waiter.wait(engine.build_sync_targets(sync, sha), f"{engine.title} to sync {sha[:12]}")
        self.report_unready(engine)
        self.notes.extend(engine.notes())
        return sha

    # ---------------------------------------------------------------- steps
    def report_unready(self, engine: Engine) -> None:
        """The sync object applied the revision; what it created (infrastructure, services) reconciles on its
        own and may fail (e.g. an unreachable chart source): report it with its reason instead of hiding it."""
        states = engine.build_reconciled_states(self.kube)
        if states is None:
            return
        with trace.stage("wait.reconciled", engine=engine.name):
            unready = self.clients.waiter.wait_settled(states)
        self.notes.extend(f"{ref} not ready: {why}" for ref, why in unready)  # the CLI prints the notes

    def ensure_files(self, files: Mapping[Path, str]) -> None:
        """Write bootstrap's files into the repo when they differ."""
        for rel, text in files.items():
            path = self.request.root / rel
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current == text:
                self.changes.append(Change("file", rel.as_posix(), "unchanged"))
                continue
            self.changes.append(Change("file", rel.as_posix(), "created" if current is None else "updated"))
            self.clients.files.write(path, text)

    def check_objects(self, objs: Sequence[Mapping[str, Any]], kube_version: str) -> None:
        problems = [p for o in objs if (p := objects.validate_object(o, kube_version, self.request.crd_schemas))]
        if problems:
            raise ClusterError(f"generated objects are invalid: {'; '.join(problems[:3])}")

    def ensure_pushed(self, message: str, head: str) -> str:
        """Commit bootstrap's files and push; returns the commit the cluster must reach."""
        if not any(c.what == "file" and c.changed for c in self.changes):
            return head
        with trace.stage("bootstrap.push", cluster=self.request.cluster):
            sha = self.clients.git.publish(message, self.fleet.branch)
        if sha is None:
            return head
        self.changes.append(Change("commit", sha[:12], "created"))
        self.changes.append(Change("push", f"{self.request.remote}/{self.fleet.branch}", "pushed"))
        return sha

    def ensure_applied(self, objs: Sequence[Mapping[str, Any]], namespace: str) -> None:
        for obj in manifests.install_order([dict(o) for o in objs]):
            applied: Applied = self.kube.apply(obj, default_namespace=namespace)
            self.changes.append(Change("apply", applied.ref, applied.outcome))
            if applied.outcome in {"created", "configured"}:
                output.step(f"{applied.ref} {applied.outcome}")

    def ensure_secret(self, secret: Mapping[str, Any]) -> None:
        """Create the source Secret; an existing one is kept (its key may be registered) unless --rotate-keys."""
        meta = secret["metadata"]
        existing = self.kube.get("v1", "Secret", meta["name"], meta["namespace"])
        if existing is not None and not self.request.rotate_keys:
            self.changes.append(Change("secret", f"Secret {meta['namespace']}/{meta['name']}", "kept"))
            return
        self.ensure_applied([secret], meta["namespace"])


def bootstrap_cluster(request: BootstrapRequest, connector: Connector = connect) -> BootstrapReport:
    """Install the fleet's engine(s) on one cluster and wait until it runs the pushed commit."""
    fleet = load_fleet_answers(request.root)
    spec = fleet.cluster(request.cluster)
    with trace.stage("bootstrap", cluster=request.cluster, engine=fleet.engine, dry_run=request.dry_run):
        spoke_list = spokes.build_spokes(fleet, request.cluster, request.spoke_contexts)  # bad input: before all
        if request.dry_run:  # what it needs, one line each, before trying any of it
            for line in bootstrap_needs(request.root, request.remote, fleet.branch, fleet.engines, Downloads(
                    request.download_base_url, request.cache_dir, request.use_flux_cli)):
                output.info(line)
        clients = connect_clients(request, request.context or spec.context or None, connector,
                                  dry_run=request.dry_run)
        registrar = spokes.SpokeRegistrar(
            spoke_list, request.root, request.cluster, request.kubeconfig, connector, dry_run=request.dry_run,
            rotate_keys=request.rotate_keys,
            timeout=request.timeout, interval=request.poll_interval, journal=clients.journal)
        return Bootstrapper(request, fleet, clients, registrar).run()
