"""Thin CLI: parse, call one library function, map errors to exit codes.

Commands live in their own modules and are imported only when invoked, so `fleetstrap --help`
stays fast and never imports copier.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from fleetstrap import __version__
from fleetstrap.errors import FleetstrapError, Terminated, environment_refusal, exit_code_for

# Listed in every command's --help (click rewraps epilogs; the \b keeps this one as written).
EXIT_CODES_HELP = ("\b\nExit codes:\n  0    ok\n  1    user error (bad input; nothing written)\n"
                   "  2    findings or conflicts\n  3    bug (please report it)\n  130  interrupted (Ctrl-C)\n"
                   "  143  terminated (SIGTERM)")
EXIT_TERMINATED = 143


# name -> (module, attribute, one-line help). The help is here so listing commands imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("fleetstrap.cli.init_cmd", "init", "Generate a fleet-infra GitOps repository."),
    "blueprints": ("fleetstrap.cli.init_cmd", "blueprints", "List the built-in blueprints."),
    "add": ("fleetstrap.cli.add_cmd", "add", "Add a service or a cluster to an existing fleet repo."),
    "validate": ("fleetstrap.cli.validate_cmd", "validate", "Check a GitOps repo offline, the way the cluster would."),
    "push": ("fleetstrap.cli.push_cmd", "push", "Commit and publish the repo to GitHub or any git remote."),
    "bootstrap": ("fleetstrap.cli.bootstrap_cmd", "bootstrap", "Install Flux or Argo CD on a cluster and sync it."),
    "status": ("fleetstrap.cli.bootstrap_cmd", "status", "Show template versions, commits and sync state."),
    "update": ("fleetstrap.cli.update_cmd", "update", "Update components to newer templates (3-way merge)."),
    "check-update": ("fleetstrap.cli.update_cmd", "check_update", "Report components with a newer template."),
    "promote": ("fleetstrap.cli.deploy_cmd", "promote", "Promote a service's version to the next environment."),
    "rollback": ("fleetstrap.cli.deploy_cmd", "rollback", "Roll a service back in an environment (git, pinned)."),
    "resume": ("fleetstrap.cli.deploy_cmd", "resume", "Resume a rolled-back service's image automation."),
    "telemetry": ("fleetstrap.cli.telemetry_cmd", "telemetry", "Telemetry tools (smoke check of an OTLP endpoint)."),
    "completion": ("fleetstrap.cli.completion_cmd", "completion", "Print a shell completion script."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 (click API)
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        cmd = getattr(module, spec[1])
        assert isinstance(cmd, click.Command)
        _add_exit_codes(cmd)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _add_exit_codes(cmd: click.Command) -> None:
    """Every command's --help ends with the exit codes (once, also for the subcommands of a group)."""
    if EXIT_CODES_HELP not in (cmd.epilog or ""):
        cmd.epilog = f"{cmd.epilog}\n\n{EXIT_CODES_HELP}" if cmd.epilog else EXIT_CODES_HELP
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _add_exit_codes(sub)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, "--version", "-V", prog_name="fleetstrap")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
@click.option("--color/--no-color", default=None, help="Force or disable colour.")
@click.option("--otlp-endpoint", envvar="FLEETSTRAP_OTLP_ENDPOINT", default=None,
              help="Send fleetstrap's own traces here (else OTEL_EXPORTER_OTLP_ENDPOINT).")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, color: bool | None, otlp_endpoint: str | None) -> None:
    """fleetstrap: start GitOps fleet repositories right, and keep them right."""
    from fleetstrap import output

    output.configure(quiet=quiet, color=color)
    ctx.ensure_object(dict)
    ctx.obj["otlp_endpoint"] = otlp_endpoint


def _command_name(argv: list[str]) -> str:
    # The value of the one global option that takes a value is not a command word.
    words = [a for i, a in enumerate(argv) if not a.startswith("-") and (i == 0 or argv[i - 1] != "--otlp-endpoint")]
    return " ".join(words[:2]) if words[:1] in (["add"], ["telemetry"]) else (words[0] if words else "")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    code = run(args)
    sys.exit(code)


def run(args: list[str]) -> int:
    """Run the CLI and return the exit code (tests call this directly)."""
    from fleetstrap.transaction import handle_signals

    tracer = _tracer(args)
    try:
        with handle_signals():  # SIGTERM raises Terminated, so every restore runs (exit 143)
            if tracer is None:
                cli.main(args=args, prog_name="fleetstrap", standalone_mode=False)
            else:
                with tracer(_command_name(args)):
                    cli.main(args=args, prog_name="fleetstrap", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exc:
        return exit_code_for(exc)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        # click turns the KeyboardInterrupt (and so Terminated) into Abort: the cause says which signal it was
        if isinstance(exc, Terminated) or isinstance(exc.__cause__ or exc.__context__, Terminated):
            _err("terminated")
            return EXIT_TERMINATED
        _err("interrupted")
        return exit_code_for(exc)
    except Terminated as exc:
        _err("terminated (SIGTERM)" if exc.signum == 15 else f"terminated by signal {exc.signum}")
        return exit_code_for(exc)
    except click.ClickException as exc:
        _err(exc.format_message())
        return exit_code_for(exc)
    except FleetstrapError as exc:
        refusal = environment_refusal(exc) if exit_code_for(exc) == 3 else None
        shown = refusal or exc  # the OS refusing a write is the user's environment, not a bug
        _err(shown.message, shown.hint)
        return exit_code_for(shown)
    except Exception as exc:
        refusal = environment_refusal(exc)
        if refusal is not None:
            _err(refusal.message, refusal.hint)
            return exit_code_for(refusal)
        if os.environ.get("FLEETSTRAP_DEBUG"):
            raise
        _err(f"internal error ({type(exc).__name__}): {_safe(exc)}; rerun with FLEETSTRAP_DEBUG=1 and report it")
        return exit_code_for(exc)


def _err(message: str, hint: str | None = None) -> None:
    from fleetstrap import output

    output.error(message.splitlines()[0] if message else "error", hint)


def _safe(exc: BaseException) -> str:
    from fleetstrap.redact import redact

    return redact(str(exc).splitlines()[0] if str(exc) else "")


def _tracer(args: list[str]) -> Any:
    """fleetstrap's own telemetry, only when an endpoint is configured (no import otherwise)."""
    endpoint = None
    for i, a in enumerate(args):
        if a == "--otlp-endpoint" and i + 1 < len(args):
            endpoint = args[i + 1]
        elif a.startswith("--otlp-endpoint="):
            endpoint = a.split("=", 1)[1]
    endpoint = endpoint or os.environ.get("FLEETSTRAP_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return None
    from fleetstrap.telemetry import command_tracer  # imports no OpenTelemetry code itself

    return command_tracer(endpoint, args)
