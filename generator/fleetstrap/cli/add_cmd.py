"""`fleetstrap add service NAME`, `add cluster NAME` and `add monitoring`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from fleetstrap import output
from fleetstrap.answer_schema import choices_of
from fleetstrap.cli.complete import complete_environment
from fleetstrap.cli.options import format_option, repo_dir

if TYPE_CHECKING:
    from fleetstrap.add import AddReport

_commit_option = click.option("--commit/--no-commit", default=True, show_default=True,
                              help="Commit the change (as init does); --no-commit leaves it in the work tree.")


@click.group()
def add() -> None:
    """Add a service or a cluster to an existing fleet repo."""


def _report(report: AddReport, fmt: str) -> None:
    if fmt == "json":
        output.data_json({"component": report.component, "root": str(report.root), "files": list(report.files),
                          "commit": report.commit, "service_repo": str(report.service_repo or "") or None,
                          "seconds": round(report.seconds, 3)})
        return
    output.success(f"added {report.component}: {len(report.files)} files ({report.seconds:.1f}s)")
    if report.service_repo:
        output.info(f"  service repository: {report.service_repo}")
    if report.commit:
        output.info(f"  committed {report.commit[:12]}")


@add.command("service")
@click.argument("name")
@repo_dir()
@_commit_option
@click.option("--service-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Split layout: where the service's own repository goes (default: ../NAME beside the fleet).")
@format_option()
def add_service_cmd(name: str, root: Path, commit: bool, service_dir: Path | None, fmt: str) -> None:
    """Add service NAME: Rust source, chart, workflows and its GitOps wiring for every environment.

    In a split-layout fleet the source, chart and workflows go to the service's own repository and the
    fleet gets only the wiring (chart pulled from OCI).
    """
    from fleetstrap.add import AddRequest, add_service

    with output.progress(f"adding service {name}"):
        report = add_service(AddRequest(root, commit=commit), name, service_dir=service_dir)
    _report(report, fmt)


@add.command("cluster")
@click.argument("name")
@click.option("-e", "--environment", required=True, shell_complete=complete_environment,
              help="Environment the cluster serves.")
@click.option("--context", default="", help="kubeconfig context of the cluster.")
@click.option("--server", default="", help="API server URL for Argo CD (default: in-cluster).")
@repo_dir()
@_commit_option
@format_option()
def add_cluster_cmd(name: str, environment: str, context: str, server: str, root: Path, commit: bool,
                    fmt: str) -> None:
    """Add cluster NAME serving ENVIRONMENT."""
    from fleetstrap.add import AddRequest, add_cluster

    with output.progress(f"adding cluster {name}"):
        report = add_cluster(AddRequest(root, commit=commit), name, environment, context=context, server=server)
    _report(report, fmt)


@add.command("monitoring")
@click.option("--notifications", type=click.Choice(choices_of("notifications")), default=None,
              help="Alert destination (default: the fleet's answer).")
@repo_dir()
@_commit_option
@format_option()
def add_monitoring_cmd(notifications: str | None, root: Path, commit: bool, fmt: str) -> None:
    """Switch monitoring on: metrics stack, scrape configs, alert rules, dashboards, notifications."""
    from fleetstrap.add import AddRequest, add_monitoring

    with output.progress("adding monitoring"):
        report = add_monitoring(AddRequest(root, commit=commit), notifications)
    _report(report, fmt)
