"""`fleetstrap init`: answers → plan → render (staged) → gate → commit → move into place."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetstrap import output, trace
from fleetstrap.answers import FleetAnswers, build_answers, load_answers_file, missing_answers, parse_data_flags
from fleetstrap.blueprints import resolve_blueprint
from fleetstrap.errors import AnswersError
from fleetstrap.gitrepo import Author, default_author, ensure_commit
from fleetstrap.plan import Plan, build_plan, build_service_repo_component
from fleetstrap.render import (
    TemplateSource,
    check_destination,
    ensure_template_mirror,
    promote,
    render_components,
    staging_dir,
    warn_unpublished,
)


@dataclass(frozen=True)
class AnswerSources:
    """Where answers come from; each later source overrides the earlier ones."""

    blueprint: str | None = None
    answers_file: Path | None = None
    data: tuple[str, ...] = ()
    defaults: bool = False
    interactive: bool = False


@dataclass(frozen=True)
class InitRequest:
    dest: Path
    sources: AnswerSources = field(default_factory=AnswerSources)
    force: bool = False
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


def run_gate(root: Path) -> None:
    """The offline validation gate (a broken import must fail loudly, never skip the gate). A plain install (no
    `validate` extra) renders anyway and says, in one warning, that the gate did not run and what would run it."""
    from fleetstrap.errors import ToolMissingError
    from fleetstrap.validate import gate

    with trace.stage("validate"):
        try:
            gate(root)
        except ToolMissingError as exc:
            output.warn(f"the offline validation gate did not run: {exc}; its schema, kustomize, helm, cross-reference "
                        f"and workflow checks were skipped ({exc.hint or 'pip install fleetstrap[validate]'}, then "
                        "run fleetstrap validate on the fleet)")


def service_repo_dests(answers: FleetAnswers, fleet_dest: Path) -> tuple[tuple[str, Path], ...]:
    """Split layout: each service's own repository, next to the fleet repository."""
    if answers.repo_layout != "split":
        return ()
    return tuple((s, fleet_dest.parent / s) for s in answers.services)


def render_service_repo(answers: FleetAnswers, service: str, tmp: Path, source: TemplateSource,
                        author: Author | None, commit: bool) -> None:
    """Render a split-layout service repository into `tmp` and make its initial commit."""
    render_components([build_service_repo_component(answers, service)], tmp, source)
    if commit:
        ensure_commit(tmp, f"Initial {service} service from fleetstrap ({source.ref})", author or default_author(None),
                      branch=answers.branch)


def _commit(root: Path, source: TemplateSource, request: InitRequest, answers: FleetAnswers) -> str | None:
    with trace.stage("commit"):
        sha = ensure_commit(root, f"Initial fleet from fleetstrap ({source.ref})",
                            request.author or default_author(None), branch=answers.branch)
        trace.annotate(**{"vcs.commit.sha": sha or ""})
        return sha


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
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(staging_dir(dest))
        with trace.stage("render", components=len(plan.components)):
            source = request.template or ensure_template_mirror()
            trace.annotate(**{"fleetstrap.template_version": source.ref})
            warn_unpublished(answers.fleetstrap_pip, source)
            render_components(plan.components, tmp, source)
            staged = [(stack.enter_context(staging_dir(d)), d) for _, d in repos]
            for (service, _), (repo_tmp, _) in zip(repos, staged, strict=True):
                render_service_repo(answers, service, repo_tmp, source, request.author, request.commit)
        files = _count_files(tmp)
        trace.event("files changed", count=files)
        if request.validate:
            run_gate(tmp)
        sha = None
        # --force into an existing git repo: its history stays, and the fleet is committed on top of it.
        into_existing_repo = (dest / ".git").exists()
        if request.commit and not into_existing_repo:
            sha = _commit(tmp, source, request, answers)
        promote(tmp, dest)
        if request.commit and into_existing_repo:
            sha = _commit(dest, source, request, answers)
        for repo_tmp, repo_dest in staged:
            promote(repo_tmp, repo_dest)
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
