"""`fleetstrap completion SHELL`: print click's completion script."""

from __future__ import annotations

import click

from fleetstrap import output


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script; e.g. eval "$(fleetstrap completion bash)"."""
    from click.shell_completion import get_completion_class

    from fleetstrap.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None
    comp = cls(cli, {}, "fleetstrap", "_FLEETSTRAP_COMPLETE")
    output.data(comp.source())
