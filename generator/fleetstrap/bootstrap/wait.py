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


@dataclass(frozen=True)
class Reconciled:
    """One object the engine reconciles from the repo: its state for the report and what it still waits for."""

    ref: str  # "Kind ns/name"
    why: str  # "Ready", or why it is not
    pending: str | None  # None once the controller has a verdict on the current generation and revision


States = Callable[[], Sequence[Reconciled]]

HEALTH_CHECKS = "Running health checks for revision "  # kustomize-controller's Reconciling message while it waits


def _generation_observed(obj: Mapping[str, Any]) -> bool:
    gen = (obj.get("metadata") or {}).get("generation")
    seen = (obj.get("status") or {}).get("observedGeneration")
    return gen is not None and seen is not None and int(seen) >= int(gen)


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


def helmrelease_pending(obj: Mapping[str, Any], source_failed: bool) -> str | None:
    """None when helm-controller has a verdict: installed (Ready, generation observed, a release in history)
    or failed (Ready=False and either final, with the generation observed, or its chart source failing, or
    waiting for a dependency). Ready=True alone is not enough: helm-controller reports it before it records
    the release and observes the generation."""
    ready = _condition(obj, "Ready")
    status = ready.get("status", "Unknown")
    if status == "True":
        if not _generation_observed(obj):
            return "Ready=True but the generation is not observed yet"
        if not (obj.get("status") or {}).get("history"):
            return "Ready=True but no release in its history yet"
        return None
    if status == "False" and (_generation_observed(obj) or source_failed
                              or ready.get("reason") == "DependencyNotReady"):
        return None
    return f"Ready={status} {ready.get('reason', '')}".strip()


def inventory_helmreleases(obj: Mapping[str, Any]) -> list[str]:
    """"HelmRelease ns/name" of every HelmRelease in a Kustomization's inventory (ids: ns_name_group_Kind)."""
    out = []
    for entry in ((obj.get("status") or {}).get("inventory") or {}).get("entries") or []:
        parts = str(entry.get("id", "")).split("_")
        if len(parts) == 4 and parts[2] == "helm.toolkit.fluxcd.io" and parts[3] == "HelmRelease":
            out.append(f"HelmRelease {parts[0]}/{parts[1]}")
    return out


def kustomization_applied(obj: Mapping[str, Any], source_revision: str | None) -> bool:
    """Ready with its generation observed at the source's artifact revision (what kustomize-controller itself
    asks of a dependency)."""
    return (_condition(obj, "Ready").get("status") == "True" and _generation_observed(obj)
            and source_revision is not None
            and (obj.get("status") or {}).get("lastAppliedRevision") == source_revision)


def kustomization_pending(obj: Mapping[str, Any], source_revision: str | None,
                          releases: Mapping[str, Reconciled], dependencies_applied: bool = False) -> str | None:
    """None when kustomize-controller has a verdict on the source's current revision:
    - applied: Ready, the generation observed, lastAppliedRevision == the source's artifact revision;
    - failed at that revision (Ready=False, lastAttemptedRevision == it), or waiting for a source without an
      artifact, or for a dependency that is not applied (that one carries the cause). Once every dependency is
      applied, DependencyNotReady is only the controller's requeue delay (30 s by default): not a verdict;
    - health-checking (this revision, or an older one it must finish first) with a HelmRelease that failed
      while every other one has its verdict: it can only end in a failed health check (after its own
      timeout, 10 minutes and more).
    `releases`: "HelmRelease ns/name" -> its state, for every HelmRelease on the cluster."""
    st = obj.get("status") or {}
    ready = _condition(obj, "Ready")
    status, reason = ready.get("status", "Unknown"), ready.get("reason", "")
    if status == "False" and reason == "DependencyNotReady":
        return "its dependencies are applied: waiting for it to start" if dependencies_applied else None
    if source_revision is None:
        return None if status == "False" else "its source has no artifact yet"
    if status == "True":
        if not _generation_observed(obj):
            return "Ready=True but the generation is not observed yet"
        if st.get("lastAppliedRevision") != source_revision:
            return f"applied {st.get('lastAppliedRevision') or 'nothing'}, the source is at {source_revision}"
        return None
    if status == "False":
        if reason == "ArtifactFailed":
            return None
        if st.get("lastAttemptedRevision") == source_revision and reason != "HealthCheckCanceled":
            return None
        return f"Ready=False {reason} at {st.get('lastAttemptedRevision') or 'no revision'}, the source is at " \
               f"{source_revision}"
    # Health checks of an older revision run to their own timeout before the current one is tried: with a
    # failed HelmRelease they too can only end in a failure.
    attempted = str(st.get("lastAttemptedRevision") or "")
    if attempted and str(_condition(obj, "Reconciling").get("message", "")).startswith(HEALTH_CHECKS + attempted):
        mine = [releases.get(ref) for ref in inventory_helmreleases(obj)]
        judged = [r for r in mine if r is not None and r.pending is None]
        if mine and len(judged) == len(mine) and any(r.why != "Ready" for r in judged):
            return None
    return f"Ready={status} {reason}".strip()


def wait_settled(states: States, *, timeout: float, interval: float) -> list[tuple[str, str]]:
    """Poll `states` until every object has a verdict (pending None), or until `timeout`; return the objects
    that are not Ready. Never raises on objects that failed: the caller reports them."""
    deadline = time.monotonic() + timeout
    while True:
        current = states()
        if all(s.pending is None for s in current) or time.monotonic() >= deadline:
            return [(s.ref, redact(s.why)) for s in current if s.why != "Ready"]
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
