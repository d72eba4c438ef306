"""Which files are manifests comes from the repo's own references; the rest is judged lightly, and files Flux's
`.sourceignore` leaves out of the artifact are not manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetstrap.validate import ValidateOptions, validate_repo
from fleetstrap.validate.sourceignore import SourceIgnore

FLUX_KS = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./deploy
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""
WIDGET = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"


def _validate(root: Path, files: dict[str, str]) -> tuple[list[tuple[str, str, str]], tuple[str, ...]]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    report = validate_repo(root, ValidateOptions(offline=True, catalog_url=None,
                                                 disabled=frozenset({"xref", "helm"})))
    return [(f.severity, f.file, f.message) for f in report.findings], report.notes


def test_unknown_kind_where_the_repo_deploys_is_a_warning_elsewhere_a_note(tmp_path: Path) -> None:
    findings, notes = _validate(tmp_path, {"clusters/home/apps.yaml": FLUX_KS, "deploy/widget.yaml": WIDGET,
                                           "tools/widget.yaml": WIDGET})
    assert [(s, f) for s, f, _ in findings] == [("warning", "deploy/widget.yaml")]
    assert any("tools/widget.yaml" in n for n in notes), notes


def test_a_repo_that_references_nothing_is_all_manifests(tmp_path: Path) -> None:
    findings, _ = _validate(tmp_path, {"a/widget.yaml": WIDGET, "b/widget.yaml": WIDGET.replace("name: w", "name: v")})
    assert [(s, f) for s, f, _ in findings] == [("warning", "a/widget.yaml"), ("warning", "b/widget.yaml")]


def test_jinja_template_that_does_not_parse_is_not_a_finding(tmp_path: Path) -> None:
    findings, _ = _validate(tmp_path, {"roles/lb/templates/pool.yaml": "addresses:\n{% for r in ranges %}\n"
                                                                        "  - {{ r }}\n{% endfor %}\n"})
    assert findings == []


def test_sourceignored_files_are_not_manifests(tmp_path: Path) -> None:
    findings, _ = _validate(tmp_path, {".sourceignore": "/*\n!/deploy\n", "deploy/widget.yaml": WIDGET,
                                       "scratch/broken.yaml": "a: [\n", "scratch/widget.yaml": WIDGET})
    assert [(s, f) for s, f, _ in findings] == [("warning", "deploy/widget.yaml")]


@pytest.mark.parametrize(("path", "ignored"), [
    ("deploy/a.yaml", False), ("apps/x.yaml", True), ("docs/a.yaml", True), ("sub/docs/x.yaml", True),
    ("deploy/keep.md", False), ("README.md", True), ("deploy/sub/.sops.yaml", True), (".gitlab-ci.yml", True),
])
def test_sourceignore_rules_as_gitignore(path: str, ignored: bool) -> None:
    rules = SourceIgnore(["/*", "!/deploy", "docs/", "*.md", "!keep.md", "**/.sops.yaml",
                          ".gitlab-ci.yml"])
    assert rules.ignored(path) is ignored
