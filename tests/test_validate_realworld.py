"""Repos in the shapes real fleets use (tests/defects/realworld.py) validate with 0 errors out of the box
(bundled CRD schemas, offline), and each injected defect is an error in the right file, with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defects.corpus import Defect
from defects.realworld import REPOS, Repo
from fleetstrap.cli import run
from fleetstrap.errors import EXIT_FINDINGS

CASES = [(repo, d) for repo in REPOS for d in repo.defects]


def _write(root: Path, repo: Repo) -> Path:
    for rel, text in repo.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, object]]]:
    # No --schema-location: the bundled schemas must be enough; no catalog, no network.
    code = run(["validate", "--offline", "--format", "json", str(root)])
    return code, json.loads(capsys.readouterr().out)["findings"]


@pytest.mark.parametrize("repo", REPOS, ids=[r.name for r in REPOS])
def test_clean_repo_has_no_errors(repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, findings = _validate(_write(tmp_path / repo.name, repo), capsys)
    errors = [f for f in findings if f["severity"] == "error"]
    assert (code, errors) == (0, [])
    # Every object has a schema (no "no schema" warnings), and patch files are never checked standalone.
    assert not [f for f in findings if "no schema" in str(f["message"])], findings
    patches = {"apps/staging/podinfo-values.yaml", "tenants/staging/dev-team-patch.yaml",
               "apps/guestbook/overlays/dev/replicas.yaml", "deploy/overlays/staging/resources.yaml"}
    assert not [f for f in findings if f["file"] in patches], findings


def _apply(root: Path, defect: Defect) -> None:
    for rel, old, new in defect.edits:
        path = root / rel
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{defect.id}: edit target must occur once in {rel}"
        path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize(("repo", "defect"), CASES, ids=[f"{r.name}-{d.id}" for r, d in CASES])
def test_defect_is_an_error_in_the_right_file(repo: Repo, defect: Defect, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = _write(tmp_path / repo.name, repo)
    _apply(root, defect)
    code, findings = _validate(root, capsys)
    errors = [f for f in findings if f["severity"] == "error"]
    assert code == EXIT_FINDINGS, findings
    assert {(f["check"], f["file"]) for f in errors} == {(defect.check, defect.file)}, errors
    assert [f for f in errors if (defect.path is None or f["path"] == defect.path)
            and (defect.message is None or defect.message in str(f["message"]))], errors


def test_reference_the_repo_cannot_see_is_a_warning_with_the_reason(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    repo = next(r for r in REPOS if r.name == "flux-monorepo")
    root = _write(tmp_path / "repo", repo)
    release = root / "apps/base/podinfo-local/release.yaml"
    # A HelmChart nobody in the repo declares (another tool may create it): never an error.
    release.write_text(release.read_text(encoding="utf-8").replace(
        "kind: ExternalArtifact\n    name: podinfo-chart", "kind: HelmChart\n    name: shared-chart"), encoding="utf-8")
    code, findings = _validate(root, capsys)
    assert code == 0
    warning = [f for f in findings if f["file"] == "apps/base/podinfo-local/release.yaml"]
    assert [(f["severity"], f["path"]) for f in warning] == [("warning", "spec.chartRef.name")]
    assert "another tool" in str(warning[0]["message"])
