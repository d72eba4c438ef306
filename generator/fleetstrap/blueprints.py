"""Named, composable answer sets. A blueprint may `extends:` one or more others (applied first)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.answers import check_known_keys
from fleetstrap.errors import BlueprintError
from fleetstrap.resources import blueprints_dir


@dataclass(frozen=True)
class Blueprint:
    """A named, composable answer set: blueprints/<name>.yaml, or a YAML file the user passes."""

    name: str
    description: str
    path: Path
    extends: tuple[str, ...]
    answers: tuple[tuple[str, Any], ...]


def _read(path: Path) -> Blueprint:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BlueprintError(f"blueprint {path} cannot be read as YAML") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("answers", {}), dict):
        raise BlueprintError(f"blueprint {path} must be a mapping with an 'answers' mapping")
    unknown = sorted(set(raw) - {"name", "description", "extends", "answers"})
    if unknown:
        raise BlueprintError(f"blueprint {path}: unknown key(s) {', '.join(unknown)}")
    extends = raw.get("extends") or []
    if isinstance(extends, str):
        extends = [extends]
    answers = raw.get("answers") or {}
    check_known_keys(answers, f"blueprint {path.name}")
    return Blueprint(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or ""),
        path=path,
        extends=tuple(str(e) for e in extends),
        answers=tuple(answers.items()),
    )


def list_blueprints() -> list[Blueprint]:
    return [_read(p) for p in sorted(blueprints_dir().glob("*.yaml"))]


def find_blueprint(ref: str, *, relative_to: Path | None = None) -> Blueprint:
    """A built-in name, or a path to a YAML file (extends resolve beside it, then built-ins)."""
    candidates: list[Path] = []
    as_path = Path(ref)
    if as_path.suffix in {".yaml", ".yml"} or "/" in ref:
        candidates.append(as_path if as_path.is_absolute() or relative_to is None else relative_to / as_path)
    else:
        if relative_to is not None:
            candidates += [relative_to / f"{ref}.yaml", relative_to / f"{ref}.yml"]
        candidates.append(blueprints_dir() / f"{ref}.yaml")
    for c in candidates:
        if c.is_file():
            return _read(c)
    names = ", ".join(b.name for b in list_blueprints())
    raise BlueprintError(f"unknown blueprint {ref!r} (built-in: {names})")


def resolve_blueprint(ref: str) -> dict[str, Any]:
    """Merged answers of a blueprint and everything it extends, depth first, later wins."""
    return _resolve(ref, None, ())


def _resolve(ref: str, relative_to: Path | None, chain: tuple[str, ...]) -> dict[str, Any]:
    bp = find_blueprint(ref, relative_to=relative_to)
    key = str(bp.path.resolve())
    if key in chain:
        raise BlueprintError(f"blueprint {bp.name!r} extends itself (cycle through {' -> '.join(chain)})")
    merged: dict[str, Any] = {}
    for parent in bp.extends:
        merged.update(_resolve(parent, bp.path.parent, (*chain, key)))
    merged.update(dict(bp.answers))
    return merged
