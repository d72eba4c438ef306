"""The update engine, below the commands: bring components to newer templates (or to new answers) with the one
3-way merge (merge.py: fleetstrap's own, `git merge-file` per file; copier only renders). `fleetstrap update`
(update/) and `fleetstrap add` (add.py) both run it; neither imports the other.

Flow: load the repo's components → resolve the template source (bundled mirror, or --template/--to) →
skip components already on the target commit → copy the repo into a scratch workspace → every component rendered
at its version and at the target (over the cores) → per component: the 3-way merge (inline markers, or .rej files
with `--conflict rej`), the answers file, then the one post-merge step (bot-owned lines back, conflicts found) →
migrations → validate the workspace → land the result through the writer (writer.py), with its commit on request,
in one step under the repository's lock; `--pretend` is the recording writer.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fleetstrap import output, trace
from fleetstrap.copier_adapter import Conflict
from fleetstrap.errors import ConflictError, NotAFleetRepoError, UserError
from fleetstrap.gitrepo import default_author
from fleetstrap.plan import Component
from fleetstrap.render import TemplateSource
from fleetstrap.repo import FleetRepo, RepoComponent, build_repo_component, load_fleet
from fleetstrap.steps import run_gate
from fleetstrap.transaction import checkpoint
from fleetstrap.upgrade.merge import RenderJob, Renders, Tree, merge_component, render_all
from fleetstrap.upgrade.migrations import MIGRATIONS, Migration
from fleetstrap.upgrade.protect import has_conflict_markers, protect_file
from fleetstrap.upgrade.source import (
    ResolvedSource,
    ensure_release_templates,
    ensure_source,
    git,
    parse_version,
    rev_commit,
)
from fleetstrap.workspace import Workspace
from fleetstrap.writer import RepoWriter


@dataclass(frozen=True)
class UpdateRequest:
    root: Path
    components: tuple[str, ...] = ()  # empty: all
    to: str | None = None  # VERSION or REF in the template source
    template: str | None = None  # template repo URL or path; None: the bundled templates
    # Where older releases' templates come from when the bundled mirror lacks a component's version:
    # a package index URL or a directory of wheels; None: $FLEETSTRAP_TEMPLATE_INDEX, else pip's configuration.
    template_index: str | None = None
    conflict: Conflict = "inline"
    pretend: bool = False
    commit: bool = False
    validate: bool = True
    migrations: tuple[Migration, ...] = MIGRATIONS


@dataclass(frozen=True)
class ComponentUpdate:
    name: str
    from_version: str
    to_version: str
    files: tuple[str, ...]
    conflicts: tuple[str, ...]
    diff: str = ""  # unified diff, filled for --pretend


@dataclass(frozen=True)
class UpdateReport:
    root: Path
    template: str  # label of the source, credentials redacted
    target: str  # the target ref
    updated: tuple[ComponentUpdate, ...]
    up_to_date: tuple[str, ...]
    files: tuple[str, ...]  # every path changed in the repo (or that would change, when pretending)
    conflicts: tuple[str, ...]
    migrations: tuple[str, ...] = ()  # descriptions of the migrations that ran
    commit: str | None = None
    pretend: bool = False
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.files)


@dataclass(frozen=True)
class ComponentCheck:
    name: str
    current: str
    available: str
    status: Literal["up-to-date", "update-available", "newer", "unknown-base"]

    @property
    def update_available(self) -> bool:
        return self.status in ("update-available", "unknown-base")


@dataclass(frozen=True)
class CheckReport:
    root: Path
    template: str
    target: str
    components: tuple[ComponentCheck, ...] = field(default=())

    @property
    def update_available(self) -> bool:
        return any(c.update_available for c in self.components)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "template": self.template,
            "available": self.target,
            "update_available": self.update_available,
            "components": [
                {"name": c.name, "current": c.current, "available": c.available, "status": c.status,
                 "update_available": c.update_available}
                for c in self.components
            ],
        }


# ---------------------------------------------------------------- selection and version checks


def select_components(repo: FleetRepo, names: Sequence[str]) -> tuple[RepoComponent, ...]:
    if not names:
        return repo.components
    for n in names:
        repo.component(n)  # raises AnswersError naming the known components
    wanted = set(names)
    return tuple(c for c in repo.components if c.name in wanted)


def check_component(rc: RepoComponent, source: ResolvedSource) -> ComponentCheck:
    current = rev_commit(Path(source.local), rc.template_version)
    if current == source.commit:
        return ComponentCheck(rc.name, rc.template_version, source.ref, "up-to-date")
    old, new = parse_version(rc.template_version), parse_version(source.ref)
    if old is not None and new is not None and old > new:
        return ComponentCheck(rc.name, rc.template_version, source.ref, "newer")
    if current is None:
        return ComponentCheck(rc.name, rc.template_version, source.ref, "unknown-base")
    return ComponentCheck(rc.name, rc.template_version, source.ref, "update-available")


def _fetch_missing_bases(selected: Sequence[RepoComponent], checks: Mapping[str, ComponentCheck],
                         index: str | None) -> bool:
    """Rendered by a release this machine never installed: fetch those templates into the bundled mirror,
    so they can be the merge base. True when anything was added."""
    versions = sorted({rc.template_version for rc in selected if checks[rc.name].status == "unknown-base"})
    return any([ensure_release_templates(v, index) is not None for v in versions])


def require_git_clean(root: Path, *, allow_dirty: bool) -> None:
    from fleetstrap.gitrepo import is_dirty

    if not (root / ".git").exists():
        raise NotAFleetRepoError(f"{root} is not a git repository; updates need the repo's git history",
                                 hint="git init && git add -A && git commit -m 'Initial fleet'")
    if not allow_dirty and is_dirty(root):
        raise UserError(f"{root} has uncommitted changes; commit or stash them before updating",
                        hint="a clean tree lets you review the update with git diff")


# ---------------------------------------------------------------- the merge, per component


def _set_src_path(ws: Workspace, answers_file: str, url: str) -> None:
    """copier merges from the `_src_path` recorded in the answers file: point it at our source."""
    text = ws.read(answers_file)
    if text is None:
        raise NotAFleetRepoError(f"answers file {answers_file} is missing")
    line = yaml.safe_dump({"_src_path": url}, default_flow_style=False, width=10_000).strip()
    lines = text.splitlines(keepends=True)
    for i, ln in enumerate(lines):
        if ln.startswith("_src_path:"):
            lines[i] = line + "\n"
            break
    else:
        lines.append(line + "\n")
    ws.write(answers_file, "".join(lines))


def protect_and_find_conflicts(ws: Workspace, before: Mapping[str, bytes | None]) -> tuple[str, ...]:
    """The one post-merge step, whichever way a component was merged: put bot-owned lines back as they were
    before the merge (`before`: each changed path's content then, None when absent) and return the paths left
    conflicted (new conflict markers, or a new .rej file)."""
    conflicts: list[str] = []
    for rel, prior in before.items():
        current = (ws.path / rel).read_bytes() if (ws.path / rel).is_file() else None
        old_text, new_text = _text(prior), _text(current)
        if (prior is not None and old_text is None) or (current is not None and new_text is None):
            continue  # binary: nothing of ours to protect
        kept = protect_file(rel, old_text, new_text)
        if kept != new_text:
            ws.write(rel, kept)
        rejected = rel.endswith(".rej") and prior is None and kept is not None
        if rejected or (kept is not None and has_conflict_markers(kept) and not has_conflict_markers(old_text or "")):
            conflicts.append(rel)
    return tuple(sorted(conflicts))


class _CopierConfigLoader(yaml.SafeLoader):
    """Safe YAML that reads copier's custom tags (`!include ...`) as nothing instead of failing."""


_CopierConfigLoader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)


