"""Helpers for the update tests and benchmark: a small copier template repo with tagged versions, shaped
like fleetstrap's (one template, `units/<unit>` sub-templates, one answers file per component), and fleet
repos rendered from it. The real templates are not used: they change while these tests must stay stable."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from fleetstrap.answers import build_answers
from fleetstrap.plan import build_plan
from fleetstrap.render import TemplateSource, render_component

COPIER_YML = """\
_subdirectory: "units/{{ unit }}"
_templates_suffix: .jinja
_answers_file: .copier-answers.yml
_envops:
  keep_trailing_newline: true
unit: {type: str, default: fleet}
owner: {type: str}
fleet_name: {type: str, default: fleet-infra}
git_url: {type: str, default: ""}
branch: {type: str, default: main}
engine: {type: str, default: flux}
environments: {type: yaml, default: [dev]}
registry: {type: str, default: ghcr.io/acme}
image_automation: {type: bool, default: false}
telemetry_backend: {type: str, default: jaeger}
otlp_endpoint: {type: str, default: ""}
collector_mode: {type: str, default: gateway}
ingress_domain: {type: str, default: example.com}
tls_issuer: {type: str, default: selfsigned}
monitoring: {type: bool, default: false}
repo_layout: {type: str, default: monorepo}
clusters: {type: yaml, default: [], when: "{{ unit == 'fleet' }}"}
services: {type: yaml, default: [], when: "{{ unit == 'fleet' }}"}
teams: {type: yaml, default: [platform], when: "{{ unit == 'fleet' }}"}
secrets: {type: str, default: none, when: "{{ unit in ['fleet', 'cluster'] }}"}
acme_email: {type: str, default: "", when: "{{ unit == 'fleet' and tls_issuer.startswith('letsencrypt') }}"}
notifications: {type: str, default: none, when: "{{ unit in ['fleet', 'monitoring'] }}"}
service_name: {type: str, default: "", when: "{{ unit == 'service' }}"}
cluster_name: {type: str, default: "", when: "{{ unit == 'cluster' }}"}
cluster_environment: {type: str, default: dev, when: "{{ unit == 'cluster' }}"}
cluster_context: {type: str, default: "", when: "{{ unit == 'cluster' }}"}
cluster_server: {type: str, default: "", when: "{{ unit == 'cluster' }}"}
"""

ANSWERS_JINJA = "# Changes here will be overwritten by Copier\n{{ _copier_answers|to_nice_yaml -}}\n"

# Version 1 of each file, as {unit: {path: content}}. Paths may use copier's jinja in names.
V1: dict[str, dict[str, str]] = {
    "fleet": {
        "README.md.jinja": "# {{ fleet_name }}\n\nOwned by {{ owner }}.\n\nServices:\n"
                           "{% for s in services %}- {{ s }}\n{% endfor %}",
        "apps/dev/kustomization.yaml.jinja": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                             "resources:\n{% for s in services %}  - {{ s }}\n{% endfor %}",
    },
    "cluster": {
        "clusters/{{ cluster_name }}/apps.yaml.jinja": "# apps of {{ cluster_name }} ({{ cluster_environment }})\n",
    },
    "service": {
        "apps/dev/{{ service_name }}/values.yaml.jinja": (
            "# values for {{ service_name }}\n"
            "replicaCount: 1\n"
            "image:\n"
            "  repository: ghcr.io/acme/{{ service_name }}\n"
            '  tag: 0.1.0 # {"$imagepolicy": "flux-system:{{ service_name }}:tag"}\n'
            "resources:\n"
            "  limits:\n"
            "    memory: 128Mi\n"
        ),
        "apps/dev/{{ service_name }}/imagepolicy.yaml.jinja": (
            "apiVersion: image.toolkit.fluxcd.io/v1beta2\n"
            "kind: ImagePolicy\n"
            "metadata:\n"
            "  name: {{ service_name }}\n"
            "spec:\n"
            "  imageRepositoryRef:\n"
            "    name: {{ service_name }}\n"
            "  policy:\n"
            "    semver:\n"
            "      range: '>=0.1.0'\n"
        ),
        "apps/dev/{{ service_name }}/.argocd-source-{{ service_name }}.yaml.jinja": (
            "helm:\n  parameters:\n  - name: image.tag\n    value: 0.1.0\n"
        ),
        "apps/dev/{{ service_name }}/values-argo.yaml.jinja": (
            "image:\n  repository: ghcr.io/acme/{{ service_name }}\n  tag: 0.1.0\nservice:\n  port: 8080\n"
        ),
        "services/{{ service_name }}/README.md.jinja": "# {{ service_name }}\n\nA service.\n",
    },
}


def build_v2() -> dict[str, dict[str, str]]:
    """v2: changes in service files (one next to the bot-owned tag line), a new tag default the bots
    already moved past, the ImagePolicy API moved to v1, and a README line."""
    vals = "apps/dev/{{ service_name }}/values.yaml.jinja"
    v2 = variant(V1, "service", vals, "    memory: 128Mi", "    memory: 256Mi")
    v2 = variant(v2, "service", vals, "  tag: 0.1.0 #", "  tag: 0.2.0 #")
    v2 = variant(v2, "service", "apps/dev/{{ service_name }}/imagepolicy.yaml.jinja",
                 "image.toolkit.fluxcd.io/v1beta2", "image.toolkit.fluxcd.io/v1")
    v2 = variant(v2, "service", "apps/dev/{{ service_name }}/.argocd-source-{{ service_name }}.yaml.jinja",
                 "value: 0.1.0", "value: 0.2.0")
    v2 = variant(v2, "service", "apps/dev/{{ service_name }}/values-argo.yaml.jinja", "tag: 0.1.0", "tag: 0.2.0")
    v2 = variant(v2, "service", "apps/dev/{{ service_name }}/values-argo.yaml.jinja", "port: 8080", "port: 9090")
    return variant(v2, "service", "services/{{ service_name }}/README.md.jinja", "A service.", "A Rust service.")


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    env.setdefault("GIT_AUTHOR_NAME", "t")
    env.setdefault("GIT_AUTHOR_EMAIL", "t@example.com")
    env.setdefault("GIT_COMMITTER_NAME", "t")
    env.setdefault("GIT_COMMITTER_EMAIL", "t@example.com")
    res = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return res.stdout


def git(cwd: Path, *args: str) -> str:
    return _git(cwd, *args)


def write_version(template: Path, files: Mapping[str, Mapping[str, str]], tag: str) -> None:
    """Replace the template's unit files with `files`, commit and tag."""
    template.mkdir(parents=True, exist_ok=True)
    if not (template / ".git").exists():
        _git(template, "init", "-q", "-b", "main")
    units = template / "units"
    if units.exists():
        shutil.rmtree(units)
    (template / "copier.yml").write_text(COPIER_YML)
    for unit in ("fleet", "cluster", "service", "monitoring"):
        d = units / unit
        d.mkdir(parents=True)
        (d / "{{ _copier_conf.answers_file }}.jinja").write_text(ANSWERS_JINJA)
        for rel, text in files.get(unit, {}).items():
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    _git(template, "add", "-A")
    _git(template, "commit", "-q", "--allow-empty", "-m", f"templates {tag}")
    _git(template, "tag", tag)


