"""Render generated fleets for tests: each answers set once per test process, reused by every module."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetstrap.answers import FleetAnswers, build_answers
from fleetstrap.blueprints import resolve_blueprint
from fleetstrap.plan import build_plan
from fleetstrap.render import ensure_template_mirror, render_components

OWN_UNITS = ("fleet", "cluster")  # the units these tests are about; others may still be in progress


@dataclass(frozen=True)
class RenderedFleet:
    root: Path
    answers: FleetAnswers
    # Files written by the fleet and cluster units (relative path -> text), taken before the other
    # units render into the same tree: the golden snapshots cover exactly these.
    own_files: tuple[tuple[str, str], ...]


_CACHE: dict[str, RenderedFleet] = {}
_BASE: list[Path] = []


def _base() -> Path:
    if not _BASE:
        base = Path(tempfile.mkdtemp(prefix="fleetstrap-fleets-"))
        atexit.register(shutil.rmtree, base, True)
        _BASE.append(base)
    return _BASE[0]


def tree_files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def render_answers(key: str, data: Mapping[str, Any]) -> RenderedFleet:
    """Render every component of the plan for `data` (cached under `key`)."""
    if key in _CACHE:
        return _CACHE[key]
    answers = build_answers(data)
    plan = build_plan(answers)
    source = ensure_template_mirror()
    root = _base() / key
    own = [c for c in plan.components if c.unit in OWN_UNITS]
    others = [c for c in plan.components if c.unit not in OWN_UNITS]
    render_components(own, root, source)
    own_files = tuple(tree_files(root).items())
    render_components(others, root, source)
    result = RenderedFleet(root, answers, own_files)
    _CACHE[key] = result
    return result


def render_blueprint(name: str, **overrides: Any) -> RenderedFleet:
    data = {**resolve_blueprint(name), **overrides}
    key = name + "".join(f"-{k}-{v}" for k, v in sorted(overrides.items()))
    return render_answers(key, data)
