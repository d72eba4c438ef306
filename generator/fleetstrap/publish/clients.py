"""The clients push works through: GitHub, git, the local key store. Every write is journaled as the request
it sends ("POST /user/repos ..."); a dry run swaps in the recording variants, which journal and do nothing.

Reads always go to the real thing when there is one (a dry run with a token compares against GitHub); without
a token, `OfflineGitHub` answers like an account where the repository does not exist yet."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from fleetstrap import gitrepo

from . import keys, rules
from .github_api import GitHubApi, Me

NEW_COMMIT = "(new commit)"  # what a recorded commit answers: a commit would be made here


class GitHubReads(Protocol):
    def me(self) -> Me: ...
    def get_repo(self, owner: str, name: str) -> dict[str, Any] | None: ...
    def owner_type(self, owner: str) -> str | None: ...
    def list_keys(self, owner: str, name: str) -> list[dict[str, Any]]: ...
    def secret_names(self, owner: str, name: str) -> set[str]: ...
    def variables(self, owner: str, name: str) -> dict[str, str]: ...
    def rulesets(self, owner: str, name: str) -> list[dict[str, Any]] | None: ...
    def ruleset(self, owner: str, name: str, ruleset_id: int) -> dict[str, Any] | None: ...
    def environment(self, owner: str, name: str, env: str) -> dict[str, Any] | None: ...
    def classic_protection(self, owner: str, name: str, branch: str) -> dict[str, Any] | None: ...
    def user(self, login: str) -> dict[str, Any] | None: ...
    def team(self, org: str, slug: str) -> dict[str, Any] | None: ...
    def check_can_read(self, owner: str, name: str, area: str) -> None: ...


class OfflineGitHub:
    """GitHubReads without a token (dry run only): the repository does not exist yet, nothing is set."""

    def __init__(self, login: str) -> None:
        self.login = login

    def me(self) -> Me:
        return Me(self.login, None)

    def get_repo(self, owner: str, name: str) -> dict[str, Any] | None:  # noqa: ARG002 (protocol)
        return None

    def owner_type(self, owner: str) -> str | None:  # noqa: ARG002
        return "User"

    def list_keys(self, owner: str, name: str) -> list[dict[str, Any]]:  # noqa: ARG002
        return []

    def secret_names(self, owner: str, name: str) -> set[str]:  # noqa: ARG002
        return set()

    def variables(self, owner: str, name: str) -> dict[str, str]:  # noqa: ARG002
        return {}

    def rulesets(self, owner: str, name: str) -> list[dict[str, Any]] | None:  # noqa: ARG002
        return []

    def ruleset(self, owner: str, name: str, ruleset_id: int) -> dict[str, Any] | None:  # noqa: ARG002
        return None

    def environment(self, owner: str, name: str, env: str) -> dict[str, Any] | None:  # noqa: ARG002
        return None

    def classic_protection(self, owner: str, name: str, branch: str) -> dict[str, Any] | None:  # noqa: ARG002
        return None

    def user(self, login: str) -> dict[str, Any] | None:
        return {"id": 0, "login": login, "type": "User"}  # unknown without a token; listed, not resolved

    def team(self, org: str, slug: str) -> dict[str, Any] | None:
        return {"id": 0, "slug": f"{org}/{slug}"}

    def check_can_read(self, owner: str, name: str, area: str) -> None:  # noqa: ARG002
        return None


class RecordingGitHub:
    """GitHub writes, journaled as the request each sends; nothing is sent (the dry-run client)."""

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal

    def create_repo(self, owner: str, name: str, *, org: bool, private: bool) -> dict[str, Any] | None:
        path = f"/orgs/{owner}/repos" if org else "/user/repos"
        self.journal.append(f"POST {path} (create {'private' if private else 'public'} repository {owner}/{name})")
        return None

    def create_key(self, owner: str, name: str, title: str, key: str, read_only: bool) -> None:  # noqa: ARG002
        mode = "read-only" if read_only else "read-write"
        self.journal.append(f"POST /repos/{owner}/{name}/keys (deploy key {title}, {mode})")

    def delete_key(self, owner: str, name: str, key_id: int) -> None:
        self.journal.append(f"DELETE /repos/{owner}/{name}/keys/{key_id} (replace a deploy key)")

    def set_secret(self, owner: str, name: str, secret: str, value: str) -> None:  # noqa: ARG002
        self.journal.append(f"PUT /repos/{owner}/{name}/actions/secrets/{secret} (sealed with the repo key)")

    def set_variable(self, owner: str, name: str, var: str, value: str, *, exists: bool) -> None:  # noqa: ARG002
        base = f"/repos/{owner}/{name}/actions/variables"
        self.journal.append(f"PATCH {base}/{var}" if exists else f"POST {base} ({var})")

    def put_environment(self, owner: str, name: str, env: str, body: dict[str, Any]) -> None:
        who = f" with reviewers {', '.join(str(r['id']) for r in body['reviewers'])}" if body.get("reviewers") else ""
        path = f"/repos/{quote(owner)}/{quote(name)}/environments/{quote(env, safe='')}"
        self.journal.append(f"PUT {path}{who}")

    def create_ruleset(self, owner: str, name: str, body: dict[str, Any]) -> None:
        checks = ", ".join(rules.required_checks(body)) or "none"
        self.journal.append(f"POST /repos/{quote(owner)}/{quote(name)}/rulesets ({_label(body)}; required checks: "
                            f"{checks}; deploy keys and admins bypass)")

    def update_ruleset(self, owner: str, name: str, ruleset_id: int, body: dict[str, Any]) -> None:
        self.journal.append(f"PUT /repos/{quote(owner)}/{quote(name)}/rulesets/{ruleset_id} ({_label(body)}: "
                            "add what is missing)")

    def delete_classic_protection(self, owner: str, name: str, branch: str) -> None:
        self.journal.append(f"DELETE /repos/{quote(owner)}/{quote(name)}/branches/{quote(branch)}/protection "
                            "(classic protection, replaced by the ruleset)")


def _label(body: dict[str, Any]) -> str:
    name = str(body.get("name"))
    return f"ruleset '{name}' on {rules.ruleset_branch(name)}"


class JournaledGitHub(RecordingGitHub):
    """The real writes, each journaled first."""

    def __init__(self, journal: list[str], api: GitHubApi) -> None:
        super().__init__(journal)
        self.api = api

    def create_repo(self, owner: str, name: str, *, org: bool, private: bool) -> dict[str, Any] | None:
        super().create_repo(owner, name, org=org, private=private)
        return self.api.create_repo(owner, name, org=org, private=private)

    def create_key(self, owner: str, name: str, title: str, key: str, read_only: bool) -> None:
        super().create_key(owner, name, title, key, read_only)
        self.api.create_key(owner, name, title, key, read_only)

    def delete_key(self, owner: str, name: str, key_id: int) -> None:
        super().delete_key(owner, name, key_id)
        self.api.delete_key(owner, name, key_id)

    def set_secret(self, owner: str, name: str, secret: str, value: str) -> None:
        super().set_secret(owner, name, secret, value)
        self.api.set_secret(owner, name, secret, value)

    def set_variable(self, owner: str, name: str, var: str, value: str, *, exists: bool) -> None:
        super().set_variable(owner, name, var, value, exists=exists)
        self.api.set_variable(owner, name, var, value, exists=exists)

    def put_environment(self, owner: str, name: str, env: str, body: dict[str, Any]) -> None:
        super().put_environment(owner, name, env, body)
        self.api.put_environment(owner, name, env, body)

    def create_ruleset(self, owner: str, name: str, body: dict[str, Any]) -> None:
        super().create_ruleset(owner, name, body)
        self.api.create_ruleset(owner, name, body)

    def update_ruleset(self, owner: str, name: str, ruleset_id: int, body: dict[str, Any]) -> None:
        super().update_ruleset(owner, name, ruleset_id, body)
        self.api.update_ruleset(owner, name, ruleset_id, body)

    def delete_classic_protection(self, owner: str, name: str, branch: str) -> None:
        super().delete_classic_protection(owner, name, branch)
        self.api.delete_classic_protection(owner, name, branch)


class RecordingGit:
    """The git writes of push, journaled as the command each runs; nothing runs (the dry-run client)."""

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal

    def init(self, root: Path, branch: str) -> None:  # noqa: ARG002 (protocol)
        self.journal.append(f"git init -b {branch}")

    def rename_branch(self, root: Path, current: str, branch: str) -> None:  # noqa: ARG002
        self.journal.append(f"git branch -m {current} {branch}")

    def commit(self, root: Path, message: str, branch: str) -> str | None:  # noqa: ARG002
        self.journal.append(f"git add -A && git commit -m {message!r}")
        return NEW_COMMIT

    def set_remote(self, root: Path, remote: str, url: str) -> str:  # noqa: ARG002
        self.journal.append(f"git remote {remote} -> {url} (set if different)")
        return "in place"

    def fetch(self, root: Path, remote: gitrepo.Remote, branch: str) -> None:  # noqa: ARG002
        self.journal.append(f"git fetch {remote.name} {branch} (to compare history)")

    def push(self, root: Path, remote: gitrepo.Remote, branch: str) -> None:  # noqa: ARG002
        self.journal.append(f"git push {remote.name} HEAD:refs/heads/{branch} (no force)")


class JournaledGit(RecordingGit):
    """The real git writes (fleetstrap.gitrepo), each journaled first."""

    def init(self, root: Path, branch: str) -> None:
        super().init(root, branch)
        gitrepo.ensure_repo(root, branch)

    def rename_branch(self, root: Path, current: str, branch: str) -> None:
        super().rename_branch(root, current, branch)
        gitrepo.ensure_branch(root, branch)

    def commit(self, root: Path, message: str, branch: str) -> str | None:
        super().commit(root, message, branch)
        return gitrepo.ensure_commit(root, message, branch=branch)

    def set_remote(self, root: Path, remote: str, url: str) -> str:
        super().set_remote(root, remote, url)
        return gitrepo.ensure_remote(root, remote, url)

    def fetch(self, root: Path, remote: gitrepo.Remote, branch: str) -> None:
        super().fetch(root, remote, branch)
        gitrepo.fetch(root, remote, branch)

    def push(self, root: Path, remote: gitrepo.Remote, branch: str) -> None:
        super().push(root, remote, branch)
        gitrepo.push(root, remote, branch)


class RecordingKeys:
    """Key pairs push would make, journaled; no key is generated or written (the dry-run client)."""

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal

    def new_deploy_key(self, owner: str, name: str, cluster: str, *, rotate: bool) -> keys.DeployKey | None:
        path = keys.deploy_key_path(owner, name, cluster)
        self.journal.append(f"{'rotate' if rotate else 'generate'} ed25519 key for {cluster} at {path} (0600)")
        return None

    def new_release_key(self, owner: str, name: str) -> tuple[str, str]:  # noqa: ARG002
        self.journal.append(f"generate ed25519 key {keys.RELEASE_KEY_TITLE} (in memory only)")
        return "", ""


class JournaledKeys(RecordingKeys):
    def new_deploy_key(self, owner: str, name: str, cluster: str, *, rotate: bool) -> keys.DeployKey | None:
        super().new_deploy_key(owner, name, cluster, rotate=rotate)
        return keys.ensure_deploy_key(owner, name, cluster, rotate=rotate)[0]

    def new_release_key(self, owner: str, name: str) -> tuple[str, str]:
        super().new_release_key(owner, name)
        return keys.build_release_key(owner, name)
