"""Lines GitOps automation owns: an update must leave them as the bots last wrote them.

- Flux image automation rewrites the value on lines carrying a setter marker
  (`tag: 1.2.3 # {"$imagepolicy": "flux-system:checkout:tag"}`); the marker identifies the line.
- Argo CD Image Updater (git write-back) writes `.argocd-source-<app>.yaml` files wholesale, or with a
  `helmvalues:` write-back target, the `image.tag` value of a Helm values file.
Image tags in env values are operational state, never template-owned after the first render, so any
`image.tag` / `image.digest` value is protected too. All functions here are pure, on text.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_SETTER = re.compile(r'#\s*(\{\s*"\$imagepolicy"\s*:\s*"[^"]*"\s*\})\s*$')
# `key: value  # {"$imagepolicy": ...}` or `- value # {...}`: head, value, tail.
_SETTER_LINE = re.compile(r'^(?P<head>\s*(?:-\s+)?(?:[^\s#:][^#:]*:\s+)?)(?P<value>[^#\s][^#]*?)(?P<tail>\s+#.*)$')
_KEY_LINE = re.compile(r'^(?P<indent>\s*)(?P<dash>-\s+)?(?P<key>[A-Za-z0-9_.\-"\']+)\s*:(?P<rest>.*)$')
_PROTECTED_PATHS = ("image.tag", "image.digest")
_CONFLICT_START = "<<<<<<<"
_CONFLICT_BASE = "|||||||"
_CONFLICT_MID = "======="
_CONFLICT_END = ">>>>>>>"


def is_bot_file(path: str) -> bool:
    """Files a bot writes wholesale (Argo CD Image Updater's git write-back default)."""
    name = PurePosixPath(path).name
    return name.startswith(".argocd-source") and name.endswith((".yaml", ".yml"))


def setter_marker(line: str) -> str | None:
    m = _SETTER.search(line)
    return re.sub(r"\s+", "", m.group(1)) if m else None


def _split_value(line: str) -> tuple[str, str, str] | None:
    m = _SETTER_LINE.match(line)
    return (m.group("head"), m.group("value"), m.group("tail")) if m else None


def _key_paths(lines: list[str]) -> list[tuple[int, str, str]]:
    """(line index, dotted key path, scalar value text) for block-mapping scalars. A heuristic, not YAML."""
    stack: list[tuple[int, str]] = []
    out: list[tuple[int, str, str]] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            if stripped == "---":
                stack = []
            continue
        m = _KEY_LINE.match(line)
        if not m:
            continue
        indent = len(m.group("indent")) + len(m.group("dash") or "")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = m.group("key").strip("\"'")
        stack.append((indent, key))
        rest = m.group("rest")
        value = rest.split(" #", 1)[0].strip()
        if value and not value.startswith(("|", ">", "&", "{", "[")):
            out.append((i, ".".join(k for _, k in stack), value))
    return out


def _protected_values(lines: list[str]) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for i, line in enumerate(lines):
        marker = setter_marker(line)
        parts = _split_value(line) if marker else None
        if marker and parts:
            found.setdefault(f"setter {marker}", []).append((i, parts[1]))
    for i, path, value in _key_paths(lines):
        if path.endswith(_PROTECTED_PATHS) and setter_marker(lines[i]) is None:
            found.setdefault(f"key {path}", []).append((i, value))
    return found


def _replace_value(line: str, key: str, value: str) -> str:
    if key.startswith("setter "):
        parts = _split_value(line)
        return f"{parts[0]}{value}{parts[2]}" if parts else line
    m = _KEY_LINE.match(line)
    if not m:
        return line
    rest = m.group("rest")
    comment = ""
    if " #" in rest:
        rest, comment = rest.split(" #", 1)
        comment = " #" + comment
    lead = rest[: len(rest) - len(rest.lstrip())] or " "
    return f"{m.group('indent')}{m.group('dash') or ''}{m.group('key')}:{lead}{value}{comment}"


def restore_protected(before: str, after: str) -> str:
    """`after` with every bot-owned value put back as it was in `before` (same identity, same order)."""
    old = _protected_values(before.splitlines())
    if not old:
        return after
    lines = after.splitlines(keepends=True)
    bare = [ln.rstrip("\r\n") for ln in lines]
    new = _protected_values(bare)
    for key, olds in old.items():
        news = new.get(key, [])
        if len(news) != len(olds):  # the template restructured this: nothing safe to pair
            continue
        for (_, old_value), (idx, new_value) in zip(olds, news, strict=True):
            if old_value != new_value:
                ending = lines[idx][len(bare[idx]):]
                lines[idx] = _replace_value(bare[idx], key, old_value) + ending
    return "".join(lines)


def _same_owned_line(ours: str, theirs: str) -> bool:
    """Two versions of one bot-owned line: same setter marker, or the same tag/digest key."""
    if ours == theirs:
        return True
    mo, mt = setter_marker(ours), setter_marker(theirs)
    if mo or mt:
        return mo == mt
    ko, kt = _KEY_LINE.match(ours), _KEY_LINE.match(theirs)
    return bool(ko and kt and ko.group("key") == kt.group("key") and ko.group("indent") == kt.group("indent")
                and ko.group("key") in ("tag", "digest"))


def resolve_owned_conflicts(text: str) -> tuple[str, int]:
    """Resolve conflict hunks that differ only in bot-owned lines: take the template side (the caller then
    restores the bot values). Returns the text and the number of hunks left unresolved."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    left = 0
    i = 0
    while i < len(lines):
        if not lines[i].startswith(_CONFLICT_START):
            out.append(lines[i])
            i += 1
            continue
        ours: list[str] = []
        theirs: list[str] = []
        block = [lines[i]]
        side: list[str] | None = ours
        j = i + 1
        while j < len(lines) and not lines[j].startswith(_CONFLICT_END):
            block.append(lines[j])
            if lines[j].startswith(_CONFLICT_BASE):
                side = None
            elif lines[j].startswith(_CONFLICT_MID):
                side = theirs
            elif side is not None:
                side.append(lines[j])
            j += 1
        if j >= len(lines):  # unterminated: leave as is
            out.extend(block)
            left += 1
            break
        block.append(lines[j])
        if len(ours) == len(theirs) and all(
            _same_owned_line(o.rstrip("\r\n"), t.rstrip("\r\n")) for o, t in zip(ours, theirs, strict=True)
        ):
            out.extend(theirs)
        else:
            out.extend(block)
            left += 1
        i = j + 1
    return "".join(out), left


def _marker(line: str) -> str | None:
    """"start" or "end" when `line` opens or closes a conflict hunk (git merge-file's markers), else None."""
    for kind, marker in (("start", _CONFLICT_START), ("end", _CONFLICT_END)):
        if line.startswith(marker + " ") or line.rstrip() == marker:
            return kind
    return None


def has_conflict_markers(text: str) -> bool:
    """The one conflict detector: a merge left a hunk for a person (update, add, and update --pr's body)."""
    return any(_marker(ln) for ln in text.splitlines())


def conflict_spans(text: str) -> list[tuple[int, int]]:
    """(first, last) line numbers, 1-based, of each conflict hunk."""
    spans, start = [], None
    for n, line in enumerate(text.splitlines(), 1):
        kind = _marker(line)
        if kind == "start":
            start = n
        elif kind == "end" and start is not None:
            spans.append((start, n))
            start = None
    return spans


def protect_file(path: str, before: str | None, after: str | None) -> str | None:
    """The content to keep for `path` after an update, given its content before and after (None: absent).

    Bot-written files come back exactly; elsewhere owned conflict hunks are resolved and owned values restored.
    """
    if before is not None and is_bot_file(path):
        return before
    if after is None or before is None:
        return after
    resolved, _ = resolve_owned_conflicts(after)
    return restore_protected(before, resolved)