def _unit_unchanged(source: ResolvedSource, unit: str, old: str) -> str | None:
    """When nothing this unit renders from differs between `old` and the target, the describe string copier
    would record for the target (so the update is only a version bump); else None.

    Only for templates laid out like fleetstrap's (`_subdirectory: units/{{ unit }}`): every changed path
    must sit under another unit's directory. Never for the fleet unit: its workflows and README name the version
    that rendered it (`_commit`), so a new version is a change there."""
    if unit == "fleet":
        return None
    repo = Path(source.local)
    try:
        # copier.yml may hold several documents and copier's own `!include` tags: read the settings document.
        docs = list(yaml.load_all(git(repo, "show", f"{source.commit}:copier.yml"), Loader=_CopierConfigLoader))
    except (UserError, yaml.YAMLError):
        return None
    conf = next((d for d in docs if isinstance(d, dict) and "_subdirectory" in d), {})
    if not isinstance(conf, dict) or str(conf.get("_subdirectory", "")).replace(" ", "") != "units/{{unit}}":
        return None
    changed = [p for p in git(repo, "diff", "--name-only", "-z", old, source.commit).split("\0") if p]
    if any(not p.startswith("units/") or p.startswith(f"units/{unit}/") for p in changed):
        return None
    return git(repo, "describe", "--tags", "--always", source.commit).strip() or None


