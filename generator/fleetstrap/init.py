"""`fleetstrap init`: answers → plan → render (staged) → gate → land (writer.py) with the one commit.

Into a new or empty directory the staged repository (committed there) is renamed into place. Into an existing
directory or git repository (`--force`) the rendered files land through the writer and only they are committed:
the user's other files (an untracked `.env.local`) never are; a tree with uncommitted changes is refused, and
files it would overwrite are named and refused unless `--overwrite`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetstrap import trace
from fleetstrap.answers import FleetAnswers, build_answers, load_answers_file, missing_answers, parse_data_flags
from fleetstrap.blueprints import resolve_blueprint
from fleetstrap.errors import AnswersError, DestinationError
from fleetstrap.gitrepo import Author, default_author, ensure_commit
from fleetstrap.gitrepo import run as git_run
from fleetstrap.plan import Plan, build_plan
from fleetstrap.render import (
    TemplateSource,
    check_destination,
    ensure_template_mirror,
    render_components,
    staging_dir,
    warn_unpublished,
)
from fleetstrap.steps import render_service_repo, run_gate, service_repo_dests
from fleetstrap.transaction import checkpoint
from fleetstrap.writer import Change, RepoWriter, open_writer


@dataclass(frozen=True)
class AnswerSources:
    """Where answers come from; each later source overrides the earlier ones."""

    blueprint: str | None = None
    answers_file: Path | None = None
    data: tuple[str, ...] = ()
    defaults: bool = False
    interactive: bool = False
    ask_owner: bool = False  # not interactive, but on a terminal: ask the owner when it is still a placeholder


@dataclass(frozen=True)
class InitRequest:
    dest: Path
    sources: AnswerSources = field(default_factory=AnswerSources)
    force: bool = False
    overwrite: bool = False  # with force: replace files of the destination the templates also write
    author: Author | None = None
    commit: bool = True
    validate: bool = True
    template: TemplateSource | None = None


@dataclass(frozen=True)
class InitReport:
    dest: Path
    answers: FleetAnswers
    components: tuple[str, ...]
    files: int
    commit: str | None
    seconds: float


def gather_answers(sources: AnswerSources) -> FleetAnswers:
    """Merge the answer sources; prompt when interactive; fail listing every missing answer otherwise."""
    with trace.stage("prompt", interactive=sources.interactive):
        merged: dict[str, Any] = {}
        if sources.blueprint:
            merged.update(resolve_blueprint(sources.blueprint))
        if sources.answers_file:
            merged.update(load_answers_file(sources.answers_file))
        merged.update(parse_data_flags(sources.data))
        if sources.interactive and not sources.defaults:
            from fleetstrap.prompts import ask_fleet_answers  # questionary only when prompting

            merged = ask_fleet_answers(merged)
        elif sources.ask_owner and not sources.defaults:
            from fleetstrap.prompts import ask_owner_over_placeholder

            merged = ask_owner_over_placeholder(merged)
        missing = missing_answers(merged)
        if missing:
            raise AnswersError(
                "missing answer(s): " + ", ".join(missing) + " (pass --data KEY=VALUE, --answers FILE or --blueprint)"
            )
        answers = build_answers(merged)
        trace.event("answers resolved", keys=len(merged), blueprint=sources.blueprint or "")
        return answers


def _count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts)


def _commit(staged: Path, source: TemplateSource, request: InitRequest, answers: FleetAnswers) -> str | None:
    """The first commit of a new repository, made in its staging directory before it is placed."""
    with trace.stage("commit"):
        sha = ensure_commit(staged, _message(source), request.author or default_author(None), branch=answers.branch)
        trace.annotate(**{"vcs.commit.sha": sha or ""})
        return sha


def _message(source: TemplateSource) -> str:
    return f"Initial fleet from fleetstrap ({source.ref})"


def _rendered(tmp: Path) -> list[str]:
    return sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*")
                  if (p.is_file() or p.is_symlink()) and ".git" not in p.relative_to(tmp).parts)


def _check_existing(dest: Path) -> None:
    """Into an existing git repository: its uncommitted changes are the user's, never mixed into our commit."""
    if not (dest / ".git").is_dir():
        return
    changed = [ln[3:] for ln in git_run(dest, "status", "--porcelain", "--untracked-files=no").splitlines() if ln]
    if changed:
        raise DestinationError(f"{dest} has uncommitted changes ({', '.join(changed[:3])}"
                               f"{', ...' if len(changed) > 3 else ''}); commit or stash them before init --force")


