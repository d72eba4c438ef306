"""Waiting for objects to become ready: poll, show progress, and on timeout name what is not ready and why."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetstrap import output
from fleetstrap.bootstrap.kube import KubeClient
from fleetstrap.errors import ClusterError
from fleetstrap.redact import redact

Check = Callable[[Mapping[str, Any]], str | None]  # None = ready, else why not


@dataclass(frozen=True)
class Target:
    api_version: str
    kind: str
    name: str
    namespace: str
    check: Check

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


def ready_condition(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(status, 'Reason: message') of the Ready condition, for Flux-style objects."""
    status = obj.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status")), f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")
    return "Unknown", "no Ready condition yet"


def _stale(obj: Mapping[str, Any]) -> bool:
    gen = (obj.get("metadata") or {}).get("generation")
    seen = (obj.get("status") or {}).get("observedGeneration")
    return gen is not None and seen is not None and int(seen) < int(gen)


def flux_check(revision_field: str, expected: str) -> Check:
    """Ready=True, observed the current generation, and at the pushed revision."""

    def check(obj: Mapping[str, Any]) -> str | None:
        status, why = ready_condition(obj)
        if _stale(obj):
            return "not reconciled since the last change"
        if status != "True":
            return f"Ready={status} {why}"
        st = obj.get("status") or {}
        got = (st.get("artifact") or {}).get("revision") if revision_field == "artifact" else st.get(revision_field)
        if got != expected:
            return f"Ready=True but at revision {got or 'none'}, waiting for {expected}"
        return None

    return check


def workload_check(obj: Mapping[str, Any]) -> str | None:
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    want = int(spec.get("replicas", 1))
    if _stale(obj):
        return "rollout not observed yet"
    ready = int(st.get("readyReplicas") or 0)
    if ready < want:
        return f"{ready}/{want} replicas ready"
    return None


def argocd_check(expected_sha: str) -> Check:
    def check(obj: Mapping[str, Any]) -> str | None:
        st = obj.get("status") or {}
        sync = (st.get("sync") or {}).get("status", "Unknown")
        health = (st.get("health") or {}).get("status", "Unknown")
        rev = (st.get("sync") or {}).get("revision", "")
        if sync != "Synced" or health != "Healthy":
            msg = (st.get("health") or {}).get("message") or ((st.get("conditions") or [{}])[0]).get("message", "")
            return f"sync={sync} health={health}" + (f": {msg}" if msg else "")
        if expected_sha and rev != expected_sha:
            return f"Synced at {rev[:12] or 'none'}, waiting for {expected_sha[:12]}"
        return None

    return check


def wait_ready(client: KubeClient, targets: Sequence[Target], *, what: str, timeout: float,
               interval: float) -> None:
    """Poll until every target is ready; print each state change; raise naming the laggards on timeout."""
    deadline = time.monotonic() + timeout
    last: dict[str, str | None] = {}
    while True:
        pending: dict[str, str] = {}
        for t in targets:
            obj = client.get(t.api_version, t.kind, t.name, t.namespace)
            why = "not found" if obj is None else t.check(obj)
            if why is not None:
                pending[t.ref] = redact(why)
            if last.get(t.ref, "") != why:
                if why is None:
                    output.success(f"{t.ref} ready")
                else:
                    output.step(f"{t.ref}: {redact(why)}")
                last[t.ref] = why
        if not pending:
            return
        if time.monotonic() >= deadline:
            detail = "; ".join(f"{ref}: {why}" for ref, why in pending.items())
            raise ClusterError(f"timed out after {timeout:g}s waiting for {what}: {detail}",
                               hint="fix the cause shown, then rerun bootstrap (it resumes where it stopped)")
        time.sleep(interval)


States = Callable[[], Sequence[tuple[str, str]]]  # ("Kind ns/name", "Ready" or why not)


def flux_settled(states: Sequence[tuple[str, str]]) -> bool:
    """Every object was reconciled once and every HelmRelease has a verdict (installed or failed).

    A Kustomization that waits for its HelmReleases' health stays Ready=Unknown until its own timeout
    (10 minutes and more): its HelmReleases' verdicts already say how it will end."""
    return all(why != "Ready=Unknown no Ready condition yet" and
               not (ref.startswith("HelmRelease ") and why.startswith("Ready=Unknown")) for ref, why in states)


def wait_settled(states: States, *, timeout: float, interval: float) -> list[tuple[str, str]]:
    """Poll `states` until they are settled and the set of objects is stable, or until `timeout`; return the
    objects that are not Ready. Never raises on objects that failed: the caller reports them."""
    deadline = time.monotonic() + timeout
    previous: Sequence[tuple[str, str]] | None = None
    while True:
        current = states()
        stable = previous is not None and [r for r, _ in previous] == [r for r, _ in current]
        if (flux_settled(current) and stable) or time.monotonic() >= deadline:
            return [(ref, redact(why)) for ref, why in current if why != "Ready"]
        previous = current
        time.sleep(interval)


class Waiter:
    """Waits for targets on the cluster (`wait_ready` with the run's timeout and poll interval)."""

    def __init__(self, client: KubeClient, *, timeout: float, interval: float) -> None:
        self.client = client
        self.timeout = timeout
        self.interval = interval

    def wait(self, targets: Sequence[Target], what: str) -> None:
        wait_ready(self.client, targets, what=what, timeout=self.timeout, interval=self.interval)

    def wait_settled(self, states: States) -> list[tuple[str, str]]:
        return wait_settled(states, timeout=self.timeout, interval=self.interval)


class RecordingWaiter:
    """The dry-run Waiter: records what it would wait for."""

    def __init__(self) -> None:
        self.waited: list[str] = []

    def wait(self, targets: Sequence[Target], what: str) -> None:
        self.waited.append(f"{what}: {', '.join(t.ref for t in targets)}")

    def wait_settled(self, states: States) -> list[tuple[str, str]]:  # noqa: ARG002 (protocol)
        self.waited.append("what the engine reconciles from the repo to settle")
        return []
