"""Reading and editing the deployed version in an environment's values file, line by line (pure).

`apps/<env>/<service>/values.yaml` is written by people, by the release workflow (yq) and by bots: Flux image
automation rewrites the values of lines carrying a setter marker (`# {"$imagepolicy": "ns:policy:tag"}`), Argo CD
Image Updater rewrites `image.tag` through its helmvalues write-back. A YAML round trip would drop comments and
reorder keys, so edits replace only the value token of one line and keep everything else byte for byte; each edit
is checked by parsing the result.

In the split layout each environment also pins the chart it runs: `apps/<env>/<service>/chart-version.yaml`, a
local-config ConfigMap whose `data.version` both engines read (an exact version, or a semver range in an
environment that follows new releases). It is edited the same way.

The Argo CD Image Updater objects (`argocd/image-updater/<service>.yaml`, one ImageUpdater per environment that
follows new tags: the first, and those the answer image_policy names) are edited the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from fleetstrap.errors import ValuesError

# Flux's setter marker as kyaml reads it: the whole line comment must be this JSON object. Any text before the
# object makes the comment invalid JSON, and kyaml then treats it as an ordinary comment: no setter.
MARKER = re.compile(r'#\s*\{\s*"\$imagepolicy"\s*:\s*"(?P<ref>[^"]+)"\s*\}\s*$')
# A paused marker keeps the policy reference but neither the JSON nor the `$imagepolicy` key, so no parser of
# markers (kyaml's, or a looser search for the key) can take it for one.
PAUSED_PREFIX = "# fleetstrap-paused imagepolicy "
PAUSED = re.compile(r"#\s*fleetstrap-paused imagepolicy (?P<ref>\S+)\s*$")
PAUSE_NOTE = "# fleetstrap: image automation paused by rollback"
ALLOW_TAGS_PAUSED = "# fleetstrap-paused, was: "


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str


def _load(text: str, rel: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValuesError(f"{rel} is not valid YAML") from exc


def read_image(text: str, rel: str) -> ImageRef:
    """image.repository and image.tag of a values file."""
    data = _load(text, rel)
    image = data.get("image") if isinstance(data, dict) else None
    if not isinstance(image, dict) or image.get("tag") in (None, ""):
        raise ValuesError(f"{rel} has no image.tag")
    return ImageRef(str(image.get("repository") or ""), str(image["tag"]))


def _image_block(lines: list[str], rel: str) -> tuple[int, int]:
    """(first, end) line indexes of the top-level `image:` mapping's body."""
    start = next((i for i, line in enumerate(lines) if re.match(r"^image:\s*(#.*)?$", line)), None)
    if start is None:
        raise ValuesError(f"{rel} has no top-level `image:` mapping to edit")
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][:1] in (" ", "\t", "#")):
        end += 1
    return start + 1, end


_SCALAR = re.compile(r"^(?P<key>\s+(?P<name>[A-Za-z_]+):[ \t]*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s#]+)(?P<rest>.*)$")


def _quoted_like(old: str, value: str) -> str:
    if old.startswith('"'):
        return json.dumps(value)
    if old.startswith("'"):
        return "'" + value.replace("'", "''") + "'"
    plain = yaml.safe_load(value) if value else None
    return value if isinstance(plain, str) and value == plain else json.dumps(value)


def set_image(text: str, rel: str, *, tag: str, repository: str | None = None) -> str:
    """The values text with image.tag (and image.repository when given) replaced; comments and markers kept."""
    lines = text.split("\n")
    first, end = _image_block(lines, rel)
    wanted = {"tag": tag, **({"repository": repository} if repository is not None else {})}
    seen: set[str] = set()
    for i in range(first, end):
        m = _SCALAR.match(lines[i])
        if m and m.group("name") in wanted and m.group("name") not in seen:
            name = m.group("name")
            seen.add(name)
            lines[i] = m.group("key") + _quoted_like(m.group("value"), wanted[name]) + m.group("rest")
    if "tag" not in seen:
        raise ValuesError(f"{rel}: image.tag is not a plain `tag: <value>` line fleetstrap can edit")
    out = "\n".join(lines)
    got = read_image(out, rel)
    if got.tag != tag or (repository is not None and got.repository != repository):
        raise ValuesError(f"{rel}: editing image.tag did not give {tag} (unexpected layout); edit it by hand")
    if _without_image(_load(out, rel)) != _without_image(_load(text, rel)):
        raise ValuesError(f"{rel}: editing image.tag would change other values; edit it by hand")
    return out


