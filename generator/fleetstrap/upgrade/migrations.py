"""Template migrations: renames a 3-way merge cannot do alone.

The merge moves what the template rendered; files people wrote by hand (an extra ImagePolicy in an
overlay) still carry the old API. A migration runs once when an update crosses its version, over the
whole repo, and must be idempotent. copier's own `_migrations` in templates/copier.yml also run (update
passes unsafe=True), for template-specific steps; these are the fleet-wide ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleetstrap.boundedyaml import read_bounded_text
from fleetstrap.boundedyaml import safe_load as bounded_safe_load
from fleetstrap.upgrade.source import parse_version

# (repo root, files relative to it) -> paths changed
Apply = Callable[[Path, Iterable[str]], tuple[str, ...]]


@dataclass(frozen=True)
class Migration:
    version: str  # the template version that introduced the change
    description: str
    apply: Apply

    def crosses(self, from_version: str, to_version: str) -> bool:
        """True when updating from `from_version` to `to_version` passes this migration's version."""
        mine, old, new = parse_version(self.version), parse_version(from_version), parse_version(to_version)
        if mine is None or new is None:
            return False
        # An unparseable old version (a bare sha) is treated as "before everything".
        return (old is None or old < mine) and mine <= new


def build_api_version_rename(old: str, new: str) -> Apply:
    """Rewrite `apiVersion: <old>` to `<new>` in every YAML file (quoted or not)."""
    pattern = re.compile(rf'^(?P<head>\s*(?:-\s+)?apiVersion:\s*["\']?){re.escape(old)}(?P<tail>["\']?\s*(?:#.*)?)$',
                         re.M)

    def apply(root: Path, files: Iterable[str]) -> tuple[str, ...]:
        changed = []
        for rel in files:
            if not rel.endswith((".yaml", ".yml")):
                continue
            path = root / rel
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if old not in text:
                continue
            updated = pattern.sub(lambda m: f"{m.group('head')}{new}{m.group('tail')}", text)
            if updated != text:
                path.write_text(updated, encoding="utf-8")
                changed.append(rel)
        return tuple(changed)

    return apply


_CHART_FILE = re.compile(r"^apps/[^/]+/[^/]+/chart-version\.yaml$")
_PLAIN_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?$")
_DATA_VERSION = re.compile(
    r'^(?P<head>\s+version:[ \t]*)(?P<q>["\']?)(?P<value>[^"\'\s#]*)(?P=q)(?P<tail>\s*(?:#.*)?)$', re.M)


def _read_mapping(path: Path) -> tuple[str, dict[str, object]]:
    """The text of `path` and the mapping it holds, ("", {}) when unreadable and {} when not a mapping. Read within
    boundedyaml's limits: a fleet's files are input like any other (an alias bomb there must not take the update
    down)."""
    try:
        text = read_bounded_text(path)
        data = bounded_safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "", {}
    return text, data if isinstance(data, dict) else {}


def _replace_version(version: str) -> Callable[[re.Match[str]], str]:
    return lambda m: f"{m['head']}{m['q']}{version}{m['q']}{m['tail']}"


def seed_chart_versions(root: Path, files: Iterable[str]) -> tuple[str, ...]:
    """Pin each environment's new chart-version.yaml to the release that environment already runs.

    Split-layout fleets rendered before 0.1.1 had no per-environment chart pin; the update adds one holding the
    template's first chart version (0.1.0). Merged as is, every environment that `promote` had moved to a later
    release would go back to chart 0.1.0. A chart's version is its release's tag (the release workflow writes both),
    so a plain version here that differs from the plain semver image tag of the same environment's values.yaml is
    set to that tag. Ranges (environments that follow new tags) and non-semver tags are left alone. Idempotent.
    """
    changed = []
    for rel in files:
        if not _CHART_FILE.match(rel):
            continue
        path = root / rel
        text, chart = _read_mapping(path)
        data = chart.get("data")
        image = _read_mapping(path.parent / "values.yaml")[1].get("image")
        pinned = str(data.get("version", "")) if isinstance(data, dict) else ""
        tag = str(image.get("tag", "")) if isinstance(image, dict) else ""
        if not (_PLAIN_VERSION.match(pinned) and _PLAIN_VERSION.match(tag)) or pinned == tag:
            continue
        updated = _DATA_VERSION.sub(_replace_version(tag), text, count=1)
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            changed.append(rel)
    return tuple(changed)


# Flux 2.9 serves image.toolkit.fluxcd.io only as v1 (ImageRepository, ImagePolicy, ImageUpdateAutomation
# kept their fields); fleetstrap's templates render v1 from 0.1.0 on.
MIGRATIONS: tuple[Migration, ...] = (
    Migration("0.1.0", "Flux image automation API image.toolkit.fluxcd.io/v1beta2 -> v1",
              build_api_version_rename("image.toolkit.fluxcd.io/v1beta2", "image.toolkit.fluxcd.io/v1")),
    # 0.1.1.dev0, not 0.1.1: development builds of 0.1.1 (0.1.1.devN) already render the chart pins.
    Migration("0.1.1.dev0", "split layout: each environment's new chart pin is the release it runs",
              seed_chart_versions),
)
