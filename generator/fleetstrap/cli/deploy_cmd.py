"""`fleetstrap promote`, `rollback` and `resume`: day-2 changes as git commits or pull requests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fleetstrap import output
from fleetstrap.cli.complete import complete_environment, complete_service
from fleetstrap.cli.options import format_option, repo_dir, show_pull_request

if TYPE_CHECKING:
    from fleetstrap.deploy.apply import DeployReport, DeployRequest

F = TypeVar("F", bound=Callable[..., Any])

_common: list[Callable[[Any], Any]] = [
    repo_dir(),
    click.option("--pr", is_flag=True,
                 help="Commit on a fleetstrap/... branch off the default branch, push it and open a pull request "
                      "(GitHub; other remotes: the branch only). The checkout is not touched."),
    click.option("--dry-run", is_flag=True, help="Show the diff; write, commit and push nothing."),
    click.option("--remote-name", default="origin", show_default=True,
                 help="With --pr or --wait: the git remote to push to."),
    click.option("--github-url", default="https://github.com", show_default=True,
                 help="With --pr: the GitHub (Enterprise) the remote must be on for a pull request."),
    click.option("--token-env", metavar="NAME",
                 help="With --pr: environment variable holding the token (default: GH_TOKEN, GITHUB_TOKEN, gh)."),
    format_option(help_text="json: the outcome as one JSON object on stdout (the diff goes to stderr as text)."),
    click.option("--api-delay", type=float, default=None, hidden=True,
                 help="Seconds between GitHub API calls (PyGithub's pacing; tests use 0)."),
]


def _options(f: F) -> F:
    for opt in reversed(_common):
        f = opt(f)
    return f


def _run(request: DeployRequest, pr: bool, remote_name: str, github_url: str, token_env: str | None,
         api_delay: float | None, fmt: str) -> DeployReport:
    from dataclasses import replace

    from fleetstrap.deploy.apply import run_deploy
    from fleetstrap.publish.pullrequest import PrOptions

    if pr:
        target = PrOptions(remote_name, github_url, token_env)
        if api_delay is not None:
            target = replace(target, api=replace(target.api, seconds_between_requests=api_delay,
                                                 seconds_between_writes=api_delay))
        request = replace(request, pr=target)
    verb = {"promote": "promoting", "rollback": "rolling back", "resume": "resuming"}[request.action]
    with output.progress(f"{verb} {request.service} in {request.env}"):
        report = run_deploy(request)
    _show(report, json_out=fmt == "json")
    return report


def _json(report: DeployReport) -> dict[str, Any]:
    c = report.change
    return {"action": c.action, "service": c.service, "environment": c.env, "from": c.current, "to": c.target,
            "source_environment": c.source_env, "outcome": report.outcome, "commit": report.commit,
            "branch": report.branch, "url": report.url, "files": [f.path for f in c.files], "notes": list(c.notes),
            "journal": list(report.journal), "clusters": list(report.clusters)}


def _show(report: DeployReport, *, json_out: bool) -> None:
    change = report.change
    if json_out:
        output.data_json(_json(report))
    for note in change.notes:
        output.warn(note)
    if report.outcome == "up-to-date":
        output.success(f"up to date: {change.service} in {change.env} already "
                       + ("runs " + change.target if change.action != "resume" else "has its image automation on"))
        return
    diff = change.diff().rstrip("\n")
    if diff:
        (output.info if json_out else output.data)(diff)  # stdout carries the JSON object alone
    for line in report.journal:
        output.info(line)
    for line in report.clusters:
        output.success(line)
    _outcome(report)


def _outcome(report: DeployReport) -> None:
    subject = report.change.message.splitlines()[0]
    if show_pull_request(report.outcome, report.branch, report.url, subject):
        return
    if report.outcome == "would commit":
        output.info(f"dry run: nothing written ({subject})")
    elif report.outcome == "committed":
        output.success(f"committed {(report.commit or '')[:12]}: {subject}")


@click.command()
@click.argument("service", shell_complete=complete_service)
@click.option("--to", "to_env", required=True, metavar="ENV", shell_complete=complete_environment,
              help="The environment to promote into.")
@click.option("--from", "from_env", metavar="ENV", shell_complete=complete_environment,
              help="Take the version from this environment (default: the one before ENV in promotion order).")
@click.option("--version", "version", metavar="TAG", help="Promote this version; it must have run in --from.")
@click.option("--force", is_flag=True, help="Allow skipping environments in the promotion order.")
@click.option("--clusters", is_flag=True,
              help="Production: also read what each cluster runs, for the pull request body (needs cluster access).")
@click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), default=None, envvar="KUBECONFIG",
              help="With --clusters: kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
@_options
def promote(service: str, to_env: str, from_env: str | None, version: str | None, force: bool, clusters: bool,
            kubeconfig: Path | None, root: Path, pr: bool, dry_run: bool, remote_name: str, github_url: str,
            token_env: str | None, fmt: str, api_delay: float | None) -> None:
    """Promote SERVICE's version from the previous environment into --to (a commit, or a pull request)."""
    from fleetstrap.deploy.apply import DeployRequest

    _run(DeployRequest(root, "promote", service, to_env, from_env=from_env, version=version, force=force,
                       dry_run=dry_run, clusters=clusters, kubeconfig=kubeconfig),
         pr, remote_name, github_url, token_env, api_delay, fmt)


@click.command()
@click.argument("service", shell_complete=complete_service)
@click.option("--env", "env", required=True, metavar="ENV", shell_complete=complete_environment,
              help="The environment to roll back.")
@click.option("--to", "to", metavar="TAG",
              help="Go back to this version (it must have run in ENV; default: the one before the current).")
@click.option("--wait", "wait", is_flag=True,
              help="Push the commit to the branch the clusters follow (fast-forward only), request a reconcile on "
                   "each cluster of ENV and wait until it runs the rolled-back version.")
@click.option("--context", default=None, help="With --wait: kubeconfig context (default: the cluster's answer).")
@click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), default=None, envvar="KUBECONFIG",
              help="With --wait: kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="With --wait: seconds to wait per cluster.")
@_options
def rollback(service: str, env: str, to: str | None, wait: bool, context: str | None, kubeconfig: Path | None,
             timeout: float, root: Path, pr: bool, dry_run: bool, remote_name: str, github_url: str,
             token_env: str | None, fmt: str, api_delay: float | None) -> None:
    """Roll SERVICE in ENV back to its previous version and pin the image automation in git."""
    from fleetstrap.deploy.apply import DeployRequest, WaitOptions

    options = WaitOptions(remote_name, kubeconfig, context, timeout) if wait else None
    _run(DeployRequest(root, "rollback", service, env, version=to, dry_run=dry_run, wait=options),
         pr, remote_name, github_url, token_env, api_delay, fmt)


@click.command()
@click.argument("service", shell_complete=complete_service)
@click.option("--env", "env", required=True, metavar="ENV", shell_complete=complete_environment,
              help="The environment to resume.")
@_options
def resume(service: str, env: str, root: Path, pr: bool, dry_run: bool, remote_name: str, github_url: str,
           token_env: str | None, fmt: str, api_delay: float | None) -> None:
    """Undo rollback's pin: SERVICE's image automation in ENV picks new versions again."""
    from fleetstrap.deploy.apply import DeployRequest

    _run(DeployRequest(root, "resume", service, env, dry_run=dry_run), pr, remote_name, github_url, token_env,
         api_delay, fmt)