def _without_image(data: Any) -> Any:
    return {k: v for k, v in data.items() if k != "image"} if isinstance(data, dict) else data


# ---------------------------------------------------------------- Flux setter markers


def has_markers(text: str) -> bool:
    return any(MARKER.search(line) for line in text.split("\n"))


def is_paused(text: str) -> bool:
    return any(PAUSED.search(line) for line in text.split("\n"))


def pause_markers(text: str, resume_hint: str) -> str:
    """Disable the setter markers of the image block and say so above it. Why this is what stops Flux: the
    ImageUpdateAutomation (Setters strategy) rewrites only lines whose comment parses as a marker, reading the
    file from git at each run; a line without one is never touched again, whatever the ImagePolicy selects.
    Suspending the ImagePolicy would not do: the automation keeps writing its last selected (the rolled-back)
    tag. Suspending the environment's ImageUpdateAutomation would stop every service of the environment."""
    lines = text.split("\n")
    first, end = _image_block(lines, "values.yaml")
    changed = False
    for i in range(first, end):
        m = MARKER.search(lines[i])
        if m:
            lines[i] = lines[i][: m.start()] + PAUSED_PREFIX + m.group("ref")
            changed = True
    if not changed:
        return text
    note = f"{PAUSE_NOTE}; {resume_hint}"
    if lines[first - 2 : first - 1] != [note]:
        lines.insert(first - 1, note)
    return "\n".join(lines)


def resume_markers(text: str) -> str:
    """Undo `pause_markers`: the original marker objects back, the note gone."""
    out = []
    for line in text.split("\n"):
        if line.startswith(PAUSE_NOTE):
            continue
        m = PAUSED.search(line)
        out.append(line[: m.start()] + "# " + json.dumps({"$imagepolicy": m.group("ref")}) if m else line)
    return "\n".join(out)


# ---------------------------------------------------------------- Argo CD Image Updater


def _document_span(lines: list[str], name: str) -> tuple[int, int] | None:
    """Line span of the YAML document whose metadata.name is `name` (documents split on `---`)."""
    starts = [0] + [i + 1 for i, line in enumerate(lines) if line.rstrip() == "---"]
    bounds = [*starts[1:], len(lines) + 1]
    for s, e in zip(starts, bounds, strict=True):
        body = lines[s : e - 1]
        if any(re.match(rf"^  name:\s*['\"]?{re.escape(name)}['\"]?\s*$", line) for line in body):
            return s, e - 1
    return None


_ALLOW = re.compile(r"^(?P<key>\s+allowTags:[ \t]*)(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s#]+)(?P<rest>.*)$")


def has_updater(text: str, name: str) -> bool:
    """Whether the image-updater file has ImageUpdater `name` (environments that only `promote` moves have none)."""
    return _document_span(text.split("\n"), name) is not None


def updater_pinned(text: str, name: str) -> bool:
    lines = text.split("\n")
    span = _document_span(lines, name)
    return span is not None and any(ALLOW_TAGS_PAUSED in line for line in lines[span[0] : span[1]])


