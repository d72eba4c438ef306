"""What a cluster reports about its GitOps engine: the sync state of Flux's and Argo CD's objects, read through
`kube.KubeClient`. The `status` command (fleetstrap/status.py) and bootstrap's engines read it."""

from __future__ import annotations

from typing import Any

from fleetstrap.bootstrap.kube import KubeClient
from fleetstrap.bootstrap.wait import (
    Reconciled,
    helmrelease_pending,
    kustomization_applied,
    kustomization_pending,
    ready_condition,
)
from fleetstrap.errors import FleetstrapError

FLUX_RECONCILED = (("kustomize.toolkit.fluxcd.io/v1", "Kustomization"), ("helm.toolkit.fluxcd.io/v2", "HelmRelease"))


def _flux_objects(client: KubeClient) -> list[tuple[str, dict[str, Any], str, bool]]:
    """(ref "Kind ns/name", object, "Ready" or "Ready=<status> <reason>: <message>[; <source>: why]", whether a
    HelmRelease's chart source failed) of every Kustomization and HelmRelease."""
    out = []
    for api_version, kind in FLUX_RECONCILED:
        try:
            found = client.list(api_version, kind)
        except FleetstrapError:
            continue  # kind not served: that controller is not installed
        for obj in sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
            status, why = ready_condition(obj)
            meta = obj["metadata"]
            failure = source_failure(client, obj) if status != "True" and kind == "HelmRelease" else ""
            out.append((f"{kind} {meta.get('namespace', '')}/{meta['name']}", obj,
                        "Ready" if status == "True" else f"Ready={status} {why}{failure}", bool(failure)))
    return out


def flux_object_states(client: KubeClient) -> tuple[tuple[str, str], ...]:
    """("Kind ns/name", "Ready" or "Ready=<status> <reason>: <message>") of every Kustomization and HelmRelease."""
    return tuple((ref, why) for ref, _, why, _ in _flux_objects(client))


def _source_revision(client: KubeClient, kustomization: dict[str, Any]) -> str | None:
    ref = (kustomization.get("spec") or {}).get("sourceRef") or {}
    namespace = str(ref.get("namespace") or kustomization["metadata"].get("namespace", ""))
    try:
        source = client.get("source.toolkit.fluxcd.io/v1", str(ref.get("kind", "GitRepository")),
                            str(ref.get("name", "")), namespace)
    except FleetstrapError:
        return None
    revision = (((source or {}).get("status") or {}).get("artifact") or {}).get("revision")
    return str(revision) if revision else None


def flux_reconciled(client: KubeClient) -> tuple[Reconciled, ...]:
    """Every Kustomization and HelmRelease with its state and what it still waits for (bootstrap's settle
    check: wait.kustomization_pending, wait.helmrelease_pending)."""
    objects = _flux_objects(client)
    releases = {ref: Reconciled(ref, why, helmrelease_pending(obj, source_failed))
                for ref, obj, why, source_failed in objects if ref.startswith("HelmRelease ")}
    revisions: dict[tuple[str, str, str], str | None] = {}

    def revision(obj: dict[str, Any]) -> str | None:
        src = (obj.get("spec") or {}).get("sourceRef") or {}
        key = (str(src.get("kind")), str(src.get("namespace") or obj["metadata"].get("namespace")),
               str(src.get("name")))
        if key not in revisions:
            revisions[key] = _source_revision(client, obj)
        return revisions[key]

    kustomizations = {ref: obj for ref, obj, _, _ in objects if ref.startswith("Kustomization ")}
    applied = {ref: kustomization_applied(obj, revision(obj)) for ref, obj in kustomizations.items()}
    out = []
    for ref, obj, why, _ in objects:
        if ref in releases:
            out.append(releases[ref])
            continue
        deps = [f"Kustomization {d.get('namespace') or obj['metadata'].get('namespace', '')}/{d.get('name')}"
                for d in (obj.get("spec") or {}).get("dependsOn") or []]
        out.append(Reconciled(ref, why, kustomization_pending(
            obj, revision(obj), releases, dependencies_applied=all(applied.get(d, False) for d in deps))))
    return tuple(out)


