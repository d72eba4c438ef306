"""The changelog that ships inside the package, read offline: which entries an update crosses, per unit.

CHANGELOG.md follows Keep a Changelog: `## [Unreleased]`, then `## [X.Y.Z] - YYYY-MM-DD` newest first. Inside a
version, `### fleet|cluster|service|monitoring` hold what changes in generated repos for that template unit
(pins moved, migrations, manual steps); any other `###` heading (Added, Changed, Fixed, ...) is about the CLI.
An entry is a top-level `- ` list item with its indented continuation lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from packaging.version import InvalidVersion, Version

UNITS: tuple[str, ...] = ("fleet", "cluster", "service", "monitoring")
UNRELEASED = "Unreleased"

_VERSION_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?:\s+-\s+(?P<date>\d{4}-\d{2}-\d{2}))?\s*$")
_SECTION_HEADING = re.compile(r"^### (?P<name>.+?)\s*$")


@dataclass(frozen=True)
class Release:
    version: str  # "X.Y.Z" or "Unreleased"
    date: str | None
    # heading -> entries (markdown, continuation lines kept), in file order
    sections: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def released(self) -> bool:
        return self.version != UNRELEASED

    def unit_entries(self, unit: str) -> tuple[str, ...]:
        return self.sections.get(unit, ())

    @property
    def empty(self) -> bool:
        return not any(self.sections.values())


def parse(text: str) -> tuple[Release, ...]:
    """Every version section of a changelog, in file order (newest first)."""
    releases: list[Release] = []
    version: str | None = None
    date: str | None = None
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None

    def close() -> None:
        if version is not None:
            releases.append(Release(version, date, MappingProxyType(
                {name: tuple(e.rstrip() for e in entries) for name, entries in sections.items()})))

    for line in text.splitlines():
        if line.startswith("## "):
            close()
            m = _VERSION_HEADING.match(line)
            version, date = (m.group("version"), m.group("date")) if m else (None, None)
            sections, current = {}, None
        elif version is not None and (s := _SECTION_HEADING.match(line)):
            name = s.group("name")
            current = sections.setdefault(name.lower() if name.lower() in UNITS else name, [])
        elif current is not None and line.startswith("- "):
            current.append(line[2:])
        elif current is not None and current and line.startswith("  ") and line.strip():
            current[-1] += "\n" + line.strip()
    close()
    return tuple(releases)


def changelog_path() -> Path:
    from fleetstrap.resources import changelog_file

    return changelog_file()


def load() -> tuple[Release, ...]:
    """The changelog of the installed fleetstrap (from the wheel, or the source checkout)."""
    return parse(changelog_path().read_text(encoding="utf-8"))


def to_version(ref: str) -> Version | None:
    """A template ref as a version: `v1.2.0`, `1.2.0`, a dev build `v1.2.0+3.gabc`, a describe string
    `v1.2.0-3-gabc` (read as its tag). None for branches and bare commits."""
    text = ref.strip()
    text = text[1:] if text[:1] in ("v", "V") else text
    text = re.sub(r"-\d+-g[0-9a-f]+$", "", text)
    try:
        return Version(text)
    except InvalidVersion:
        return None


def releases_between(old: str, new: str, releases: Iterable[Release] | None = None) -> tuple[Release, ...]:
    """The sections an update from template `old` to `new` crosses, newest first: releases in (old, new], and
    `Unreleased` when `new` is a build newer than every release (a source checkout or a dev build)."""
    all_releases = tuple(load() if releases is None else releases)
    new_v = to_version(new)
    if new_v is None:
        return ()
    old_v = to_version(old)
    old_public = Version(old_v.public) if old_v is not None else None
    new_public = Version(new_v.public)
    crossed: list[Release] = []
    released = [(r, to_version(r.version)) for r in all_releases if r.released]
    newest = max((v for _, v in released if v is not None), default=None)
    unreleased = next((r for r in all_releases if not r.released), None)
    # A local part (`+3.gabc`) marks templates newer than the release it names (render.ensure_template_mirror).
    if unreleased is not None and (newest is None or new_public > newest or (new_v.local and new_public == newest)):
        crossed.append(unreleased)
    for release, v in released:
        if v is not None and v <= new_public and (old_public is None or v > old_public):
            crossed.append(release)
    return tuple(crossed)


@dataclass(frozen=True)
class UnitNotes:
    """What the changelog says about one unit between two template versions, newest first."""

    unit: str
    entries: tuple[tuple[str, str], ...]  # (version, entry)


def entries_between(old: str, new: str, units: Iterable[str] = UNITS,
                    releases: Iterable[Release] | None = None) -> tuple[UnitNotes, ...]:
    """Per unit (in `units` order, only those with entries): the changelog entries an update crosses."""
    crossed = releases_between(old, new, releases)
    notes = []
    for unit in dict.fromkeys(units):
        entries = tuple((r.version, e) for r in crossed for e in r.unit_entries(unit))
        if entries:
            notes.append(UnitNotes(unit, entries))
    return tuple(notes)


def unit_of(component: str) -> str:
    """`cluster/dev` -> `cluster`; `fleet` -> `fleet`."""
    return component.split("/", 1)[0]


def render_markdown(notes: Iterable[UnitNotes], *, heading_level: int = 3) -> str:
    """Notes as markdown (a pull request body, release notes): one heading per unit, entries as a list."""
    hashes = "#" * heading_level
    parts = []
    for n in notes:
        lines = [f"{hashes} {n.unit}", ""]
        for version, entry in n.entries:
            lines.append(f"- `{version}`: " + entry.replace("\n", "\n  "))
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + ("\n" if parts else "")


def one_line(entry: str) -> str:
    """An entry on one terminal line (continuation lines joined)."""
    return " ".join(part.strip() for part in entry.splitlines())


def release_notes(version: str, releases: Iterable[Release] | None = None) -> str:
    """The body of one version's section as markdown (GitHub release notes). Empty when absent."""
    for r in (load() if releases is None else releases):
        if r.version == version:
            blocks = []
            for name, entries in r.sections.items():
                if entries:
                    items = "\n".join("- " + e.replace("\n", "\n  ") for e in entries)
                    blocks.append(f"### {name}\n\n{items}")
            return "\n\n".join(blocks) + ("\n" if blocks else "")
    return ""


