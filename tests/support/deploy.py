"""Fleets with a release history, for promote / rollback / resume tests.

A generated fleet is committed, then releases land the way they land in a real fleet repo:
- without image automation, the service's release workflow (templates/units/service/.github/workflows/
  <prefix>release.yml) runs `yq -i '.image.tag = strenv(VERSION)' apps/<first env>/<s>/values.yaml` and commits
  it as github-actions[bot] with "<s>: deploy <version> to <first env>";
- with Flux image automation, image-automation-controller rewrites the values of the lines whose comment is a
  setter marker (kyaml reads the whole line comment as JSON) and commits as fluxcdbot with the automation's
  messageTemplate "chore(<env>): update images";
- with Argo CD Image Updater (helmvalues write-back), argocd-image-updater sets image.tag and commits.
The edits here keep the rest of the line, as yq and kyaml do (mikefarah yq keeps line comments).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fleetstrap.blueprints import resolve_blueprint
from support.fleet import RenderedFleet, render_answers, render_blueprint

SERVICE = "hello"
BOTS = {
    "workflow": ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com"),
    "flux": ("fluxcdbot", "fluxcdbot@users.noreply.github.com"),
    "argocd": ("argocd-image-updater", "noreply@argoproj.io"),
}


def git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    import os

    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


def rendered(engine: str, layout: str, automation: bool, image_policy: dict[str, str] | None = None) -> RenderedFleet:
    if image_policy:
        key = "multi-env-policy-" + "-".join(f"{engine}-{layout}-{env}" for env in sorted(image_policy))
        return render_answers(key, {**resolve_blueprint("multi-env"), "engine": engine, "repo_layout": layout,
                                    "image_automation": automation, "image_policy": image_policy})
    return render_blueprint("multi-env", engine=engine, repo_layout=layout, image_automation=automation)


def fleet_repo(fleet: RenderedFleet, dest: Path) -> Path:
    """The rendered fleet as a git repository with its first commit (branch main)."""
    shutil.copytree(fleet.root, dest, symlinks=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "fleetstrap init")
    return dest


def values(root: Path, env: str, service: str = SERVICE) -> Path:
    return root / "apps" / env / service / "values.yaml"


def tag_of(root: Path, env: str, service: str = SERVICE) -> str:
    data: Any = __import__("yaml").safe_load(values(root, env, service).read_text())
    return str(data["image"]["tag"])


def _yq_set_tag(text: str, version: str) -> str:
    """`yq -i '.image.tag = strenv(VERSION)'`: the value replaced, the line comment kept."""
    out, n = re.subn(r"(?m)^(image:\n(?:[ \t].*\n|#.*\n)*?[ \t]+tag:[ \t]*)[^\s#]+", rf"\g<1>{version}", text,
                     count=1)
    assert n == 1, "no image.tag line"
    return out


def _flux_setters(text: str, version: str) -> str:
    """The Setters strategy on one file: only lines whose whole comment parses as a `$imagepolicy` marker
    ending in :tag get the policy's tag."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if "#" not in line:
            continue
        value, comment = line.split("#", 1)
        try:
            marker = json.loads(comment)
        except ValueError:
            continue
        if isinstance(marker, dict) and str(marker.get("$imagepolicy", "")).endswith(":tag"):
            m = re.match(r"^(\s*tag:\s*)(\S+)(\s*)$", value)
            if m:
                lines[i] = f"{m.group(1)}{version}{m.group(3)}#{comment}"
    return "\n".join(lines)


def chart_version(root: Path, env: str, service: str = SERVICE) -> str | None:
    """The chart version an environment pins (split layout), None without a chart-version file."""
    path = root / "apps" / env / service / "chart-version.yaml"
    if not path.is_file():
        return None
    return str(__import__("yaml").safe_load(path.read_text())["data"]["version"])


def _yq_set_chart(text: str, version: str) -> str:
    """`yq -i '.data.version = strenv(VERSION)'` on a chart-version file (the release workflow, split layout)."""
    out, n = re.subn(r'(?m)^(  version:[ \t]*)("[^"]*"|\S+)', lambda m: f'{m.group(1)}"{version}"', text, count=1)
    assert n == 1, "no data.version line"
    return out


def release(root: Path, version: str, *, env: str = "dev", by: str = "workflow", service: str = SERVICE) -> str | None:
    """One release landing in `env` as `by` commits it; returns the commit, None when the bot had nothing to do.
    The release workflow of a split-layout fleet also sets the environment's chart version (same version)."""
    path = values(root, env, service)
    text = path.read_text()
    new = _flux_setters(text, version) if by == "flux" else _yq_set_tag(text, version)
    if new == text:
        return None
    path.write_text(new)
    paths = [str(path.relative_to(root))]
    chart = root / "apps" / env / service / "chart-version.yaml"
    if by == "workflow" and chart.is_file():
        chart.write_text(_yq_set_chart(chart.read_text(), version))
        paths.append(str(chart.relative_to(root)))
    name, email = BOTS[by]
    message = {"workflow": f"{service}: deploy {version} to {env}", "flux": f"chore({env}): update images",
               "argocd": f"build: automatic update of {service}"}[by]
    ident = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
             "GIT_COMMITTER_EMAIL": email}
    git(root, "commit", "-q", "-m", message, "--", *paths, env=ident)
    return git(root, "rev-parse", "HEAD")


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD")


def clean(root: Path) -> bool:
    return git(root, "status", "--porcelain", "-uall") == ""
