"""Interactive answers: the only module that imports questionary."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fleetstrap.answers import (
    DEFAULTS,
    FIRST_SERVICE_SUGGESTION,
    QUESTION_BY_KEY,
    default_otlp_endpoint,
    default_registry,
    delivery_choice,
)
from fleetstrap.errors import AnswersError
from fleetstrap.names import GITHUB_OWNER, dns1123_problem, service_name_problem


def _list_problem(text: str, what: str) -> str | None:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        return f"give at least one {what}"
    for n in names:
        p = dns1123_problem(n, what)
        if p:
            return p
    if len(set(names)) != len(names):
        return f"duplicate {what} names"
    return None


def _label(key: str, detail: str = "", end: str = ":") -> str:
    """The prompt of an answer key: its help text from the one Question table."""
    text = QUESTION_BY_KEY[key].help
    return f"{text} ({detail}){end}" if detail else f"{text}{end}"


def _choices(key: str) -> list[str]:
    return list(QUESTION_BY_KEY[key].choices)


def _delivery_default(value: Any) -> str:
    try:
        return delivery_choice(value)
    except AnswersError:
        return "none"


def _validator(check: Callable[[str], str | None]) -> Callable[[str], bool | str]:
    def run(text: str) -> bool | str:
        problem = check(text)
        return True if problem is None else problem

    return run


def ask_fleet_answers(start: Mapping[str, Any]) -> dict[str, Any]:
    """Ask every fleet question, starting from `start` (defaults, blueprint, file, --data)."""
    import questionary

    def ask(q: Any) -> Any:
        value = q.unsafe_ask()  # raises KeyboardInterrupt on Ctrl-C: the CLI maps it to 130
        return value

    a: dict[str, Any] = dict(start)
    a["owner"] = ask(questionary.text(
        _label("owner"), default=str(a.get("owner") or ""),
        validate=_validator(lambda t: None if GITHUB_OWNER.match(t) else "not a GitHub user/organization name")))
    a["fleet_name"] = ask(questionary.text(
        _label("fleet_name"), default=str(a.get("fleet_name") or DEFAULTS["fleet_name"]),
        validate=_validator(lambda t: dns1123_problem(t, "repository name"))))
    a["engine"] = ask(questionary.select(_label("engine"), choices=_choices("engine"),
                                         default=a.get("engine", DEFAULTS["engine"])))
    envs = a.get("environments") or list(DEFAULTS["environments"])
    env_text = ask(questionary.text(
        _label("environments", "comma-separated"), default=", ".join(envs),
        validate=_validator(lambda t: _list_problem(t, "environment"))))
    a["environments"] = [e.strip() for e in env_text.split(",") if e.strip()]
    clusters = []
    known = {c["name"]: c for c in a.get("clusters") or [] if isinstance(c, dict) and "name" in c}
    for env in a["environments"]:
        prev = next((c for c in known.values() if c.get("environment") == env), {"name": env})
        name = ask(questionary.text(
            f"Cluster for {env}:", default=str(prev.get("name", env)),
            validate=_validator(lambda t: dns1123_problem(t, "cluster name"))))
        context = ask(questionary.text(f"Kube context for {name} (optional):", default=str(prev.get("context", ""))))
        clusters.append({"name": name, "environment": env, **({"context": context} if context else {})})
    a["clusters"] = clusters
    a["service"] = ask(questionary.text(
        _label("service"), default=str(a.get("service") or FIRST_SERVICE_SUGGESTION),
        validate=_validator(service_name_problem)))
    a["registry"] = ask(questionary.text(
        _label("registry"), default=str(a.get("registry") or default_registry(a["owner"]))))
    backend = ask(questionary.select(
        _label("telemetry_backend"), choices=_choices("telemetry_backend"),
        default=a.get("telemetry_backend", DEFAULTS["telemetry_backend"])))
    a["telemetry_backend"] = backend
    endpoint_default = a.get("otlp_endpoint") if a.get("telemetry_backend") == backend else None
    a["otlp_endpoint"] = ask(questionary.text(
        _label("otlp_endpoint"), default=str(endpoint_default or default_otlp_endpoint(backend)),
        validate=_validator(lambda t: None if t.strip() else "an endpoint is required")))
    a["collector_mode"] = ask(questionary.select(
        _label("collector_mode"), choices=_choices("collector_mode"),
        default=a.get("collector_mode", DEFAULTS["collector_mode"])))
    # Flagger is offered to Flux fleets only (Argo CD fleets keep Argo Rollouts, see answers.check_delivery_parity).
    delivery = [c for c in _choices("progressive_delivery") if c != "flagger" or a["engine"] == "flux"]
    current = _delivery_default(a.get("progressive_delivery", DEFAULTS["progressive_delivery"]))
    a["progressive_delivery"] = ask(questionary.select(
        _label("progressive_delivery"), choices=delivery, default=current if current in delivery else "none"))
    a["image_automation"] = ask(questionary.confirm(
        _label("image_automation", end="?"), default=bool(a.get("image_automation", DEFAULTS["image_automation"]))))
    a["secrets"] = ask(questionary.select(
        _label("secrets"), choices=_choices("secrets"), default=a.get("secrets", DEFAULTS["secrets"])))
    a["ingress_domain"] = ask(questionary.text(
        _label("ingress_domain"),
        default=str(a.get("ingress_domain") or DEFAULTS["ingress_domain"]),
        validate=_validator(lambda t: None if t and " " not in t else "a DNS domain is required")))
    a["tls_issuer"] = ask(questionary.select(
        _label("tls_issuer"), choices=_choices("tls_issuer"), default=a.get("tls_issuer", DEFAULTS["tls_issuer"])))
    if a["progressive_delivery"] == "flagger":
        a["monitoring"] = True  # Flagger's analysis reads the monitoring Prometheus: not a question then
    else:
        a["monitoring"] = ask(questionary.confirm(
            _label("monitoring", end="?"), default=bool(a.get("monitoring", DEFAULTS["monitoring"]))))
    if a["monitoring"]:
        a["notifications"] = ask(questionary.select(
            _label("notifications"), choices=_choices("notifications"),
            default=a.get("notifications", DEFAULTS["notifications"])))
    a["policy"] = ask(questionary.select(
        _label("policy"), choices=_choices("policy"), default=a.get("policy", DEFAULTS["policy"])))
    a["dependency_bot"] = ask(questionary.select(
        _label("dependency_bot"), choices=_choices("dependency_bot"),
        default=a.get("dependency_bot", DEFAULTS["dependency_bot"])))
    return a


def confirm(message: str, default: bool = False) -> bool:
    import questionary

    return bool(questionary.confirm(message, default=default).unsafe_ask())
