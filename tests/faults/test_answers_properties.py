"""Property tests of the answer boundary and of the templates' quoting (issue 23, class 1), with Hypothesis.

1. Defence in depth: for ANY string put into an answer (bypassing the boundary), the real template files that use it
   render to YAML of exactly the structure the default value gives, the field holds exactly that string, and a
   workflow `run:` script keeps its shell words (the value is one word, control characters shown as '?').
2. The boundary: for arbitrary strings per answer, build_answers either refuses with one line naming the answer,
   or accepts a value the templates then carry exactly (property 1 on that value).
3. Through the CLI: a refused value is exit 1 with one `error:` line and nothing written.

Rendering goes through Jinja directly on the few template files that hold each answer (copier's environment: the
ansible filters it always loads, its computed questions evaluated from copier.yml in order), so each example takes
milliseconds; examples are few and derandomized, so CI sees the same cases on every run.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.sandbox import SandboxedEnvironment

from fleetstrap.answers import FleetAnswers, build_answers
from fleetstrap.cli import run
from fleetstrap.errors import AnswersError
from fleetstrap.plan import build_cluster_component, build_fleet_component, build_service_component

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
UNITS = TEMPLATES / "units"
FAST = settings(max_examples=30, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SLOW = settings(max_examples=12, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Distinct base values: every scalar that contains one of them holds that answer.
BASE: dict[str, Any] = {
    "owner": "acme", "service": "hello", "engine": "both", "environments": ["dev"],
    "clusters": [{"name": "dev", "environment": "dev", "server": "https://k8s.base.test:6443", "context": "kind-base"}],
    "registry": "registry.base.test/base", "branch": "basebranch", "git_url": "https://git.base.test/base/fleet.git",
    "ingress_domain": "base-domain.test", "acme_email": "base@mail.base.test", "tls_issuer": "letsencrypt-prod",
    "otlp_endpoint": "otlp.base.test:4317", "image_automation": True,
}
BASE_ANSWERS = build_answers(BASE)
SERVER = "https://k8s.base.test:6443"

# The template files each answer lands in (unit, path under templates/units/<unit>, extra context).
_ARGO = "{% if engine != 'flux' %}argocd{% endif %}"
_WORKFLOWS = "{% if service_workflows %}.github{% endif %}/workflows"
_ENV_DIR = "{% if service_gitops %}apps{% endif %}/{% yield env from environments %}{{ env }}{% endyield %}"
FILES: dict[str, list[tuple[str, str]]] = {
    "git_url": [("cluster", "clusters/{{ cluster_name }}/{% if engine != 'argocd' %}flux-system{% endif %}/"
                            "gotk-sync.yaml.jinja"),
                ("cluster", f"clusters/{{{{ cluster_name }}}}/{_ARGO}/root.yaml.jinja"),
                ("fleet", f"{_ARGO}/infrastructure/project.yaml.jinja"),
                ("fleet", f"{_ARGO}/applicationsets/services.yaml.jinja")],
    "branch": [("cluster", "clusters/{{ cluster_name }}/{% if engine != 'argocd' %}flux-system{% endif %}/"
                           "gotk-sync.yaml.jinja"),
               ("fleet", ".github/workflows/validate.yml.jinja"),
               ("service", f"{_WORKFLOWS}/{{{{ service_workflow_prefix }}}}ci.yml.jinja"),
               ("service", f"{_WORKFLOWS}/{{{{ service_workflow_prefix }}}}release.yml.jinja")],
    "registry": [("service", "{{ service_chart_dir }}/values.yaml.jinja"),
                 ("service", f"{_WORKFLOWS}/{{{{ service_workflow_prefix }}}}release.yml.jinja"),
                 ("service", f"{_ENV_DIR}/{{{{ service_name }}}}/values.yaml.jinja"),
                 ("fleet", f"{_ARGO}/applicationsets/services.yaml.jinja")],
    "ingress_domain": [("service", f"{_ENV_DIR}/{{{{ service_name }}}}/values.yaml.jinja"),
                       ("service", "{{ service_chart_dir }}/values.yaml.jinja")],
    "acme_email": [("fleet", "infrastructure/configs/{% if tls_issuer != 'none' %}cluster-issuer.yaml{% endif %}"
                             ".jinja")],
    "otlp_endpoint": [("fleet", "infrastructure/configs/otel-gateway.yaml.jinja")],
    "server": [("fleet", f"{_ARGO}/infrastructure/project.yaml.jinja"),
               ("fleet", f"{_ARGO}/projects/{{% yield team from teams %}}{{{{ team }}}}.yaml{{% endyield %}}.jinja")],
}
KEYS = sorted(FILES)

# Arbitrary text (no lone surrogates: not a string a YAML or JSON file can hold), and targeted injections.
INJECTIONS = [
    "x\n  injected: true", "x'", 'x"y', "x: y", "x #c", "{{ 7*7 }}", "{% raw %}", "$(id)", "`id`", "a;b|c&d",
    "- '*'", "*", "&a", "!!python/object:os.system", "true", "null", "1:20", "0x1F", "~", "", " lead", "trail ",
    "x\r\ny", "a\x00b", "\u2028", "\t", "[a, b]", "{a: b}", "https://admin:pw@h.example.com", "%s", "x" * 300,
]
ANY_TEXT = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(st.characters(blacklist_categories=["Cs"], max_codepoint=0xFFFF), max_size=40),
)


# ---------------------------------------------------------------- rendering like copier, one file at a time

class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)
_COPIER = {k: v for f in ("pins.yml", "copier.yml")  # copier.yml's `!include pins.yml` comes first
           for doc in yaml.load_all((TEMPLATES / f).read_text(encoding="utf-8"), Loader=_Loader)
           if isinstance(doc, dict) for k, v in doc.items() if not k.startswith("_") and isinstance(v, dict)}
_ENV = SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), keep_trailing_newline=True,
                            extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"])


def _context(data: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The data plus copier's other questions, each default rendered in order as copier does."""
    ctx = dict(data)
    for key, spec in _COPIER.items():
        if key in ctx or "default" not in spec:
            continue
        default = spec["default"]
        if isinstance(default, str) and ("{{" in default or "{%" in default):
            text = _ENV.from_string(default).render(**ctx)
            kind = spec.get("type", "str")
            default = text == "True" if kind == "bool" else yaml.safe_load(text) if kind == "yaml" else text
        ctx[key] = default
    return {**ctx, **extra}