def _bump_commit(ws: Workspace, answers_file: str, recorded: str) -> None:
    text = ws.read(answers_file) or ""
    line = yaml.safe_dump({"_commit": recorded}, default_flow_style=False, width=10_000).strip()
    ws.write(answers_file, "".join(line + "\n" if ln.startswith("_commit:") else ln
                                   for ln in text.splitlines(keepends=True)))


def _merge_all(ws: Workspace, todo: Sequence[RepoComponent], source: ResolvedSource, scratch: Path, *,
               with_diff: bool, conflict: Conflict) -> list[ComponentUpdate]:
    """Every component at once (merge.py): shared template clones, renders over the cores, then the
    3-way merge per component in order, bot-owned lines put back, conflicts found."""
    scratch.mkdir(parents=True, exist_ok=True)
    tree = Tree(ws.path)
    by_unit: dict[tuple[str, str], str | None] = {}
    for rc in todo:
        key = (rc.unit, rc.template_version)
        if key not in by_unit:
            by_unit[key] = _unit_unchanged(source, rc.unit, rc.template_version)
    bumps = {rc.name: by_unit[(rc.unit, rc.template_version)] for rc in todo}
    jobs = [RenderJob(rc.component(), rc.template_version) for rc in todo if bumps[rc.name] is None]
    renders = render_all(source.local, source.ref, jobs, scratch)
    try:
        return _merge_in_order(ws, todo, source, bumps, renders, tree, scratch, with_diff=with_diff,
                               conflict=conflict)
    finally:
        renders.close()  # stops the render pool early on errors and Ctrl-C


def _merge_in_order(ws: Workspace, todo: Sequence[RepoComponent], source: ResolvedSource,
                    bumps: Mapping[str, str | None], renders: Generator[Renders, None, None], tree: Tree,
                    scratch: Path, *, with_diff: bool, conflict: Conflict) -> list[ComponentUpdate]:
    out: list[ComponentUpdate] = []
    for i, rc in enumerate(todo, 1):
        output.step(f"[{i}/{len(todo)}] {rc.name}: {rc.template_version} -> {source.ref}")
        prev = ws.commit("prepare") if with_diff else ""
        answers_before = ws.read(rc.answers_file)
        bump = bumps[rc.name]
        if bump is not None:  # nothing this unit renders from changed: only the version moves
            before: dict[str, bytes | None] = {}
            _bump_commit(ws, rc.answers_file, bump)
        else:
            with trace.stage("update", component=rc.name):
                r = next(renders)
                before = {} if r.identical else merge_component(r, tree, scratch, conflict)
                ws.write(rc.answers_file, r.new_answers)
        _set_src_path(ws, rc.answers_file, source.record_url)
        conflicts = protect_and_find_conflicts(ws, before)
        changed = [rel for rel, prior in before.items() if tree.get(rel) != prior]
        if ws.read(rc.answers_file) != answers_before:
            changed.append(rc.answers_file)
        diff = ""
        if with_diff:
            done = ws.commit(f"update {rc.name}")
            diff = ws.diff(prev, done) if changed else ""
        out.append(ComponentUpdate(rc.name, rc.template_version, source.ref, tuple(sorted(changed)),
                                   conflicts, diff))
    return out


def _text(data: bytes | None) -> str | None:
    try:
        return data.decode("utf-8") if data is not None else None
    except UnicodeDecodeError:
        return None


def _recorded_commit(ws: Workspace, answers_file: str) -> str:
    raw = yaml.safe_load(ws.read(answers_file) or "") or {}
    return str(raw.get("_commit", "")) if isinstance(raw, dict) else ""


