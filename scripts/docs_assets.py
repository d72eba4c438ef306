"""MkDocs hook: the site's scripts from npm packages, bundled into the site, so it works with no network.

mkdocs-material fetches two scripts from a CDN (unpkg) at view time: Mermaid, unless a `mermaid` global already
exists, and, with the offline plugin, the iframe-worker shim that runs search under file://. This hook ships both
as local assets instead (Mermaid through extra_javascript, the shim as the polyfill the offline plugin looks for),
so a page opened offline draws its diagrams and searches. Each file comes from, in order: an environment variable
naming it, the tool cache (<user cache>/fleetstrap-tools/<package>-<version>/), or `npm pack <package>@<version>`
(the npm registry), checked against the pinned integrity before it is cached. No npm and no cached copy: the
build fails and says which.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class NpmAsset:
    package: str
    version: str
    integrity: str  # the registry's dist.integrity of the tarball
    member: str  # the file inside the tarball
    asset: str  # where the site serves it
    env: str  # an environment variable that may name the file instead

    @property
    def filename(self) -> str:
        return Path(self.member).name


# Material's bundle expects the Mermaid 11 API (it would fetch mermaid@11 from unpkg).
MERMAID = NpmAsset(
    "mermaid", "11.17.2",
    "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg==",
    "package/dist/mermaid.min.js", "assets/javascripts/mermaid.min.js", "FLEETSTRAP_MERMAID_JS")
# The offline plugin's search under file:// (it would fetch https://unpkg.com/iframe-worker/shim).
IFRAME_WORKER = NpmAsset(
    "iframe-worker", "1.0.4",
    "sha512-roeaaI+Lg1LJNfgpCjoRe/+WzEjy9+Z08LoEvu85MCPbBjwm+qXz8Ag5U05lHa6V1CysZyGzE0SOkAtSUA5q7Q==",
    "package/shim/index.js", "assets/javascripts/iframe-worker/shim.js", "FLEETSTRAP_IFRAME_WORKER_JS")
ASSETS = (MERMAID, IFRAME_WORKER)

log = logging.getLogger("mkdocs.hooks.fleetstrap.assets")
_found: dict[str, Path] = {}


class AssetUnavailable(RuntimeError):
    pass


def cache_dir(a: NpmAsset) -> Path:
    explicit = os.environ.get("FLEETSTRAP_TOOL_CACHE")
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(explicit) if explicit else (Path(xdg) if xdg else Path.home() / ".cache") / "fleetstrap-tools"
    return root / f"{a.package}-{a.version}"


def _integrity_ok(a: NpmAsset, tarball: Path) -> bool:
    algo, _, expected = a.integrity.partition("-")
    return base64.b64encode(hashlib.new(algo, tarball.read_bytes()).digest()).decode() == expected


def fetch(a: NpmAsset, dest_dir: Path) -> Path:
    """`npm pack` the pinned release, check it against the pinned integrity, keep the one file the site needs."""
    npm = shutil.which("npm")
    if npm is None:
        raise AssetUnavailable(f"npm is not installed and {a.package} {a.version} is not cached in {dest_dir} "
                               f"(install Node.js/npm, or point ${a.env} at {a.filename})")
    with tempfile.TemporaryDirectory(prefix=f"fleetstrap-{a.package}-") as tmp:
        res = subprocess.run([npm, "pack", f"{a.package}@{a.version}", "--json", "--pack-destination", tmp],
                             capture_output=True, text=True, cwd=tmp, timeout=600, check=False)
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise AssetUnavailable(f"npm pack {a.package}@{a.version} failed: {tail}")
        tarball = Path(tmp) / json.loads(res.stdout)[0]["filename"]
        if not _integrity_ok(a, tarball):
            raise AssetUnavailable(f"{tarball.name} does not match the pinned integrity")
        with tarfile.open(tarball) as tar:
            member = tar.extractfile(a.member)
            if member is None:
                raise AssetUnavailable(f"{tarball.name} has no {a.member}")
            data = member.read()
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest_dir / f"{a.filename}.part"
    part.write_bytes(data)
    part.replace(dest_dir / a.filename)  # atomic: a concurrent build never reads half a file
    return dest_dir / a.filename


def locate(a: NpmAsset) -> Path:
    explicit = os.environ.get(a.env)
    if explicit:
        if not Path(explicit).is_file():
            raise AssetUnavailable(f"${a.env} names {explicit}, which is not a file")
        return Path(explicit)
    cached = cache_dir(a) / a.filename
    return cached if cached.is_file() else fetch(a, cache_dir(a))


def on_config(config: Any) -> Any:
    from mkdocs.exceptions import PluginError

    for a in ASSETS:
        try:
            _found[a.asset] = locate(a)
        except AssetUnavailable as exc:
            raise PluginError(f"the site bundles {a.package} so it works offline: {exc}") from exc
    if MERMAID.asset not in [str(s) for s in config["extra_javascript"]]:
        config["extra_javascript"].append(MERMAID.asset)
    # Whichever runs first, the offline plugin finds (or replaced) an iframe-worker polyfill and adds no CDN URL.
    polyfills = [p for p in config["extra"].get("polyfills", []) if "iframe-worker" not in str(p)]
    config["extra"]["polyfills"] = [*polyfills, IFRAME_WORKER.asset]
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for asset, path in _found.items():
        files.append(File.generated(config, asset, abs_src_path=str(path)))
    return files
