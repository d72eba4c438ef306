"""The answer schema, declared once: every question's key, type, prompt, help text, choices, default, condition and
validator. Everything else reads it: `answers.FleetAnswers`/`DEFAULTS`/`build_answers` (parsing and validation),
`prompts` (a loop over it), `fleetstrap add` (its choices), and a test holds templates/copier.yml to it.

Order matters: it is the order of the prompts, and a derived default or a condition reads only earlier answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fleetstrap import answer_types as t
from fleetstrap.names import GITHUB_OWNER

Kind = Literal["str", "bool", "list", "clusters", "service", "ranges"]
Answers = Mapping[str, Any]

ENGINES = ("flux", "argocd", "both")
TELEMETRY_BACKENDS = ("jaeger", "tempo", "otlp")
COLLECTOR_MODES = ("gateway", "sidecar")
SECRETS = ("sealed-secrets", "external-secrets", "sops", "none")
TLS_ISSUERS = ("letsencrypt-prod", "letsencrypt-staging", "selfsigned", "none")
NOTIFICATIONS = ("none", "slack", "github", "webhook")
REPO_LAYOUTS = ("monorepo", "split")
DEPENDENCY_BOTS = ("dependabot", "renovate", "none")
PROGRESSIVE_DELIVERY = ("argo-rollouts", "flagger", "none")
POLICIES = ("kyverno", "none")
# Answers of fleetstrap 0.1 were a boolean: true meant Argo Rollouts.
LEGACY_DELIVERY = {"true": "argo-rollouts", "yes": "argo-rollouts", "on": "argo-rollouts", "1": "argo-rollouts",
                   "false": "none", "no": "none", "off": "none", "0": "none"}
IN_CLUSTER = "https://kubernetes.default.svc"
FIRST_SERVICE_SUGGESTION = "hello"  # offered by the prompt; `service` itself has no default (required)
# The blueprints' owner until the user names theirs: push refuses it, an interactive init asks for the real one.
PLACEHOLDER_OWNERS = frozenset({"example-org"})


def default_registry(owner: str) -> str:
    return f"ghcr.io/{owner.lower()}"


def default_acme_email(ingress_domain: str) -> str:
    return f"platform@{ingress_domain}"


def default_git_url(owner: str, fleet_name: str) -> str:
    return f"ssh://git@github.com/{owner}/{fleet_name}.git"


def default_otlp_endpoint(backend: str) -> str:
    return {
        "jaeger": "jaeger-collector.observability.svc.cluster.local:4317",
        "tempo": "tempo.observability.svc.cluster.local:4317",
    }.get(backend, "otlp.example.com:4317")


def owner_problem(value: str, label: str) -> str | None:
    if not GITHUB_OWNER.match(value):
        return f"{label}: {value!r} is not a GitHub user/organization name"
    return None


def _letsencrypt(a: Answers) -> bool:
    return str(a.get("tls_issuer", "")).startswith("letsencrypt")


def _offered_delivery(a: Answers) -> tuple[str, ...]:
    # Flagger is offered to Flux fleets only (Argo CD fleets keep Argo Rollouts: answers.check_delivery_parity).
    return tuple(c for c in PROGRESSIVE_DELIVERY if c != "flagger" or a.get("engine") == "flux")


@dataclass(frozen=True)
class Question:
    """One answer key.

    `prompt` is the short question asked; `help` the one help text (copier.yml, docs). `default` is static;
    `derive` computes it from earlier answers instead. `when`: asked (and validated) only when it holds; `otherwise`
    gives the value taken without asking when it does not. `check` validates a string answer (answer_types).
    `copier_when` is the condition copier.yml records the key under (None: always). `legacy` maps values older
    fleets recorded to today's choices. `asked=False`: set by files, blueprints and --data, never prompted."""

    key: str
    prompt: str
    help: str
    kind: Kind = "str"
    choices: tuple[str, ...] = ()
    default: Any = None
    derive: Callable[[Answers], Any] | None = None
    when: Callable[[Answers], bool] | None = None
    otherwise: Callable[[Answers], Any] | None = None
    check: t.Check | None = None
    required: bool = False
    asked: bool = True
    offered: Callable[[Answers], tuple[str, ...]] | None = None
    copier_when: str | None = None
    legacy: Mapping[str, str] | None = None

    def default_for(self, answers: Answers) -> Any:
        return self.derive(answers) if self.derive is not None else self.default

    def applies(self, answers: Answers) -> bool:
        return self.when is None or self.when(answers)


