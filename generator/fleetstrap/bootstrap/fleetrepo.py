"""What bootstrap reads from a fleet repo and does with its git: answers, sync manifests, remote state, push."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetstrap.answers import ClusterSpec
from fleetstrap.errors import AnswersError, RemoteError
from fleetstrap.redact import redact

FLEET_ANSWERS = Path(".fleetstrap/answers/fleet.yml")


@dataclass(frozen=True)
class FleetInfo:
    root: Path
    owner: str
    fleet_name: str
    git_url: str
    branch: str
    engine: str
    clusters: tuple[ClusterSpec, ...]

    def cluster(self, name: str) -> ClusterSpec:
        for c in self.clusters:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.clusters) or "none"
        raise AnswersError(f"unknown cluster {name!r}; this fleet has: {known}")

    @property
    def engines(self) -> tuple[str, ...]:
        return ("flux", "argocd") if self.engine == "both" else (self.engine,)


def load_fleet(root: Path) -> FleetInfo:
    """The fleet's answers, read and validated by the one reader of answers files (fleetstrap.repo)."""
    from fleetstrap.repo import load_fleet_answers

    a = load_fleet_answers(root)
    return FleetInfo(root=root, owner=a.owner, fleet_name=a.fleet_name, git_url=a.git_url, branch=a.branch,
                     engine=a.engine, clusters=a.clusters)


# ---------------------------------------------------------------- git (the CLI, with env-based auth inherited)


def _auth_env(url: str | None) -> dict[str, str]:
    """The same env-based auth `fleetstrap push` uses (token header for https, no prompts, no helpers)."""
    if not url:
        return {}
    try:
        from fleetstrap.publish import auth
    except ImportError:
        return {}
    token = None
    if url.startswith(("https://", "http://")):
        token = auth.resolve_token(None, host=urlsplit(url).hostname or "github.com")
    return dict(auth.git_env(url, token))


def _git(root: Path, *args: str, timeout: float = 60.0, url: str | None = None) -> str:
    # Never hang on a credential prompt; network commands get push's auth for the remote's URL.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **_auth_env(url)}
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=timeout,
                             env=env, check=True)
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or ["failed"]
        raise RemoteError(f"git {args[0]} failed: {redact(last[0])}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RemoteError(f"git {args[0]} failed: {type(exc).__name__}") from exc
    return out.stdout


def head_sha(root: Path) -> str | None:
    try:
        return _git(root, "rev-parse", "--verify", "HEAD").strip()
    except RemoteError:
        return None


def dirty_paths(root: Path) -> list[str]:
    return [line[3:] for line in _git(root, "status", "--porcelain").splitlines() if line.strip()]


def remote_url(root: Path, remote: str) -> str | None:
    try:
        return _git(root, "remote", "get-url", remote).strip() or None
    except RemoteError:
        return None


def remote_head(root: Path, remote: str, branch: str) -> str | None:
    """The branch's sha on the remote (network), None when the branch is not there."""
    out = _git(root, "ls-remote", remote, f"refs/heads/{branch}", timeout=30, url=remote_url(root, remote))
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    try:
        _git(root, "merge-base", "--is-ancestor", older, newer)
    except RemoteError:
        return False
    return True


def push(root: Path, remote: str, branch: str) -> None:
    """Push HEAD to the branch (fast-forward only), with the same auth as `fleetstrap push`."""
    _git(root, "push", remote, f"HEAD:refs/heads/{branch}", timeout=120, url=remote_url(root, remote))


# ---------------------------------------------------------------- ssh: deploy key and host keys


_SCP_LIKE = re.compile(r"^(?P<user>[^@/]+)@(?P<host>[^:/]+):(?P<path>.+)$")


def ssh_host(git_url: str) -> tuple[str, int] | None:
    """(host, port) of an ssh git URL, None for http(s)."""
    if git_url.startswith("ssh://"):
        rest = git_url[len("ssh://"):]
        hostport = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        host, _, port = hostport.partition(":")
        return host, int(port) if port.isdigit() else 22
    m = _SCP_LIKE.match(git_url)
    if m:
        return m.group("host"), 22
    return None


def scan_known_hosts(host: str, port: int, timeout: int = 10) -> str:
    """Host keys as known_hosts lines, scanned like `flux bootstrap` does (ssh-keyscan)."""
    args = ["ssh-keyscan", "-T", str(timeout)]
    if port != 22:
        args += ["-p", str(port)]
    try:
        out = subprocess.run([*args, host], capture_output=True, text=True, timeout=timeout + 5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RemoteError(f"cannot scan host keys of {host}: {type(exc).__name__}") from exc
    lines = [ln for ln in out.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise RemoteError(f"cannot scan host keys of {host}:{port} (ssh-keyscan returned none)")
    return "\n".join(lines) + "\n"


def deploy_key_default(owner: str, repo: str, cluster: str) -> Path | None:
    """The push engineer's deploy key location, when that module is present."""
    try:
        from fleetstrap.publish.keys import deploy_key_path
    except ImportError:
        return None
    path: Any = deploy_key_path(owner, repo, cluster)
    return Path(path)


def public_key_openssh(private_pem: bytes) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private_pem, password=None)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return pub.decode() + "\n"
