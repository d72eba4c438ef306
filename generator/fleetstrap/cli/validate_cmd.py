"""`fleetstrap validate`: parse options, run the gate, print the report."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstrap.cli.options import format_option, repo_dir
from fleetstrap.validate.model import CHECKS, DEFAULT_KUBERNETES_VERSION


@click.command("validate")
@repo_dir(positional=True, repo_alias=False, help_text="The repository to check (any GitOps repo).")
@format_option("human", "json", "sarif", help_text="Output format (json and sarif go to stdout).")
@click.option("--disable", "disabled", multiple=True, type=click.Choice(CHECKS), help="Skip a check (repeatable).")
@click.option("--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION, show_default=True,
              help="Kubernetes minor version for the core schemas.")
@click.option("--schema-location", "locations", multiple=True,
              help="CRD schemas: a directory ({group}/{kind}_{version}.json) or a URL/path template (repeatable). "
                   "Looked up first, then $FLEETSTRAP_CRD_SCHEMAS, the repo's CRDs, the bundled schemas, the "
                   "online catalog.")
@click.option("--strict", is_flag=True, help="Objects without a schema are errors.")
@click.option("--offline", is_flag=True, help="Never fetch schemas over the network (the cache is still used).")
@click.option("--allow-remote-bases", "remote_bases", is_flag=True,
              help="Let kustomize fetch remote bases (URLs, git repos); never with --offline.")
@click.option("--fast", is_flag=True, help="Skip the slow external tools (helm, actionlint, hadolint).")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where fetched schemas are cached.")
@click.option("--otelcol", default=None, envvar="FLEETSTRAP_OTELCOL", metavar="BINARY",
              help="OpenTelemetry Collector binary whose `validate` loads every collector config "
                   "(default: otelcol-contrib or otelcol on PATH).")
def validate(root: Path, fmt: str, disabled: tuple[str, ...], kubernetes_version: str, locations: tuple[str, ...],
             strict: bool, offline: bool, remote_bases: bool, fast: bool, cache_dir: Path | None,
             otelcol: str | None) -> None:
    """Check a GitOps repo offline, the way the cluster would."""
    import json

    from fleetstrap import output
    from fleetstrap.errors import FindingsError, UserError
    from fleetstrap.validate import ValidateOptions, validate_repo
    from fleetstrap.validate.formats import build_json, build_sarif, print_human

    path = root
    if not path.is_dir():
        raise UserError(f"not a directory: {path}")
    options = ValidateOptions(kubernetes_version=kubernetes_version, disabled=frozenset(disabled), strict=strict,
                              schema_locations=locations, cache_dir=cache_dir, offline=offline, fast=fast,
                              otelcol=otelcol, remote_bases=remote_bases)
    with output.progress("validating"):
        report = validate_repo(path, options)
    if fmt == "json":
        output.data(json.dumps(build_json(report), indent=2))
    elif fmt == "sarif":
        output.data(json.dumps(build_sarif(report), indent=2))
    else:
        print_human(report)
    if report.errors:
        raise FindingsError(report.summary())
    if fmt == "human":
        output.success(report.summary())
