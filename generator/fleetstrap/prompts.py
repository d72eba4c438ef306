"""Interactive answers: the only module that imports questionary."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fleetstrap.answers import (
    COLLECTOR_MODES,
    DEPENDENCY_BOTS,
    ENGINES,
    NOTIFICATIONS,
    SECRETS,
    TELEMETRY_BACKENDS,
    TLS_ISSUERS,
    default_otlp_endpoint,
)
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
        "GitHub owner (user or organization):", default=str(a.get("owner") or ""),
        validate=_validator(lambda t: None if GITHUB_OWNER.match(t) else "not a GitHub user/organization name")))
    a["fleet_name"] = ask(questionary.text(
        "Repository name:", default=str(a.get("fleet_name") or "fleet-infra"),
        validate=_validator(lambda t: dns1123_problem(t, "repository name"))))
    a["engine"] = ask(questionary.select("GitOps engine:", choices=list(ENGINES), default=a.get("engine", "flux")))
    envs = a.get("environments") or ["dev"]
    env_text = ask(questionary.text(
        "Environments (comma-separated, in promotion order):", default=", ".join(envs),
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
        "First service name:", default=str(a.get("service") or "hello"),
        validate=_validator(service_name_problem)))
    a["registry"] = ask(questionary.text(
        "Container registry:", default=str(a.get("registry") or f"ghcr.io/{a['owner'].lower()}")))
    backend = ask(questionary.select(
        "Trace backend:", choices=list(TELEMETRY_BACKENDS), default=a.get("telemetry_backend", "jaeger")))
    a["telemetry_backend"] = backend
    endpoint_default = a.get("otlp_endpoint") if a.get("telemetry_backend") == backend else None
    a["otlp_endpoint"] = ask(questionary.text(
        "OTLP gRPC endpoint of the backend:", default=str(endpoint_default or default_otlp_endpoint(backend)),
        validate=_validator(lambda t: None if t.strip() else "an endpoint is required")))
    a["collector_mode"] = ask(questionary.select(
        "Collector mode (gateway only, or gateway + sidecar):", choices=list(COLLECTOR_MODES),
        default=a.get("collector_mode", "gateway")))
    a["progressive_delivery"] = ask(questionary.confirm(
        "Progressive delivery (Argo Rollouts, blue-green services)?",
        default=bool(a.get("progressive_delivery", False))))
    a["image_automation"] = ask(questionary.confirm(
        "Automate image tag updates?", default=bool(a.get("image_automation", False))))
    a["secrets"] = ask(questionary.select(
        "Secrets approach:", choices=list(SECRETS), default=a.get("secrets", "sealed-secrets")))
    a["ingress_domain"] = ask(questionary.text(
        "Ingress domain (hosts become <service>.<environment>.<domain>):",
        default=str(a.get("ingress_domain") or "example.com"),
        validate=_validator(lambda t: None if t and " " not in t else "a DNS domain is required")))
    a["tls_issuer"] = ask(questionary.select(
        "TLS issuer:", choices=list(TLS_ISSUERS), default=a.get("tls_issuer", "letsencrypt-staging")))
    a["monitoring"] = ask(questionary.confirm(
        "Monitoring (metrics, dashboards, alerts)?", default=bool(a.get("monitoring", False))))
    if a["monitoring"]:
        a["notifications"] = ask(questionary.select(
            "Alert destination:", choices=list(NOTIFICATIONS), default=a.get("notifications", "none")))
    a["dependency_bot"] = ask(questionary.select(
        "Dependency updates (actions, crates, base images):", choices=list(DEPENDENCY_BOTS),
        default=a.get("dependency_bot", "dependabot")))
    return a


def confirm(message: str, default: bool = False) -> bool:
    import questionary

    return bool(questionary.confirm(message, default=default).unsafe_ask())
