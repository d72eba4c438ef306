"""Run a GitHub Actions job's `run:` steps the way a runner does, on this machine: in order, each in
`bash --noprofile --norc -eo pipefail`, with the environment GitHub gives them (GITHUB_WORKSPACE, GITHUB_ENV,
GITHUB_OUTPUT, GITHUB_PATH, RUNNER_TEMP, CI ...), step outputs and `$GITHUB_PATH`/`$GITHUB_ENV` carried to later
steps. `uses:` steps are not run (the caller provides what they would: a checkout is the working directory).
Expressions: only the forms the generated workflows use (`steps.<id>.outputs.<name>`, `vars.*`, `secrets.*`,
`github.token`, `always()`, `hashFiles(...)`, `==`/`!=` against a quoted string, `||`, `&&`)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


@dataclass
class StepResult:
    name: str
    ran: bool
    code: int = 0
    output: str = ""


@dataclass
class Job:
    workspace: Path
    temp: Path
    variables: Mapping[str, str] = field(default_factory=dict)  # repository variables (vars.*)
    secrets: Mapping[str, str] = field(default_factory=dict)
    token: str = ""
    base_env: Mapping[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    failed: bool = False

    def value(self, expr: str) -> str:
        """One expression's value (strings; `||` picks the first non-empty)."""
        expr = expr.strip()
        if "||" in expr:
            return next((v for v in (self.value(p) for p in expr.split("||")) if v), "")
        if m := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr):
            return self.outputs.get(m.group(1), {}).get(m.group(2), "")
        if m := re.fullmatch(r"vars\.(\w+)", expr):
            return self.variables.get(m.group(1), "")
        if m := re.fullmatch(r"secrets\.(\w+)", expr):
            return self.secrets.get(m.group(1), "")
        if expr == "github.token":
            return self.token
        if m := re.fullmatch(r"'([^']*)'", expr):
            return m.group(1)
        raise ValueError(f"expression not supported here: {expr}")

    def condition(self, expr: str) -> bool:
        expr = _EXPR.sub(lambda m: m.group(1), expr).strip()
        if "&&" in expr:
            return all(self.condition(p) for p in expr.split("&&"))
        if expr == "always()":
            return True
        if m := re.fullmatch(r"hashFiles\('([^']+)'\)\s*!=\s*''", expr):
            return (self.workspace / m.group(1)).is_file()
        if m := re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", expr):
            left, right = self.value(m.group(1)), self.value(m.group(3))
            return (left == right) == (m.group(2) == "==")
        raise ValueError(f"condition not supported here: {expr}")

    def run_step(self, step: Mapping[str, Any], index: int) -> StepResult:
        name = str(step.get("name") or step.get("id") or f"step {index}")
        cond = step.get("if")
        if cond is not None and not self.condition(str(cond)):
            return StepResult(name, ran=False)
        if self.failed and cond is None:
            return StepResult(name, ran=False)  # success() is the default condition
        if "run" not in step:
            return StepResult(name, ran=False)  # `uses:`: provided by the caller
        files = {k: self.temp / f"_{k.lower()}_{index}" for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")}
        for f in files.values():
            f.write_text("")
        step_env = {k: _EXPR.sub(lambda m: self.value(m.group(1)), str(v)) for k, v in (step.get("env") or {}).items()}
        env = {**self.base_env, **self.env, "GITHUB_WORKSPACE": str(self.workspace), "RUNNER_TEMP": str(self.temp),
               "CI": "true", "GITHUB_ACTIONS": "true", **{k: str(v) for k, v in files.items()}, **step_env}
        env["PATH"] = os.pathsep.join([*reversed(self.path), env.get("PATH", os.defpath)])
        script = str(step["run"])
        assert "${{" not in script, f"{name}: an expression inside a shell script"
        res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=self.workspace,
                             env=env, capture_output=True, text=True, check=False)
        out = self.outputs.setdefault(str(step.get("id", f"_{index}")), {})
        for line in files["GITHUB_OUTPUT"].read_text().splitlines():
            key, _, val = line.partition("=")
            out[key] = val
        for line in files["GITHUB_ENV"].read_text().splitlines():
            key, _, val = line.partition("=")
            self.env[key] = val
        self.path += [p for p in files["GITHUB_PATH"].read_text().splitlines() if p]
        if res.returncode != 0:
            self.failed = True
        return StepResult(name, ran=True, code=res.returncode, output=res.stdout + res.stderr)


def run_job(job_def: Mapping[str, Any], job: Job) -> list[StepResult]:
    return [job.run_step(step, i) for i, step in enumerate(job_def["steps"])]
