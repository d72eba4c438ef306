"""An Argo CD hub registers its spokes: what `argocd cluster add` does, without the argocd CLI.

The spokes of a hub are the fleet's other clusters that have a `server` of their own (the hub is the cluster Argo
CD runs in: its server is https://kubernetes.default.svc). For each spoke, reached through its kube context
(`--spoke-context NAME=CONTEXT`, else the cluster's `context` answer), bootstrap applies

- on the spoke: ServiceAccount kube-system/fleetstrap-argocd-manager, a ClusterRole and ClusterRoleBinding of the
  same name derived from the AppProjects in the repo that deploy to the spoke (`build_access`), and a long-lived
  token Secret (type kubernetes.io/service-account-token) that the spoke's token controller fills;
- on the hub: Secret argocd/cluster-<spoke> labelled `argocd.argoproj.io/secret-type: cluster`, with the spoke's
  server as the fleet's Applications name it, the spoke's CA and the token.

The token only travels from the spoke's Secret to the hub's Secret: it is registered with `redact` the moment it is
read, and a dry run records both Secrets redacted. `--rotate-keys` creates a new token Secret, points the hub at
it, then deletes the old one (the API server stops accepting a token whose Secret is gone)."""

from __future__ import annotations

import base64
import fnmatch
import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.answers import IN_CLUSTER, FleetAnswers
from fleetstrap.bootstrap.kube import DryRunJournal, KubeClient, RecordingClient
from fleetstrap.bootstrap.objects import ARGOCD_NS, MANAGED_BY, build_namespace
from fleetstrap.bootstrap.preflight import Problem, sync_path
from fleetstrap.bootstrap.wait import Target, Waiter
from fleetstrap.errors import ClusterError, FleetstrapError, UserError
from fleetstrap.redact import register_secret

