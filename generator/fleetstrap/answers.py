"""Answers: the one frozen value every later stage reads.

Sources, lowest to highest precedence: built-in defaults < blueprint (with its `extends` chain)
< answers file < `--data key=value` < interactive prompts (which start from all of the above).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from fleetstrap import answer_types
from fleetstrap.answer_schema import (
    COLLECTOR_MODES,
    DEPENDENCY_BOTS,
    ENGINES,
    FIRST_SERVICE_SUGGESTION,
    IN_CLUSTER,
    LEGACY_DELIVERY,
    NOTIFICATIONS,
    POLICIES,
    PROGRESSIVE_DELIVERY,
    QUESTION_BY_KEY,
    QUESTIONS,
    REPO_LAYOUTS,
    SECRETS,
    TELEMETRY_BACKENDS,
    TLS_ISSUERS,
    Question,
    default_acme_email,
    default_git_url,
    default_otlp_endpoint,
    default_registry,
)
from fleetstrap.errors import AnswersError
from fleetstrap.names import dns1123_problem, reserved_name_problem, service_name_problem

__all__ = [
    "COLLECTOR_MODES", "DEFAULTS", "DEPENDENCY_BOTS", "ENGINES", "FIRST_SERVICE_SUGGESTION", "IN_CLUSTER",
    "KNOWN_KEYS", "NOTIFICATIONS", "POLICIES", "PROGRESSIVE_DELIVERY", "QUESTIONS", "QUESTION_BY_KEY",
    "REPO_LAYOUTS", "SECRETS", "SHARED_KEYS", "TELEMETRY_BACKENDS", "TLS_ISSUERS", "ClusterSpec", "FleetAnswers",
    "Question", "build_answers", "default_acme_email", "default_git_url", "default_otlp_endpoint",
    "default_registry", "delivery_choice", "replace",
]

Engine = Literal["flux", "argocd", "both"]

# The answers every unit of the template receives (the rest only go to the fleet unit: FleetAnswers.fleet_data).
SHARED_KEYS = ("owner", "fleet_name", "git_url", "branch", "engine", "environments", "registry", "image_automation",
               "image_policy", "progressive_delivery", "telemetry_backend", "otlp_endpoint", "collector_mode",
               "ingress_domain", "tls_issuer", "monitoring", "repo_layout", "dependency_bot", "verify_signatures",
               "policy", "fleetstrap_pip")
# `services` is kept by fleetstrap (init's first service, then `add service`); accepted in answers files.
KNOWN_KEYS = frozenset(QUESTION_BY_KEY) | {"services"}


def _field_default(q: Question) -> Any:
    """FleetAnswers' field default: the schema's static default; an empty one where the schema derives it
    from other answers (build_answers fills those in). A mapping answer is frozen as (key, value) pairs."""
    if q.kind == "ranges":
        return tuple(dict(q.default).items())
    if q.derive is None:
        return q.default
    return () if q.kind in ("list", "clusters") else ""


_SCHEMA_DEFAULT: dict[str, Any] = {q.key: _field_default(q) for q in QUESTIONS}


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
    """The validated answers. The field list is the schema's keys (`service` becomes `services`); every default
    comes from the schema (answer_schema.QUESTIONS), checked at import below."""

    owner: str
    services: tuple[str, ...]
    fleet_name: str = _SCHEMA_DEFAULT["fleet_name"]
    engine: Engine = _SCHEMA_DEFAULT["engine"]
    environments: tuple[str, ...] = _SCHEMA_DEFAULT["environments"]
    clusters: tuple[ClusterSpec, ...] = ()
    registry: str = _SCHEMA_DEFAULT["registry"]
    telemetry_backend: str = _SCHEMA_DEFAULT["telemetry_backend"]
    otlp_endpoint: str = _SCHEMA_DEFAULT["otlp_endpoint"]
    collector_mode: str = _SCHEMA_DEFAULT["collector_mode"]
    image_automation: bool = _SCHEMA_DEFAULT["image_automation"]
    image_policy: tuple[tuple[str, str], ...] = _SCHEMA_DEFAULT["image_policy"]  # (environment, semver range)
    progressive_delivery: str = _SCHEMA_DEFAULT["progressive_delivery"]
    secrets: str = _SCHEMA_DEFAULT["secrets"]
    ingress_domain: str = _SCHEMA_DEFAULT["ingress_domain"]
    tls_issuer: str = _SCHEMA_DEFAULT["tls_issuer"]
    acme_email: str = _SCHEMA_DEFAULT["acme_email"]
    teams: tuple[str, ...] = _SCHEMA_DEFAULT["teams"]
    monitoring: bool = _SCHEMA_DEFAULT["monitoring"]
    notifications: str = _SCHEMA_DEFAULT["notifications"]
    repo_layout: str = _SCHEMA_DEFAULT["repo_layout"]
    dependency_bot: str = _SCHEMA_DEFAULT["dependency_bot"]
    verify_signatures: bool = _SCHEMA_DEFAULT["verify_signatures"]
    policy: str = _SCHEMA_DEFAULT["policy"]
    branch: str = _SCHEMA_DEFAULT["branch"]
    git_url: str = _SCHEMA_DEFAULT["git_url"]
    fleetstrap_pip: str = _SCHEMA_DEFAULT["fleetstrap_pip"]

    def to_copier_data(self) -> dict[str, Any]:
        """Answers shared by every unit, in copier's vocabulary (lists, not tuples)."""
        values = {k: getattr(self, k) for k in SHARED_KEYS}
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        out["image_policy"] = dict(self.image_policy)
        return out

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

    def followed_environments(self) -> tuple[str, ...]:
        """The environments whose image tags follow new releases automatically (image automation on): the first,
        and those image_policy names, in promotion order. The others change only by `fleetstrap promote`."""
        if not self.image_automation:
            return ()
        named = dict(self.image_policy)
        return tuple(e for i, e in enumerate(self.environments) if i == 0 or e in named)

    @property
    def engines(self) -> tuple[str, ...]:
        return ("flux", "argocd") if self.engine == "both" else (self.engine,)

    def cluster(self, name: str) -> ClusterSpec:
        for c in self.clusters:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.clusters) or "none"
        raise AnswersError(f"unknown cluster {name!r}; this fleet has: {known}")


