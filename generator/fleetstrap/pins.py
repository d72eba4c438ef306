"""Pinned versions, read from the one place they live: templates/pins.yml."""

from __future__ import annotations

from functools import cache
from types import MappingProxyType
from typing import Any

import yaml

from fleetstrap.resources import templates_dir


@cache
def pins() -> MappingProxyType[str, str]:
    raw: dict[str, Any] = yaml.safe_load((templates_dir() / "pins.yml").read_text(encoding="utf-8"))
    return MappingProxyType({key: str(value) for key, value in raw["pins"]["default"].items()})


def pin(name: str) -> str:
    return pins()[name]