def pin_updater(text: str, rel: str, name: str, tag: str) -> str:
    """ImageUpdater `name` allows only `tag`: the updater's newest candidate is then the version already
    deployed, so it writes nothing (the CRD has no suspend field). The original allowTags stays in a comment."""
    lines = text.split("\n")
    span = _document_span(lines, name)
    if span is None:
        raise ValuesError(f"{rel} has no ImageUpdater {name}")
    hits = [i for i in range(*span) if _ALLOW.match(lines[i])]
    if not hits:
        raise ValuesError(f"{rel}: ImageUpdater {name} has no allowTags line fleetstrap can pin; edit it by hand")
    for i in hits:
        m = _ALLOW.match(lines[i])
        assert m is not None
        if ALLOW_TAGS_PAUSED in m.group("rest"):
            original = m.group("rest").split(ALLOW_TAGS_PAUSED, 1)[1].strip()
        else:
            original = m.group("value")
        pinned = json.dumps("regexp:^" + re.escape(tag) + "$")
        lines[i] = f"{m.group('key')}{pinned} {ALLOW_TAGS_PAUSED}{original}"
    out = "\n".join(lines)
    _check_documents(out, rel)
    return out


def unpin_updater(text: str, rel: str, name: str) -> str:
    lines = text.split("\n")
    span = _document_span(lines, name)
    if span is None:
        return text
    for i in range(*span):
        m = _ALLOW.match(lines[i])
        if m and ALLOW_TAGS_PAUSED in m.group("rest"):
            lines[i] = m.group("key") + m.group("rest").split(ALLOW_TAGS_PAUSED, 1)[1].strip()
    out = "\n".join(lines)
    _check_documents(out, rel)
    return out


def allowed_tags(text: str, rel: str, name: str) -> list[str]:
    """allowTags of ImageUpdater `name` (parsed), for checks."""
    return [str((img.get("commonUpdateSettings") or {}).get("allowTags"))
            for doc in _check_documents(text, rel)
            if isinstance(doc, dict) and (doc.get("metadata") or {}).get("name") == name
            for ref in (doc.get("spec") or {}).get("applicationRefs") or []
            for img in ref.get("images") or []]


def _check_documents(text: str, rel: str) -> list[Any]:
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ValuesError(f"{rel}: the edit gave invalid YAML; edit it by hand") from exc


# ---------------------------------------------------------------- split layout: the chart version per environment

# A chart version as `helm package --version` writes it (the release's tag): exact, not a range.
_EXACT_VERSION = re.compile(r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
                            r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def is_exact_version(value: str) -> bool:
    """Whether a chart-version value pins one version (else it is a range the environment follows)."""
    return bool(_EXACT_VERSION.match(value))


def read_chart_version(text: str, rel: str) -> str:
    """data.version of a chart-version file."""
    data = _load(text, rel)
    block = data.get("data") if isinstance(data, dict) else None
    if not isinstance(block, dict) or block.get("version") in (None, ""):
        raise ValuesError(f"{rel} has no data.version")
    return str(block["version"])


def set_chart_version(text: str, rel: str, version: str) -> str:
    """The chart-version text with data.version replaced (its quoting kept); comments and the rest kept."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if re.match(r"^data:\s*(#.*)?$", line)), None)
    if start is None:
        raise ValuesError(f"{rel} has no top-level `data:` mapping to edit")
    edited = False
    for i in range(start + 1, len(lines)):
        if lines[i].strip() and lines[i][:1] not in (" ", "\t", "#"):
            break
        m = _SCALAR.match(lines[i])
        if m and m.group("name") == "version":
            lines[i] = m.group("key") + _quoted_like(m.group("value"), version) + m.group("rest")
            edited = True
            break
    if not edited:
        raise ValuesError(f"{rel}: data.version is not a plain `version: <value>` line fleetstrap can edit")
    out = "\n".join(lines)
    before, after = _load(text, rel), _load(out, rel)
    if read_chart_version(out, rel) != version or {**after, "data": None} != {**before, "data": None} or \
            {k: v for k, v in after["data"].items() if k != "version"} != \
            {k: v for k, v in before["data"].items() if k != "version"}:
        raise ValuesError(f"{rel}: editing data.version did not give {version} alone; edit it by hand")
    return out
