"""cargo-deny, built once from crates.io and cached under the user cache dir (tests/support/tools.py).

The version is the `cargo_deny_version` pin the generated service CI installs, so the suite checks the rendered
deny.toml with the same release the generated repositories run. `.ci/run` prebuilds it:
`python tests/support/cargo_deny.py` (prints the binary's path).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a script by .ci/run
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.tools import build_lock, cache_key, require_command, tool_dir
else:
    from .tools import build_lock, cache_key, require_command, tool_dir

PINS = Path(__file__).resolve().parents[2] / "templates" / "pins.yml"


def cargo_deny_version() -> str:
    return str(yaml.safe_load(PINS.read_text(encoding="utf-8"))["pins"]["default"]["cargo_deny_version"])


def build_cargo_deny(cargo: str) -> Path:
    """`cargo install --locked cargo-deny@<pin>` into the tool cache, once per version; returns the binary."""
    version = cargo_deny_version()
    root = tool_dir("cargo-deny", cache_key(version))
    binary = root / "bin" / "cargo-deny"
    with build_lock("cargo-deny"):
        if not binary.is_file():
            subprocess.run([cargo, "install", "--locked", "--quiet", "--root", str(root), "--version", version,
                            "cargo-deny"], check=True)
    return binary


def cargo_deny() -> Path:
    """The cached cargo-deny binary; skips (fails in CI) when cargo is not installed."""
    return build_cargo_deny(require_command("cargo", "rustup; needed to build cargo-deny"))


if __name__ == "__main__":
    exe = shutil.which("cargo")
    if exe is None:  # the cargo-deny tests then skip (or fail in CI) with the reason
        print("cargo is not installed: cargo-deny not built", file=sys.stderr)
    else:
        print(build_cargo_deny(exe))
