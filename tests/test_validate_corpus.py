"""Each injected defect is reported by the right check, in the right file and path, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from defects.corpus import DEFECTS, Defect
from fleetstrap.validate import Report, ValidateOptions, validate_repo
from fleetstrap.validate.check_otel import NO_COLLECTOR_NOTE
from validate_fixture import copy_fleet, crd_schemas, write_fleet


def _options(tmp: Path) -> ValidateOptions:
    return ValidateOptions(schema_locations=(str(crd_schemas()),), offline=True, catalog_url=None,
                           cache_dir=tmp / "cache")


@pytest.fixture(scope="module")
def clean_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fleet(tmp_path_factory.mktemp("fleet") / "repo")


def test_corpus_is_large_enough() -> None:
    assert len(DEFECTS) >= 30
    assert len({d.id for d in DEFECTS}) == len(DEFECTS)


def test_clean_base_has_no_findings(clean_repo: Path, tmp_path: Path) -> None:
    report = validate_repo(clean_repo, _options(tmp_path))
    assert report.findings == (), [f.as_dict() for f in report.findings]
    assert [n for n in report.notes if n != NO_COLLECTOR_NOTE] == []  # the real collector is optional
    assert report.objects >= 30


def _apply(root: Path, defect: Defect) -> None:
    for rel, old, new in defect.edits:
        path = root / rel
        if old == "":
            path.write_text(new, encoding="utf-8")
            continue
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{defect.id}: edit target must occur once in {rel}"
        path.write_text(text.replace(old, new), encoding="utf-8")


def _describe(report: Report) -> list[dict[str, object]]:
    return [f.as_dict() for f in report.findings]


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.id for d in DEFECTS])
def test_defect_is_reported_alone(defect: Defect, clean_repo: Path, tmp_path: Path) -> None:
    repo = copy_fleet(clean_repo, tmp_path / "repo")
    _apply(repo, defect)
    report = validate_repo(repo, _options(tmp_path))
    found = _describe(report)
    assert report.findings, f"{defect.id}: nothing reported"
    for f in report.findings:
        assert (f.check, f.file) == (defect.check, defect.file), f"{defect.id}: unexpected finding {found}"
    matching = [f for f in report.findings
                if f.severity == defect.severity
                and (defect.path is None or f.path == defect.path)
                and (defect.message is None or defect.message in f.message)]
    assert matching, f"{defect.id}: no finding with path {defect.path!r} / message {defect.message!r}: {found}"
    if defect.check not in ("helm", "kustomize") and not defect.file.startswith("charts/") \
            and not defect.file.endswith("kustomization.yaml"):
        assert all(f.line for f in matching), f"{defect.id}: findings without a line: {found}"
