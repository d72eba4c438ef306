"""Promotion order is enforced by the generated fleet: with image automation on, a new image tag reaches only the
first environment; later environments change only by `fleetstrap promote`. Proven with Flux's own Setters code
(image-automation-controller's update.UpdateWithSetters, built from its Go module), run exactly where the fleet's
ImageUpdateAutomations point it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from support.fleet import render_answers

ENVS = ["dev", "staging", "production"]
SERVICE = "hello"


@pytest.fixture(scope="module")
def flux_setters() -> Path:
    from fleetstrap.pins import pin
    from support.flux_setters import build_flux_setters
    from support.tools import missing

    if shutil.which("go") is None:
        missing("Go builds Flux's image-automation-controller Setters code from the Go module proxy")
    return build_flux_setters(pin("flux_version"))


def _automations(root: Path) -> list[dict[str, object]]:
    docs = [doc for path in sorted((root / "apps").rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
    return [doc for doc in docs if isinstance(doc, dict) and doc.get("kind") == "ImageUpdateAutomation"]


def _tree(root: Path) -> dict[str, str]:
    apps = root / "apps"
    return {p.relative_to(apps).as_posix(): p.read_text() for p in sorted(apps.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("engine", ["flux", "both"])
def test_a_new_tag_reaches_only_the_first_environment(engine: str, flux_setters: Path, tmp_path: Path) -> None:
    from support.flux_setters import run_setters

    fleet = render_answers(f"promotion-{engine}", {"owner": "acme", "service": SERVICE, "environments": ENVS,
                                                   "image_automation": True, "engine": engine})
    root = tmp_path / "fleet"
    shutil.copytree(fleet.root, root)
    automations = _automations(root)
    assert [a["metadata"]["name"] for a in automations] == ["dev"]  # type: ignore[index]
    before = _tree(root)
    registry = f"ghcr.io/acme/{SERVICE}"
    policy = [{"namespace": "flux-system", "name": SERVICE, "image": registry, "tag": "0.2.0"}]
    # What every ImageUpdateAutomation in the fleet does on the new tag: the Setters update of its path.
    for automation in automations:
        path = str(automation["spec"]["update"]["path"])  # type: ignore[index]
        run_setters(flux_setters, root / path.removeprefix("./"), policy)
    after = _tree(root)
    changed = sorted(k for k in after if after[k] != before[k])
    assert changed == [f"dev/{SERVICE}/values.yaml"]
    assert "tag: 0.2.0 #" in after[f"dev/{SERVICE}/values.yaml"]
    # Not vacuous: staging's values carry setter markers (rollback pauses them), so the same code would rewrite
    # them if an automation pointed at ./apps/staging; none does.
    assert run_setters(flux_setters, root / "apps" / "staging", policy) == [f"{SERVICE}/values.yaml"]
    for env in ENVS[1:]:
        text = before[f"{env}/{SERVICE}/values.yaml"]
        assert "fleetstrap promote" in text and "first environment" not in text
