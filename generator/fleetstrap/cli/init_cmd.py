"""`fleetstrap init` and `fleetstrap blueprints`."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstrap import output
from fleetstrap.errors import AnswersError
from fleetstrap.gitrepo import Author


@click.command()
@click.argument("dest", type=click.Path(path_type=Path), default="fleet-infra")
@click.option("-b", "--blueprint", metavar="NAME|PATH", help="Start from a built-in blueprint or a YAML file.")
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
def init(dest: Path, blueprint: str | None, answers_file: Path | None, data: tuple[str, ...], defaults: bool,
         force: bool, overwrite: bool, author: str | None, no_commit: bool, no_validate: bool) -> None:
    """Generate a fleet-infra GitOps repository in DEST (default ./fleet-infra).

    Interactive on a terminal; with --blueprint/--answers/--data/--defaults (or without a terminal) it never prompts.
    """
    from fleetstrap.init import AnswerSources, InitRequest, init_fleet, stdin_is_tty

    interactive = stdin_is_tty() and not defaults and not blueprint and not answers_file and not data
    request = InitRequest(
        dest=dest,
        sources=AnswerSources(blueprint=blueprint, answers_file=answers_file, data=data, defaults=defaults,
                              interactive=interactive),
        force=force,
        overwrite=overwrite,
        author=_parse_author(author),
        commit=not no_commit,
        validate=not no_validate,
    )
    report = init_fleet(request)
    output.success(
        f"{report.answers.owner}/{report.answers.fleet_name}: {len(report.components)} components, "
        f"{report.files} files in {report.dest} ({report.seconds:.1f}s)"
    )
    if report.commit:
        output.info(f"  initial commit {report.commit[:12]} on {report.answers.branch}")
    output.info(f"  next: fleetstrap validate {report.dest}  ·  fleetstrap push {report.dest}")


def _parse_author(text: str | None) -> Author | None:
    if not text:
        return None
    name, sep, rest = text.partition("<")
    if not sep or not rest.endswith(">") or not name.strip():
        raise AnswersError(f"--author {text!r} must look like 'Name <email>'")
    return Author(name.strip(), rest[:-1].strip())


@click.command()
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human")
def blueprints(fmt: str) -> None:
    """List the built-in blueprints."""
    from fleetstrap.blueprints import list_blueprints

    bps = list_blueprints()
    if fmt == "json":
        output.data_json([{"name": b.name, "description": b.description, "extends": list(b.extends)} for b in bps])
        return
    output.table("Blueprints", ["name", "extends", "description"],
                 [(b.name, ", ".join(b.extends), b.description) for b in bps])
