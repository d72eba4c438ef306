"""Every built-in blueprint's generated repo passes the full validate gate (all checks, no fast path)."""

from __future__ import annotations

import pytest

from fleetstrap.blueprints import list_blueprints
from fleetstrap.validate import ValidateOptions, validate_repo
from fleetstrap.validate.check_otel import NO_COLLECTOR_NOTE
from support.fleet import render_blueprint
from validate_fixture import crd_schemas


def _names() -> list[str]:
    return sorted(getattr(b, "name", b) for b in list_blueprints())


@pytest.mark.parametrize("name", _names())
def test_blueprint_output_validates_clean(name: str) -> None:
    fleet = render_blueprint(name)
    report = validate_repo(fleet.root, ValidateOptions(schema_locations=(str(crd_schemas()),), offline=True,
                                                       catalog_url=None))
    assert report.findings == (), [f.as_dict() for f in report.findings]
    assert [n for n in report.notes if n != NO_COLLECTOR_NOTE] == []  # the real collector is optional
    assert report.objects > 0
