"""`fleetstrap update` and `fleetstrap check-update`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from fleetstrap import changelog, output
from fleetstrap.cli.complete import complete_component
from fleetstrap.cli.options import format_option, repo_dir, show_pull_request

if TYPE_CHECKING:
    from fleetstrap.update import UpdateReport
    from fleetstrap.update.pr import PrReport, PrRequest


@click.command()
@repo_dir(positional=True, repo_alias=False)
@click.option("--component", "components", multiple=True, metavar="NAME", shell_complete=complete_component,
              help="Only this component (fleet, cluster/<c>, service/<s>, monitoring); repeatable.")
@click.option("--to", "to", metavar="VERSION|REF", help="Template version or ref (default: this fleetstrap's).")
@click.option("--template", metavar="URL", help="Template git repo URL or path (default: the bundled templates).")
@click.option("--template-index", metavar="URL|DIR|WHEEL|git+URL",
              help="Where to fetch an older release's templates missing on this machine: a package index URL, "
                   "a directory of wheels, one wheel (file or URL), or git+URL of fleetstrap's repository "
                   "(its vX.Y.Z tag) (default: $FLEETSTRAP_TEMPLATE_INDEX, else pip's configuration).")
@click.option("--conflict", type=click.Choice(["inline", "rej"]), default="inline", show_default=True,
              help="Leave conflicts as inline markers or as .rej files.")
@click.option("--pretend", "--diff", "pretend", is_flag=True,
              help="Show the diff per component; change nothing. With --pr: say what would be pushed and opened.")
@click.option("--commit", is_flag=True, help="Commit the result (message names the versions).")
@click.option("--no-validate", is_flag=True, help="Skip the validate gate after updating.")
@click.option("--pr", is_flag=True,
              help="Update every component on the branch fleetstrap/update-v<to>, push it and open a pull request "
                   "(GitHub; other remotes: the branch only). Idempotent; conflicts give a draft and exit 2.")
@click.option("--remote-name", default="origin", show_default=True, help="With --pr: the git remote to push to.")
@click.option("--github-url", default="https://github.com", show_default=True,
              help="With --pr: the GitHub (Enterprise) the remote must be on for a pull request.")
@click.option("--token-env", metavar="NAME",
              help="With --pr: environment variable holding the token (default: GH_TOKEN, GITHUB_TOKEN, gh).")
@click.option("--api-delay", type=float, default=None, hidden=True,
              help="Seconds between GitHub API calls (PyGithub's pacing; tests use 0).")
@format_option(help_text="json: the outcome as one JSON object on stdout (with --pretend, the diffs too).")
def update(root: Path, components: tuple[str, ...], to: str | None, template: str | None,
           template_index: str | None, conflict: str, pretend: bool, commit: bool, no_validate: bool,
           pr: bool, remote_name: str, github_url: str, token_env: str | None, api_delay: float | None,
           fmt: str) -> None:
    """Update components to newer templates with a 3-way merge that keeps your edits."""
    from fleetstrap.update import UpdateRequest, update_fleet

    path = root
    if pr:
        if components or commit or conflict != "inline":
            raise click.UsageError("--pr updates every component with inline conflicts and commits on its own "
                                   "branch: drop --component/--commit/--conflict")
        from fleetstrap.update.pr import PrRequest

        _update_pr(PrRequest(root=path, to=to, template=template, template_index=template_index,
                             remote_name=remote_name, github_url=github_url, token_env=token_env,
                             changelog=changelog.markdown_for, pretend=pretend), api_delay, fmt)
        return

    with output.progress("updating" if not pretend else "comparing with the newer templates"):
        report = update_fleet(UpdateRequest(
            root=path, components=components, to=to, template=template, template_index=template_index,
            conflict="rej" if conflict == "rej" else "inline", pretend=pretend, commit=commit,
            validate=not no_validate,
        ))
    if fmt == "json":
        output.data_json(_update_json(report))
    else:
        _show_update(report, pretend=pretend)


def _show_update(report: UpdateReport, *, pretend: bool) -> None:
    if not report.updated:
        output.success(f"up to date: {len(report.up_to_date)} component(s) on {report.target}")
        return
    if pretend:
        for u in report.updated:
            output.info(f"# {u.name}: {u.from_version or '-'} -> {u.to_version} ({len(u.files)} file(s))")
            if u.diff:
                output.data(u.diff)
        for c in report.conflicts:
            output.warn(f"would conflict: {c}")
        _show_changelog([(u.name, u.from_version) for u in report.updated], report.target, pretend=True)
        output.info(f"pretend: {len(report.files)} file(s) would change; nothing was written")
        return
    for u in report.updated:
        output.success(f"{u.name}: {u.from_version or '-'} -> {u.to_version} ({len(u.files)} file(s))")
    _show_changelog([(u.name, u.from_version) for u in report.updated], report.target, pretend=False)
    if report.migrations:
        output.info("migrations: " + "; ".join(report.migrations))
    if report.commit:
        output.success(f"committed {report.commit[:12]}")
    elif not report.files:
        output.info("nothing changed")
    else:
        output.info(f"{len(report.files)} file(s) changed; review with git diff")


def _update_json(report: UpdateReport) -> dict[str, object]:
    return {"target": report.target, "template": report.template, "pretend": report.pretend,
            "updated": [{"name": u.name, "from": u.from_version, "to": u.to_version, "files": list(u.files),
                         "conflicts": list(u.conflicts), **({"diff": u.diff} if report.pretend else {})}
                        for u in report.updated],
            "up_to_date": list(report.up_to_date), "files": list(report.files), "conflicts": list(report.conflicts),
            "migrations": list(report.migrations), "commit": report.commit, "seconds": round(report.seconds, 3)}


def _pr_json(report: PrReport) -> dict[str, object]:
    return {"action": report.action, "target": report.target, "branch": report.branch, "url": report.url,
            "conflicts": list(report.conflicts), "journal": list(report.journal)}


def _update_pr(request: PrRequest, api_delay: float | None, fmt: str) -> None:
    from dataclasses import replace

    from fleetstrap.update.pr import open_update_pr

    if api_delay is not None:
        request = replace(request, api=replace(request.api, seconds_between_requests=api_delay,
                                               seconds_between_writes=api_delay))
    with output.progress("preparing the update pull request"):
        report = open_update_pr(request)
    if fmt == "json":
        output.data_json(_pr_json(report))
        return
    if show_pull_request(report.action, report.branch, report.url, f"templates {report.target}"):
        return
    if report.action == "up-to-date":
        output.success(f"up to date with templates {report.target}: no branch, no pull request")
    else:  # --pretend: the recording forge
        for line in report.journal:
            output.info(line)
        output.info(f"pretend: {report.branch} for templates {report.target} would hold "
                    f"{len(report.conflicts)} conflicted file(s); nothing was pushed or opened")


@click.command("check-update")
@repo_dir(positional=True, repo_alias=False)
@click.option("--to", "to", metavar="VERSION|REF", help="Compare with this template version or ref.")
@click.option("--template", metavar="URL", help="Template git repo URL or path (default: the bundled templates).")
@format_option()
def check_update(root: Path, to: str | None, template: str | None, fmt: str) -> None:
    """Report each component's template version and the available one; exit 2 when an update is available."""
    from fleetstrap.update import check_updates, require_no_updates

    with output.progress("checking for newer templates"):
        report = check_updates(root, template=template, to=to)
    notes = changelog.notes_for([(c.name, c.current) for c in report.components if c.update_available],
                                report.target)
    if fmt == "json":
        output.data_json({**report.to_json(), "changelog": changelog.to_json(notes)})
    else:
        output.table(f"templates: {report.template}", ["component", "current", "available", "status"],
                     [(c.name, c.current, c.available, c.status) for c in report.components])
        if notes:
            output.data(f"\nWhat changes up to {report.target} (CHANGELOG.md):\n{changelog.format_text(notes)}")
    require_no_updates(report)


def _show_changelog(components: list[tuple[str, str]], target: str, *, pretend: bool) -> None:
    """The changelog entries of the versions crossed, from the installed package (offline)."""
    notes = changelog.notes_for([(name, old) for name, old in components if name != "migrations"], target)
    if notes:
        output.info(("would bring" if pretend else "brings") + f" (CHANGELOG.md, up to {target}):\n"
                    + changelog.format_text(notes))