SPOKE_NS = "kube-system"
MANAGER = "fleetstrap-argocd-manager"
NAMESPACED_ROLE = f"{MANAGER}-namespaced"
COMPONENT = {"app.kubernetes.io/component": "argocd-manager-token"}
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
TOKEN_TYPE = "kubernetes.io/service-account-token"
CLUSTER_SECRET_LABEL = {"argocd.argoproj.io/secret-type": "cluster"}
DESCRIPTION = "kubernetes.io/description"
READ_VERBS = ["get", "list", "watch"]
WRITE_VERBS = ["create", "update", "patch", "delete"]
# What the spoke's identity must be allowed before bootstrap writes there: (verb, group, resource, namespace).
SPOKE_ACCESS = (
    ("create", "", "serviceaccounts", SPOKE_NS),
    ("create", "", "secrets", SPOKE_NS),
    ("delete", "", "secrets", SPOKE_NS),
    ("create", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", ""),
    # A ClusterRole can only be created by a subject that holds what it grants, or may escalate.
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
)

Connector = Callable[[Path | None, str | None], KubeClient]
Record = tuple[str, str, str]  # (what, ref, outcome), as flow.Change takes them


@dataclass(frozen=True)
class Spoke:
    name: str
    server: str  # the URL the fleet's Applications and AppProjects name the cluster by
    context: str  # kube context that reaches it from here ("" = none given)


@dataclass(frozen=True)
class Access:
    """What the spoke's ServiceAccount may do: ClusterRole rules, the namespaces it may write in (RoleBindings to
    the namespaced role), and why, in one line (the ClusterRole's description)."""

    rules: tuple[dict[str, Any], ...]
    namespaces: tuple[str, ...]
    why: str


# ---------------------------------------------------------------- pure builders


def build_spokes(fleet: FleetAnswers, hub: str, given: Sequence[str]) -> tuple[Spoke, ...]:
    """The spokes `hub` registers, each with its kube context; bad --spoke-context values are refused."""
    wanted: dict[str, str] = {}
    for raw in given:
        name, sep, context = raw.partition("=")
        name, context = name.strip(), context.strip()
        if not sep or not name or not context:
            raise UserError(f"--spoke-context {raw!r} is not NAME=CONTEXT")
        if wanted.get(name, context) != context:
            raise UserError(f"--spoke-context names cluster {name!r} twice with different contexts")
        wanted[name] = context
    hub_spec = fleet.cluster(hub)
    is_hub = "argocd" in fleet.engines and hub_spec.server == IN_CLUSTER
    candidates = [c for c in fleet.clusters if c.name != hub and c.server != IN_CLUSTER] if is_hub else []
    names = {c.name for c in candidates}
    for name in wanted:
        if name not in names:
            spokes = ", ".join(sorted(names)) or "none"
            raise UserError(f"--spoke-context {name}=...: {name!r} is not a spoke of the Argo CD hub {hub} "
                            f"(its spokes: {spokes})")
    return tuple(Spoke(c.name, c.server, wanted.get(c.name) or c.context) for c in candidates)


def _destination_matches(dest: Mapping[str, Any], spoke: Spoke) -> bool:
    """Argo CD matches a destination's server or name as a glob; a `!` pattern denies and grants nothing."""
    server, name = str(dest.get("server") or ""), str(dest.get("name") or "")
    if server:
        return not server.startswith("!") and fnmatch.fnmatchcase(spoke.server, server)
    return bool(name) and not name.startswith("!") and fnmatch.fnmatchcase(spoke.name, name)


def _plural(kind: str) -> str:
    """The resource of a kind as the API server guesses it (RBAC rules name resources, AppProjects kinds)."""
    low = kind.lower()
    if low.endswith(("s", "x", "z", "ch", "sh")):
        return low + "es"
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


def _is_pattern(namespace: str) -> bool:
    return not namespace or any(ch in namespace for ch in "*?[!")


def build_access(projects: Iterable[Mapping[str, Any]], spoke: Spoke) -> Access:
    """The narrowest RBAC that lets Argo CD do on `spoke` what the AppProjects allow there.

    Argo CD's controller watches every kind of a cluster it manages (its cluster cache): read access is
    cluster-wide. Writes: the cluster-scoped kinds the projects whitelist, and every namespaced kind in the
    destination namespaces (RoleBindings). A namespace pattern (payments-*) names namespaces that do not exist yet,
    which no RoleBinding can: then namespaced writes are cluster-wide. A project that whitelists every
    cluster-scoped kind (the fleet's infrastructure project: its charts install CRDs, webhooks and ClusterRoles, and
    the API server lets a subject create a ClusterRole only with what it holds itself) needs full access."""
    read = {"apiGroups": ["*"], "resources": ["*"], "verbs": list(READ_VERBS)}
    used = []
    for p in projects:
        dests = [d for d in ((p.get("spec") or {}).get("destinations") or []) if isinstance(d, Mapping)
                 and _destination_matches(d, spoke)]
        if dests:
            used.append((str((p.get("metadata") or {}).get("name")), p, dests))
    if not used:
        return Access((read,), (), "no AppProject deploys to this cluster: read-only (Argo CD's cluster cache)")
    kinds: set[tuple[str, str]] = set()
    for name, p, _ in used:
        for item in (p.get("spec") or {}).get("clusterResourceWhitelist") or []:
            group, kind = str(item.get("group", "")), str(item.get("kind", ""))
            if group == "*" and kind == "*":
                return Access(({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},), (),
                              f"AppProject {name} may create every cluster-scoped kind here (CRDs, webhooks, "
                              "ClusterRoles of the controllers it installs): full access")
            kinds.add((group, kind))
    rules: list[dict[str, Any]] = [read]
    for group, kind in sorted(kinds):
        rules.append({"apiGroups": [group], "resources": ["*" if kind == "*" else _plural(kind)],
                      "verbs": list(WRITE_VERBS)})
    namespaces = sorted({str(d.get("namespace") or "") for _, _, dests in used for d in dests})
    patterns = [n or "(any)" for n in namespaces if _is_pattern(n)]
    cluster_kinds = ", ".join(k for _, k in sorted(kinds)) or "none"
    if patterns:
        rules.append({"apiGroups": ["*"], "resources": ["*"], "verbs": list(WRITE_VERBS)})
        return Access(tuple(rules), (), f"destination namespace pattern {patterns[0]} cannot be bound per "
                                        "namespace: writes cluster-wide")
    return Access(tuple(rules), tuple(namespaces),
                  f"writes only in {', '.join(namespaces)} and to cluster-scoped {cluster_kinds}")


def build_spoke_objects(access: Access) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding; with namespace-bound writes, also each destination
    Namespace and a RoleBinding there to the namespaced role."""
    labels = dict(MANAGED_BY)
    subject = [{"kind": "ServiceAccount", "name": MANAGER, "namespace": SPOKE_NS}]
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": MANAGER, "namespace": SPOKE_NS, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": MANAGER, "labels": labels, "annotations": {DESCRIPTION: access.why}},
         "rules": [dict(r) for r in access.rules]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": MANAGER, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": MANAGER},
         "subjects": subject},
    ]
    if access.namespaces:
        objs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": {"name": NAMESPACED_ROLE, "labels": labels,
                                  "annotations": {DESCRIPTION: "bound per destination namespace by RoleBindings"}},
                     "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": list(WRITE_VERBS)}]})
        for ns in access.namespaces:
            objs.append(build_namespace(ns))
            objs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": MANAGER, "namespace": ns, "labels": labels},
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                     "name": NAMESPACED_ROLE},
                         "subjects": subject})
    return objs


def build_token_secret(name: str) -> dict[str, Any]:
    """A long-lived token Secret of the manager ServiceAccount (the spoke's token controller fills it)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
            "metadata": {"name": name, "namespace": SPOKE_NS, "labels": {**MANAGED_BY, **COMPONENT},
                         "annotations": {SA_NAME_ANNOTATION: MANAGER}}}


def build_cluster_secret(spoke: Spoke, token: str, ca_data: str) -> dict[str, Any]:
    """The hub's cluster Secret: how Argo CD reaches `spoke` (server as the Applications name it)."""
    tls: dict[str, Any] = {"insecure": False}
    if ca_data:
        tls["caData"] = ca_data  # base64 PEM, as the token Secret's ca.crt and kubeconfig hold it
    config = json.dumps({"bearerToken": token, "tlsClientConfig": tls}, sort_keys=True)
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": f"cluster-{spoke.name}", "namespace": ARGOCD_NS,
                         "labels": {**CLUSTER_SECRET_LABEL, **MANAGED_BY}},
            "data": {k: base64.b64encode(v.encode()).decode()
                     for k, v in (("name", spoke.name), ("server", spoke.server), ("config", config))}}


