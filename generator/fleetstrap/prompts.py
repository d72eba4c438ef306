"""Interactive answers: the only module that imports questionary. A loop over the answer schema."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fleetstrap.answer_schema import (
    FIRST_SERVICE_SUGGESTION,
    PLACEHOLDER_OWNERS,
    QUESTION_BY_KEY,
    QUESTIONS,
    Question,
    owner_problem,
)
from fleetstrap.answer_types import context_problem
from fleetstrap.answers import delivery_choice
from fleetstrap.errors import AnswersError
from fleetstrap.names import dns1123_problem, reserved_name_problem, service_name_problem


def _name_problem(text: str, what: str) -> str | None:
    return dns1123_problem(text, what) or reserved_name_problem(text, what)


def _list_problem(text: str, what: str) -> str | None:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        return f"give at least one {what}"
    for n in names:
        p = _name_problem(n, what)
        if p:
            return p
    if len(set(names)) != len(names):
        return f"duplicate {what} names"
    return None


def _label(q: Question, detail: str = "", end: str = ":") -> str:
    return f"{q.prompt} ({detail}){end}" if detail else f"{q.prompt}{end}"


def _validator(check: Callable[[str], str | None]) -> Callable[[str], bool | str]:
    def run(text: str) -> bool | str:
        problem = check(text)
        return True if problem is None else problem

    return run


def _current(q: Question, a: Mapping[str, Any]) -> Any:
    """What the prompt offers: the answer so far (blueprint, file, --data), else the schema's default."""
    value = a.get(q.key)
    if q.legacy is not None and value is not None:
        try:
            value = delivery_choice(value)
        except AnswersError:
            value = None
    return q.default_for(a) if value in (None, "") else value


def _ask_clusters(ask: Callable[[Any], Any], a: Mapping[str, Any]) -> list[dict[str, str]]:
    import questionary

    clusters = []
    known = {c["name"]: c for c in a.get("clusters") or [] if isinstance(c, dict) and "name" in c}
    for env in a["environments"]:
        prev = next((c for c in known.values() if c.get("environment") == env), {"name": env})
        name = ask(questionary.text(
            f"Cluster for {env}:", default=str(prev.get("name", env)),
            validate=_validator(lambda t: _name_problem(t, "cluster name"))))
        context = ask(questionary.text(
            f"Kube context for {name} (optional):", default=str(prev.get("context", "")),
            validate=_validator(lambda t: context_problem(t, "kube context") if t else None)))
        cluster = {"name": name, "environment": env, **({"context": context} if context else {})}
        if prev.get("server"):
            cluster["server"] = str(prev["server"])
        clusters.append(cluster)
    return clusters


def _ask_one(ask: Callable[[Any], Any], q: Question, a: Mapping[str, Any]) -> Any:
    import questionary

    current = _current(q, a)
    if q.kind == "clusters":
        return _ask_clusters(ask, a)
    if q.kind == "bool":
        return ask(questionary.confirm(_label(q, end="?"), default=bool(current)))
    if q.kind == "list":
        what = q.key.removesuffix("s")
        text = ask(questionary.text(_label(q, "comma-separated"), default=", ".join(current),
                                    validate=_validator(lambda t: _list_problem(t, what))))
        return [n.strip() for n in text.split(",") if n.strip()]
    if q.kind == "service":
        return ask(questionary.text(_label(q), default=str(current or FIRST_SERVICE_SUGGESTION),
                                    validate=_validator(service_name_problem)))
    if q.choices:
        offered = list(q.offered(a) if q.offered is not None else q.choices)
        default = current if current in offered else ("none" if "none" in offered else offered[0])
        return ask(questionary.select(_label(q), choices=offered, default=default))
    check = q.check
    label = f"answer {q.key!r}"
    return ask(questionary.text(
        _label(q), default=str(current or ""),
        validate=_validator(lambda t: check(t, label) if check else None)))


def ask_fleet_answers(start: Mapping[str, Any]) -> dict[str, Any]:
    """Ask every schema question that applies, in schema order, starting from `start` (defaults, blueprint,
    file, --data). A question whose condition does not hold takes its `otherwise` value, if it has one."""

    def ask(q: Any) -> Any:
        return q.unsafe_ask()  # raises KeyboardInterrupt on Ctrl-C: the CLI maps it to 130

    a: dict[str, Any] = dict(start)
    for q in QUESTIONS:
        if not q.asked:
            continue
        if not q.applies(a):
            if q.otherwise is not None:
                a[q.key] = q.otherwise(a)
            continue
        a[q.key] = _ask_one(ask, q, a)
    return a


def confirm(message: str, default: bool = False) -> bool:
    import questionary

    return bool(questionary.confirm(message, default=default).unsafe_ask())


def ask_owner_over_placeholder(sources: Mapping[str, Any]) -> dict[str, Any]:
    """A blueprint's answers (merged with an answers file and --data) whose owner is still the blueprints'
    placeholder: ask for the real owner, the one question that cannot have a sensible default (the git URL, the
    images and the deploy keys derive from it; `push` refuses the placeholder). Other answers stay as given."""
    import questionary

    out = dict(sources)
    owner = str(out.get("owner") or "")
    if owner and owner.lower() not in PLACEHOLDER_OWNERS:
        return out
    q = QUESTION_BY_KEY["owner"]
    out["owner"] = questionary.text(
        _label(q, f"the blueprint's {owner!r} is a placeholder" if owner else ""),
        validate=_validator(lambda t: owner_problem(t, "owner") or (
            f"{t!r} is a placeholder; name your GitHub user or organization" if t.lower() in PLACEHOLDER_OWNERS
            else None))).unsafe_ask()
    return out
