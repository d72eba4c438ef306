"""Promotion order is enforced by the generated fleet: with image automation on, a new image tag reaches only the
first environment; later environments change only by `fleetstrap promote`, unless the answer image_policy gives
one a semver range. Proven with Flux's own Setters code (image-automation-controller's update.UpdateWithSetters,
built from its Go module), run exactly where the fleet's ImageUpdateAutomations point it.

Argo CD Image Updater: its matching code is not run here (building it would be a new Go build, and its
registry-scanner module is not in the module cache); the tests assert on the exact ImageUpdater objects and select
Applications the way its v1 CRD documents it (namePattern glob AND labelSelectors.matchLabels) from the
Applications the fleet's ApplicationSet generates."""

from __future__ import annotations

import fnmatch
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetstrap.answers import build_answers
from fleetstrap.errors import AnswersError
from support import k8s
from support.fleet import render_answers
from support.parity import appset_params, go_template

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


STAGING_RC = {"staging": ">=1.0.0-rc.0"}


def _fleet(engine: str, policy: dict[str, str] | None = None) -> Path:
    data: dict[str, Any] = {"owner": "acme", "service": SERVICE, "environments": ENVS, "image_automation": True,
                            "engine": engine}
    if policy:
        data["image_policy"] = policy
    key = f"promotion-{engine}" + "".join(f"-{k}{v}" for k, v in sorted((policy or {}).items()))
    return render_answers(key, data).root


def _generated_applications(root: Path) -> list[dict[str, Any]]:
    """The services ApplicationSet's Applications (name and labels), one per cluster and service."""
    appset = next(d for d in k8s.load_documents(root / "argocd" / "applicationsets" / "services.yaml")
                  if d["kind"] == "ApplicationSet")
    template = appset["spec"]["template"]["metadata"]
    return [{"name": go_template(template["name"], params),
             "labels": {k: go_template(v, params) for k, v in template["labels"].items()}}
            for params in appset_params(appset)]


def _selected(updater: dict[str, Any], apps: list[dict[str, Any]]) -> list[str]:
    """Applications an ImageUpdater's applicationRefs select: namePattern (glob) and every matchLabels pair."""
    out = []
    for ref in updater["spec"]["applicationRefs"]:
        labels = (ref.get("labelSelectors") or {}).get("matchLabels") or {}
        assert set(ref.get("labelSelectors") or {}) <= {"matchLabels"}  # no matchExpressions to evaluate
        out += [a["name"] for a in apps if fnmatch.fnmatchcase(a["name"], ref["namePattern"])
                and all(a["labels"].get(k) == v for k, v in labels.items())]
    return sorted(out)


def _updaters(root: Path) -> list[dict[str, Any]]:
    return [d for d in k8s.load_documents(root / "argocd" / "image-updater" / f"{SERVICE}.yaml")
            if d.get("kind") == "ImageUpdater"]


@pytest.mark.parametrize("engine", ["argocd", "both"])
def test_argocd_image_updater_follows_only_the_first_environment(engine: str) -> None:
    root = _fleet(engine)
    updaters = _updaters(root)
    assert [u["metadata"]["name"] for u in updaters] == [f"{SERVICE}-dev"]
    [dev] = updaters
    assert _selected(dev, _generated_applications(root)) == [f"dev-{SERVICE}"]
    ref = dev["spec"]["applicationRefs"][0]
    assert ref["images"][0]["imageName"] == f"ghcr.io/acme/{SERVICE}"  # no constraint: every semver tag
    assert ref["writeBackConfig"]["gitConfig"]["writeBackTarget"] == f"helmvalues:/apps/dev/{SERVICE}/values.yaml"
    # Not vacuous: the ApplicationSet does generate staging and production Applications with those labels.
    assert {a["labels"]["fleet.environment"] for a in _generated_applications(root)} == set(ENVS)
    header = (root / "argocd" / "image-updater" / f"{SERVICE}.yaml").read_text()
    assert "staging, production: no ImageUpdater" in header
    for env in ENVS[1:]:
        text = (root / "apps" / env / SERVICE / "values.yaml").read_text()
        assert "fleetstrap promote" in text and "image automation follows new tags in dev only" in text
        assert "ImageUpdater" not in text and "first environment" not in text
    readme = (root / "README.md").read_text()
    assert "every other environment changes only by `promote` or `rollback`" in readme
    assert "also follows" not in readme


