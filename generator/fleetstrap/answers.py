"""Answers: the one frozen value every later stage reads.

Sources, lowest to highest precedence: built-in defaults < blueprint (with its `extends` chain)
< answers file < `--data key=value` < interactive prompts (which start from all of the above).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from fleetstrap.errors import AnswersError
from fleetstrap.names import GITHUB_OWNER, dns1123_problem, service_name_problem

Engine = Literal["flux", "argocd", "both"]

ENGINES = ("flux", "argocd", "both")
TELEMETRY_BACKENDS = ("jaeger", "tempo", "otlp")
COLLECTOR_MODES = ("gateway", "sidecar")
SECRETS = ("sealed-secrets", "external-secrets", "sops", "none")
TLS_ISSUERS = ("letsencrypt-prod", "letsencrypt-staging", "selfsigned", "none")
NOTIFICATIONS = ("none", "slack", "github", "webhook")
REPO_LAYOUTS = ("monorepo", "split")
DEPENDENCY_BOTS = ("dependabot", "renovate", "none")
PROGRESSIVE_DELIVERY = ("argo-rollouts", "flagger", "none")
# Answers of fleetstrap 0.1 were a boolean: true meant Argo Rollouts.
_LEGACY_DELIVERY = {"true": "argo-rollouts", "yes": "argo-rollouts", "on": "argo-rollouts", "1": "argo-rollouts",
                    "false": "none", "no": "none", "off": "none", "0": "none"}
POLICIES = ("kyverno", "none")
IN_CLUSTER = "https://kubernetes.default.svc"


@dataclass(frozen=True)
class Question:
    """One answer key: its type, default and choices. Drives parsing, prompts and docs."""

    key: str
    help: str
    kind: Literal["str", "bool", "list", "clusters"] = "str"
    choices: tuple[str, ...] = ()
    required: bool = False


QUESTIONS: tuple[Question, ...] = (
    Question("owner", "GitHub owner (user or organization) of the fleet repository", required=True),
    Question("fleet_name", "Repository name (the fleet repository)"),
    Question("engine", "GitOps engine", choices=ENGINES),
    Question("environments", "Environments, in promotion order", kind="list"),
    Question("clusters", "Clusters: name, environment, optional kube context", kind="clusters"),
    Question("service", "First service name", required=True),
    Question("registry", "Container registry for service images"),
    Question("telemetry_backend", "Trace backend behind the OpenTelemetry gateway", choices=TELEMETRY_BACKENDS),
    Question("otlp_endpoint", "OTLP gRPC endpoint of the trace backend"),
    Question("collector_mode", "Collector mode (gateway only, or gateway + sidecar)", choices=COLLECTOR_MODES),
    Question("image_automation", "Automate image tag updates (Flux image automation / Argo CD Image Updater)",
             kind="bool"),
    Question("progressive_delivery", "Progressive delivery (Argo Rollouts; Flagger: Flux with monitoring)",
             choices=PROGRESSIVE_DELIVERY),
    Question("secrets", "Secrets approach", choices=SECRETS),
    Question("ingress_domain", "Ingress domain (hosts become <service>.<environment>.<domain>)"),
    Question("tls_issuer", "TLS issuer (a cert-manager ClusterIssuer)", choices=TLS_ISSUERS),
    Question("acme_email", "Contact e-mail for Let's Encrypt"),
    Question("teams", "Teams (one Argo CD AppProject each)", kind="list"),
    Question("monitoring", "Monitoring (metrics, dashboards, alerts)", kind="bool"),
    Question("notifications", "Alert destination", choices=NOTIFICATIONS),
    Question("repo_layout", "Service source in the fleet repo (monorepo) or its own repo (split)",
             choices=REPO_LAYOUTS),
    Question("dependency_bot", "Dependency updates (actions, crates, base images)", choices=DEPENDENCY_BOTS),
    Question("verify_signatures", "Flux verifies the cosign signatures of service charts (split layout)", kind="bool"),
    Question("policy", "Policy engine with baseline policies (Enforce in production)",
             choices=POLICIES),
    Question("branch", "Branch the cluster syncs from"),
    Question("git_url", "Git URL the cluster pulls from"),
    Question("fleetstrap_pip", "What the generated workflows pip install as fleetstrap (empty: the release that "
             "rendered the fleet; or a git URL, a wheel URL, --index-url URL with a requirement)"),
)
QUESTION_BY_KEY = {q.key: q for q in QUESTIONS}
# The answers every unit of the template receives (the rest only go to the fleet unit: FleetAnswers.fleet_data).
SHARED_KEYS = ("owner", "fleet_name", "git_url", "branch", "engine", "environments", "registry", "image_automation",
               "progressive_delivery", "telemetry_backend", "otlp_endpoint", "collector_mode", "ingress_domain",
               "tls_issuer", "monitoring", "repo_layout", "dependency_bot", "verify_signatures", "policy",
               "fleetstrap_pip")
# `services` is kept by fleetstrap (init's first service, then `add service`); accepted in answers files.
KNOWN_KEYS = frozenset(QUESTION_BY_KEY) | {"services"}


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    environment: str
    context: str = ""
    server: str = IN_CLUSTER

    def to_data(self) -> dict[str, str]:
        out = {"name": self.name, "environment": self.environment}
        if self.context:
            out["context"] = self.context
        if self.server != IN_CLUSTER:
            out["server"] = self.server
        return out


@dataclass(frozen=True)
class FleetAnswers:
    owner: str
    services: tuple[str, ...]
    fleet_name: str = "fleet-infra"
    engine: Engine = "flux"
    environments: tuple[str, ...] = ("dev",)
    clusters: tuple[ClusterSpec, ...] = ()
    registry: str = ""
    telemetry_backend: str = "jaeger"
    otlp_endpoint: str = ""
    collector_mode: str = "gateway"
    image_automation: bool = False
    progressive_delivery: str = "none"
    secrets: str = "sealed-secrets"
    ingress_domain: str = "example.com"
    tls_issuer: str = "letsencrypt-staging"
    acme_email: str = ""
    teams: tuple[str, ...] = ("platform",)
    monitoring: bool = False
    notifications: str = "none"
    repo_layout: str = "monorepo"
    dependency_bot: str = "dependabot"
    verify_signatures: bool = False
    policy: str = "none"
    branch: str = "main"
    git_url: str = ""
    fleetstrap_pip: str = ""

    def to_copier_data(self) -> dict[str, Any]:
        """Answers shared by every unit, in copier's vocabulary (lists, not tuples)."""
        values = {k: getattr(self, k) for k in SHARED_KEYS}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def fleet_data(self) -> dict[str, Any]:
        data = self.to_copier_data()
        data.update(
            clusters=[c.to_data() for c in self.clusters],
            services=list(self.services),
            teams=list(self.teams),
            secrets=self.secrets,
            notifications=self.notifications,
        )
        if self.tls_issuer.startswith("letsencrypt"):
            data["acme_email"] = self.acme_email
        return data

    def to_mapping(self) -> dict[str, Any]:
        """The user-facing answers (round-trips through build_answers)."""
        out = self.fleet_data()
        out["service"] = self.services[0] if self.services else ""
        return out

    @property
    def engines(self) -> tuple[str, ...]:
        return ("flux", "argocd") if self.engine == "both" else (self.engine,)

    def cluster(self, name: str) -> ClusterSpec:
        for c in self.clusters:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.clusters) or "none"
        raise AnswersError(f"unknown cluster {name!r}; this fleet has: {known}")


