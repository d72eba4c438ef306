"""Reading an existing fleet repo: its components, from the copier answers files fleetstrap wrote.

Every component (`fleet`, `cluster/<c>`, `service/<s>`, `monitoring`) has its own answers file under
`.fleetstrap/answers/`, recording the template source (`_src_path`), the template version (`_commit`),
the unit and the answers. That is all `update`, `add` and `status` need to know about a repo.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.answers import KNOWN_KEYS, FleetAnswers, build_answers
from fleetstrap.errors import AnswersError, NotAFleetRepoError
from fleetstrap.plan import ANSWERS_DIR, Component

UNITS = ("fleet", "cluster", "service", "monitoring")
SERVICE_REPO_ANSWERS = ".copier-answers.yml"  # split layout: a service repo's answers, at its root
# Which answer names the instance of a unit (None: the unit has one instance).
_INSTANCE_KEY = {"fleet": None, "cluster": "cluster_name", "service": "service_name", "monitoring": None}


@dataclass(frozen=True)
class RepoComponent:
    """One rendered component as recorded in its answers file."""

    unit: str
    name: str  # "fleet", "cluster/<c>", "service/<s>", "monitoring"
    answers_file: str  # relative to the repo root, posix
    template_version: str  # copier `_commit` (a tag such as v0.1.0, or a describe string)
    src_path: str  # copier `_src_path`: where it was rendered from (may not exist on this machine)
    data: tuple[tuple[str, Any], ...]  # the answers, `unit` included, private keys excluded

    def component(self) -> Component:
        return Component(self.unit, self.name, self.answers_file, self.data)


@dataclass(frozen=True)
class FleetRepo:
    root: Path
    components: tuple[RepoComponent, ...]
    answers: FleetAnswers

    def component(self, name: str) -> RepoComponent:
        for c in self.components:
            if c.name == name:
                return c
        raise AnswersError(f"unknown component {name!r}; this repo has: {', '.join(self.names())}")

    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components)


def _read_answers(root: Path, path: Path) -> dict[str, Any]:
    rel = path.relative_to(root).as_posix()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise NotAFleetRepoError(f"cannot read answers file {rel}") from exc
    except yaml.YAMLError as exc:
        raise NotAFleetRepoError(f"answers file {rel} is not valid YAML") from exc
    if not isinstance(data, dict):
        raise NotAFleetRepoError(f"answers file {rel} is not a mapping of answers")
    return data


def component_name(raw: dict[str, Any]) -> str | None:
    """`fleet`, `cluster/<c>`, `service/<s>`, `monitoring` from parsed answers (None: not a known component)."""
    unit = str(raw.get("unit") or "")
    if unit not in UNITS:
        return None
    key = _INSTANCE_KEY[unit]
    if key is None:
        return unit
    instance = raw.get(key)
    return f"{unit}/{instance}" if instance else None


def build_repo_component(rel: str, raw: dict[str, Any]) -> RepoComponent:
    """A component from one parsed answers file (pure)."""
    unit = str(raw.get("unit") or "")
    if unit not in UNITS:
        raise NotAFleetRepoError(f"answers file {rel} has no known unit (got {unit!r}; expected one of {UNITS})")
    if not raw.get("_commit") or not raw.get("_src_path"):
        raise NotAFleetRepoError(f"answers file {rel} lacks _commit/_src_path: it was not rendered by fleetstrap")
    name = component_name(raw)
    if name is None:
        raise NotAFleetRepoError(f"answers file {rel} lacks {_INSTANCE_KEY[unit]!r}")
    data = tuple((k, v) for k, v in raw.items() if not str(k).startswith("_"))
    return RepoComponent(unit, name, rel, str(raw["_commit"]), str(raw["_src_path"]), data)


def load_fleet_answers(root: Path) -> FleetAnswers:
    """Only the fleet's answers (`fleet.yml`), validated: what push and bootstrap need to know of a repo."""
    root = root.resolve()
    rel = f"{ANSWERS_DIR}/fleet.yml"
    if not (root / rel).is_file():
        raise NotAFleetRepoError(
            f"{root} is not a fleet repo made by fleetstrap ({rel} is missing)",
            hint="run fleetstrap inside a repo created by `fleetstrap init`, or pass its path",
        )
    raw = _read_answers(root, root / rel)
    try:
        return build_answers({k: v for k, v in raw.items() if k in KNOWN_KEYS})
    except AnswersError as exc:
        raise NotAFleetRepoError(f"{rel}: {exc.message}") from exc


def _load_service_repo(root: Path) -> FleetRepo:
    """Split layout: a service's own repository, one component whose answers sit at the repo root."""
    raw = _read_answers(root, root / SERVICE_REPO_ANSWERS)
    if raw.get("unit") != "service" or not raw.get("service_name"):
        raise NotAFleetRepoError(f"{root} is not a repo made by fleetstrap ({SERVICE_REPO_ANSWERS} is not a "
                                 "fleetstrap service's)",
                                 hint="run fleetstrap inside a repo created by `fleetstrap init`")
    rc = build_repo_component(SERVICE_REPO_ANSWERS, raw)
    rc = dataclasses.replace(rc, name=f"service-repo/{raw['service_name']}")  # as plan names it
    known = {k: v for k, v in raw.items() if k in KNOWN_KEYS}
    try:
        answers = build_answers({**known, "services": [str(raw["service_name"])]})
    except AnswersError as exc:
        raise NotAFleetRepoError(f"{SERVICE_REPO_ANSWERS}: {exc.message}") from exc
    return FleetRepo(root, (rc,), answers)


def load_fleet(root: Path) -> FleetRepo:
    """Read every component of the fleet repo at `root`. Raises NotAFleetRepoError for other repos."""
    root = root.resolve()
    if not root.is_dir():
        raise NotAFleetRepoError(f"{root} is not a directory")
    answers_dir = root / ANSWERS_DIR
    files = sorted(answers_dir.glob("*.yml")) if answers_dir.is_dir() else []
    if not files and (root / SERVICE_REPO_ANSWERS).is_file():
        return _load_service_repo(root)
    if not files:
        raise NotAFleetRepoError(
            f"{root} is not a fleet repo made by fleetstrap (no {ANSWERS_DIR}/*.yml)",
            hint="run fleetstrap inside a repo created by `fleetstrap init`, or pass its path",
        )
    components = [build_repo_component(p.relative_to(root).as_posix(), _read_answers(root, p)) for p in files]
    names = [c.name for c in components]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise NotAFleetRepoError(f"component(s) recorded twice in {ANSWERS_DIR}: {', '.join(dupes)}")
    fleet = next((c for c in components if c.unit == "fleet"), None)
    if fleet is None:
        raise NotAFleetRepoError(f"{root} has no fleet component ({ANSWERS_DIR}/fleet.yml is missing)")
    # Units may gain template-only questions over time: only the keys fleetstrap knows form FleetAnswers.
    known = {k: v for k, v in fleet.data if k in KNOWN_KEYS}
    try:
        answers = build_answers(known)
    except AnswersError as exc:
        raise NotAFleetRepoError(f"{fleet.answers_file}: {exc.message}") from exc
    # fleet first, then clusters, services, monitoring: the order they were planned in.
    order = {u: i for i, u in enumerate(UNITS)}
    ordered = sorted(components, key=lambda c: (order[c.unit], c.name))
    return FleetRepo(root, tuple(ordered), answers)