def test_image_policy_makes_staging_follow_release_candidates(flux_setters: Path, tmp_path: Path) -> None:
    """With image_policy {staging: ">=1.0.0-rc.0"}, a new release candidate changes dev's and staging's values
    only (Flux's own Setters code, run where every ImageUpdateAutomation of the fleet points it)."""
    from support.flux_setters import run_setters

    root = tmp_path / "fleet"
    shutil.copytree(_fleet("both", STAGING_RC), root)
    automations = _automations(root)
    assert [a["metadata"]["name"] for a in automations] == ["dev", "staging"]
    # The range each environment's ImagePolicy gets (the overlay's patch, as kustomize builds it).
    ranges = {env: next(o for o in k8s.kustomize_build(root / "apps" / env / SERVICE)
                        if o["kind"] == "ImagePolicy")["spec"]["policy"]["semver"]["range"] for env in ENVS}
    assert ranges == {"dev": ">=0.0.0-0", "staging": ">=1.0.0-rc.0", "production": ">=0.0.0"}
    before = _tree(root)
    policy = [{"namespace": "flux-system", "name": SERVICE, "image": f"ghcr.io/acme/{SERVICE}", "tag": "1.1.0-rc.1"}]
    for automation in automations:
        run_setters(flux_setters, root / str(automation["spec"]["update"]["path"]).removeprefix("./"), policy)
    after = _tree(root)
    assert sorted(k for k in after if after[k] != before[k]) == [f"dev/{SERVICE}/values.yaml",
                                                                 f"staging/{SERVICE}/values.yaml"]
    assert "tag: 1.1.0-rc.1 #" in after[f"staging/{SERVICE}/values.yaml"]
    assert "within >=1.0.0-rc.0 (the answer image_policy)" in before[f"staging/{SERVICE}/values.yaml"]


def test_image_policy_gives_argocd_an_image_updater_with_the_range() -> None:
    root = _fleet("argocd", STAGING_RC)
    updaters = {u["metadata"]["name"]: u for u in _updaters(root)}
    assert list(updaters) == [f"{SERVICE}-dev", f"{SERVICE}-staging"]
    apps = _generated_applications(root)
    assert _selected(updaters[f"{SERVICE}-staging"], apps) == [f"staging-{SERVICE}"]
    image = updaters[f"{SERVICE}-staging"]["spec"]["applicationRefs"][0]["images"][0]
    # The Image Updater reads the tag part of imageName as the semver constraint (the text after the last ':'
    # following the last '/').
    name, _, constraint = image["imageName"].rpartition(":")
    assert (name, constraint) == (f"ghcr.io/acme/{SERVICE}", ">=1.0.0-rc.0")
    assert image["commonUpdateSettings"]["updateStrategy"] == "semver"
    target = updaters[f"{SERVICE}-staging"]["spec"]["applicationRefs"][0]["writeBackConfig"]["gitConfig"]
    assert target["writeBackTarget"] == f"helmvalues:/apps/staging/{SERVICE}/values.yaml"
    readme = (root / "README.md").read_text()
    assert "staging follows tags within `>=1.0.0-rc.0` (the answer `image_policy`)" in readme


@pytest.mark.parametrize(("policy", "automation", "problem"), [
    ({"qa": ">=1.0.0"}, True, "'qa' is not one of the environments"),
    ({"staging": ">=1.0.0; rm -rf /"}, True, "is not a semver comparator"),
    ({"staging": "1.2 - 1.4"}, True, "is not a semver comparator"),
    ({"staging": ">=1.0.0 x: y"}, True, "is not a semver comparator"),
    ({"staging": ">=1.0.0\n"}, True, "tabs or line breaks"),
    ({"staging": ""}, True, "must not be empty"),
    ({"staging": True}, True, "must be a string"),
    ({"staging": ">=1.0.0-rc.0"}, False, "needs image_automation: true"),
    (">=1.0.0", True, "must be a mapping of environment to semver range"),
])
def test_image_policy_refusals(policy: object, automation: bool, problem: str) -> None:
    with pytest.raises(AnswersError, match=re.escape(problem)):
        build_answers({"owner": "acme", "service": SERVICE, "environments": ENVS, "image_automation": automation,
                       "image_policy": policy})