# The one place answer defaults live: FleetAnswers' field defaults (prompts and build_answers read them here).
DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(FleetAnswers) if f.default is not dataclasses.MISSING
}
FIRST_SERVICE_SUGGESTION = "hello"  # offered by the prompt; `service` itself has no default (required)


def default_registry(owner: str) -> str:
    return f"ghcr.io/{owner.lower()}"


def default_acme_email(ingress_domain: str) -> str:
    return f"platform@{ingress_domain}"


def default_git_url(owner: str, fleet_name: str) -> str:
    return f"ssh://git@github.com/{owner}/{fleet_name}.git"


# ---------------------------------------------------------------- parsing sources


def load_answers_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AnswersError(f"cannot read answers file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise AnswersError(f"answers file {path} is not valid YAML{where}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AnswersError(f"answers file {path} must be a mapping of answer keys to values")
    # Copier answers files carry private keys (_src_path, _commit) and `unit`: not answers.
    return {k: v for k, v in data.items() if not str(k).startswith("_") and k != "unit"}


def parse_data_flags(flags: Sequence[str]) -> dict[str, Any]:
    """`--data key=value`; the value is read as YAML so lists and booleans work."""
    out: dict[str, Any] = {}
    for flag in flags:
        key, sep, raw = flag.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AnswersError(f"--data {flag!r} must look like key=value")
        if key not in KNOWN_KEYS:
            raise AnswersError(f"--data: unknown answer key {key!r} (known: {', '.join(sorted(KNOWN_KEYS))})")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise AnswersError(f"--data {key}: value is not valid YAML") from exc
    return out


def check_known_keys(data: Mapping[str, Any], origin: str) -> None:
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise AnswersError(f"{origin}: unknown answer key(s): {', '.join(unknown)}")


def missing_answers(data: Mapping[str, Any]) -> list[str]:
    missing = [q.key for q in QUESTIONS if q.required and data.get(q.key) in (None, "")]
    if "service" in missing and data.get("services"):
        missing.remove("service")
    return missing


# ---------------------------------------------------------------- building the frozen value


def _str(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise AnswersError(f"answer {key!r} must be a string")
    return str(value)


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "yes", "on", "1", "false", "no", "off", "0"}:
        return value.lower() in {"true", "yes", "on", "1"}
    raise AnswersError(f"answer {key!r} must be true or false")


def delivery_choice(value: Any) -> str:
    """progressive_delivery as one of PROGRESSIVE_DELIVERY; legacy booleans (true -> argo-rollouts) accepted."""
    if isinstance(value, bool):
        return "argo-rollouts" if value else "none"
    if isinstance(value, int | float):
        value = str(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in PROGRESSIVE_DELIVERY:
            return text
        if text in _LEGACY_DELIVERY:
            return _LEGACY_DELIVERY[text]
    raise AnswersError(f"answer 'progressive_delivery' must be one of {', '.join(PROGRESSIVE_DELIVERY)} "
                       f"(got {value!r})")


def upgrade_answers(data: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded answers in today's vocabulary, for rendering a newer template: fleets rendered by 0.1
    recorded progressive_delivery as a boolean. Values it cannot read are left for the template to refuse."""
    out = dict(data)
    value = out.get("progressive_delivery")
    if value is not None and value not in PROGRESSIVE_DELIVERY:
        with contextlib.suppress(AnswersError):
            out["progressive_delivery"] = delivery_choice(value)
    return out


def _choice(data: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = _str(data, key, default)
    if value not in choices:
        raise AnswersError(f"answer {key!r} must be one of {', '.join(choices)} (got {value!r})")
    return value


def _names(data: Mapping[str, Any], key: str, default: tuple[str, ...], what: str) -> tuple[str, ...]:
    value = data.get(key, list(default))
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value:
        raise AnswersError(f"answer {key!r} must be a non-empty list")
    names = tuple(str(v) for v in value)
    for n in names:
        problem = dns1123_problem(n, what)
        if problem:
            raise AnswersError(problem)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AnswersError(f"duplicate {what} name(s): {', '.join(dupes)}")
    return names


def _clusters(data: Mapping[str, Any], environments: tuple[str, ...]) -> tuple[ClusterSpec, ...]:
    raw = data.get("clusters")
    if raw is None:
        return tuple(ClusterSpec(name=e, environment=e) for e in environments)
    if isinstance(raw, str):
        # "name:env[:context],..." for --data convenience.
        raw = [dict(zip(("name", "environment", "context"), p.split(":"), strict=False))
               for p in raw.split(",") if p.strip()]
    if not isinstance(raw, list) or not raw:
        raise AnswersError("answer 'clusters' must be a non-empty list of {name, environment}")
    out: list[ClusterSpec] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise AnswersError(f"clusters[{i}] must be a mapping with name and environment")
        unknown = sorted(set(item) - {"name", "environment", "context", "server"})
        if unknown:
            raise AnswersError(f"clusters[{i}]: unknown key(s) {', '.join(unknown)}")
        name = item.get("name")
        problem = dns1123_problem(name, "cluster")
        if problem:
            raise AnswersError(problem)
        env = item.get("environment", environments[0] if len(environments) == 1 else None)
        if env not in environments:
            raise AnswersError(
                f"cluster {name!r}: environment {env!r} is not one of the environments ({', '.join(environments)})"
            )
        server = str(item.get("server") or IN_CLUSTER)
        if not server.startswith("https://"):
            raise AnswersError(f"cluster {name!r}: server must be an https:// URL")
        out.append(ClusterSpec(str(name), str(env), str(item.get("context") or ""), server))
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AnswersError(f"duplicate cluster name(s): {', '.join(dupes)}")
    return tuple(out)


def _services(data: Mapping[str, Any]) -> tuple[str, ...]:
    listed = data.get("services") or []
    if not isinstance(listed, list):
        raise AnswersError("answer 'services' must be a list of names")
    first = data.get("service")
    names = [str(s) for s in listed]
    if first and str(first) not in names:
        names.insert(0, str(first))
    for n in names:
        problem = service_name_problem(n)
        if problem:
            raise AnswersError(problem)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AnswersError(f"duplicate service name(s): {', '.join(dupes)}")
    return tuple(names)


# One word of `fleetstrap_pip`: what pip takes on its command line (requirements, URLs, options), nothing a shell
# would read as syntax. The workflows quote each word.
_PIP_WORD = re.compile(r"^[A-Za-z0-9_.,:/@+=~<>!%\[\]-]+$")


def pip_spec(value: str) -> str:
    """`fleetstrap_pip`: pip install arguments naming fleetstrap (a requirement, a git or wheel URL, index options)."""
    words = value.split()
    bad = next((w for w in words if not _PIP_WORD.match(w)), None)
    if bad is not None:
        raise AnswersError(f"answer 'fleetstrap_pip': {bad!r} is not a pip argument "
                           "(letters, digits and ._-:/@+=~<>!%[] only)")
    if words and (words[-1].startswith("-") or "fleetstrap" not in words[-1].lower()):
        raise AnswersError("answer 'fleetstrap_pip' must end with what installs fleetstrap (a requirement, a git URL "
                           "or a wheel naming fleetstrap)")
    return " ".join(words)


def default_otlp_endpoint(backend: str) -> str:
    return {
        "jaeger": "jaeger-collector.observability.svc.cluster.local:4317",
        "tempo": "tempo.observability.svc.cluster.local:4317",
    }.get(backend, "otlp.example.com:4317")


def build_answers(data: Mapping[str, Any]) -> FleetAnswers:
    """Validate merged answers and freeze them. Raises AnswersError naming the first problem."""
    check_known_keys(data, "answers")
    missing = missing_answers(data)
    if missing:
        raise AnswersError(f"missing answer(s): {', '.join(missing)}")
    owner = _str(data, "owner", "")
    if not GITHUB_OWNER.match(owner):
        raise AnswersError(f"owner {owner!r} is not a valid GitHub user or organization name")
    d = DEFAULTS
    fleet_name = _str(data, "fleet_name", d["fleet_name"])
    problem = dns1123_problem(fleet_name, "fleet_name")
    if problem:
        raise AnswersError(problem)
    environments = _names(data, "environments", d["environments"], "environment")
    backend = _choice(data, "telemetry_backend", d["telemetry_backend"], TELEMETRY_BACKENDS)
    tls_issuer = _choice(data, "tls_issuer", d["tls_issuer"], TLS_ISSUERS)
    ingress_domain = _str(data, "ingress_domain", d["ingress_domain"])
    branch = _str(data, "branch", d["branch"])
    engine = _choice(data, "engine", d["engine"], ENGINES)
    answers = FleetAnswers(
        owner=owner,
        fleet_name=fleet_name,
        engine=engine,  # type: ignore[arg-type]  # checked by _choice
        environments=environments,
        clusters=_clusters(data, environments),
        services=_services(data),
        registry=_str(data, "registry", default_registry(owner)),
        telemetry_backend=backend,
        otlp_endpoint=_str(data, "otlp_endpoint", default_otlp_endpoint(backend)),
        collector_mode=_choice(data, "collector_mode", d["collector_mode"], COLLECTOR_MODES),
        image_automation=_bool(data, "image_automation", d["image_automation"]),
        progressive_delivery=delivery_choice(data.get("progressive_delivery", d["progressive_delivery"])),
        secrets=_choice(data, "secrets", d["secrets"], SECRETS),
        ingress_domain=ingress_domain,
        tls_issuer=tls_issuer,
        acme_email=_str(data, "acme_email", default_acme_email(ingress_domain)),
        teams=_names(data, "teams", d["teams"], "team"),
        monitoring=_bool(data, "monitoring", d["monitoring"]),
        notifications=_choice(data, "notifications", d["notifications"], NOTIFICATIONS),
        repo_layout=_choice(data, "repo_layout", d["repo_layout"], REPO_LAYOUTS),
        dependency_bot=_choice(data, "dependency_bot", d["dependency_bot"], DEPENDENCY_BOTS),
        verify_signatures=_bool(data, "verify_signatures", d["verify_signatures"]),
        policy=_choice(data, "policy", d["policy"], POLICIES),
        branch=branch,
        git_url=_str(data, "git_url", default_git_url(owner, fleet_name)),
        fleetstrap_pip=pip_spec(_str(data, "fleetstrap_pip", d["fleetstrap_pip"])),
    )
    if not answers.services:
        raise AnswersError("missing answer(s): service")
    check_delivery_parity(answers)
    return answers


def check_delivery_parity(answers: FleetAnswers) -> None:
    """Flagger is a Flux-side choice fed by the monitoring Prometheus. Argo CD fleets keep Argo Rollouts: Argo CD
    has no Flagger integration fleetstrap could keep in parity with Flux (health of Canaries, sync of the
    primary Deployment Flagger creates outside git), and one fleet runs one delivery controller."""
    if answers.progressive_delivery != "flagger":
        return
    if answers.engine != "flux":
        raise AnswersError(f"progressive_delivery flagger needs engine flux (got {answers.engine}); "
                           "Argo CD fleets use progressive_delivery argo-rollouts")
    if not answers.monitoring:
        raise AnswersError("progressive_delivery flagger needs monitoring: true "
                           "(its canary analysis queries the monitoring Prometheus)")


def replace(answers: FleetAnswers, **changes: Any) -> FleetAnswers:
    """A changed copy, validated again by `build_answers`, the one constructor: a command must never leave a
    repo that fleetstrap itself refuses to read (e.g. a cluster `server` that is not https)."""
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(FleetAnswers)})
    if unknown:
        raise TypeError(f"FleetAnswers has no field(s) {', '.join(unknown)}")
    data = answers.to_mapping()
    for key, value in changes.items():
        if key == "clusters":
            data[key] = [c.to_data() for c in value]
        elif isinstance(value, tuple):
            data[key] = list(value)
        else:
            data[key] = value
    if "services" in changes:
        data["service"] = data["services"][0] if data["services"] else ""
    return build_answers(data)
