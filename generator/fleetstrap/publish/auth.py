"""Where the token comes from, and how it reaches git: only through the environment of one git process."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fleetstrap import gitrepo
from fleetstrap.errors import RemoteError, UserError
from fleetstrap.gitrepo import Remote
from fleetstrap.redact import register_secret


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    source: str  # a name to show the user: "GH_TOKEN", "gh auth token", "--token-env MY_VAR"


def resolve_token(token_env: str | None, *, host: str = "github.com", allow_defaults: bool = True) -> Token | None:
    """--token-env NAME, else GH_TOKEN / GITHUB_TOKEN, else `gh auth token` (when gh is installed)."""
    if token_env:
        value = os.environ.get(token_env, "").strip()
        if not value:
            raise UserError(f"environment variable {token_env} (from --token-env) is not set or empty")
        return _token(value, f"${token_env}")
    if not allow_defaults:
        return None
    for name in ("GH_TOKEN", "GITHUB_TOKEN"):
        value = os.environ.get(name, "").strip()
        if value:
            return _token(value, f"${name}")
    gh = shutil.which("gh")
    if gh:
        try:
            done = subprocess.run([gh, "auth", "token", "--hostname", host], capture_output=True, text=True,
                                  timeout=15, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        value = done.stdout.strip()
        if done.returncode == 0 and value:
            return _token(value, "gh auth token")
    return None


def _token(value: str, source: str) -> Token:
    register_secret(value)
    register_secret(basic_credentials(value))
    return Token(value=value, source=source)


def basic_credentials(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def clean_url(url: str) -> str:
    """The URL without user info (credentials never go into .git/config)."""
    parts = urlsplit(url)
    if parts.scheme in {"http", "https"} and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def has_credentials(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and parts.password is not None


def url_prefix(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def git_env(url: str, token: Token | None, *, ssh_key: str | None = None,
            known_hosts: str | None = None) -> dict[str, str]:
    """Overrides for one git network command's environment: auth header via GIT_CONFIG_*, no prompts,
    no credential helpers. Nothing here lands on a command line or in .git/config."""
    env: dict[str, str] = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    pairs: list[tuple[str, str]] = [("credential.helper", "")]  # don't ask or fill a keychain
    if token is not None:
        if not url.startswith(("https://", "http://")):
            raise RemoteError("a token can only be used with an https remote")
        # Scoped to this remote's host, so the header is never sent anywhere else.
        pairs.append((f"http.{url_prefix(url)}.extraHeader",
                      f"Authorization: Basic {basic_credentials(token.value)}"))
    start = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    for i, (key, value) in enumerate(pairs, start):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    env["GIT_CONFIG_COUNT"] = str(start + len(pairs))
    if ssh_key or known_hosts:
        env["GIT_SSH_COMMAND"] = build_ssh_command(ssh_key, known_hosts)
    return env


def remote_of(root: Path, name: str) -> Remote | None:
    """The repo's remote `name` with push's auth for its URL (bootstrap, status); None when there is none."""
    url = gitrepo.remote_url(root, name)
    if url is None:
        return None
    token = None
    if url.startswith(("https://", "http://")):
        token = resolve_token(None, host=urlsplit(url).hostname or "github.com")
    return Remote(name, url, git_env(url, token))


def build_ssh_command(ssh_key: str | None, known_hosts: str | None) -> str:
    import shlex

    parts = ["ssh", "-o", "BatchMode=yes"]
    if ssh_key:
        parts += ["-i", ssh_key, "-o", "IdentitiesOnly=yes"]
    if known_hosts:
        parts += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    else:
        parts += ["-o", "StrictHostKeyChecking=accept-new"]
    return shlex.join(parts)
