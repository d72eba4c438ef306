"""`fleetstrap push`: commit, push (GitHub or any git remote), and configure GitHub for GitOps.

A command (a leaf): `push_repo(PushRequest) -> PushReport`; the runner is `runner.py`, over the forge layer
(`fleetstrap.publish`: auth, the GitHub API, the journaled and recording clients, keys, rulesets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fleetstrap.publish.github_api import ApiSettings

DEFAULT_ENVIRONMENTS = ("staging", "production")


@dataclass(frozen=True)
class PushRequest:
    path: Path
    owner: str | None = None  # default: owner in .fleetstrap/answers/fleet.yml
    repo: str | None = None  # default: fleet_name
    private: bool = True
    github_url: str = "https://github.com"  # GitHub Enterprise: https://ghe.example.com
    remote: str | None = None  # generic git remote: no GitHub API calls at all
    remote_name: str = "origin"
    branch: str = "main"
    message: str = "fleetstrap: publish fleet repository"
    token_env: str | None = None
    ssh_key: Path | None = None  # generic ssh remote
    known_hosts: Path | None = None
    rotate_keys: bool = False
    dry_run: bool = False
    # name -> environment variable holding the value (values never travel on a command line)
    secrets: tuple[tuple[str, str], ...] = ()
    variables: tuple[tuple[str, str], ...] = ()  # name -> value (not secret)
    environments: tuple[str, ...] | None = None  # None: the workflows' and the fleet's environments
    reviewers: tuple[str, ...] = ()  # users or org/team slugs, required on protected environments
    reviewer_environments: tuple[str, ...] = ("production",)
    required_approvals: int = 0  # pull request reviews required on main (0: none)
    protect_branch: bool = True  # the `fleetstrap <branch>` ruleset (deploy keys and admins bypass it)
    print_private_keys: bool = False
    api: ApiSettings = field(default_factory=ApiSettings)  # request pacing and the rate-limit bound


@dataclass(frozen=True)
class PushReport:
    repo_url: str
    remote_url: str
    branch: str
    commit: str | None
    dry_run: bool
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    in_place: tuple[str, ...] = ()
    planned: tuple[str, ...] = field(default=())  # every git operation and API write, in order
    warnings: tuple[str, ...] = ()
    private_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # only when asked to print


def push_repo(request: PushRequest) -> PushReport:
    from fleetstrap.push.runner import push_repo as run

    return run(request)


__all__ = ["DEFAULT_ENVIRONMENTS", "ApiSettings", "PushReport", "PushRequest", "push_repo"]