def test_image_policy_is_kept_in_promotion_order_and_round_trips() -> None:
    answers = build_answers({"owner": "acme", "service": SERVICE, "environments": ENVS, "image_automation": True,
                             "image_policy": {"production": "~1.2", "staging": ">=1.0.0-rc.0 <2.0.0 || 3.x"}})
    assert answers.image_policy == (("staging", ">=1.0.0-rc.0 <2.0.0 || 3.x"), ("production", "~1.2"))
    assert answers.followed_environments() == ("dev", "staging", "production")
    assert build_answers(answers.to_mapping()) == answers
    assert build_answers({"owner": "acme", "service": SERVICE, "environments": ENVS,
                          "image_automation": True}).followed_environments() == ("dev",)


def test_image_policy_is_recorded_only_when_set() -> None:
    with_policy = _fleet("flux", STAGING_RC) / ".fleetstrap" / "answers" / "fleet.yml"
    without = _fleet("flux")
    assert yaml.safe_load(with_policy.read_text())["image_policy"] == STAGING_RC
    assert "image_policy" not in yaml.safe_load((without / ".fleetstrap" / "answers" / "fleet.yml").read_text())


_PART = st.one_of(st.integers(0, 40).map(str), st.sampled_from(["x", "X", "*"]))
_COMPARATOR = st.builds(
    lambda op, v, parts, pre: f"{op}{v}{'.'.join(parts)}{pre}",
    st.sampled_from(["", "=", "!=", ">", "<", ">=", "<=", "~", "^", "~>"]), st.sampled_from(["", "v"]),
    st.lists(_PART, min_size=1, max_size=3),
    st.sampled_from(["", "-0", "-rc.0", "-rc.1", "-alpha-1"]))
_RANGE = st.lists(st.lists(_COMPARATOR, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=2).map(
    " || ".join)


def _copier_validator(policy: object, automation: bool = True) -> str:
    import jinja2

    spec = yaml.safe_load(re.sub(r"!include \S+", "", (Path(__file__).parents[1] / "templates" / "copier.yml")
                                 .read_text()).split("\n---\n", 2)[2])["image_policy"]
    env = jinja2.Environment()
    env.filters["regex_search"] = lambda value, pattern: (m.group(0) if (m := re.search(pattern, value)) else None)
    env.tests["mapping"] = lambda value: isinstance(value, dict)
    return env.from_string(spec["validator"]).render(image_policy=policy, image_automation=automation,
                                                     environments=ENVS).strip()


@settings(max_examples=200, deadline=None)
@given(_RANGE)
def test_every_range_fleetstrap_takes_plain_copier_takes(value: str) -> None:
    """Both walls agree on good ranges: fleetstrap's check (the first) takes every grammar-built range, and the
    copier validator (for plain `copier copy`) is never stricter."""
    from fleetstrap.answer_types import semver_range_problem

    assert semver_range_problem(value, "r") is None, value
    assert _copier_validator({"staging": value}) == ""


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_copier_is_never_stricter_than_fleetstrap(value: str) -> None:
    from fleetstrap.answer_types import semver_range_problem

    if semver_range_problem(value, "r") is None:
        assert _copier_validator({"staging": value}) == ""


def test_copier_validator_refuses_what_the_schema_refuses_outright() -> None:
    assert "is not one of the environments" in _copier_validator({"qa": ">=1.0.0"})
    assert "not a semver range" in _copier_validator({"staging": '">=1"\nx: y'})
    assert "needs image_automation" in _copier_validator({"staging": ">=1.0.0"}, automation=False)
    assert "must be a mapping" in _copier_validator(">=1.0.0")
    assert _copier_validator({}) == "" and _copier_validator({}, automation=False) == ""
