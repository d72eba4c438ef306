"""Keep secrets out of messages and logs: values registered at runtime plus known token shapes."""

from __future__ import annotations

import re

_SECRETS: set[str] = set()
_PATTERNS = (
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"(?i)(authorization:\s*(?:basic|bearer|token)\s+)\S+"),
    re.compile(r"(https?://)[^/@\s:]+(?::[^/@\s]*)?@"),
)


def register_secret(value: str) -> None:
    """Remember a secret value (token, key) so it is masked wherever it might be printed."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for s in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(s, "***")
    for p in _PATTERNS:
        text = p.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text