def _check_overwrites(tmp: Path, dest: Path, rendered: list[str], overwrite: bool) -> None:
    clash = [rel for rel in rendered
             if (dest / rel).is_file() and (dest / rel).read_bytes() != (tmp / rel).read_bytes()]
    if clash and not overwrite:
        raise DestinationError(f"init would overwrite {len(clash)} file(s) in {dest}: {', '.join(clash[:5])}"
                               f"{', ...' if len(clash) > 5 else ''}",
                               hint="move them away, or pass --overwrite to replace them with the template's")


def _land(writer: RepoWriter, tmp: Path, dest: Path, request: InitRequest, source: TemplateSource,
          answers: FleetAnswers) -> str | None:
    """The rendered tree into `dest`: a rename of the committed staging repo when `dest` is new or empty, else
    the rendered files through the writer with one commit of exactly those files."""
    if not dest.is_dir() or not any(dest.iterdir()):
        sha = _commit(tmp, source, request, answers) if request.commit else None
        writer.place(tmp, dest)
        return sha
    rendered = _rendered(tmp)
    _check_overwrites(tmp, dest, rendered, request.overwrite)
    with trace.stage("commit"):
        landing = writer.land([Change(rel, tmp / rel) for rel in rendered],
                              _message(source) if request.commit else None,
                              author=request.author or default_author(None), branch=answers.branch)
        trace.annotate(**{"vcs.commit.sha": landing.commit or ""})
    return landing.commit


def init_fleet(request: InitRequest) -> InitReport:
    start = time.perf_counter()
    dest = request.dest.resolve()
    check_destination(dest, force=request.force)  # before prompting: fail fast
    answers = gather_answers(request.sources)
    plan: Plan = build_plan(answers)
    repos = service_repo_dests(answers, dest)
    for _, repo_dest in repos:
        check_destination(repo_dest, force=False)
    trace.annotate(**{"fleet.repo": f"{answers.owner}/{answers.fleet_name}", "fleet.engine": answers.engine})
    with open_writer(dest, "init", commit=request.commit) as writer, contextlib.ExitStack() as stack:
        check_destination(dest, force=request.force)  # again under the lock: another init may have been first
        _check_existing(dest)
        tmp = stack.enter_context(staging_dir(dest))
        with trace.stage("render", components=len(plan.components)):
            source = request.template or ensure_template_mirror()
            trace.annotate(**{"fleetstrap.template_version": source.ref})
            warn_unpublished(answers.fleetstrap_pip, source)
            render_components(plan.components, tmp, source)
            staged = [(stack.enter_context(staging_dir(d)), d) for _, d in repos]
            for (service, _), (repo_tmp, _) in zip(repos, staged, strict=True):
                render_service_repo(answers, service, repo_tmp, source, request.author, request.commit)
        checkpoint("render")
        files = _count_files(tmp)
        trace.event("files changed", count=files)
        if request.validate:
            run_gate(tmp)
        checkpoint("validate")
        for repo_tmp, repo_dest in staged:
            writer.place(repo_tmp, repo_dest)
        sha = _land(writer, tmp, dest, request, source, answers)
    return InitReport(
        dest=dest,
        answers=answers,
        components=tuple(c.name for c in plan.components) + tuple(f"service-repo/{s}" for s, _ in repos),
        files=files,
        commit=sha,
        seconds=time.perf_counter() - start,
    )


def stdin_is_tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