def _run_migrations(ws: Workspace, migrations: Sequence[Migration], updated: Sequence[ComponentUpdate],
                    to: str) -> tuple[str, ...]:
    ran: list[str] = []
    for m in migrations:
        if any(m.crosses(u.from_version, to) for u in updated):
            with trace.stage("migrate", migration=m.description):
                changed = m.apply(ws.path, ws.files())
            if changed:
                ran.append(m.description)
    return tuple(ran)


def build_commit_message(updated: Sequence[ComponentUpdate], target: str) -> str:
    olds = sorted({u.from_version for u in updated})
    lines = [f"fleetstrap update: templates {', '.join(olds)} -> {target}", ""]
    lines += [f"- {u.name}: {u.from_version} -> {u.to_version}" for u in updated]
    return "\n".join(lines) + "\n"


def _export(ws: Workspace, root: Path) -> None:
    """apply_answers_change: the merge result into `root`, a staging tree of the caller (add's workspace)."""
    for ch in ws.staged():
        target = root / ch.path
        if ch.source is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            if ch.source.is_symlink():
                target.symlink_to(ch.source.readlink())
            else:
                shutil.copy2(ch.source, target)


class UpdateConflictError(ConflictError):
    """Conflicts remain (exit 2); the merge result was written, and `report` says what changed."""

    def __init__(self, message: str, *, report: UpdateReport, hint: str | None = None) -> None:
        super().__init__(message, paths=report.conflicts, hint=hint)
        self.report = report


def run_update(request: UpdateRequest, writer: RepoWriter) -> UpdateReport:
    """The engine, with the writer the caller chose (update's face, or update --pr's worktree)."""
    start = time.perf_counter()
    repo = load_fleet(request.root)
    root = repo.root
    selected = select_components(repo, request.components)
    require_git_clean(root, allow_dirty=request.pretend)
    with tempfile.TemporaryDirectory(prefix="fleetstrap-update-") as tmp_name:
        tmp = Path(tmp_name)
        source = ensure_source(request.template, request.to, tmp / "src", request.template_index)
        trace.annotate(**{"fleetstrap.template_version": source.ref})
        checks = {rc.name: check_component(rc, source) for rc in selected}
        if request.template is None and _fetch_missing_bases(selected, checks, request.template_index):
            checks = {rc.name: check_component(rc, source) for rc in selected}
        newer = [n for n, c in checks.items() if c.status == "newer"]
        if newer:
            raise UserError(f"{', '.join(newer)} already on a newer template than {source.ref}; "
                            "downgrades are not supported")
        missing = [n for n, c in checks.items() if c.status == "unknown-base"]
        if missing:
            rc = repo.component(missing[0])
            raise UserError(f"{rc.name} was rendered from template {rc.template_version}, "
                            f"which {source.label} does not have",
                            hint="pass --template with a template repo holding both versions")
        todo = [rc for rc in selected if checks[rc.name].status == "update-available"]
        up_to_date = tuple(rc.name for rc in selected if checks[rc.name].status == "up-to-date")
        if not todo:
            return UpdateReport(root, source.label, source.ref, (), up_to_date, (), (), pretend=request.pretend,
                                seconds=time.perf_counter() - start)
        ws = Workspace.create(root, tmp / "ws")
        updated: list[ComponentUpdate] = []
        updated += _merge_all(ws, todo, source, tmp / "render", with_diff=request.pretend, conflict=request.conflict)
        checkpoint("merge")
        before_migrations = ws.commit("components")
        ran = _run_migrations(ws, request.migrations, updated, source.ref)
        after_migrations = ws.commit("migrations")
        if ran:
            files = tuple(ch.path for ch in ws.changes(before_migrations, after_migrations))
            updated.append(ComponentUpdate("migrations", "", source.ref, files, (),
                                           ws.diff(before_migrations, after_migrations) if request.pretend else ""))
        all_changes = ws.changes(ws.base)
        conflicts = tuple(sorted({p for u in updated for p in u.conflicts}))
        report = UpdateReport(root, source.label, source.ref, tuple(updated), up_to_date,
                              tuple(ch.path for ch in all_changes), conflicts, ran, None, request.pretend)
        if not all_changes:
            return _timed(report, start)
        if conflicts or request.pretend:
            # The merge result is the user's to resolve (conflicts): written, never validated nor committed.
            with trace.stage("write"):
                writer.land(ws.staged(), None)
            trace.event("files changed", count=len(all_changes))
            if request.pretend:
                return _timed(report, start)
            raise UpdateConflictError(
                f"update left {len(conflicts)} conflicted file(s): {', '.join(conflicts)}",
                report=_timed(report, start),
                hint="resolve the <<<<<<< markers (or .rej files), then validate and commit",
            )
        if request.validate:
            run_gate(ws.path)  # the gate judges what would land, before anything does
        checkpoint("validate")
        with trace.stage("write"):
            landing = writer.land(ws.staged(), build_commit_message(updated, source.ref) if request.commit else None,
                                  author=default_author(root), branch=repo.answers.branch)
        trace.event("files changed", count=len(all_changes))
    return _timed(UpdateReport(report.root, report.template, report.target, report.updated, report.up_to_date,
                               report.files, (), ran, landing.commit, False), start)