def is_manager_token(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    return (obj.get("type") == TOKEN_TYPE and (meta.get("annotations") or {}).get(SA_NAME_ANNOTATION) == MANAGER
            and (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGED_BY[
                "app.kubernetes.io/managed-by"])


def token_filled(obj: Mapping[str, Any]) -> str | None:
    """None once the token controller wrote the token, else why not (a wait.Check)."""
    return None if (obj.get("data") or {}).get("token") else "the spoke's token controller has not filled it yet"


# ---------------------------------------------------------------- reading the repo


def read_projects(root: Path, hub: str) -> list[dict[str, Any]]:
    """The AppProjects the hub's root Application applies (its source path, inside the repo only)."""
    root = root.resolve()
    path = "argocd"
    for doc in _yaml_docs(root / sync_path(hub, "argocd")):
        if doc.get("kind") == "Application":
            path = str(((doc.get("spec") or {}).get("source") or {}).get("path") or path)
    base = (root / path).resolve()
    if not base.is_relative_to(root) or not base.is_dir():
        return []
    out: list[dict[str, Any]] = []
    for file in sorted(base.rglob("*.y*ml")):
        if file.resolve().is_relative_to(root):
            out.extend(d for d in _yaml_docs(file) if d.get("kind") == "AppProject")
    return out


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {path.name} for the hub's AppProjects: {type(exc).__name__}") from exc


# ---------------------------------------------------------------- the steps


@dataclass
class SpokeRegistrar:
    """Preflight and registration of a hub's spokes; `check` before any write, `ensure` once Argo CD runs."""

    spokes: tuple[Spoke, ...]
    root: Path
    hub: str
    kubeconfig: Path | None
    connector: Connector
    dry_run: bool = False
    rotate_keys: bool = False
    timeout: float = 300.0
    interval: float = 2.0
    journal: DryRunJournal = field(default_factory=DryRunJournal)
    clients: dict[str, KubeClient] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def connect(self, spoke: Spoke) -> KubeClient:
        """The spoke's client; for a dry run the recording one (offline when the spoke does not answer)."""
        if not self.dry_run:
            return self.connector(self.kubeconfig, spoke.context)
        inner: KubeClient | None
        try:
            inner = self.connector(self.kubeconfig, spoke.context)
            inner.version()
        except ClusterError as exc:
            inner = None
            self.notes.append(f"spoke {spoke.name} not reachable ({exc}): its objects are not compared")
        return RecordingClient(inner, self.journal)

    def check(self) -> list[Problem]:
        """Every spoke has a context that answers and lets bootstrap create what registration needs."""
        problems: list[Problem] = []
        for spoke in self.spokes:
            if not spoke.context:
                problems.append((f"spoke {spoke.name} ({spoke.server}) has no kube context",
                                 f"pass --spoke-context {spoke.name}=CONTEXT (or set the cluster's `context` "
                                 "answer): the hub registers every spoke"))
                continue
            try:
                kube = self.connect(spoke)
                kube.version()
                for verb, group, resource, ns in SPOKE_ACCESS:
                    if not kube.can_i(verb, group, resource, ns):
                        problems.append((f"spoke {spoke.name}: not allowed to {verb} "
                                         f"{resource}{'.' + group if group else ''}{' in ' + ns if ns else ''}",
                                         f"use a cluster-admin context for spoke {spoke.name}"))
            except FleetstrapError as exc:
                problems.append((f"spoke {spoke.name} (context {spoke.context}): {exc}",
                                 "check --spoke-context/--kubeconfig and that the spoke is up"))
                continue
            self.clients[spoke.name] = kube
        return problems

    def ensure(self, hub: KubeClient) -> list[Record]:
        """Register every spoke on `hub` (idempotent); what changed, in flow.Change's terms."""
        records: list[Record] = []
        if not self.spokes:
            return records
        projects = read_projects(self.root, self.hub)
        for spoke in self.spokes:
            access = build_access(projects, spoke)
            records.extend(self.ensure_spoke(hub, spoke, access))
            done = "would be registered" if self.dry_run else "registered"
            self.notes.append(f"spoke {spoke.name} {done} ({spoke.server}): ServiceAccount "
                              f"{SPOKE_NS}/{MANAGER}, {access.why}")
        return records

    def ensure_spoke(self, hub: KubeClient, spoke: Spoke, access: Access) -> list[Record]:
        kube = self.clients.get(spoke.name) or self.connect(spoke)
        records: list[Record] = []
        for obj in build_spoke_objects(access):
            applied = kube.apply(obj, default_namespace=SPOKE_NS)
            records.append(("apply", f"{spoke.name}: {applied.ref}", applied.outcome))
        existing = sorted((s for s in kube.list("v1", "Secret", SPOKE_NS) if is_manager_token(s)),
                          key=lambda s: str(s["metadata"].get("creationTimestamp") or ""))
        if existing and not self.rotate_keys:
            current = existing[-1]
            old: list[dict[str, Any]] = existing[:-1]  # leftovers of an interrupted rotation
            records.append(("secret", f"{spoke.name}: Secret {SPOKE_NS}/{current['metadata']['name']}", "kept"))
        else:
            name = f"{MANAGER}-token-{secrets.token_hex(3)}"
            applied = kube.apply(build_token_secret(name), default_namespace=SPOKE_NS)
            records.append(("apply", f"{spoke.name}: {applied.ref}", applied.outcome))
            current, old = build_token_secret(name), existing
        token, ca_data = self.read_token(kube, spoke, str(current["metadata"]["name"]))
        applied = hub.apply(build_cluster_secret(spoke, token, ca_data), default_namespace=ARGOCD_NS)
        records.append(("apply", applied.ref, applied.outcome))
        for stale in old:  # only once the hub holds the new token
            ref = f"{spoke.name}: Secret {SPOKE_NS}/{stale['metadata']['name']}"
            if kube.delete("v1", "Secret", str(stale["metadata"]["name"]), SPOKE_NS):
                records.append(("delete", ref, "would delete" if self.dry_run else "deleted"))
        return records

    def read_token(self, kube: KubeClient, spoke: Spoke, name: str) -> tuple[str, str]:
        """(token, base64 CA) from the filled token Secret; a dry run that created none shows a placeholder."""
        if self.dry_run:
            live = kube.get("v1", "Secret", name, SPOKE_NS)
            if live is None or token_filled(live) is not None:
                return "<token of a new Secret>", ""
        else:
            Waiter(kube, timeout=self.timeout, interval=self.interval).wait(
                [Target("v1", "Secret", name, SPOKE_NS, token_filled)], f"the token of spoke {spoke.name}")
            live = kube.get("v1", "Secret", name, SPOKE_NS)
            if live is None:
                raise ClusterError(f"spoke {spoke.name}: Secret {SPOKE_NS}/{name} disappeared")
        data = live.get("data") or {}
        try:
            token = base64.b64decode(str(data.get("token") or "")).decode()
        except ValueError as exc:
            raise ClusterError(f"spoke {spoke.name}: Secret {SPOKE_NS}/{name} holds no readable token") from exc
        register_secret(token)
        return token, str(data.get("ca.crt") or "")
