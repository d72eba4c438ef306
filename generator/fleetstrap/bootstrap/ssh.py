"""ssh for bootstrap: the git host of an ssh URL, its host keys, and a deploy key's public half."""

from __future__ import annotations

import re
import subprocess

from fleetstrap.errors import RemoteError

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


def public_key_openssh(private_pem: bytes) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private_pem, password=None)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return pub.decode() + "\n"
