"""bootstrap's settle check (bootstrap/wait.py): what Flux reconciles from the repo is settled only when each
Kustomization has a verdict on the source's current revision and each HelmRelease on its current generation.

The objects are shaped as kustomize-controller v1.9 and helm-controller v1.6 write them, phase by phase
(observedGeneration is written only after a successful reconcile; lastAttemptedRevision before the build;
the inventory before the health checks, whose Reconciling message names the revision).
"""

from __future__ import annotations

from typing import Any

from fleetstrap.bootstrap.wait import (
    Reconciled,
    helmrelease_pending,
    kustomization_applied,
    kustomization_pending,
    wait_settled,
)

REV = "main@sha1:2b1f3c0d"
OLD = "main@sha1:0a0a0a0a"


def kustomization(ready: str, reason: str = "", *, generation: int = 1, observed: int = -1, applied: str = "",
                  attempted: str = "", reconciling: str = "", releases: tuple[str, ...] = ()) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready, "reason": reason, "message": ""}]
    if reconciling:
        conditions.append({"type": "Reconciling", "status": "True", "reason": "Progressing", "message": reconciling})
    status: dict[str, Any] = {"observedGeneration": observed, "conditions": conditions}
    if applied:
        status["lastAppliedRevision"] = applied
    if attempted:
        status["lastAttemptedRevision"] = attempted
    if releases:
        status["inventory"] = {"entries": [{"id": f"{r.replace('/', '_')}_helm.toolkit.fluxcd.io_HelmRelease",
                                            "v": "v2"} for r in releases]
                               + [{"id": "cert-manager__Namespace", "v": "v1"}]}
    return {"metadata": {"name": "infra-controllers", "namespace": "flux-system", "generation": generation},
            "status": status}


def helmrelease(ready: str, reason: str = "", *, generation: int = 1, observed: int = -1,
                history: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": observed,
                              "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": ""}]}
    if history:
        status["history"] = [{"chartName": "hello", "status": "deployed"}]
    return {"metadata": {"name": "hello", "namespace": "hello", "generation": generation}, "status": status}


def state(ref: str, obj: dict[str, Any], source_failed: bool = False) -> Reconciled:
    ready = obj["status"]["conditions"][0]
    why = "Ready" if ready["status"] == "True" else f"Ready={ready['status']} {ready['reason']}"
    return Reconciled(ref, why, helmrelease_pending(obj, source_failed))


# ---------------------------------------------------------------- HelmRelease


def test_a_release_ready_before_it_is_recorded_is_not_settled() -> None:
    """What the issue saw in a failed run's etcd: Ready=True, observedGeneration -1, no history yet."""
    assert helmrelease_pending(helmrelease("True", observed=-1), False) is not None
    assert helmrelease_pending(helmrelease("True", observed=1), False) is not None  # no history
    assert helmrelease_pending(helmrelease("True", observed=1, history=True), False) is None
    assert helmrelease_pending(helmrelease("True", generation=2, observed=1, history=True), False) is not None


def test_a_failing_release_is_settled_once_final_or_its_source_failed() -> None:
    # The chart is still being fetched: helm-controller says the source is not ready; not a verdict yet.
    assert helmrelease_pending(helmrelease("False", "SourceNotReady"), source_failed=False) is not None
    # The chart repository failed (status.py's source_failure found it): a verdict.
    assert helmrelease_pending(helmrelease("False", "SourceNotReady"), source_failed=True) is None
    # Retries exhausted: helm-controller observed the generation.
    assert helmrelease_pending(helmrelease("False", "InstallFailed", observed=1), False) is None
    assert helmrelease_pending(helmrelease("False", "DependencyNotReady"), False) is None
    assert helmrelease_pending(helmrelease("Unknown", "Progressing"), True) is not None


# ---------------------------------------------------------------- Kustomization


def test_applied_means_generation_observed_and_the_sources_revision() -> None:
    applied = kustomization("True", observed=1, applied=REV, attempted=REV)
    assert kustomization_pending(applied, REV, {}) is None
    assert kustomization_applied(applied, REV) and not kustomization_applied(applied, OLD)
    # Ready at the previous commit: the source moved on, the Kustomization has not applied it yet.
    assert kustomization_pending(kustomization("True", observed=1, applied=OLD, attempted=OLD), REV, {}) is not None
    # Its spec changed (generation 2) and it has not reconciled that yet.
    assert kustomization_pending(kustomization("True", generation=2, observed=1, applied=REV), REV, {}) is not None


