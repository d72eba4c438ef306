"""`.sourceignore` as Flux's source-controller reads it (gitignore syntax): files it ignores never reach the
cluster, so validate does not judge them as manifests.

Flux also ignores, by default, VCS and CI files (`.git/`, `.github/`, `.gitlab-ci.yml`, ...) and `**/.sops.yaml`,
`**/.flux.yaml`, `**/.goreleaser.yml`: the same defaults apply here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fleetstrap.validate.confine import read_repo_text

FLUX_DEFAULTS = (
    ".git/", ".gitignore", ".gitmodules", ".gitattributes", ".github/", ".circleci/", ".travis.yml",
    ".gitlab-ci.yml", "appveyor.yml", ".drone.yml", "cloudbuild.yaml", "codeship-services.yml", "codeship-steps.yml",
    "**/.goreleaser.yml", "**/.sops.yaml", "**/.flux.yaml",
)


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _compile(pattern: str) -> _Rule | None:
    negate = pattern.startswith("!")
    if negate:
        pattern = pattern[1:]
    pattern = pattern.replace("\\ ", " ").rstrip()
    if not pattern or pattern.startswith("#"):
        return None
    dir_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    anchored = "/" in pattern
    pattern = pattern.lstrip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out += "/.*"
            i += 3
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape("[")
                i += 1
            else:
                out += "[" + pattern[i + 1:end].replace("!", "^", 1) + "]"
                i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    return _Rule(re.compile(f"^{prefix}{out}$"), negate, dir_only)


class SourceIgnore:
    """Whether a repo-relative path is ignored (the last matching rule wins; a path under an ignored directory
    is ignored)."""

    def __init__(self, patterns: list[str]) -> None:
        self.rules = [r for p in patterns if (r := _compile(p)) is not None]

    @classmethod
    def of_repo(cls, root: Path) -> SourceIgnore:
        text = read_repo_text(root, ".sourceignore")  # confined: a symlink out of the repo is not read
        return cls([*FLUX_DEFAULTS, *(text or "").splitlines()])

    def _match(self, path: str, is_dir: bool) -> bool | None:
        result: bool | None = None
        for rule in self.rules:
            if (is_dir or not rule.dir_only) and rule.regex.match(path):
                result = not rule.negate
        return result

    def ignored(self, rel: str) -> bool:
        parts = rel.split("/")
        for i in range(1, len(parts)):  # an ignored parent directory ignores everything under it
            if self._match("/".join(parts[:i]), True):
                return True
        return bool(self._match(rel, False))
