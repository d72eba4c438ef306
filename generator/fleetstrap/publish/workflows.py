"""What the generated GitHub workflows need from the repo: check names, secrets, variables, environments."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.errors import UserError

_SECRET = re.compile(r"\bsecrets\.([A-Za-z_][A-Za-z0-9_]*)")
_VAR = re.compile(r"\bvars\.([A-Za-z_][A-Za-z0-9_]*)")
# Provided by GitHub itself; never set by us.
_BUILTIN_SECRETS = frozenset({"GITHUB_TOKEN"})


@dataclass(frozen=True)
class WorkflowNeeds:
    checks: tuple[str, ...]  # status check contexts of jobs that run on pull requests
    secrets: tuple[str, ...]
    variables: tuple[str, ...]
    environments: tuple[str, ...]
    has_workflows: bool
    skipped_checks: tuple[str, ...] = ()  # jobs whose check name can't be known statically (matrix, expressions)
    # (workflow, checks) of workflows that skip pull requests outside their `paths`: GitHub leaves a required
    # check of a skipped workflow pending, which would block every pull request not touching those paths.
    path_filtered: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _triggers(doc: dict[Any, Any]) -> set[str]:
    # YAML 1.1 reads the key `on` as True.
    on = doc.get("on", doc.get(True))
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return {str(x) for x in on}
    if isinstance(on, dict):
        return {str(k) for k in on}
    return set()


def _path_filtered(doc: dict[Any, Any]) -> bool:
    on = doc.get("on", doc.get(True))
    if not isinstance(on, dict):
        return False
    return any(isinstance(on.get(event), dict) and ({"paths", "paths-ignore"} & set(on[event]))
               for event in ("pull_request", "pull_request_target"))


def read_workflow_needs(root: Path) -> WorkflowNeeds:
    wf_dir = root / ".github" / "workflows"
    files = sorted([*wf_dir.glob("*.yml"), *wf_dir.glob("*.yaml")]) if wf_dir.is_dir() else []
    checks: list[str] = []
    skipped: list[str] = []
    secrets: set[str] = set()
    variables: set[str] = set()
    envs: list[str] = []
    path_filtered: list[tuple[str, tuple[str, ...]]] = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        secrets.update(_SECRET.findall(text))
        variables.update(_VAR.findall(text))
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"workflow {f.relative_to(root)} is not valid YAML") from exc
        if not isinstance(doc, dict):
            continue
        on_prs = bool(_triggers(doc) & {"pull_request", "pull_request_target", "merge_group"})
        filtered: list[str] = []
        for job_id, job in (doc.get("jobs") or {}).items():
            if not isinstance(job, dict):
                continue
            env = job.get("environment")
            env_name = env.get("name") if isinstance(env, dict) else env
            if isinstance(env_name, str) and "${{" not in env_name and env_name not in envs:
                envs.append(env_name)
            if not on_prs:
                continue
            name = str(job.get("name") or job_id)
            if "${{" in name or (isinstance(job.get("strategy"), dict) and "matrix" in job["strategy"]):
                skipped.append(name)
            elif _path_filtered(doc):
                filtered.append(name)
            elif name not in checks:
                checks.append(name)
        if filtered:
            path_filtered.append((str(doc.get("name") or f.stem), tuple(filtered)))
    return WorkflowNeeds(
        checks=tuple(checks),
        secrets=tuple(sorted(secrets - _BUILTIN_SECRETS)),
        variables=tuple(sorted(variables)),
        environments=tuple(envs),
        has_workflows=bool(files),
        skipped_checks=tuple(skipped),
        path_filtered=tuple(path_filtered),
    )
