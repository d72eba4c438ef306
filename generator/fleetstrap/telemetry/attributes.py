"""Span attributes that are safe to send: secret-looking keys dropped, values redacted (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from fleetstrap.redact import redact

AttrValue = str | bool | int | float

# Keys (attribute names, option names, KEY=VALUE keys) whose values are never sent.
_SECRET_KEY = re.compile(
    r"(?i)(token|secret|passw(or)?d|passphrase|credential|auth(?!ors?($|[._-]))|(^|[._-])key($|[._-])|api_?key|"
    r"cookie|bearer)"
)
_MAX_LEN = 1024
_URL_QUERY = re.compile(r"(\w+://[^\s?#]+)[?#]\S*")  # query strings may carry keys (?api_key=...)


def is_secret_key(name: str) -> bool:
    return bool(_SECRET_KEY.search(name))


def build_safe_attributes(attrs: Mapping[str, object], *, namespace: str = "fleetstrap") -> dict[str, AttrValue]:
    """Drop secret-named keys and non-scalar values; redact strings; namespace bare keys (`sha` → `fleetstrap.sha`)."""
    safe: dict[str, AttrValue] = {}
    for key, value in attrs.items():
        if is_secret_key(key) or not isinstance(value, str | bool | int | float):
            continue
        name = key if "." in key else f"{namespace}.{key}"
        safe[name] = build_safe_value(value) if isinstance(value, str) else value
    return safe


def build_safe_value(text: str) -> str:
    return redact(text)[:_MAX_LEN]


def build_safe_args(args: Sequence[str]) -> str:
    """The command line with option values and KEY=VALUE values of secret-named keys masked."""
    out: list[str] = []
    mask_next = False
    for arg in args:
        if mask_next:
            out.append("***")
            mask_next = False
            continue
        if arg.startswith("-"):
            name, sep, value = arg.partition("=")
            if is_secret_key(name.lstrip("-")):
                out.append(f"{name}=***" if sep else arg)
                mask_next = not sep
            else:
                out.append(f"{name}={_mask_pair(value)}" if sep else arg)
            continue
        out.append(_mask_pair(arg))
    return build_safe_value(_URL_QUERY.sub(r"\1?***", " ".join(out)))


def _mask_pair(text: str) -> str:
    key, sep, _ = text.partition("=")
    return f"{key}=***" if sep and is_secret_key(key) else text
