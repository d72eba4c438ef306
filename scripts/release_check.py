#!/usr/bin/env python3
"""Release consistency: the tag, the package version and the changelog agree; each release records its templates.

  python scripts/release_check.py [TAG]        check (TAG defaults to $GITHUB_REF_NAME when that is a v* tag)
  python scripts/release_check.py --write-digest   record releases/<version>.json from templates/ (cutting a release)
  python scripts/release_check.py --notes [VERSION]  print that version's changelog section (release notes)

The version lives in one place, generator/fleetstrap/__init__.py (hatch reads it for the wheel).
A unit's digest covers its files under templates/units/<unit>/, the templates they include or import from elsewhere
(another unit's macros, templates/shared/), the values of the pins they read (`pins.<name>`) and copier.yml
(questions shared by every unit): a change to any of them
changes what `copier update` would render, so it needs a changelog entry for that unit.
Exit 0 when consistent, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "generator"))

from fleetstrap import changelog  # noqa: E402  (the source tree, not an installed copy)

TEMPLATES = ROOT / "templates"
RELEASES = ROOT / "releases"
CHANGELOG = ROOT / "CHANGELOG.md"
_VERSION_LINE = re.compile(r'^__version__ = "(?P<v>[^"]+)"$', re.M)
_PIN_REF = re.compile(r"\bpins\.([a-z0-9_]+)")
# a template path in a Jinja include/import/from, relative to templates/ (`units/fleet/~macros.jinja`, `shared/x`)
_TEMPLATE_REF = re.compile(r"""\{%-?\s*(?:include|import|from)\s+['"]([^'"]+)['"]""")


def package_version(root: Path = ROOT) -> str:
    m = _VERSION_LINE.search((root / "generator" / "fleetstrap" / "__init__.py").read_text(encoding="utf-8"))
    if m is None:
        raise SystemExit("generator/fleetstrap/__init__.py has no __version__ line")
    return m.group("v")


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def unit_digests(templates: Path = TEMPLATES) -> dict[str, str]:
    """One sha256 per unit over everything that unit renders from."""
    pins: Mapping[str, object] = yaml.safe_load((templates / "pins.yml").read_text(encoding="utf-8"))["pins"]["default"]
    copier_yml = (templates / "copier.yml").read_bytes()
    digests = {}
    for unit in changelog.UNITS:
        h = hashlib.sha256()
        # the unit's own files, and what they include or import from elsewhere in templates/, transitively
        todo, seen = _files(templates / "units" / unit), set()
        used_pins: set[str] = set()
        while todo:
            f = todo.pop()
            if f in seen:
                continue
            seen.add(f)
            text = f.read_text(encoding="utf-8", errors="replace")
            used_pins.update(_PIN_REF.findall(text))
            todo += [templates / ref for ref in _TEMPLATE_REF.findall(text) if (templates / ref).is_file()]
        for f in sorted(seen):
            h.update(f.relative_to(templates).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
        for name in sorted(used_pins):
            h.update(f"pin {name}={pins.get(name)!r}\0".encode())
        h.update(b"copier.yml\0" + copier_yml)
        digests[unit] = h.hexdigest()
    return digests


def recorded_releases(releases: Path = RELEASES) -> dict[str, dict[str, str]]:
    """version -> unit digests, from releases/<version>.json."""
    out = {}
    for f in sorted(releases.glob("*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        out[str(data["version"])] = {str(k): str(v) for k, v in data["units"].items()}
    return out


def latest_recorded(releases: Path = RELEASES) -> tuple[str, dict[str, str]] | None:
    recorded = recorded_releases(releases)
    if not recorded:
        return None
    version = max(recorded, key=lambda v: changelog.to_version(v) or Version("0"))
    return version, recorded[version]


def pending_entries(releases: tuple[changelog.Release, ...], since: str) -> dict[str, list[str]]:
    """Entries per unit in sections newer than release `since` (Unreleased, and a version being prepared)."""
    since_v = changelog.to_version(since)
    out: dict[str, list[str]] = {u: [] for u in changelog.UNITS}
    for r in releases:
        v = changelog.to_version(r.version) if r.released else None
        if r.released and (v is None or since_v is None or v <= since_v):
            continue
        for unit in changelog.UNITS:
            out[unit] += r.unit_entries(unit)
    return out


def template_problems(root: Path = ROOT) -> list[str]:
    """A unit whose templates differ from the last recorded release needs a changelog entry since then."""
    latest = latest_recorded(root / "releases")
    if latest is None:
        return ["releases/ holds no recorded release digest"]
    version, recorded = latest
    current = unit_digests(root / "templates")
    pending = pending_entries(changelog.parse((root / "CHANGELOG.md").read_text(encoding="utf-8")), version)
    return [f"templates of unit '{unit}' changed since {version} but CHANGELOG.md has no '### {unit}' entry "
            f"under [Unreleased]" for unit in changelog.UNITS
            if current.get(unit) != recorded.get(unit) and not pending[unit]]


def version_problems(tag: str | None, root: Path = ROOT) -> list[str]:
    version = package_version(root)
    releases = changelog.parse((root / "CHANGELOG.md").read_text(encoding="utf-8"))
    released = [r for r in releases if r.released]
    problems = []
    if not released:
        return ["CHANGELOG.md has no released version section (## [X.Y.Z] - YYYY-MM-DD)"]
    newest = released[0]
    if changelog.to_version(newest.version) is None or newest.date is None:
        problems.append(f"CHANGELOG.md's newest section [{newest.version}] needs a version and a date")
    ordered = [changelog.to_version(r.version) for r in released]
    if any(a is None or b is None or a <= b for a, b in itertools.pairwise(ordered)):
        problems.append("CHANGELOG.md's versions are not in descending order")
    if newest.version != version:
        problems.append(f"package version {version} (generator/fleetstrap/__init__.py) but CHANGELOG.md's newest "
                        f"released section is [{newest.version}]")
    recorded = recorded_releases(root / "releases")
    if version not in recorded:
        problems.append(f"releases/{version}.json is missing (python scripts/release_check.py --write-digest)")
    if tag is not None:
        if tag != f"v{version}":
            problems.append(f"tag {tag} does not match package version {version} (expected v{version})")
        if version in recorded and recorded[version] != unit_digests(root / "templates"):
            problems.append(f"releases/{version}.json does not match templates/ (re-run --write-digest)")
        unreleased = next((r for r in releases if not r.released), None)
        if unreleased is not None and not unreleased.empty:
            problems.append("CHANGELOG.md's [Unreleased] still has entries: move them into the release section")
        if newest.empty:
            problems.append(f"CHANGELOG.md's [{newest.version}] has no entries")
    return problems


def write_digest(root: Path = ROOT) -> Path:
    version = package_version(root)
    path = root / "releases" / f"{version}.json"
    path.parent.mkdir(exist_ok=True)
    data = {"version": version, "units": unit_digests(root / "templates")}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _tag_from_env() -> str | None:
    ref = os.environ.get("GITHUB_REF_NAME", "")
    return ref if os.environ.get("GITHUB_REF_TYPE", "tag") == "tag" and ref.startswith("v") else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("tag", nargs="?", help="the release tag (default: $GITHUB_REF_NAME when it is a v* tag)")
    parser.add_argument("--write-digest", action="store_true", help="record releases/<version>.json")
    parser.add_argument("--notes", nargs="?", const="", metavar="VERSION",
                        help="print a version's changelog section (default: the package version)")
    args = parser.parse_args(argv)
    if args.write_digest:
        print(write_digest().relative_to(ROOT))
        return 0
    if args.notes is not None:
        version = (args.notes or package_version()).removeprefix("v")
        notes = changelog.release_notes(version, changelog.parse(CHANGELOG.read_text(encoding="utf-8")))
        if not notes:
            print(f"CHANGELOG.md has no entries for {version}", file=sys.stderr)
            return 1
        print(notes, end="")
        return 0
    tag = args.tag or _tag_from_env()
    problems = version_problems(tag) + template_problems()
    for p in problems:
        print(f"release check: {p}", file=sys.stderr)
    if not problems:
        print(f"release check: version {package_version()}" + (f", tag {tag}" if tag else "") + ": consistent")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
