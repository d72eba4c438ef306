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


# Flux 2.9 serves image.toolkit.fluxcd.io only as v1 (ImageRepository, ImagePolicy, ImageUpdateAutomation
# kept their fields); fleetstrap's templates render v1 from 0.1.0 on.
MIGRATIONS: tuple[Migration, ...] = (
    Migration("0.1.0", "Flux image automation API image.toolkit.fluxcd.io/v1beta2 -> v1",
              build_api_version_rename("image.toolkit.fluxcd.io/v1beta2", "image.toolkit.fluxcd.io/v1")),
)
