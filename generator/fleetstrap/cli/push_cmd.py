"""`fleetstrap push`: commit and publish the fleet repo to GitHub (configured for GitOps) or any git remote."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from fleetstrap import output
from fleetstrap.cli.options import deprecated, format_option, repo_dir


def _pairs(values: tuple[str, ...], flag: str) -> tuple[tuple[str, str], ...]:
    out = []
    for v in values:
        name, sep, rest = v.partition("=")
        if not sep or not name or not rest:
            raise click.BadParameter(f"expected NAME=VALUE, got {v.split('=')[0]!r}...", param_hint=flag)
        out.append((name, rest))
    return tuple(out)


@click.command(epilog="The fleet directory is -C/--dir; --github-repo names the repository on GitHub.")
@repo_dir(positional=True, repo_alias=False)
@click.option("--owner", help="GitHub user or organization (default: owner in the fleet answers).")
@click.option("--github-repo", "repo_name", metavar="NAME",
              help="GitHub repository name (default: the fleet name).")
@click.option("--repo", "old_repo_name", hidden=True, default=None)
@click.option("--private/--public", default=True, show_default=True, help="Visibility of a new repository.")
@click.option("--github-url", default="https://github.com", show_default=True, envvar="FLEETSTRAP_GITHUB_URL",
              help="GitHub Enterprise: its web URL (the API is <url>/api/v3); or $FLEETSTRAP_GITHUB_URL.")
@click.option("--remote", help="Push to this https or ssh git URL instead, without any GitHub API call.")
@click.option("--branch", default="main", show_default=True)
@click.option("--message", "-m", default="fleetstrap: publish fleet repository", show_default=True,
              help="Commit message when there are changes to commit.")
@click.option("--token-env", metavar="NAME",
              help="Environment variable holding the token (default: GH_TOKEN, GITHUB_TOKEN, `gh auth token`).")
@click.option("--ssh-key", type=click.Path(dir_okay=False, path_type=Path), help="Private key for an ssh --remote.")
@click.option("--known-hosts", type=click.Path(dir_okay=False, path_type=Path),
              help="known_hosts file for an ssh --remote (default: accept a new host key once).")
@click.option("--rotate-keys", is_flag=True,
              help="Generate new deploy keys (clusters' and the release workflow's) and replace the registered ones.")
@click.option("--secret", "secrets", multiple=True, metavar="NAME=ENV_VAR",
              help="Set Actions secret NAME from environment variable ENV_VAR (repeatable).")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set Actions variable (repeatable).")
@click.option("--environment", "environments", multiple=True,
              help="GitHub environments to ensure (default: those the workflows and the fleet use).")
@click.option("--reviewer", "reviewers", multiple=True, metavar="USER|ORG/TEAM",
              help="Required reviewer for protected environments (repeatable).")
@click.option("--reviewer-environment", "reviewer_envs", multiple=True, default=("production",), show_default=True,
              help="Environments that require the reviewers.")
@click.option("--required-approvals", type=click.IntRange(0, 6), default=0, show_default=True,
              help="Pull request approvals required on the branch.")
@click.option("--no-branch-protection", is_flag=True,
              help="Leave the branch alone: no 'fleetstrap <branch>' ruleset, classic protection untouched.")
@click.option("--print-keys", is_flag=True, help="Print the private deploy keys once, to stdout.")
@click.option("--max-rate-limit-wait", type=float, default=60.0, show_default=True,
              help="Seconds to wait for a GitHub rate limit reset before failing.")
@click.option("--api-delay", type=float, default=None, hidden=True,
              help="Seconds between GitHub API calls (PyGithub's pacing; tests use 0).")
@click.option("--dry-run", is_flag=True, help="List every git operation and API write; change nothing.")
@format_option(json_alias=True, help_text="json: the report as one JSON object on stdout.")
def push(root: Path, owner: str | None, repo_name: str | None, old_repo_name: str | None, private: bool,
         github_url: str, remote: str | None, branch: str, message: str, token_env: str | None, ssh_key: Path | None,
         known_hosts: Path | None, rotate_keys: bool, secrets: tuple[str, ...], variables: tuple[str, ...],
         environments: tuple[str, ...], reviewers: tuple[str, ...], reviewer_envs: tuple[str, ...],
         required_approvals: int, no_branch_protection: bool, print_keys: bool, max_rate_limit_wait: float,
         api_delay: float | None, dry_run: bool, fmt: str) -> None:
    """Commit the fleet and publish it: create or reuse the GitHub repo, deploy keys, secrets, protection."""
    from fleetstrap.publish.github_api import ApiSettings
    from fleetstrap.push import PushRequest, push_repo

    if old_repo_name is not None:
        deprecated("push --repo NAME", "--github-repo NAME")
        if repo_name is not None and repo_name != old_repo_name:
            raise click.UsageError(f"two GitHub repository names given: {repo_name} and {old_repo_name}")
        repo_name = old_repo_name
    path = root

    request = PushRequest(
        path=path, owner=owner, repo=repo_name, private=private, github_url=github_url, remote=remote,
        branch=branch, message=message, token_env=token_env, ssh_key=ssh_key, known_hosts=known_hosts,
        rotate_keys=rotate_keys, dry_run=dry_run, secrets=_pairs(secrets, "--secret"),
        variables=_pairs(variables, "--var"), environments=environments or None, reviewers=reviewers,
        reviewer_environments=reviewer_envs, required_approvals=required_approvals,
        protect_branch=not no_branch_protection, print_private_keys=print_keys,
        api=ApiSettings(max_rate_limit_wait=max_rate_limit_wait),
    )
    if api_delay is not None:
        request = replace(request, api=replace(request.api, seconds_between_requests=api_delay,
                                               seconds_between_writes=api_delay))
    with output.progress("publishing" if not dry_run else "planning the push"):
        report = push_repo(request)
    if fmt == "json":
        output.data_json({
            "repo_url": report.repo_url, "remote_url": report.remote_url, "branch": report.branch,
            "commit": report.commit, "dry_run": report.dry_run, "created": list(report.created),
            "updated": list(report.updated), "in_place": list(report.in_place), "planned": list(report.planned),
            "warnings": list(report.warnings),
            # --print-keys asked for them on stdout; in the JSON so that stdout stays one JSON object
            **({"private_keys": dict(report.private_keys)} if report.private_keys else {}),
        })
    if report.dry_run:
        output.step("dry run: nothing was changed; it would run:")
        for op in report.planned:
            output.info(f"  {op}")
    else:
        for item in report.created:
            output.success(f"created {item}")
        for item in report.updated:
            output.success(f"updated {item}")
        if report.in_place:
            output.info(f"already in place: {', '.join(report.in_place)}")
        output.success(f"{report.repo_url} ({report.branch} at {(report.commit or '')[:12]})")
    if fmt != "json":
        for cluster, key in report.private_keys:
            output.data(f"# deploy key for cluster {cluster}\n{key}")
