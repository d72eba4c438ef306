"""`fleetstrap add service|cluster|monitoring`: grow an existing fleet repo.

Everything happens in a workspace outside the work tree (workspace.py), under the repository's lock: the new
component renders there, the fleet component (which lists services and clusters) is re-rendered there with
copier's 3-way update so edits people made to fleet files survive, the gate validates it there, and only then
does the change land in the repo with its one commit (writer.py; `commit=False` lands it uncommitted). The
answers are read under the lock, so two `add`s never lose each other's service.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fleetstrap import trace
from fleetstrap.answers import NOTIFICATIONS, ClusterSpec, FleetAnswers, replace
from fleetstrap.errors import AnswersError, ConflictError, DestinationError
from fleetstrap.gitrepo import Author, default_author, is_dirty
from fleetstrap.names import dns1123_problem, service_name_problem
from fleetstrap.plan import (
    Component,
    answers_file_for,
    build_cluster_component,
    build_fleet_component,
    build_monitoring_component,
    build_service_component,
)
from fleetstrap.render import (
    TemplateSource,
    check_destination,
    ensure_template_mirror,
    render_component,
    staging_dir,
)
from fleetstrap.steps import render_service_repo, run_gate
from fleetstrap.transaction import checkpoint
from fleetstrap.upgrade.engine import apply_answers_change
from fleetstrap.workspace import Workspace
from fleetstrap.writer import RepoWriter, open_writer


@dataclass(frozen=True)
class AddRequest:
    """The fleet repo a component is added to, and how: commit the change (as `author`), render from `source`."""

    root: Path
    commit: bool = True
    author: Author | None = None
    source: TemplateSource | None = None


@dataclass(frozen=True)
class AddReport:
    root: Path
    component: str
    files: tuple[str, ...]
    commit: str | None
    seconds: float
    service_repo: Path | None = None


def _load(root: Path) -> FleetAnswers:
    from fleetstrap.repo import load_fleet

    return load_fleet(root).answers


def _grow(writer: RepoWriter, fleet: AddRequest, new: Component, fleet_after: FleetAnswers,
          message: str) -> AddReport:
    start = time.perf_counter()
    root = writer.root
    if is_dirty(root):
        raise DestinationError(f"{root} has uncommitted changes; commit or stash them first")
    source = fleet.source or ensure_template_mirror()
    with tempfile.TemporaryDirectory(prefix="fleetstrap-add-") as scratch:
        ws = Workspace.create(root, Path(scratch) / "ws")
        rendered = Path(scratch) / "new"
        with trace.stage("render", component=new.name):
            render_component(new, rendered, source)
        added = sorted(p.relative_to(rendered).as_posix() for p in rendered.rglob("*") if p.is_file())
        clashes = [a for a in added if (root / a).exists()]
        if clashes:
            raise DestinationError(f"{new.name}: {clashes[0]} already exists in the repo")
        for rel in added:
            (ws.path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(rendered / rel, ws.path / rel)
        checkpoint("render")
        conflicts = _update_fleet(ws.path, fleet_after, new)
        checkpoint("merge")
        if conflicts:
            writer.land(ws.staged(), None)  # the merge result is the user's to resolve: written, not committed
            raise ConflictError(
                f"the fleet files conflict with local edits: {', '.join(conflicts)}",
                paths=conflicts,
                hint="resolve the markers, then commit",
            )
        run_gate(ws.path)  # judges what would land, before anything does
        checkpoint("validate")
        landing = writer.land(ws.staged(), message if fleet.commit else None,
                              author=fleet.author or default_author(root), branch=fleet_after.branch)
    trace.event("files changed", count=len(added))
    return AddReport(root, new.name, tuple(added), landing.commit, time.perf_counter() - start)


def _update_fleet(root: Path, answers: FleetAnswers, new: Component) -> tuple[str, ...]:
    """Re-render the components that list services or clusters: the fleet, and monitoring (per cluster)."""
    components = [build_fleet_component(answers)]
    if new.unit == "monitoring":
        # A fleet-wide switch: clusters (health-check timeouts) and services (ServiceMonitor) read it too.
        components += [build_cluster_component(answers, c.name) for c in answers.clusters]
        components += [build_service_component(answers, s) for s in answers.services]
    elif answers.monitoring and (root / answers_file_for("monitoring")).is_file():
        components.append(build_monitoring_component(answers))
    conflicts: list[str] = []
    for component in components:
        with trace.stage("render", component=component.name):
            # No source: keep each component on its recorded template version; `update` moves versions.
            conflicts += apply_answers_change(root, component, None)
    return tuple(conflicts)


def add_service(fleet: AddRequest, name: str, service_dir: Path | None = None) -> AddReport:
    problem = service_name_problem(name)
    if problem:
        raise AnswersError(problem)
    root = fleet.root.resolve()
    with open_writer(root, f"add service {name}", commit=fleet.commit) as writer:
        answers = _load(root)  # under the lock: another add's service is in it
        if name in answers.services:
            raise AnswersError(f"service {name!r} already exists in this fleet")
        after = replace(answers, services=(*answers.services, name))
        component = build_service_component(after, name)
        message = f"Add service {name}"
        if after.repo_layout != "split":
            return _grow(writer, fleet, component, after, message)
        # Split layout: the service's own repository beside the fleet, placed only once the fleet side is in.
        repo_dest = (service_dir or root.parent / name).resolve()
        check_destination(repo_dest, force=False)
        fleet = dataclasses.replace(fleet, source=fleet.source or ensure_template_mirror())
        assert fleet.source is not None
        with staging_dir(repo_dest) as repo_tmp:
            render_service_repo(after, name, repo_tmp, fleet.source, fleet.author, commit=True)
            report = _grow(writer, fleet, component, after, message)
            writer.place(repo_tmp, repo_dest)
        return dataclasses.replace(report, service_repo=repo_dest)


def add_cluster(fleet: AddRequest, name: str, environment: str, *, context: str = "", server: str = "") -> AddReport:
    problem = dns1123_problem(name, "cluster")
    if problem:
        raise AnswersError(problem)
    root = fleet.root.resolve()
    with open_writer(root, f"add cluster {name}", commit=fleet.commit) as writer:
        answers = _load(root)
        if any(c.name == name for c in answers.clusters):
            raise AnswersError(f"cluster {name!r} already exists in this fleet")
        if environment not in answers.environments:
            raise AnswersError(f"environment {environment!r} is not one of this fleet's environments "
                               f"({', '.join(answers.environments)})")
        spec = ClusterSpec(name, environment, context, server or "https://kubernetes.default.svc")
        after = replace(answers, clusters=(*answers.clusters, spec))
        return _grow(writer, fleet, build_cluster_component(after, name), after,
                     f"Add cluster {name} ({environment})")


def add_monitoring(fleet: AddRequest, notifications: str | None = None) -> AddReport:
    """Switch monitoring on in a fleet made without it: the metrics stack, rules, dashboards, notifications."""
    if notifications is not None and notifications not in NOTIFICATIONS:
        raise AnswersError(f"notifications must be one of {', '.join(NOTIFICATIONS)} (got {notifications!r})")
    root = fleet.root.resolve()
    with open_writer(root, "add monitoring", commit=fleet.commit) as writer:
        answers = _load(root)
        if answers.monitoring:
            raise AnswersError("monitoring is already on in this fleet")
        after = replace(answers, monitoring=True, notifications=notifications or answers.notifications)
        return _grow(writer, fleet, build_monitoring_component(after), after, "Add monitoring")
