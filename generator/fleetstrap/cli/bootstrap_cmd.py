"""`fleetstrap bootstrap CLUSTER` and `fleetstrap status [CLUSTER]`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fleetstrap import output
from fleetstrap.cli.complete import complete_cluster
from fleetstrap.cli.options import format_option, looks_like_dir, repo_dir

if TYPE_CHECKING:
    from fleetstrap.bootstrapper import BootstrapReport

_kube_options = [
    click.option("--context", default=None, help="kubeconfig context (default: the cluster's answer, else current)."),
    click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), default=None,
                 envvar="KUBECONFIG", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)."),
]


F = TypeVar("F", bound=Callable[..., Any])


def _kube(f: F) -> F:
    for opt in reversed(_kube_options):
        f = opt(f)
    return f


@click.command()
@click.argument("cluster", shell_complete=complete_cluster)
@repo_dir()
@_kube
@click.option("--deploy-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Private deploy key (OpenSSH) for this cluster (default: the one `fleetstrap push` created).")
@click.option("--known-hosts", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="known_hosts for the git host (default: scanned with ssh-keyscan).")
@click.option("--spoke-context", "spoke_contexts", metavar="NAME=CONTEXT", multiple=True,
              help="Argo CD hub: the kube context of spoke cluster NAME (default: its `context` answer); repeatable.")
@click.option("--rotate-keys", is_flag=True, help="Replace an existing source Secret and the spokes' tokens.")
@click.option("--dry-run", is_flag=True, help="Print every object and git change; touch nothing.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds to wait for each readiness stage.")
@format_option()
def bootstrap(cluster: str, root: Path, context: str | None, kubeconfig: Path | None, deploy_key: Path | None,
              known_hosts: Path | None, spoke_contexts: tuple[str, ...], rotate_keys: bool, dry_run: bool,
              timeout: float, fmt: str) -> None:
    """Install the fleet's GitOps engine on CLUSTER and wait until it runs the pushed commit."""
    from fleetstrap.bootstrapper import BootstrapRequest, bootstrap_cluster

    if looks_like_dir(cluster):
        raise click.UsageError(f"{cluster!r} is a directory, not a cluster name: "
                               f"fleetstrap bootstrap CLUSTER -C {cluster}")
    with output.progress(f"bootstrapping {cluster}" if not dry_run else f"planning the bootstrap of {cluster}"):
        report = bootstrap_cluster(BootstrapRequest(
            root=root.resolve(), cluster=cluster, context=context, kubeconfig=kubeconfig, deploy_key=deploy_key,
            known_hosts=known_hosts, rotate_keys=rotate_keys, dry_run=dry_run, timeout=timeout,
            spoke_contexts=spoke_contexts,
        ))
    if fmt == "json":
        output.data_json(dataclasses.asdict(report))
        return
    if report.dry_run:
        _print_dry_run(report)
        return
    for note in report.notes:
        output.info(note)
    if report.changed:
        n = sum(1 for c in report.changes if c.changed)
        output.success(f"{report.cluster} bootstrapped ({', '.join(report.engines)}): {n} change(s), "
                       f"in sync at {report.revision}")
    else:
        output.success(f"{report.cluster} already bootstrapped: nothing changed, in sync at {report.revision}")


def _print_dry_run(report: BootstrapReport) -> None:
    """Every object it would apply, the diffs to the cluster (or why there is none), the repo changes."""
    for text in report.objects:
        output.data(text)
    for diff in report.diffs:
        output.data(diff)
    if report.offline:
        output.warn(f"no cluster reachable ({report.offline}): {len(report.objects)} object(s) not compared "
                    "with the cluster")
    else:
        counts: dict[str, int] = {}
        for c in report.changes:
            if c.what == "apply":
                counts[c.outcome] = counts.get(c.outcome, 0) + 1
        output.info("against the cluster: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))
    for c in report.changes:
        if c.what == "file" and c.changed:
            output.info(f"would {'create' if c.outcome == 'created' else 'update'} {c.ref}")
    if any(c.what == "file" and c.changed for c in report.changes):
        output.info(f"would commit and push these to {report.revision.split('@')[0]}")
    if report.unchecked:
        output.warn(f"not schema-checked (no schemas available): {', '.join(report.unchecked)}")
    output.success(f"dry run for {report.cluster}: {len(report.objects)} object(s); nothing was changed")


@click.command()
@click.argument("cluster", required=False, shell_complete=complete_cluster)
@repo_dir()
@_kube
@format_option()
@click.pass_context
def status(ctx: click.Context, cluster: str | None, root: Path, context: str | None, kubeconfig: Path | None,
           fmt: str) -> None:
    """Template version per component, last pushed commit, and each cluster's sync state (all, or CLUSTER)."""
    from fleetstrap.cli.options import deprecated
    from fleetstrap.status import StatusRequest, fleet_status

    if cluster is not None and looks_like_dir(cluster):
        # `status ./fleet-infra` used to look for a cluster named so; the directory is -C's
        if ctx.params.get("root") is not None or ctx.params.get("_dir_repo") is not None:
            raise click.UsageError(f"{cluster!r} is a directory, not a cluster name (the fleet is -C {root})")
        deprecated(f"status {cluster}", f"status -C {cluster}")
        root, cluster = Path(cluster), None
    with output.progress("reading the fleet and its clusters"):
        report = fleet_status(StatusRequest(root=root.resolve(), cluster=cluster, context=context,
                                            kubeconfig=kubeconfig))
    if fmt == "json":
        output.data_json(dataclasses.asdict(report))
        return
    pushed = report.pushed_commit[:12] or "unknown"
    local = report.local_commit[:12] or "none"
    output.table(f"fleet ({report.branch}: local {local}, pushed {pushed})", ["component", "template version"],
                 [(c.name, c.template_version) for c in report.components])
    output.table("clusters", ["cluster", "engine", "revision", "state"],
                 [(c.name, c.engine, c.revision or "-", c.state) for c in report.clusters])
    for c in report.clusters:
        if c.objects:
            engine = "Flux" if c.engine == "flux" else "Argo CD"
            output.table(f"{c.name}: {engine} objects", ["object", "state"], list(c.objects))
