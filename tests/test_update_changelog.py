"""check-update and update show the changelog entries of the versions an update crosses, per unit, offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fleetstrap import changelog
from fleetstrap.cli import run
from fleetstrap.render import TemplateSource
from update_support import render_fleet, write_two_versions

CHANGELOG = """# Changelog

## [Unreleased]

## [2.0.0] - 2027-02-01

### service

- Values: memory limit 256Mi.
  Review your overrides.

### monitoring

- Not rendered in this fleet.

## [1.5.0] - 2027-01-01

### fleet

- README lists the services.

## [1.0.0] - 2026-12-01

### service

- Already on this one.
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_two_versions(tmp_path_factory.mktemp("tpl") / "templates")


@pytest.fixture
def fleet(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    render_fleet(root, TemplateSource(str(template), "v1.0.0"), ["alpha"])
    return root


@pytest.fixture(autouse=True)
def sample_changelog(monkeypatch: pytest.MonkeyPatch) -> None:
    # The template fixture's versions (1.0.0, 2.0.0) are not fleetstrap's: read a changelog written for them.
    monkeypatch.setattr(changelog, "load", lambda: changelog.parse(CHANGELOG))


def test_check_update_lists_entries_crossed_per_unit(fleet: Path, template: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["check-update", str(fleet), "--template", str(template)]) == 2
    out = capsys.readouterr().out
    notes = out[out.index("What changes up to v2.0.0 (CHANGELOG.md):"):]
    assert notes.splitlines()[1:] == [
        "fleet:", "  1.5.0: README lists the services.",
        "service:", "  2.0.0: Values: memory limit 256Mi. Review your overrides.",
    ]  # not 1.0.0 (the fleet is on it), not monitoring (no such component)

    assert run(["check-update", str(fleet), "--template", str(template), "--format", "json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["changelog"] == {
        "fleet": [{"version": "1.5.0", "entry": "README lists the services."}],
        "service": [{"version": "2.0.0", "entry": "Values: memory limit 256Mi.\nReview your overrides."}],
    }


def test_up_to_date_shows_no_entries(fleet: Path, template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["check-update", str(fleet), "--template", str(template), "--to", "1.0.0", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["changelog"] == {}


def test_update_and_pretend_print_the_entries(fleet: Path, template: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    shutil.copytree(fleet, other, symlinks=True)
    assert run(["update", str(other), "--template", str(template), "--no-validate", "--pretend"]) == 0
    err = capsys.readouterr().err
    assert ("would bring (CHANGELOG.md, up to v2.0.0):\nfleet:\n  1.5.0: README lists the services.\n"
            "service:\n  2.0.0: Values: memory limit 256Mi. Review your overrides.\n") in err

    assert run(["update", str(fleet), "--template", str(template), "--no-validate",
                "--component", "service/alpha"]) == 0
    err = capsys.readouterr().err
    assert "brings (CHANGELOG.md, up to v2.0.0):\nservice:\n  2.0.0: Values" in err
    assert "README lists the services" not in err  # fleet was not updated