def write_two_versions(template: Path) -> Path:
    """The template repo with V1 tagged v1.0.0 and build_v2() tagged v2.0.0."""
    write_version(template, V1, "v1.0.0")
    write_version(template, build_v2(), "v2.0.0")
    return template


def variant(base: Mapping[str, Mapping[str, str]], unit: str, rel: str, old: str, new: str
            ) -> dict[str, dict[str, str]]:
    """A copy of `base` with one text replacement in one file (must apply)."""
    out = {u: dict(fs) for u, fs in base.items()}
    assert old in out[unit][rel], f"{old!r} not in {unit}/{rel}"
    out[unit][rel] = out[unit][rel].replace(old, new)
    return out


def render_fleet(dest: Path, source: TemplateSource, services: list[str]) -> None:
    """Render a fleet with these services from `source` and commit it."""
    answers = build_answers({"owner": "acme", "services": services, "tls_issuer": "selfsigned", "secrets": "none"})
    dest.mkdir(parents=True, exist_ok=True)
    _git(dest, "init", "-q", "-b", "main")
    for c in build_plan(answers).components:
        render_component(c, dest, source)
    commit_all(dest, "Initial fleet")


def commit_all(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "--allow-empty", "-m", message)


def head(root: Path) -> str:
    return _git(root, "rev-parse", "HEAD").strip()


def status(root: Path) -> list[str]:
    """`git status --porcelain` paths (untracked included)."""
    out = _git(root, "status", "--porcelain", "-uall")
    return sorted(line[3:] for line in out.splitlines())
