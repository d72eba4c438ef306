"""Where the bundled templates and blueprints are: inside the wheel, or in the source checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@cache
def _data_root(name: str) -> Path:
    bundled = _PKG / "_data" / name
    if bundled.is_dir():
        return bundled
    # Editable install / source checkout: generator/fleetstrap -> repo root.
    source = _PKG.parent.parent / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"fleetstrap installation is missing its {name}/ directory")


def templates_dir() -> Path:
    return _data_root("templates")


def blueprints_dir() -> Path:
    return _data_root("blueprints")


def changelog_file() -> Path:
    """CHANGELOG.md: shipped in the wheel beside the templates, or at the root of a source checkout."""
    bundled = _PKG / "_data" / "CHANGELOG.md"
    return bundled if bundled.is_file() else _PKG.parent.parent / "CHANGELOG.md"
