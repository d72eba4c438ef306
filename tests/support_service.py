"""Helpers for the service unit tests: render the unit once per answers set, lint and render its chart.

The chart engine is the real Helm v4 SDK through PyPI `helm-python-sdk` (module `helm_python`, the `helm`
extra); no helm binary is needed. Renders are cached per test process, so each answers set is rendered
by copier exactly once however many test modules use it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.answers import build_answers
from fleetstrap.pins import pin
from fleetstrap.plan import build_service_component
from fleetstrap.render import ensure_template_mirror, render_component
from support.tools import require_module

SERVICE = "checkout"
NAMESPACE = SERVICE
K8S_VERSION = pin("kubernetes_version")

# Answer sets exercised by the tests (owner and first service are added by render_service).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    # Every switch of the GitOps wiring on at once: both engines, three environments, image automation,
    # collector sidecar and monitoring.
    "full": {
        "engine": "both",
        "environments": ["dev", "staging", "production"],
        "image_automation": True,
        "collector_mode": "sidecar",
        "monitoring": True,
        "tls_issuer": "none",
    },
    "argocd": {"engine": "argocd", "image_automation": True, "environments": ["dev", "production"]},
    "split-source": {"repo_layout": "split", "service_scope": "source"},
    "split-gitops": {"repo_layout": "split", "image_automation": True, "service_scope": "gitops"},
}

_CACHE: dict[str, Path] = {}
_BASE: list[Path] = []


def _base() -> Path:
    if not _BASE:
        base = Path(tempfile.mkdtemp(prefix="fleetstrap-service-"))
        atexit.register(shutil.rmtree, base, True)
        _BASE.append(base)
    return _BASE[0]


def render_service(variant: str) -> Path:
    """Render the service unit for one of VARIANTS (cached); returns the destination root."""
    if variant in _CACHE:
        return _CACHE[variant]
    data = dict(VARIANTS[variant])
    extra = {k: data.pop(k) for k in list(data) if k.startswith("service_")}
    answers = build_answers({"owner": "acme", "service": SERVICE, **data})
    root = _base() / variant
    render_component(build_service_component(answers, SERVICE, extra), root, ensure_template_mirror())
    _CACHE[variant] = root
    return root


def helm_sdk() -> Any:
    return require_module("helm_python")


def lint_problems(chart: Path, values: Mapping[str, Any] | None = None) -> list[str]:
    """`helm lint --strict`: warnings and errors (info such as "icon is recommended" is not a problem)."""
    helm = helm_sdk()
    report = helm.lint(str(chart), dict(values or {}), strict=True, namespace=NAMESPACE,
                       kube_version=f"v{K8S_VERSION}.0")
    problems = [f"{m['path']}: {m['error']}" for m in report.get("messages", []) if int(m["severity"]) >= 2]
    return problems + [str(e) for e in report.get("errors", [])]


def render_chart(chart: Path, values: Mapping[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """`helm template` (install): (template path, object) for every rendered Kubernetes object."""
    helm = helm_sdk()
    rendered = helm.Chart.load(str(chart)).render(dict(values or {}), name=SERVICE, namespace=NAMESPACE,
                                                  is_install=True)
    objects = []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        objects += [(template, doc) for doc in yaml.safe_load_all(text) if doc]
    return objects