def source_failure(client: KubeClient, release: dict[str, Any]) -> str:
    """"; <HelmChart or its HelmRepository>: why" when the release's chart source is not ready, else "".

    helm-controller only says the HelmChart "is not ready"; the cause (e.g. an unreachable chart repository)
    is on the HelmChart or, one step further, on its HelmRepository."""
    ns_name = str((release.get("status") or {}).get("helmChart") or "")
    if "/" not in ns_name:
        return ""
    namespace, name = ns_name.split("/", 1)
    try:
        chart = client.get("source.toolkit.fluxcd.io/v1", "HelmChart", name, namespace)
        ref = ((chart or {}).get("spec") or {}).get("sourceRef") or {}
        repo = (client.get("source.toolkit.fluxcd.io/v1", str(ref["kind"]), str(ref["name"]), namespace)
                if ref.get("kind") in {"HelmRepository", "GitRepository", "Bucket"} and ref.get("name") else None)
    except FleetstrapError:
        return ""
    for kind, obj in ((str(ref.get("kind", "")), repo), ("HelmChart", chart)):
        if obj is not None and (state := ready_condition(obj))[0] == "False":
            return f"; {kind} {namespace}/{obj['metadata']['name']}: {state[1]}"
    return ""


def flux_sync_state(client: KubeClient) -> tuple[str, str]:
    repo = client.get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")
    kust = client.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "flux-system")
    if repo is None or kust is None:
        return "", "not bootstrapped"
    revision = str((kust.get("status") or {}).get("lastAppliedRevision") or "")
    states = []
    for obj in (repo, kust):
        status, why = ready_condition(obj)
        states.append(f"{obj['kind']} Ready" if status == "True" else f"{obj['kind']} Ready={status} {why}")
    return revision, "; ".join(states)


def argocd_application_state(app: dict[str, Any]) -> str:
    """"Synced/Healthy", or "<sync>/<health>: <why>" from the controller's health message or first condition."""
    st = app.get("status") or {}
    sync = (st.get("sync") or {}).get("status") or "Unknown"
    health = (st.get("health") or {}).get("status") or "Unknown"
    state = f"{sync}/{health}"
    if (sync, health) == ("Synced", "Healthy"):
        return state
    why = (st.get("health") or {}).get("message") or next(
        (c.get("message") for c in st.get("conditions") or [] if c.get("message")), "") or (
        (st.get("operationState") or {}).get("message") or "")
    return f"{state}: {' '.join(str(why).split())}" if why else state


def argocd_object_states(client: KubeClient) -> tuple[tuple[str, str], ...]:
    """("Application ns/name", state) of every Application in argocd, as the application-controller reports."""
    try:
        apps = client.list("argoproj.io/v1alpha1", "Application", "argocd")
    except FleetstrapError:
        return ()
    return tuple((f"Application {a['metadata'].get('namespace', 'argocd')}/{a['metadata']['name']}",
                  argocd_application_state(a)) for a in sorted(apps, key=lambda a: a["metadata"]["name"]))


def argocd_sync_state(client: KubeClient) -> tuple[str, str]:
    apps: list[dict[str, Any]] = client.list("argoproj.io/v1alpha1", "Application", "argocd")
    if not apps:
        return "", "no Applications"
    root = next((a for a in apps if a["metadata"]["name"] == "root"), apps[0])
    st = root.get("status") or {}
    sync = (st.get("sync") or {}).get("status", "Unknown")
    health = (st.get("health") or {}).get("status", "Unknown")
    return str((st.get("sync") or {}).get("revision") or ""), f"{root['metadata']['name']}: {sync}/{health}"