@functools.cache
def _base_context(unit: str) -> dict[str, Any]:
    component = {"fleet": lambda: build_fleet_component(BASE_ANSWERS),
                 "cluster": lambda: build_cluster_component(BASE_ANSWERS, "dev"),
                 "service": lambda: build_service_component(BASE_ANSWERS, "hello")}[unit]()
    extra = {"env": "dev", "team": "platform", "_copier_answers": {"_commit": "v1.0.0"}}
    return _context(component.data_dict(), extra)


def _with_value(data: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    # copier's computed questions read none of these answers, so the cached context stays right.
    out = dict(data)
    if key == "server":
        out["clusters"] = [{**c, "server": value} for c in data.get("clusters", [])]
        out["cluster_server"] = value
    else:
        out[key] = value
    return out


@functools.cache
def _render_base(unit: str, path: str) -> list[Any]:
    return list(yaml.safe_load_all(_ENV.get_template(f"units/{unit}/{path}").render(**_base_context(unit))))


def _render(unit: str, path: str, key: str, value: str) -> str:
    return _ENV.get_template(f"units/{unit}/{path}").render(**_with_value(_base_context(unit), key, value))


# ---------------------------------------------------------------- comparing structure and values

def _walk(base: Any, got: Any, where: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Pairs of scalars at the same place; AssertionError when the structure differs."""
    assert type(base) is type(got), f"{where}: {type(base).__name__} became {type(got).__name__}"
    if isinstance(base, dict):
        assert list(base) == list(got), f"{where}: keys {list(base)} became {list(got)}"
        for k in base:
            yield from _walk(base[k], got[k], f"{where}.{k}")
    elif isinstance(base, list):
        assert len(base) == len(got), f"{where}: {len(base)} items became {len(got)}"
        for i, (b, g) in enumerate(zip(base, got, strict=True)):
            yield from _walk(b, g, f"{where}[{i}]")
    else:
        yield where, base, got


def _shell_words(script: str) -> list[str]:
    return shlex.split(script)


def _sh_safe(value: str) -> str:
    return re.sub("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]", "?", value)


def _expected(text: str, key: str, value: str, base_value: str) -> str:
    """`text` as rendered with the base value, with `value` in its place."""
    if base_value in text:
        return text.replace(base_value, value)
    # The release workflow logs in to the registry host: the part of the registry before the first '/'.
    host = base_value.split("/")[0]
    if key == "registry" and host in text:
        return text.replace(host, value.split("/")[0])
    return text


def _assert_carried(key: str, value: str, base_value: str, files: list[tuple[str, str]]) -> None:
    hits = 0
    for unit, path in files:
        base_docs = _render_base(unit, path)
        got_docs = list(yaml.safe_load_all(_render(unit, path, key, value)))
        assert len(base_docs) == len(got_docs), (path, value)
        for where, b, g in _walk(base_docs, got_docs):
            if not isinstance(b, str) or _expected(b, key, "", base_value) == b:
                assert b == g, (path, where, value)  # a field the answer does not reach is unchanged
                continue
            hits += 1
            if where.endswith(".run"):  # a shell script: each word holding the value stays one word
                words = [_expected(w, key, _sh_safe(value), base_value) for w in _shell_words(b)]
                assert _shell_words(g) == words, (path, where, value)
            else:
                assert g == _expected(b, key, value, base_value), (path, where, value)
    assert hits, f"{key}: no rendered field holds the base value {base_value!r}"


def _base_value(key: str) -> str:
    return SERVER if key == "server" else str(BASE[key])


@pytest.mark.parametrize("key", KEYS)
def test_any_string_keeps_the_structure_and_is_carried_exactly(key: str) -> None:
    """Defence in depth: the quoting macros hold for values the boundary would refuse."""

    @FAST
    @given(value=ANY_TEXT)
    def check(value: str) -> None:
        _assert_carried(key, value, _base_value(key), FILES[key])

    check()


# ---------------------------------------------------------------- the boundary

# Strings near each answer's grammar, so that some are accepted (the rest of ANY_TEXT almost never is).
NEAR: dict[str, st.SearchStrategy[str]] = {
    "registry": st.from_regex(r"\A[a-z0-9.-]{1,12}(:[0-9]{1,6})?(/[a-z0-9._-]{1,8}){0,3}\Z"),
    "ingress_domain": st.from_regex(r"\A[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){0,3}\Z"),
    "acme_email": st.from_regex(r"\A[A-Za-z0-9._%+-]{1,10}@[a-z0-9-]{1,8}(\.[a-z0-9-]{1,8}){1,2}\Z"),
    "otlp_endpoint": st.from_regex(r"\A[a-z0-9.-]{1,12}:[0-9]{1,6}\Z"),
    "branch": st.from_regex(r"\A[A-Za-z0-9._/+@{-]{1,16}\Z"),
    "git_url": st.from_regex(r"\A(ssh|https|http|ftp)://([a-z]{1,4}(:[a-z]{1,3})?@)?[a-z0-9.-]{1,10}"
                             r"(:[0-9]{1,6})?(/[A-Za-z0-9._~%-]{1,8}){0,3}\Z"),
    "server": st.from_regex(r"\A(https|http)://([a-z]{1,4}@)?[a-z0-9.-]{1,10}(:[0-9]{1,6})?(/[a-z0-9-]{1,6}){0,2}\Z"),
}


def _build(key: str, value: str) -> FleetAnswers:
    if key == "server":
        return build_answers({**BASE, "clusters": [{**BASE["clusters"][0], "server": value}]})
    return build_answers({**BASE, key: value})


@pytest.mark.parametrize("key", KEYS)
def test_boundary_refuses_in_one_line_or_the_value_is_carried(key: str) -> None:
    accepted: list[str] = []

    @FAST
    @given(value=st.one_of(ANY_TEXT, NEAR[key]))
    def check(value: str) -> None:
        try:
            answers = _build(key, value)
        except AnswersError as exc:
            message = str(exc)
            assert "\n" not in message and "Traceback" not in message
            named = "cluster 'dev': server" if key == "server" else f"answer {key!r}"
            assert message.startswith(named), message
            return
        held = answers.clusters[0].server if key == "server" else getattr(answers, key)
        if value == "":  # an empty answer is no answer: the default
            return
        assert held == value
        accepted.append(value)
        _assert_carried(key, value, _base_value(key), FILES[key])

    check()
    assert accepted, f"{key}: the boundary accepted none of the generated values; the strategy is wrong"


@pytest.mark.parametrize("key", ["registry", "branch", "git_url", "otlp_endpoint", "acme_email"])
def test_cli_refuses_with_exit_1_and_writes_nothing(key: str) -> None:
    @SLOW
    @given(value=ANY_TEXT)
    def check(value: str) -> None:
        try:
            _build(key, value)
            return  # accepted: property 2 covers it
        except AnswersError:
            pass
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "out"
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = run(["init", "-b", "multi-env", "-d", f"{key}={json.dumps(value)}", str(dest)])
            assert code == 1, err.getvalue()
            lines = [ln for ln in err.getvalue().splitlines() if ln.strip() and "hint:" not in ln]
            assert len(lines) == 1 and lines[0].startswith("error:"), err.getvalue()
            assert list(Path(tmp).iterdir()) == []

    check()


def test_service_description_in_toml_and_yaml_is_carried_exactly() -> None:
    """copier's own `service_description` question (plain `copier copy` users set it): Cargo.toml takes it as a
    TOML string, Chart.yaml as a YAML scalar; neither changes structure for any string."""
    import tomllib

    cargo = "{{ service_src_dir }}/Cargo.toml.jinja"
    chart = "{{ service_chart_dir }}/Chart.yaml.jinja"
    base_cargo = tomllib.loads(_render("service", cargo, "service_description", "base description"))
    base_chart = _render_base("service", chart)

    @FAST
    @given(value=ANY_TEXT)
    def check(value: str) -> None:
        got = tomllib.loads(_render("service", cargo, "service_description", value))
        assert got["package"].pop("description") == value
        assert got == {**base_cargo, "package": {k: v for k, v in base_cargo["package"].items()
                                                 if k != "description"}}
        docs = list(yaml.safe_load_all(_render("service", chart, "service_description", value)))
        assert docs[0]["description"] == value
        assert [{k: v for k, v in d.items() if k != "description"} for d in docs] == \
               [{k: v for k, v in d.items() if k != "description"} for d in base_chart]

    check()
