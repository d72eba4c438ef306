"""zizmor findings by severity for every blueprint and layout, and for fleetstrap's own workflows.

    python benchmarks/zizmor_report.py [--source DIR] [--project DIR] [--persona regular|pedantic|auditor]

Renders each built-in blueprint twice (monorepo, and `repo_layout=split`: the fleet repository plus each
service repository) with `python -m fleetstrap init` and runs `zizmor --offline --format json` (default
persona regular: pedantic off) over the rendered `.github/workflows`. `--source` is a fleetstrap source tree
to render with (a checkout of an older commit, to measure before a change); default: the installed fleetstrap.
`--project` is the checkout whose `.github/workflows` are counted (default: this repository).
Prints one table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

SEVERITIES = ("high", "medium", "low", "informational")
ROOT = Path(__file__).resolve().parent.parent


def zizmor_counts(zizmor: str, files: list[Path], persona: str) -> tuple[Counter[str], Counter[str]]:
    """Findings per severity, and per `rule@severity`, of `zizmor --offline` over `files`."""
    if not files:
        return Counter(), Counter()
    proc = subprocess.run([zizmor, "--offline", "--persona", persona, "--format", "json", "--no-progress",
                           *map(str, files)],
                          capture_output=True, text=True, check=False)
    try:
        findings = json.loads(proc.stdout or "[]")
    except ValueError:
        sys.exit(f"zizmor failed ({proc.returncode}): {proc.stderr.strip()}")
    by_sev: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    for item in findings:
        severity = str(item["determinations"]["severity"]).lower()
        by_sev[severity] += 1
        by_rule[f"{item['ident']}@{severity}"] += 1
    return by_sev, by_rule


def workflow_files(root: Path) -> list[Path]:
    folder = root / ".github" / "workflows"
    return sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]) if folder.is_dir() else []


def render(blueprint: str, layout: str, dest: Path, source: Path | None, cache: Path) -> list[Path]:
    """Render one blueprint; returns the repositories written (the fleet first, then service repos)."""
    env = {**os.environ, "FLEETSTRAP_CACHE_DIR": str(cache)}
    if source is not None:
        env["PYTHONPATH"] = str(source / "generator")
    cmd = [sys.executable, "-m", "fleetstrap", "init", str(dest / "fleet-infra"), "--blueprint", blueprint,
           "--no-commit", "--no-validate"]
    if layout == "split":
        cmd += ["--data", "repo_layout=split"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return sorted((p for p in dest.iterdir() if p.is_dir()), key=lambda p: (p.name != "fleet-infra", p.name))


def row(label: str, counts: Counter[str], rules: Counter[str]) -> str:
    cells = " ".join(f"{counts.get(s, 0):>6}" for s in SEVERITIES)
    detail = ", ".join(f"{k}={v}" for k, v in sorted(rules.items()))
    return f"{label:<44} {cells}  {detail}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, help="fleetstrap source tree to render with")
    parser.add_argument("--project", type=Path, default=ROOT, help="checkout whose own workflows are counted")
    parser.add_argument("--persona", default="regular", choices=["regular", "pedantic", "auditor"])
    args = parser.parse_args()
    zizmor = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    version = subprocess.run([zizmor, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    blueprints = sorted(p.stem for p in ((args.source or ROOT) / "blueprints").glob("*.yaml"))
    print(f"{version}, --offline, {args.persona} persona; columns: {' '.join(f'{s:>6}' for s in SEVERITIES)}")
    with tempfile.TemporaryDirectory(prefix="fleetstrap-zizmor-") as tmp_name:
        tmp = Path(tmp_name)
        for blueprint in blueprints:
            for layout in ("monorepo", "split"):
                dest = tmp / f"{blueprint}-{layout}"
                dest.mkdir()
                for repo in render(blueprint, layout, dest, args.source, tmp / "cache"):
                    counts, rules = zizmor_counts(zizmor, workflow_files(repo), args.persona)
                    print(row(f"{blueprint}/{layout}/{repo.name}", counts, rules))
    counts, rules = zizmor_counts(zizmor, workflow_files(args.project), args.persona)
    print(row("fleetstrap's own .github/workflows", counts, rules))


if __name__ == "__main__":
    main()
