"""Per-cluster deploy keys: ed25519, OpenSSH format, private half kept outside the repo with 0600 perms.

`bootstrap` reads the private key through `load_deploy_key` to create the cluster's git secret.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fleetstrap.errors import UserError
from fleetstrap.redact import register_secret

CONFIG_ENV = "FLEETSTRAP_CONFIG_DIR"

# The release workflow's write key: registered as a read-write deploy key, its private half stored only as
# this Actions secret (the `fleetstrap main` ruleset lets deploy keys push; GITHUB_TOKEN can't bypass it).
RELEASE_KEY_TITLE = "fleetstrap-release"
RELEASE_KEY_SECRET = "FLEET_DEPLOY_KEY"


@dataclass(frozen=True)
class DeployKey:
    path: Path  # private key file; the public key is next to it with ".pub"
    public: str  # "ssh-ed25519 AAAA... comment"
    private: str = field(repr=False)

    @property
    def public_blob(self) -> str:
        """Type and base64 only: what GitHub returns and what identifies the key."""
        return " ".join(self.public.split()[:2])


def config_dir() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("fleetstrap"))


def deploy_key_path(owner: str, repo: str, cluster: str) -> Path:
    """Where the private deploy key of one cluster lives (public key: same path + '.pub')."""
    for part in (owner, repo, cluster):
        if not part or "/" in part or part in {".", ".."}:
            raise UserError(f"invalid name for a deploy key path: {part!r}")
    return config_dir() / "keys" / owner / repo / cluster


def build_keypair(comment: str) -> tuple[str, str]:
    """A fresh ed25519 keypair as (private OpenSSH PEM, public OpenSSH line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}"


def build_release_key(owner: str, repo: str) -> tuple[str, str]:
    """A fresh keypair for the release workflow, kept in memory only: (private, public)."""
    private, public = build_keypair(f"{RELEASE_KEY_TITLE} {owner}/{repo}")
    register_secret(private.strip())
    # A single line of the PEM body is as secret as the whole; the first is the same in every ed25519 key.
    for line in private.splitlines()[2:]:
        if not line.startswith("-----"):
            register_secret(line)
    return private, public


def load_deploy_key(owner: str, repo: str, cluster: str) -> DeployKey:
    path = deploy_key_path(owner, repo, cluster)
    pub = path.with_name(path.name + ".pub")
    try:
        private = path.read_text(encoding="utf-8")
        public = pub.read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise UserError(
            f"no deploy key for cluster {cluster} at {path}", hint="run `fleetstrap push` first"
        ) from exc
    if path.stat().st_mode & 0o077:
        raise UserError(f"deploy key {path} is readable by others; run: chmod 600 {path}")
    register_secret(private.strip())
    return DeployKey(path=path, public=public, private=private)


def find_deploy_key(owner: str, repo: str, cluster: str) -> DeployKey | None:
    path = deploy_key_path(owner, repo, cluster)
    return load_deploy_key(owner, repo, cluster) if path.exists() else None


def _write_private(path: Path, text: str, mode: int) -> None:
    # Create with the final mode from the start (no window where the key is world-readable), then rename.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_deploy_key(owner: str, repo: str, cluster: str, private: str, public: str) -> DeployKey:
    path = deploy_key_path(owner, repo, cluster)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for d in (path.parent, path.parent.parent, path.parent.parent.parent):
        d.chmod(0o700)
    register_secret(private.strip())
    _write_private(path, private, 0o600)
    _write_private(path.with_name(path.name + ".pub"), public + "\n", 0o644)
    return DeployKey(path=path, public=public, private=private)


def ensure_deploy_key(owner: str, repo: str, cluster: str, *, rotate: bool = False) -> tuple[DeployKey, bool]:
    """The stored key of a cluster, generated when missing or when rotating. Returns (key, generated)."""
    existing = None if rotate else find_deploy_key(owner, repo, cluster)
    if existing is not None:
        return existing, False
    private, public = build_keypair(f"fleetstrap-{owner}/{repo}-{cluster}")
    return store_deploy_key(owner, repo, cluster, private, public), True
