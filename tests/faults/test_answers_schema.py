"""The answer schema is declared once (fleetstrap.answer_schema); templates/copier.yml must agree with it.

Each schema question that copier.yml also asks is compared: help text, type, choices, default (a static default
literally; a derived default by rendering copier's Jinja expression beside the schema's function over several
answers), the condition it is recorded under, and legacy values the copier validator must still accept.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from fleetstrap import answer_schema
from fleetstrap.answer_schema import QUESTIONS, Question
from fleetstrap.answers import DEFAULTS, FleetAnswers, build_answers

COPIER_YML = Path(__file__).resolve().parents[2] / "templates" / "copier.yml"
COPIER_TYPES = {"str": "str", "bool": "bool", "list": "yaml", "clusters": "yaml", "ranges": "yaml"}
# Schema questions copier.yml has no key for, and why.
NOT_IN_COPIER = {"service": "copier's service unit asks service_name; the fleet unit records the list `services`"}


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)  # `!include pins.yml`


def _copier_questions() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for doc in yaml.load_all(COPIER_YML.read_text(encoding="utf-8"), Loader=_Loader):
        if isinstance(doc, dict):
            out.update({k: v for k, v in doc.items() if isinstance(v, dict)})
    return out


COPIER = _copier_questions()
ASKED_BY_COPIER = [q for q in QUESTIONS if q.key not in NOT_IN_COPIER]
_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined)
# Answers the derived defaults and conditions are evaluated over (each combination).
SAMPLES: dict[str, tuple[Any, ...]] = {
    "owner": ("acme", "Big-Org"),
    "fleet_name": ("fleet-infra", "platform"),
    "telemetry_backend": answer_schema.TELEMETRY_BACKENDS,
    "ingress_domain": ("example.com", "apps.acme.io"),
    "environments": (["dev"], ["dev", "staging", "prod"]),
    "tls_issuer": answer_schema.TLS_ISSUERS,
}


def _samples() -> list[dict[str, Any]]:
    keys = list(SAMPLES)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*SAMPLES.values())]


def _render(expr: str, context: dict[str, Any]) -> str:
    return _JINJA.from_string(expr).render(**context).strip()


def _normal(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("q", ASKED_BY_COPIER, ids=lambda q: q.key)
def test_help_text_is_the_schema_s(q: Question) -> None:
    assert " ".join(str(COPIER[q.key].get("help", "")).split()) == q.help


@pytest.mark.parametrize("q", ASKED_BY_COPIER, ids=lambda q: q.key)
def test_type_is_the_schema_s(q: Question) -> None:
    assert COPIER[q.key].get("type") == COPIER_TYPES[q.kind]


@pytest.mark.parametrize("q", ASKED_BY_COPIER, ids=lambda q: q.key)
def test_choices_are_the_schema_s(q: Question) -> None:
    spec = COPIER[q.key]
    if q.legacy is None:
        assert tuple(spec.get("choices") or ()) == q.choices
        return
    # Older fleets recorded other values (progressive_delivery: a boolean) and copier replays recorded answers, so
    # copier.yml carries no choice list there; its validator must accept exactly the choices and legacy values.
    assert "choices" not in spec
    context = {"engine": "flux", "monitoring": True}
    for value in (*q.choices, *q.legacy):
        assert _render(spec["validator"], {**context, q.key: value}) == "", value
    for value in ("istio", "canary", "argo_rollouts"):
        assert _render(spec["validator"], {**context, q.key: value}) != "", value


@pytest.mark.parametrize("q", ASKED_BY_COPIER, ids=lambda q: q.key)
def test_default_is_the_schema_s(q: Question) -> None:
    spec = COPIER[q.key]
    if q.required:
        assert "default" not in spec
        return
    if q.derive is None:
        assert _normal(spec.get("default")) == _normal(q.default)
        return
    for sample in _samples():
        context = {**sample, "git_host": "github.com", "unit": "fleet"}
        rendered = _render(str(spec["default"]), context)
        expected = _normal(q.derive(sample))
        got = yaml.safe_load(rendered) if q.kind in ("list", "clusters") else rendered
        assert got == expected, (q.key, sample)


@pytest.mark.parametrize("q", ASKED_BY_COPIER, ids=lambda q: q.key)
def test_condition_is_the_schema_s(q: Question) -> None:
    assert COPIER[q.key].get("when") == q.copier_when


def test_copier_records_acme_email_exactly_when_the_schema_asks_it() -> None:
    q = answer_schema.QUESTION_BY_KEY["acme_email"]
    for sample in _samples():
        recorded = _render(str(q.copier_when), {**sample, "unit": "fleet"}) == "True"
        assert recorded == q.applies(sample), sample


def test_fleet_answers_defaults_are_the_schema_s() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(FleetAnswers)}
    for q in QUESTIONS:
        if q.key == "service":
            continue
        if q.derive is None and not q.required:
            # A mapping answer is frozen as (key, value) pairs.
            assert (dict(fields[q.key]) if q.kind == "ranges" else fields[q.key]) == q.default, q.key
            assert DEFAULTS[q.key] == q.default
    assert set(fields) == ({q.key for q in QUESTIONS} - {"service"}) | {"services"}


def test_derived_defaults_reach_the_answers() -> None:
    a = build_answers({"owner": "Acme", "service": "hello", "environments": ["dev", "prod"],
                       "telemetry_backend": "tempo", "ingress_domain": "apps.acme.io"})
    assert a.registry == "ghcr.io/acme"
    assert a.otlp_endpoint == "tempo.observability.svc.cluster.local:4317"
    assert a.acme_email == "platform@apps.acme.io"
    assert a.git_url == "ssh://git@github.com/Acme/fleet-infra.git"
    assert [(c.name, c.environment) for c in a.clusters] == [("dev", "dev"), ("prod", "prod")]


def test_add_monitoring_offers_the_schema_s_notification_choices() -> None:
    from fleetstrap.cli.add_cmd import add_monitoring_cmd

    option = next(p for p in add_monitoring_cmd.params if p.name == "notifications")
    assert tuple(option.type.choices) == answer_schema.choices_of("notifications")  # type: ignore[attr-defined]
