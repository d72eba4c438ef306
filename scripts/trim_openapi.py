#!/usr/bin/env python3
"""Regenerate tests/fake_github/openapi-subset.json from GitHub's OpenAPI description (npm @octokit/openapi).

The fake GitHub server validates every request and response against these operations, so the subset must
hold exactly the operations `fleetstrap push` calls, with every component they reference.

    python scripts/trim_openapi.py                      # npm pack into a temp dir, then trim
    python scripts/trim_openapi.py --spec path/to/api.github.com.json
    python scripts/trim_openapi.py --version 23.0.2     # a specific package version
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fake_github" / "openapi-subset.json"

# (method, path) of every REST operation fleetstrap push and update --pr (via PyGithub) may call.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("get", "/user"),
    ("get", "/users/{username}"),
    ("get", "/orgs/{org}"),
    ("post", "/user/repos"),
    ("post", "/orgs/{org}/repos"),
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/repos/{owner}/{repo}/keys"),
    ("post", "/repos/{owner}/{repo}/keys"),
    ("delete", "/repos/{owner}/{repo}/keys/{key_id}"),
    ("get", "/repos/{owner}/{repo}/actions/secrets"),
    ("get", "/repos/{owner}/{repo}/actions/secrets/public-key"),
    ("put", "/repos/{owner}/{repo}/actions/secrets/{secret_name}"),
    ("get", "/repos/{owner}/{repo}/actions/variables"),
    ("post", "/repos/{owner}/{repo}/actions/variables"),
    ("patch", "/repos/{owner}/{repo}/actions/variables/{name}"),
    ("get", "/repos/{owner}/{repo}/branches/{branch}"),
    ("get", "/repos/{owner}/{repo}/branches/{branch}/protection"),
    ("put", "/repos/{owner}/{repo}/branches/{branch}/protection"),
    ("delete", "/repos/{owner}/{repo}/branches/{branch}/protection"),
    ("post", "/repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks/contexts"),
    ("get", "/repos/{owner}/{repo}/rulesets"),
    ("post", "/repos/{owner}/{repo}/rulesets"),
    ("get", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"),
    ("put", "/repos/{owner}/{repo}/rulesets/{ruleset_id}"),
    ("get", "/repos/{owner}/{repo}/environments/{environment_name}"),
    ("put", "/repos/{owner}/{repo}/environments/{environment_name}"),
    ("get", "/orgs/{org}/teams/{team_slug}"),
    # fleetstrap update --pr: the update pull request, its label, the comment on a superseded one.
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("patch", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
)

# Annotations only; dropping them keeps the committed file small. Never applied to property names.
_DROP = {"description", "summary", "example", "examples", "externalDocs", "x-github", "x-octokit", "tags",
         "x-github-breaking-changes", "x-multi-segment", "title"}


def _strip(node: Any, *, names: bool = False) -> Any:
    if isinstance(node, list):
        return [_strip(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not names and key in _DROP:
            continue
        # Under these keys the dict keys are names (properties, responses, ...), not annotations.
        out[key] = _strip(value, names=key in {"properties", "patternProperties", "responses", "content",
                                              "headers", "schemas", "parameters", "definitions"}
                          and isinstance(value, dict))
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def trim(spec: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path in OPERATIONS:
        try:
            op = spec["paths"][path][method]
        except KeyError:
            raise SystemExit(f"operation {method.upper()} {path} not in the source spec") from None
        paths.setdefault(path, {})[method] = _strip(op)
    components: dict[str, dict[str, Any]] = {}
    pending: set[str] = set()
    _refs(paths, pending)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, section, name = ref.split("/", 3)  # "#/components/<section>/<name>"
        value = _strip(spec["components"][section][name])
        components.setdefault(section, {})[name] = value
        _refs(value, pending)
    return {
        "openapi": spec["openapi"],
        "info": {"title": "GitHub REST API subset used by fleetstrap push",
                 "version": spec["info"]["version"],
                 "x-source": "npm @octokit/openapi generated/api.github.com.json, trimmed by scripts/trim_openapi.py"},
        "paths": dict(sorted(paths.items())),
        "components": {s: dict(sorted(v.items())) for s, v in sorted(components.items())},
    }


def fetch(version: str | None, workdir: Path) -> Path:
    pkg = "@octokit/openapi" + (f"@{version}" if version else "")
    done = subprocess.run(["npm", "pack", pkg, "--silent"], cwd=workdir, check=True,
                          capture_output=True, text=True)
    tgz = workdir / done.stdout.strip().splitlines()[-1]
    with tarfile.open(tgz) as tar:
        member = tar.getmember("package/generated/api.github.com.json")
        tar.extractall(workdir, members=[member], filter="data")
    return workdir / "package" / "generated" / "api.github.com.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, help="an already downloaded api.github.com.json")
    ap.add_argument("--version", help="@octokit/openapi version to pack (default: latest)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        source = args.spec or fetch(args.version, Path(tmp))
        spec = json.loads(source.read_text(encoding="utf-8"))
    subset = trim(spec)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(subset['paths'])} paths, "
          f"{sum(len(v) for v in subset['components'].values())} components)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
