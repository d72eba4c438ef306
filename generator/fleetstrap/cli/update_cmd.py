"""`fleetstrap update` and `fleetstrap check-update`."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstrap import changelog, output


@click.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--component", "components", multiple=True, metavar="NAME",
              help="Only this component (fleet, cluster/<c>, service/<s>, monitoring); repeatable.")
@click.option("--to", "to", metavar="VERSION|REF", help="Template version or ref (default: this fleetstrap's).")
@click.option("--template", metavar="URL", help="Template git repo URL or path (default: the bundled templates).")
@click.option("--template-index", metavar="URL|DIR",
              help="Where to fetch an older release's templates missing on this machine: a package index URL "
                   "or a directory of wheels (default: $FLEETSTRAP_TEMPLATE_INDEX, else pip's configuration).")
@click.option("--conflict", type=click.Choice(["inline", "rej"]), default="inline", show_default=True,
              help="Leave conflicts as inline markers or as .rej files.")
@click.option("--pretend", "--diff", "pretend", is_flag=True, help="Show the diff per component; change nothing.")
@click.option("--commit", is_flag=True, help="Commit the result (message names the versions).")
@click.option("--no-validate", is_flag=True, help="Skip the validate gate after updating.")
def update(path: Path, components: tuple[str, ...], to: str | None, template: str | None,
           template_index: str | None, conflict: str, pretend: bool, commit: bool, no_validate: bool) -> None:
    """Update components to newer templates with a 3-way merge that keeps your edits."""
    from fleetstrap.update import UpdateRequest, update_fleet

    report = update_fleet(UpdateRequest(
        root=path, components=components, to=to, template=template, template_index=template_index,
        conflict="rej" if conflict == "rej" else "inline", pretend=pretend, commit=commit,
        validate=not no_validate,
    ))
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


@click.command("check-update")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--to", "to", metavar="VERSION|REF", help="Compare with this template version or ref.")
@click.option("--template", metavar="URL", help="Template git repo URL or path (default: the bundled templates).")
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human", show_default=True)
def check_update(path: Path, to: str | None, template: str | None, fmt: str) -> None:
    """Report each component's template version and the available one; exit 2 when an update is available."""
    from fleetstrap.update import check_updates, require_no_updates

    report = check_updates(path, template=template, to=to)
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
