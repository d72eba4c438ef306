"""Install manifests for the pinned engine versions: flux CLI export, or a verified, cached download."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetstrap import output
from fleetstrap.cache import cache_dir
from fleetstrap.errors import ClusterError, RemoteError, UserError

GITHUB_BASE = "https://github.com"
RAW_BASE = "https://raw.githubusercontent.com"
DOWNLOAD_BASE_ENV = "FLEETSTRAP_DOWNLOAD_BASE_URL"  # tests and mirrors: one base for every download
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Manifest:
    """A multi-document install manifest and where it came from."""

    text: str
    source: str  # "flux CLI", "cache", or the URL
    sha256: str


def _base(base_url: str | None, default: str) -> str:
    return (base_url or os.environ.get(DOWNLOAD_BASE_ENV) or default).rstrip("/")


def flux_urls(version: str, base_url: str | None = None) -> tuple[str, str]:
    """install.yaml and the release checksums file (which has no 'v' in its name)."""
    ver = version.removeprefix("v")
    root = f"{_base(base_url, GITHUB_BASE)}/fluxcd/flux2/releases/download/v{ver}"
    return f"{root}/install.yaml", f"{root}/flux_{ver}_checksums.txt"


def argocd_url(version: str, base_url: str | None = None) -> str:
    return f"{_base(base_url, RAW_BASE)}/argoproj/argo-cd/{version}/manifests/install.yaml"


def _fetch(url: str, timeout: float = 60.0) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise UserError(f"download URL must be http(s): {url}")
    hint = (f"bootstrap downloads the pinned engine manifests once and caches them; without access to that host set "
            f"{DOWNLOAD_BASE_ENV} to a mirror of it")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # scheme checked above
            data: bytes = resp.read()
            return data
    except urllib.error.HTTPError as exc:
        raise RemoteError(f"download failed: {url}: HTTP {exc.code}", hint=hint) from exc
    except urllib.error.URLError as exc:
        # The reason (name resolution, refused, timed out, certificate), not just the exception's class.
        reason = exc.reason if isinstance(exc.reason, str) else (
            getattr(exc.reason, "strerror", None) or str(exc.reason) or type(exc.reason).__name__)
        raise RemoteError(f"download failed: {url}: {reason}", hint=hint) from exc
    except OSError as exc:
        raise RemoteError(f"download failed: {url}: {exc.strerror or type(exc).__name__}", hint=hint) from exc


def parse_checksums(text: str, filename: str) -> str | None:
    """`<sha256>  <file>` lines, as goreleaser writes them."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename and _SHA256.match(parts[0].lower()):
            return parts[0].lower()
    return None


def _verify(data: bytes, expected: str, what: str) -> str:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ClusterError(
            f"checksum mismatch for {what}: expected sha256 {expected[:12]}…, got {actual[:12]}…",
            hint="the download is corrupt or the pin is wrong; nothing was cached or applied",
        )
    return actual


def _cached(path: Path, expected: str | None) -> bytes | None:
    if not path.is_file():
        return None
    data = path.read_bytes()
    if expected and hashlib.sha256(data).hexdigest() != expected:
        path.unlink()  # a cache entry that no longer matches its pin is refetched, never trusted
        return None
    return data


def _store(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def flux_cli_version(flux: str) -> str | None:
    try:
        out = subprocess.run([flux, "version", "--client"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"v?(\d+\.\d+\.\d+)", out.stdout)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Downloads:
    """Where the pinned install manifests come from (a mirror in tests and air-gapped sites) and are cached."""

    base_url: str | None = None
    cache_dir: Path | None = None
    use_flux_cli: bool = True


def flux_components(version: str, downloads: Downloads = Downloads(), *, pinned_sha256: str = "") -> Manifest:
    """The Flux components manifest for exactly `version`.

    The flux CLI is used only when it is that version (its embedded manifests are then authoritative);
    otherwise install.yaml from the release, verified against the pin in pins.yml or else the release's
    checksums file, and cached by version.
    """
    ver = version.removeprefix("v")
    flux = shutil.which("flux") if downloads.use_flux_cli else None
    if flux and flux_cli_version(flux) == ver:
        try:
            out = subprocess.run([flux, "install", "--export"], capture_output=True, text=True, timeout=120,
                                 check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ClusterError("`flux install --export` failed") from exc
        return Manifest(out.stdout, "flux CLI", hashlib.sha256(out.stdout.encode()).hexdigest())
    url, sums_url = flux_urls(ver, downloads.base_url)
    path = (downloads.cache_dir or cache_dir()) / "manifests" / f"flux-v{ver}-install.yaml"
    expected = pinned_sha256.lower() or None
    cached = _cached(path, expected)
    if cached is not None:
        return Manifest(cached.decode(), "cache", hashlib.sha256(cached).hexdigest())
    if expected is None:
        expected = parse_checksums(_fetch(sums_url).decode(errors="replace"), "install.yaml")
        if expected is None:
            raise ClusterError(f"the checksums file {sums_url} does not list install.yaml")
    data = _fetch(url)
    digest = _verify(data, expected, f"Flux v{ver} install.yaml")
    _store(path, data)
    return Manifest(data.decode(), url, digest)


def argocd_install(version: str, downloads: Downloads = Downloads(), *, pinned_sha256: str = "") -> Manifest:
    """Argo CD's install.yaml at a pinned tag. Argo CD publishes no checksum for it: without a pin the first
    download's sha256 is recorded next to the cache and every later use must match it (trust on first use)."""
    if not version.startswith("v") or version in {"stable", "latest"}:
        raise UserError(f"argocd_version must be a release tag like v3.5.1, not {version!r}")
    url = argocd_url(version, downloads.base_url)
    root = (downloads.cache_dir or cache_dir()) / "manifests"
    path = root / f"argocd-{version}-install.yaml"
    record = root / f"argocd-{version}-install.yaml.sha256"
    expected = pinned_sha256.lower() or (record.read_text().strip() if record.is_file() else None)
    cached = _cached(path, expected)
    if cached is not None:
        return Manifest(cached.decode(), "cache", hashlib.sha256(cached).hexdigest())
    data = _fetch(url)
    if expected:
        digest = _verify(data, expected, f"Argo CD {version} install.yaml")
    else:
        digest = hashlib.sha256(data).hexdigest()
        output.warn(f"no sha256 pinned for Argo CD {version}; recorded {digest} (pin it as argocd_install_sha256)")
        _store(record, (digest + "\n").encode())
    _store(path, data)
    return Manifest(data.decode(), url, digest)


def documents(text: str, what: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise ClusterError(f"{what} is not valid YAML") from exc
    out: list[dict[str, Any]] = []
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            raise ClusterError(f"{what} has a document that is not a Kubernetes object")
        if d["kind"].endswith("List") and isinstance(d.get("items"), list):
            out.extend(d["items"])
        else:
            out.append(d)
    return out


def install_order(objs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Namespaces and CRDs first, so everything after them has a place and a type."""
    rank = {"Namespace": 0, "CustomResourceDefinition": 1}
    yield from sorted(objs, key=lambda o: rank.get(str(o.get("kind")), 2))


def first(objs: list[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    return next((o for o in objs if o.get("kind") == kind), None)
