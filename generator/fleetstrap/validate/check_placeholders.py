"""Placeholders left in a fleet that is about to be published: the blueprints' `example-org` owner and the
`example.com` domain and e-mail defaults. Harmless while trying fleetstrap out, wrong once the repo has a push
remote: clusters would pull from another owner's repository, Let's Encrypt refuses example.com addresses, and hosts
under example.com never resolve to the cluster. Warnings (the fleet is still valid), only when git has a remote."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from fleetstrap.validate.context import Context

ANSWERS = ".fleetstrap/answers/fleet.yml"
_PLACEHOLDER_OWNERS = frozenset({"example-org"})
_EXAMPLE_DOMAIN = re.compile(r"(^|[.@])example\.(com|org|net)$", re.IGNORECASE)


def has_push_remote(root: Path) -> bool:
    """A `[remote "…"]` section in the repository's own git config (read, not run: validate starts no git)."""
    config = root / ".git" / "config"
    try:
        return '[remote "' in config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def placeholders(answers: dict[str, object]) -> list[tuple[str, str]]:
    """(answer key, why) for each placeholder among the fleet's answers."""
    found = []
    owner = str(answers.get("owner") or "")
    if owner.lower() in _PLACEHOLDER_OWNERS:
        found.append(("owner", f"owner is the placeholder {owner!r}: the git URL, images and deploy keys point at it"))
    for key in ("ingress_domain", "acme_email"):
        value = str(answers.get(key) or "")
        if value and _EXAMPLE_DOMAIN.search(value):
            why = "Let's Encrypt refuses it" if key == "acme_email" else "its hosts never resolve to your clusters"
            found.append((key, f"{key} is the placeholder {value!r}: {why}"))
    return found


def run_placeholders(ctx: Context) -> None:
    path = ctx.root / ANSWERS
    if not path.is_file() or not has_push_remote(ctx.root):
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        answers = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # the yaml check reports it
    if not isinstance(answers, dict):
        return
    lines = text.splitlines()
    for key, why in placeholders(answers):
        line = next((i for i, ln in enumerate(lines, 1) if ln.startswith(f"{key}:")), None)
        ctx.add("placeholders", "warning", ANSWERS, line,
                f"{why}; this repository has a push remote (fleetstrap init --force --data {key}=… to re-render)")
