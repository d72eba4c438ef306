"""`fleetstrap init` and `fleetstrap blueprints`."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstrap import output
from fleetstrap.cli.complete import complete_blueprint
from fleetstrap.cli.options import format_option
from fleetstrap.errors import AnswersError
from fleetstrap.gitrepo import Author


@click.command()
@click.argument("dest", type=click.Path(path_type=Path), required=False)
@click.option("-C", "--dir", "dir_", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="The fleet repository directory to create (same as DEST; default: ./fleet-infra).")
@click.option("-b", "--blueprint", metavar="NAME|PATH", shell_complete=complete_blueprint,
              help="Start from a built-in blueprint or a YAML file.")
@click.option("-a", "--answers", "answers_file", type=click.Path(path_type=Path, dir_okay=False),
              help="YAML answers file (e.g. .fleetstrap/answers/fleet.yml of another fleet).")
@click.option("-d", "--data", multiple=True, metavar="KEY=VALUE", help="One answer (value read as YAML); repeatable.")
@click.option("--defaults", is_flag=True, help="Do not prompt: use defaults for every answer not given.")
@click.option("--force", is_flag=True, help="Render into a non-empty destination.")
@click.option("--overwrite", is_flag=True,
              help="With --force: replace the destination's files that the templates also write.")
@click.option("--author", metavar="'NAME <EMAIL>'", help="Author of the initial commit (default: git config).")
@click.option("--no-commit", is_flag=True, help="Do not git init and commit.")
@click.option("--no-validate", is_flag=True, help="Skip the offline validation gate.")
@format_option()
def init(dest: Path | None, dir_: Path | None, blueprint: str | None, answers_file: Path | None,
         data: tuple[str, ...], defaults: bool, force: bool, overwrite: bool, author: str | None, no_commit: bool,
         no_validate: bool, fmt: str) -> None:
    """Generate a fleet-infra GitOps repository in DEST or -C DIR (default ./fleet-infra).

    Interactive on a terminal; with --blueprint/--answers/--data it asks only for the owner, and only while it is
    a blueprint's placeholder (example-org); with --defaults/--format json (or without a terminal) it never prompts.
    """
    from fleetstrap.init import AnswerSources, InitRequest, init_fleet, stdin_is_tty

    if dest is not None and dir_ is not None and dest != dir_:
        raise click.UsageError(f"two destinations given: {dest} and -C {dir_}")
    dest = dest or dir_ or Path("fleet-infra")
    # --format json is for programs: the questions would share stdout with the JSON, so it never prompts
    terminal = fmt != "json" and stdin_is_tty() and not defaults
    interactive = terminal and not blueprint and not answers_file and not data
    request = InitRequest(
        dest=dest,
        sources=AnswerSources(blueprint=blueprint, answers_file=answers_file, data=data, defaults=defaults,
                              interactive=interactive, ask_owner=terminal and not interactive),
        force=force,
        overwrite=overwrite,
        author=_parse_author(author),
        commit=not no_commit,
        validate=not no_validate,
    )
    with output.progress(f"generating {dest}"):
        report = init_fleet(request)
    if fmt == "json":
        output.data_json({"dest": str(report.dest), "owner": report.answers.owner,
                          "fleet_name": report.answers.fleet_name, "branch": report.answers.branch,
                          "components": list(report.components), "files": report.files, "commit": report.commit,
                          "seconds": round(report.seconds, 3)})
        return
    output.success(
        f"{report.answers.owner}/{report.answers.fleet_name}: {len(report.components)} components, "
        f"{report.files} files in {report.dest} ({report.seconds:.1f}s)"
    )
    if report.commit:
        output.info(f"  initial commit {report.commit[:12]} on {report.answers.branch}")
    output.info(f"  next: fleetstrap validate -C {report.dest}  ·  fleetstrap push -C {report.dest}")


def _parse_author(text: str | None) -> Author | None:
    if not text:
        return None
    name, sep, rest = text.partition("<")
    if not sep or not rest.endswith(">") or not name.strip():
        raise AnswersError(f"--author {text!r} must look like 'Name <email>'")
    return Author(name.strip(), rest[:-1].strip())


@click.command()
@format_option()
def blueprints(fmt: str) -> None:
    """List the built-in blueprints."""
    from fleetstrap.blueprints import list_blueprints

    bps = list_blueprints()
    if fmt == "json":
        output.data_json([{"name": b.name, "description": b.description, "extends": list(b.extends)} for b in bps])
        return
    output.table("Blueprints", ["name", "extends", "description"],
                 [(b.name, ", ".join(b.extends), b.description) for b in bps])