def notes_for(components: Iterable[tuple[str, str]], target: str,
              releases: Iterable[Release] | None = None) -> tuple[UnitNotes, ...]:
    """What an update of `components` ((name, template version it is on) pairs) to `target` crosses, per unit,
    from each unit's oldest component. Empty when the installed package carries no changelog."""
    oldest: dict[str, str] = {}
    for name, current in components:
        unit = unit_of(name)
        if unit in UNITS and (unit not in oldest or _older(current, oldest[unit])):
            oldest[unit] = current
    if not oldest:
        return ()
    try:
        all_releases = tuple(load() if releases is None else releases)
    except OSError:  # notes are informational: an install without CHANGELOG.md still updates
        return ()
    return tuple(n for unit in UNITS if unit in oldest
                 for n in entries_between(oldest[unit], target, (unit,), all_releases))


def _older(a: str, b: str) -> bool:
    va, vb = to_version(a), to_version(b)
    return va is None or (vb is not None and va < vb)


def format_text(notes: Iterable[UnitNotes]) -> str:
    """Notes for a terminal: the unit, then one line per entry with its version."""
    lines = []
    for n in notes:
        lines.append(f"{n.unit}:")
        lines += [f"  {version}: {one_line(entry)}" for version, entry in n.entries]
    return "\n".join(lines)


def to_json(notes: Iterable[UnitNotes]) -> dict[str, list[dict[str, str]]]:
    return {n.unit: [{"version": v, "entry": e} for v, e in n.entries] for n in notes}


def markdown_for(components: Sequence[tuple[str, str]], target: str) -> str:
    """The `update --pr` body's changelog section: (component, template version it is on) pairs -> markdown
    (empty when nothing is recorded)."""
    return render_markdown(notes_for(components, target), heading_level=4)