def _timed(report: UpdateReport, start: float) -> UpdateReport:
    return dataclasses.replace(report, seconds=time.perf_counter() - start)


# ---------------------------------------------------------------- for `add`: same version, new answers


def _source_for(root: Path, component: Component, source: TemplateSource | None, tmp: Path) -> ResolvedSource:
    if source is not None:
        local = Path(source.url)
        sha = rev_commit(local, source.ref) if local.is_dir() else None
        if sha is None:
            # A remote template: resolve it like --template/--to.
            return ensure_source(source.url, source.ref, tmp)
        return ResolvedSource(str(local), source.ref, sha, str(local), source.ref)
    bundled = ensure_source(None, None, tmp)
    # Keep the component on the template version it is on: an answers change is not a template upgrade.
    raw = yaml.safe_load((root / component.answers_file).read_text(encoding="utf-8")) or {}
    recorded = str(raw.get("_commit", "")) if isinstance(raw, dict) else ""
    sha = rev_commit(Path(bundled.local), recorded) if recorded else None
    if sha is None and recorded:
        sha = ensure_release_templates(recorded)  # rendered by a release not installed here
    if sha is not None:
        return ResolvedSource(bundled.local, recorded, sha, bundled.record_url, recorded)
    return bundled


def apply_answers_change(root: Path, component: Component, source: TemplateSource | None = None,
                         conflict: str = "inline") -> tuple[str, ...]:
    """Re-render an already-rendered component with changed answers at the version it is on, through the one
    3-way merge (merge.py), so edits people made survive. Works on a dirty tree (the caller may have just added
    files). Returns the conflicted paths (empty: clean merge); the merge result is written to the repo either way."""
    if conflict not in ("inline", "rej"):
        raise UserError(f"conflict mode must be inline or rej (got {conflict!r})")
    mode: Conflict = "inline" if conflict == "inline" else "rej"
    root = root.resolve()
    if not (root / component.answers_file).is_file():
        raise NotAFleetRepoError(f"{component.name} was never rendered here ({component.answers_file} is missing)")
    require_git_clean(root, allow_dirty=True)
    with tempfile.TemporaryDirectory(prefix="fleetstrap-answers-") as tmp_name:
        tmp = Path(tmp_name)
        resolved = _source_for(root, component, source, tmp / "src")
        ws = Workspace.create(root, tmp / "ws")
        raw = yaml.safe_load(ws.read(component.answers_file) or "")
        recorded = build_repo_component(component.answers_file, raw if isinstance(raw, dict) else {})
        # Like copier's update: the recorded answers, overridden by the new ones.
        new = dataclasses.replace(component, data=tuple({**dict(recorded.data), **component.data_dict()}.items()))
        renders = render_all(resolved.local, resolved.ref, [RenderJob(recorded.component(), recorded.template_version,
                                                                       new)], tmp / "render")
        try:
            r = next(renders)
        finally:
            renders.close()
        with trace.stage("update", component=component.name):
            before = {} if r.identical else merge_component(r, Tree(ws.path), tmp / "render", mode)
        ws.write(component.answers_file, r.new_answers)
        _set_src_path(ws, component.answers_file, resolved.record_url)
        conflicts = protect_and_find_conflicts(ws, before)
        _export(ws, root)
    return conflicts
