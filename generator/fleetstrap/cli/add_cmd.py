"""`fleetstrap add service NAME` and `fleetstrap add cluster NAME`."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstrap import output

_repo_option = click.option("-C", "--repo", "root", type=click.Path(path_type=Path, file_okay=False),
                            default=".", show_default=True, help="The fleet repository.")
_commit_option = click.option("--commit/--no-commit", default=True, show_default=True,
                              help="Commit the change (as init does); --no-commit leaves it in the work tree.")


@click.group()
def add() -> None:
    """Add a service or a cluster to an existing fleet repo."""


@add.command("service")
@click.argument("name")
@_repo_option
@_commit_option
@click.option("--service-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Split layout: where the service's own repository goes (default: ../NAME beside the fleet).")
def add_service_cmd(name: str, root: Path, commit: bool, service_dir: Path | None) -> None:
    """Add service NAME: Rust source, chart, workflows and its GitOps wiring for every environment.

    In a split-layout fleet the source, chart and workflows go to the service's own repository and the
    fleet gets only the wiring (chart pulled from OCI).
    """
    from fleetstrap.add import AddTarget, add_service

    report = add_service(AddTarget(root, commit=commit), name, service_dir=service_dir)
    output.success(f"added {report.component}: {len(report.files)} files ({report.seconds:.1f}s)")
    if report.service_repo:
        output.info(f"  service repository: {report.service_repo}")
    if report.commit:
        output.info(f"  committed {report.commit[:12]}")


@add.command("cluster")
@click.argument("name")
@click.option("-e", "--environment", required=True, help="Environment the cluster serves.")
@click.option("--context", default="", help="kubeconfig context of the cluster.")
@click.option("--server", default="", help="API server URL for Argo CD (default: in-cluster).")
@_repo_option
@_commit_option
def add_cluster_cmd(name: str, environment: str, context: str, server: str, root: Path, commit: bool) -> None:
    """Add cluster NAME serving ENVIRONMENT."""
    from fleetstrap.add import AddTarget, add_cluster

    report = add_cluster(AddTarget(root, commit=commit), name, environment, context=context, server=server)
    output.success(f"added {report.component}: {len(report.files)} files ({report.seconds:.1f}s)")
    if report.commit:
        output.info(f"  committed {report.commit[:12]}")


@add.command("monitoring")
@click.option("--notifications", type=click.Choice(["none", "slack", "github", "webhook"]), default=None,
              help="Alert destination (default: the fleet's answer).")
@_repo_option
@_commit_option
def add_monitoring_cmd(notifications: str | None, root: Path, commit: bool) -> None:
    """Switch monitoring on: metrics stack, scrape configs, alert rules, dashboards, notifications."""
    from fleetstrap.add import AddTarget, add_monitoring

    report = add_monitoring(AddTarget(root, commit=commit), notifications)
    output.success(f"added {report.component}: {len(report.files)} files ({report.seconds:.1f}s)")
    if report.commit:
        output.info(f"  committed {report.commit[:12]}")