def _field_keys() -> set[str]:
    return {f.name for f in dataclasses.fields(FleetAnswers)}


# The schema and FleetAnswers hold the same keys (the schema's `service` is the first of `services`).
if _field_keys() != (set(QUESTION_BY_KEY) - {"service"}) | {"services"}:  # pragma: no cover - a programming error
    raise RuntimeError("FleetAnswers and answer_schema.QUESTIONS list different keys")

DEFAULTS: dict[str, Any] = {q.key: q.default for q in QUESTIONS if q.default is not None}


# ---------------------------------------------------------------- parsing sources


def load_answers_file(path: Path) -> dict[str, Any]:
    from fleetstrap.boundedyaml import MAX_ANSWERS_BYTES, read_bounded_text, safe_load

    try:  # bounded: a device or pipe that never ends (/dev/zero) is refused, and Ctrl-C interrupts the read
        text = read_bounded_text(path, MAX_ANSWERS_BYTES)
    except OSError as exc:
        raise AnswersError(f"cannot read answers file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise AnswersError(f"answers file {path} is not UTF-8 text") from exc
    try:
        data = safe_load(text)
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


def _label(key: str) -> str:
    return f"answer {key!r}"


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
        if text in LEGACY_DELIVERY:
            return LEGACY_DELIVERY[text]
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


def _name_problem(name: object, what: str) -> str | None:
    problem = dns1123_problem(name, what)
    if problem is None and isinstance(name, str):
        problem = reserved_name_problem(name, what)
    return problem


def _names(data: Mapping[str, Any], key: str, default: tuple[str, ...], what: str) -> tuple[str, ...]:
    value = data.get(key, list(default))
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise AnswersError(f"answer {key!r} must be a non-empty list")
    for v in value:
        if not isinstance(v, str):
            raise AnswersError(f"answer {key!r}: every {what} must be a string (got {v!r})")
    names = tuple(value)
    for n in names:
        problem = _name_problem(n, what)
        if problem:
            raise AnswersError(problem)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AnswersError(f"duplicate {what} name(s): {', '.join(dupes)}")
    return names


def _cluster(item: Any, i: int, environments: tuple[str, ...]) -> ClusterSpec:
    if not isinstance(item, dict):
        raise AnswersError(f"clusters[{i}] must be a mapping with name and environment")
    unknown = sorted(set(item) - {"name", "environment", "context", "server"})
    if unknown:
        raise AnswersError(f"clusters[{i}]: unknown key(s) {', '.join(map(str, unknown))}")
    name = item.get("name")
    problem = _name_problem(name, "cluster")
    if problem:
        raise AnswersError(problem)
    env = item.get("environment", environments[0] if len(environments) == 1 else None)
    if env not in environments:
        raise AnswersError(
            f"cluster {name!r}: environment {env!r} is not one of the environments ({', '.join(environments)})"
        )
    fields: dict[str, str] = {}
    for key, check in (("context", answer_types.context_problem), ("server", answer_types.https_url_problem)):
        value = item.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise AnswersError(f"cluster {name!r}: {key} must be a string")
        problem = check(value, f"cluster {name!r}: {key}")
        if problem:
            raise AnswersError(problem)
        fields[key] = value
    return ClusterSpec(str(name), str(env), fields.get("context", ""), fields.get("server", IN_CLUSTER))


def _clusters(data: Mapping[str, Any], environments: tuple[str, ...]) -> tuple[ClusterSpec, ...]:
    raw = data.get("clusters")
    if raw is None:
        return tuple(ClusterSpec(name=e, environment=e) for e in environments)
    if isinstance(raw, str):
        # "name:env[:context],..." for --data convenience.
        raw = [dict(zip(("name", "environment", "context"), p.split(":"), strict=False))
               for p in raw.split(",") if p.strip()]
    if not isinstance(raw, list | tuple) or not raw:
        raise AnswersError("answer 'clusters' must be a non-empty list of {name, environment}")
    out = [_cluster(item, i, environments) for i, item in enumerate(raw)]
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AnswersError(f"duplicate cluster name(s): {', '.join(dupes)}")
    return tuple(out)


def _ranges(data: Mapping[str, Any], q: Question, resolved: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """image_policy: a mapping of environment to semver range, for environments of this fleet, with image
    automation on (a range no automation reads would be a promise the fleet does not keep)."""
    raw = data.get(q.key)
    if raw in (None, "", {}):
        return ()
    if not isinstance(raw, Mapping):
        raise AnswersError(f"answer {q.key!r} must be a mapping of environment to semver range, "
                           "e.g. {staging: '>=1.0.0-rc.0'}")
    environments: tuple[str, ...] = resolved["environments"]
    out = []
    for env, value in raw.items():
        if env not in environments:
            raise AnswersError(f"answer {q.key!r}: {env!r} is not one of the environments ({', '.join(environments)})")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise AnswersError(f"answer {q.key!r}: the range of {env} must be a string, e.g. '>=1.0.0-rc.0'")
        problem = answer_types.semver_range_problem(str(value), f"answer {q.key!r}: {env}")
        if problem:
            raise AnswersError(problem)
        out.append((str(env), str(value).strip()))
    if not resolved.get("image_automation"):
        raise AnswersError(f"answer {q.key!r} needs image_automation: true (it sets the ranges image automation "
                           "follows)")
    order = {e: i for i, e in enumerate(environments)}
    return tuple(sorted(out, key=lambda pair: order[pair[0]]))


def _services(data: Mapping[str, Any]) -> tuple[str, ...]:
    listed = data.get("services") or []
    if not isinstance(listed, list | tuple):
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


def _text(data: Mapping[str, Any], q: Question, resolved: Mapping[str, Any]) -> str:
    """A string answer: given or the schema's default; one of the choices; checked by its type."""
    given = q.key in data and data[q.key] not in (None, "")
    value = _str(data, q.key, q.default_for(resolved)) if given else str(q.default_for(resolved) or "")
    if q.choices and value not in q.choices:
        raise AnswersError(f"answer {q.key!r} must be one of {', '.join(q.choices)} (got {value!r})")
    if q.check is not None and (q.required or q.applies(resolved)):
        problem = q.check(value, _label(q.key))
        if problem and not given:  # a derived default the user never typed: say where it came from
            raise AnswersError(f"answer {q.key!r} is needed: its default {value!r} is refused "
                               f"({problem.removeprefix(_label(q.key) + ': ')})")
        if problem:
            raise AnswersError(problem)
    return value


def _resolve(data: Mapping[str, Any], q: Question, resolved: Mapping[str, Any]) -> Any:
    if q.kind == "bool":
        return _bool(data, q.key, bool(q.default_for(resolved)))
    if q.kind == "list":
        return _names(data, q.key, tuple(q.default_for(resolved)), q.key.removesuffix("s"))
    if q.kind == "clusters":
        return _clusters(data, resolved["environments"])
    if q.kind == "service":
        return _services(data)
    if q.kind == "ranges":
        return _ranges(data, q, resolved)
    if q.legacy is not None:
        return delivery_choice(data.get(q.key, q.default_for(resolved)))
    return _text(data, q, resolved)


def build_answers(data: Mapping[str, Any]) -> FleetAnswers:
    """Validate merged answers and freeze them: the one validated constructor, each answer by its type in
    answer_schema. Raises AnswersError naming the first answer refused and the rule it breaks."""
    check_known_keys(data, "answers")
    missing = missing_answers(data)
    if missing:
        raise AnswersError(f"missing answer(s): {', '.join(missing)}")
    resolved: dict[str, Any] = {}
    for q in QUESTIONS:  # in schema order: a derived default or a condition reads only earlier answers
        resolved[q.key] = _resolve(data, q, resolved)
    services = resolved.pop("service")
    if not services:
        raise AnswersError("missing answer(s): service")
    answers = FleetAnswers(services=services, **resolved)
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
        elif key == "image_policy":
            data[key] = dict(value)
        elif isinstance(value, tuple):
            data[key] = list(value)
        else:
            data[key] = value
    if "services" in changes:
        data["service"] = data["services"][0] if data["services"] else ""
    return build_answers(data)