# The `when` copier.yml records the fleet-wide keys under (the fleet unit records them, others need not).
_FLEET_AND_MONITORING = "{{ unit in ['fleet', 'monitoring'] }}"

QUESTIONS: tuple[Question, ...] = (
    Question("owner", "GitHub owner (user or organization) of the fleet repository",
             "GitHub owner (user or organization) of the fleet repository", required=True, check=owner_problem),
    Question("fleet_name", "Repository name (the fleet repository)", "Name of the fleet repository",
             default="fleet-infra"),
    Question("engine", "GitOps engine", "GitOps engine", choices=ENGINES, default="flux"),
    Question("environments", "Environments, in promotion order", "Environments, in promotion order", kind="list",
             default=("dev",)),
    Question("clusters", "Clusters", "Clusters, each {name, environment, context?, server?}", kind="clusters",
             derive=lambda a: tuple({"name": e, "environment": e} for e in a.get("environments") or ("dev",)),
             copier_when=_FLEET_AND_MONITORING),
    Question("service", "First service name", "First service of the fleet (fleetstrap keeps the list: services)",
             kind="service", required=True),
    Question("registry", "Container registry for service images", "Container registry for service images",
             derive=lambda a: default_registry(str(a.get("owner", ""))), check=t.image_repository_problem),
    Question("telemetry_backend", "Trace backend behind the OpenTelemetry gateway",
             "Where the OpenTelemetry gateway sends traces", choices=TELEMETRY_BACKENDS, default="jaeger"),
    Question("otlp_endpoint", "OTLP gRPC endpoint of the trace backend",
             "OTLP gRPC endpoint (host:port) of the trace backend",
             derive=lambda a: default_otlp_endpoint(str(a.get("telemetry_backend", "jaeger"))),
             check=t.endpoint_problem),
    Question("collector_mode", "Collector mode (gateway only, or gateway + sidecar)",
             "OpenTelemetry Collector topology", choices=COLLECTOR_MODES, default="gateway"),
    Question("progressive_delivery", "Progressive delivery (Argo Rollouts; Flagger: Flux with monitoring)",
             "Progressive delivery: argo-rollouts (every cluster, blue-green Rollouts), flagger (Flux only, needs "
             "monitoring: Flagger canary analysis on the monitoring Prometheus) or none",
             choices=PROGRESSIVE_DELIVERY, default="none", offered=_offered_delivery, legacy=LEGACY_DELIVERY,
             copier_when="{{ (progressive_delivery | default('none') | string | lower) not in "
                         "['none', 'false', 'no', 'off', '0', ''] }}"),
    Question("image_automation", "Automate image tag updates (Flux image automation / Argo CD Image Updater)",
             "Let Flux image automation (or Argo CD Image Updater) bump image tags", kind="bool", default=False),
    # Promotion order is the default: only the first environment follows new tags. An environment named here
    # follows them too, within its range (e.g. {staging: ">=1.0.0-rc.0"}: release candidates reach staging).
    Question("image_policy", "Environments whose image tags follow new releases, each with its semver range",
             "Environments that follow new image tags automatically (besides the first), each with the semver range "
             "it accepts, e.g. {staging: '>=1.0.0-rc.0'}; needs image_automation. The others change only by "
             "fleetstrap promote",
             kind="ranges", default={}, check=t.semver_range_problem, asked=False,
             copier_when="{{ (image_policy | default({})) | length > 0 }}"),
    Question("secrets", "Secrets approach", "How secrets reach the cluster", choices=SECRETS,
             default="sealed-secrets", copier_when="{{ unit in ['fleet', 'cluster'] }}"),
    Question("ingress_domain", "Ingress domain (hosts become <service>.<environment>.<domain>)",
             "DNS domain under which services get ingress hosts (<service>.<environment>.<domain>)",
             default="example.com", check=t.dns_name_problem),
    Question("tls_issuer", "TLS issuer (a cert-manager ClusterIssuer)", "cert-manager ClusterIssuer for ingress TLS",
             choices=TLS_ISSUERS, default="letsencrypt-staging"),
    Question("acme_email", "ACME account e-mail for Let's Encrypt",
             "Contact e-mail of the Let's Encrypt (ACME) account: expiry and revocation notices go there; "
             "Let's Encrypt refuses addresses at example domains",
             derive=lambda a: default_acme_email(str(a.get("ingress_domain", "example.com"))), when=_letsencrypt,
             check=t.email_problem,
             copier_when="{{ unit == 'fleet' and tls_issuer.startswith('letsencrypt') }}"),
    Question("monitoring", "Monitoring (metrics, dashboards, alerts)",
             "Metrics, dashboards and alerts for the GitOps engines and services", kind="bool", default=False,
             # Flagger's analysis reads the monitoring Prometheus: not a question then.
             when=lambda a: a.get("progressive_delivery") != "flagger", otherwise=lambda _: True),
    Question("notifications", "Alert destination", "Where alerts about failed reconciliations go",
             choices=NOTIFICATIONS, default="none", when=lambda a: bool(a.get("monitoring")),
             copier_when=_FLEET_AND_MONITORING),
    Question("policy", "Policy engine with baseline policies (Enforce in production)",
             "Kyverno and a baseline policy set (Audit outside production, Enforce in production clusters)",
             choices=POLICIES, default="none", copier_when="{{ (policy | default('none')) != 'none' }}"),
    Question("dependency_bot", "Dependency updates (actions, crates, base images)",
             "Bot that keeps the repositories' actions, crates and base images current (never deployed image tags)",
             choices=DEPENDENCY_BOTS, default="dependabot"),
    Question("teams", "Teams (one Argo CD AppProject each)", "Teams; each gets an Argo CD AppProject", kind="list",
             default=("platform",), asked=False, copier_when="{{ unit == 'fleet' }}"),
    Question("repo_layout", "Service source in the fleet repo (monorepo) or its own repo (split)",
             "Service source next to the fleet (monorepo) or in its own repository (split)", choices=REPO_LAYOUTS,
             default="monorepo", asked=False),
    Question("verify_signatures", "Flux verifies the cosign signatures of service charts (split layout)",
             "Flux verifies the cosign signature of each service chart (split layout, charts from OCI) before "
             "installing it", kind="bool", default=False, asked=False,
             copier_when="{{ verify_signatures | default(false) }}"),
    Question("branch", "Branch the cluster syncs from", "Branch the clusters sync from", default="main",
             check=t.branch_problem, asked=False),
    Question("git_url", "Git URL the cluster pulls from", "Git URL the cluster pulls from (ssh, deploy key)",
             derive=lambda a: default_git_url(str(a.get("owner", "")), str(a.get("fleet_name", "fleet-infra"))),
             check=t.git_url_problem, asked=False),
    Question("fleetstrap_pip", "What the generated workflows pip install as fleetstrap",
             "What the generated workflows pip install as fleetstrap (empty - the release that rendered the repo)",
             default="", check=t.pip_args_problem, asked=False, copier_when="{{ unit in ['fleet', 'service'] }}"),
)
QUESTION_BY_KEY = {q.key: q for q in QUESTIONS}


def choices_of(key: str) -> tuple[str, ...]:
    """The choices of one answer, for the CLI's options (e.g. `add monitoring --notifications`)."""
    return QUESTION_BY_KEY[key].choices
