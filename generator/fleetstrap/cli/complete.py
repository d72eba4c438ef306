"""Shell completion of the names a fleet defines: blueprints, clusters, services, environments, components.

Completion runs on every <TAB>, so it reads only file names under `.fleetstrap/answers/` and the one small
`fleet.yml`; it never renders, validates or touches git, and any problem yields no candidates rather than an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

# plan.ANSWERS_DIR and plan.answers_rel name the files (<unit>-<instance>.yml); not imported: plan pulls in the
# answer schema, too slow to load on every <TAB>. test_cli_language drives completion against a real fleet.
_ANSWERS = Path(".fleetstrap") / "answers"


def _root(ctx: click.Context) -> Path:
    """The repository the command line names so far (-C/--dir, its old spellings, or init's DEST), else `.`."""
    for key in ("root", "_dir_repo", "_dir_positional"):
        value = ctx.params.get(key)
        if value:
            return Path(value)
    return Path()


def _instances(root: Path, unit: str) -> list[str]:
    try:
        return sorted(p.name[len(unit) + 1:-4] for p in (root / _ANSWERS).glob(f"{unit}-*.yml"))
    except OSError:
        return []


def fleet_environments(root: Path) -> list[str]:
    """The `environments` answer of the fleet at root, in promotion order ([] when unreadable)."""
    import yaml

    try:
        raw = yaml.safe_load((root / _ANSWERS / "fleet.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    envs = raw.get("environments") if isinstance(raw, dict) else None
    return [str(e) for e in envs] if isinstance(envs, list) else []


def _items(names: list[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_cluster(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:  # noqa: ARG001
    return _items(_instances(_root(ctx), "cluster"), incomplete)


def complete_service(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:  # noqa: ARG001
    return _items(_instances(_root(ctx), "service"), incomplete)


def complete_environment(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:  # noqa: ARG001
    return _items(fleet_environments(_root(ctx)), incomplete)


def complete_component(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:  # noqa: ARG001
    root = _root(ctx)
    names = ["fleet"] if (root / _ANSWERS / "fleet.yml").is_file() else []
    names += [f"cluster/{c}" for c in _instances(root, "cluster")]
    names += [f"service/{s}" for s in _instances(root, "service")]
    if (root / _ANSWERS / "monitoring.yml").is_file():
        names.append("monitoring")
    return _items(names, incomplete)


def complete_blueprint(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:  # noqa: ARG001
    """Built-in blueprint names; a word that looks like a path completes as a file (a blueprint YAML)."""
    if "/" in incomplete or incomplete.startswith("."):
        return [CompletionItem(incomplete, type="file")]
    from fleetstrap.resources import blueprints_dir

    try:  # the file names are the blueprint names; no YAML is parsed on <TAB>
        names = sorted(p.stem for p in blueprints_dir().glob("*.yaml"))
    except OSError:
        names = []
    return _items(names, incomplete)
