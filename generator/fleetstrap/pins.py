"""Pinned versions, read from the one place they live: templates/pins.yml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

import yaml

from fleetstrap.resources import templates_dir


@dataclass(frozen=True)
class ActionPin:
    """A GitHub Action pinned by commit; workflows write `uses: <ref> # <version>` (templates/gha.jinja)."""

    action: str  # owner/repo[/path]
    version: str  # the tag (or branch) `sha` was read from
    sha: str  # full commit id

    @property
    def ref(self) -> str:
        return f"{self.action}@{self.sha}"


@cache
def _defaults() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((templates_dir() / "pins.yml").read_text(encoding="utf-8"))
    return dict(raw["pins"]["default"])


@cache
def pins() -> MappingProxyType[str, str]:
    """Every scalar pin (versions, images, URLs), as strings."""
    return MappingProxyType({k: str(v) for k, v in _defaults().items() if not isinstance(v, dict)})


@cache
def action_pins() -> MappingProxyType[str, ActionPin]:
    """Every pinned GitHub Action (`gha_*`), by pin name."""
    return MappingProxyType({k: ActionPin(str(v["action"]), str(v["version"]), str(v["sha"]))
                             for k, v in _defaults().items() if isinstance(v, dict)})


def pin(name: str) -> str:
    return pins()[name]
