"""Steps several commands share, in the layer below them (commands never import each other): the offline gate,
and a split-layout service's own repository."""

from __future__ import annotations

from pathlib import Path

from fleetstrap import output, trace
from fleetstrap.answers import FleetAnswers
from fleetstrap.gitrepo import Author, default_author, ensure_commit
from fleetstrap.plan import build_service_repo_component
from fleetstrap.render import TemplateSource, render_components


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