def test_progressing_before_it_created_its_releases_is_not_settled() -> None:
    """The race behind the flaky mission test: two equal polls of a Kustomization that is still building."""
    for phase in ("Fetching manifests for revision", "Building manifests for revision"):
        k = kustomization("Unknown", "Progressing", attempted=REV, reconciling=f"{phase} {REV} with a timeout")
        assert kustomization_pending(k, REV, {}) is not None, phase


def test_health_checks_settle_on_a_failed_release_only_when_every_release_has_a_verdict() -> None:
    checking = f"Running health checks for revision {REV} with a timeout of 10m0s"
    k = kustomization("Unknown", "Progressing", attempted=REV, reconciling=checking,
                      releases=("cert-manager/cert-manager", "hello/hello"))
    failed = state("HelmRelease cert-manager/cert-manager", helmrelease("False", "SourceNotReady"), True)
    installing = state("HelmRelease hello/hello", helmrelease("Unknown", "Progressing"))
    installed = state("HelmRelease hello/hello", helmrelease("True", observed=1, history=True))
    assert kustomization_pending(k, REV, {failed.ref: failed, installing.ref: installing}) is not None
    assert kustomization_pending(k, REV, {failed.ref: failed}) is not None  # hello not even listed yet
    assert kustomization_pending(k, REV, {failed.ref: failed, installed.ref: installed}) is None
    # Every release installed: the Kustomization is about to become Ready; wait for it.
    ok = state("HelmRelease cert-manager/cert-manager", helmrelease("True", observed=1, history=True))
    assert kustomization_pending(k, REV, {ok.ref: ok, installed.ref: installed}) is not None
    # Health checks of an older revision run to their timeout first: with a failed release, also a verdict.
    old = kustomization("Unknown", "Progressing", attempted=OLD, reconciling=checking.replace(REV, OLD),
                        releases=("cert-manager/cert-manager",))
    assert kustomization_pending(old, REV, {failed.ref: failed}) is None
    # A message of another revision than the one attempted is not the health-check phase.
    stale = kustomization("Unknown", "Progressing", attempted=REV, reconciling=checking.replace(REV, OLD),
                          releases=("cert-manager/cert-manager",))
    assert kustomization_pending(stale, REV, {failed.ref: failed}) is not None


def test_failures_are_verdicts_at_the_current_revision() -> None:
    assert kustomization_pending(kustomization("False", "HealthCheckFailed", attempted=REV), REV, {}) is None
    assert kustomization_pending(kustomization("False", "BuildFailed", attempted=OLD), REV, {}) is not None
    assert kustomization_pending(kustomization("False", "HealthCheckCanceled", attempted=REV), REV, {}) is not None
    # Blocked by a dependency that is not applied: that one carries the cause. Once every dependency is
    # applied, DependencyNotReady only lasts until the controller's requeue: not a verdict.
    blocked = kustomization("False", "DependencyNotReady")
    assert kustomization_pending(blocked, REV, {}, dependencies_applied=False) is None
    assert kustomization_pending(blocked, REV, {}, dependencies_applied=True) is not None
    assert kustomization_pending(kustomization("False", "ArtifactFailed"), None, {}) is None
    assert kustomization_pending(kustomization("Unknown", "Progressing"), None, {}) is not None


def test_wait_settled_returns_once_every_object_has_a_verdict() -> None:
    polls = iter([
        [Reconciled("Kustomization flux-system/apps", "Ready=Unknown Progressing", "building")],
        [Reconciled("Kustomization flux-system/apps", "Ready=Unknown Progressing", "building")],
        [Reconciled("Kustomization flux-system/apps", "Ready", None),
         Reconciled("HelmRelease hello/hello", "Ready=False InstallFailed: boom", None)],
    ])
    calls = []

    def states() -> list[Reconciled]:
        calls.append(1)
        return next(polls)

    # Two equal polls are not enough: it waits for the verdicts.
    assert wait_settled(states, timeout=30, interval=0) == [("HelmRelease hello/hello",
                                                            "Ready=False InstallFailed: boom")]
    assert len(calls) == 3


def test_wait_settled_gives_up_at_the_timeout_with_what_is_not_ready() -> None:
    pending = [Reconciled("Kustomization flux-system/apps", "Ready=Unknown Progressing", "building")]
    assert wait_settled(lambda: pending, timeout=0, interval=0) == [("Kustomization flux-system/apps",
                                                                    "Ready=Unknown Progressing")]
