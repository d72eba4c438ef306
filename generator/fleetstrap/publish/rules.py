"""The repository ruleset that protects the fleet's branch (pure: build, compare, merge).

A ruleset, not classic branch protection: classic protection has no way to let a deploy key through, and two
bots push to the branch directly with deploy keys: Flux image automation (the cluster's read-write key) and the
release workflow's `gitops` job (the `fleetstrap-release` key). Rulesets can name `DeployKey` as a bypass actor.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

# Repository role ids GitHub uses in bypass_actors: 1 read, 2 triage, 3 write, 4 maintain, 5 admin.
ADMIN_ROLE_ID = 5

# Deploy keys (only read-write ones can push at all) and repository admins may push to the branch directly.
# Admins keep what classic protection gave them with enforce_admins: false (bootstrap pushes its components
# commit with the admin's token).
BYPASS_ACTORS: tuple[dict[str, Any], ...] = (
    {"actor_id": None, "actor_type": "DeployKey", "bypass_mode": "always"},
    {"actor_id": ADMIN_ROLE_ID, "actor_type": "RepositoryRole", "bypass_mode": "always"},
)

_BODY_FIELDS = ("name", "target", "enforcement", "bypass_actors", "conditions", "rules")


def ruleset_name(branch: str) -> str:
    return f"fleetstrap {branch}"


def ruleset_branch(name: str) -> str:
    """The branch a fleetstrap ruleset protects (its name is `ruleset_name(branch)`)."""
    return name.removeprefix("fleetstrap ")


def build_ruleset(branch: str, default_branch: str | None, checks: tuple[str, ...] | list[str],
                  approvals: int) -> dict[str, Any]:
    """The request body of the fleetstrap ruleset for `branch`."""
    ref = "~DEFAULT_BRANCH" if default_branch in (None, branch) else f"refs/heads/{branch}"
    rules: list[dict[str, Any]] = [{"type": "deletion"}, {"type": "non_fast_forward"}]
    if approvals:
        rules.append({"type": "pull_request", "parameters": {
            "required_approving_review_count": approvals, "dismiss_stale_reviews_on_push": False,
            "require_code_owner_review": False, "require_last_push_approval": False,
            "required_review_thread_resolution": False}})
    if checks:
        rules.append({"type": "required_status_checks", "parameters": {
            "strict_required_status_checks_policy": True,
            "required_status_checks": [{"context": c} for c in checks]}})
    return {"name": ruleset_name(branch), "target": "branch", "enforcement": "active",
            "bypass_actors": [dict(a) for a in BYPASS_ACTORS],
            "conditions": {"ref_name": {"include": [ref], "exclude": []}}, "rules": rules}


def required_checks(ruleset: dict[str, Any]) -> list[str]:
    for rule in ruleset.get("rules") or []:
        if rule.get("type") == "required_status_checks":
            return [str(c["context"]) for c in (rule.get("parameters") or {}).get("required_status_checks") or []]
    return []


def body_of(ruleset: dict[str, Any]) -> dict[str, Any]:
    """The writable part of a ruleset as GitHub returns it, in the form a PUT takes."""
    out = {k: copy.deepcopy(ruleset[k]) for k in _BODY_FIELDS if k in ruleset}
    out["bypass_actors"] = [{"actor_id": a.get("actor_id"), "actor_type": a["actor_type"],
                             "bypass_mode": a.get("bypass_mode", "always")} for a in out.get("bypass_actors") or []]
    out.setdefault("rules", [])
    conditions = out.get("conditions") or {}
    ref_name = conditions.get("ref_name") or {}
    out["conditions"] = {**conditions, "ref_name": {"include": list(ref_name.get("include") or []),
                                                    "exclude": list(ref_name.get("exclude") or [])}}
    return out


def merge_ruleset(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """`current` with what `wanted` adds: missing bypass actors, rules, checks, a higher review count.

    Nothing configured by hand is removed or weakened (re-runs must not clobber settings); enforcement is
    left as it is (someone may have set `evaluate` on purpose; the caller warns)."""
    out = body_of(current)
    have = {(a["actor_type"], a["actor_id"]) for a in out["bypass_actors"]}
    out["bypass_actors"] += [dict(a) for a in wanted["bypass_actors"] if (a["actor_type"], a["actor_id"]) not in have]
    include = out["conditions"]["ref_name"]["include"]
    for ref in wanted["conditions"]["ref_name"]["include"]:
        if ref not in include and "~ALL" not in include:
            include.append(ref)
    rules = out["rules"]
    for rule in wanted["rules"]:
        same = next((r for r in rules if r.get("type") == rule["type"]), None)
        if same is None:
            rules.append(copy.deepcopy(rule))
        elif rule["type"] == "required_status_checks":
            params = same.setdefault("parameters", {})
            listed = params.setdefault("required_status_checks", [])
            names = {c.get("context") for c in listed}
            listed += [c for c in rule["parameters"]["required_status_checks"] if c["context"] not in names]
            params.setdefault("strict_required_status_checks_policy", True)
        elif rule["type"] == "pull_request":
            params = same.setdefault("parameters", {})
            wanted_count = int(rule["parameters"]["required_approving_review_count"])
            params["required_approving_review_count"] = max(
                int(params.get("required_approving_review_count") or 0), wanted_count)
    return out


@dataclass(frozen=True)
class ClassicProtection:
    """Classic branch protection found on the branch, and whether the ruleset can take its place."""

    checks: tuple[str, ...]
    approvals: int
    blocking: tuple[str, ...]  # settings a fleetstrap ruleset does not carry over; non-empty: leave it alone

    @property
    def replaceable(self) -> bool:
        return not self.blocking


def _enabled(protection: dict[str, Any], key: str) -> bool:
    value = protection.get(key)
    return bool(value.get("enabled")) if isinstance(value, dict) else bool(value)


def read_classic(protection: dict[str, Any]) -> ClassicProtection:
    """What a GET .../branches/{branch}/protection answer holds, against what the ruleset can carry."""
    status = protection.get("required_status_checks") or {}
    checks: list[str] = []
    for c in [*(status.get("contexts") or []), *(c.get("context") for c in status.get("checks") or [])]:
        if c and c not in checks:
            checks.append(str(c))
    reviews = protection.get("required_pull_request_reviews") or {}
    approvals = int(reviews.get("required_approving_review_count") or 0) if reviews else 0
    blocking = [key for key in ("enforce_admins", "required_linear_history", "allow_force_pushes", "allow_deletions",
                                "block_creations", "required_conversation_resolution", "lock_branch",
                                "required_signatures") if _enabled(protection, key)]
    if protection.get("restrictions"):
        blocking.append("restrictions")
    if reviews and (reviews.get("dismiss_stale_reviews") or reviews.get("require_code_owner_reviews")
                    or reviews.get("require_last_push_approval") or reviews.get("dismissal_restrictions")
                    or reviews.get("bypass_pull_request_allowances")):
        blocking.append("required_pull_request_reviews")
    return ClassicProtection(tuple(checks), approvals, tuple(blocking))
