"""An in-process Kubernetes API double, served over HTTP to the real `kubernetes` client.

kmock 0.8 was evaluated: its PATCH only updates existing objects (no server-side apply create, no fieldManager),
and it has no SelfSubjectAccessReview, so this small threaded server implements just what bootstrap uses:
discovery, /version, get/list, delete, server-side apply (PATCH application/apply-patch+yaml with fieldManager; field
ownership per manager, so an apply removes what the same manager applied before and no longer sends),
schema checks that answer 422 (the Application CRD's required fields),
SelfSubjectAccessReview, CRDs that extend discovery, and "controllers" that flip objects to Ready.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml


@dataclass(frozen=True)
class Res:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ("get", "list", "create", "patch", "update", "delete")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


BUILTIN = (
    Res("", "v1", "namespaces", "Namespace", False),
    Res("", "v1", "secrets", "Secret", True),
    Res("", "v1", "configmaps", "ConfigMap", True),
    Res("", "v1", "serviceaccounts", "ServiceAccount", True),
    Res("", "v1", "services", "Service", True),
    Res("", "v1", "resourcequotas", "ResourceQuota", True),
    Res("apps", "v1", "deployments", "Deployment", True),
    Res("apps", "v1", "statefulsets", "StatefulSet", True),
    Res("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Res("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Res("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Res("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    Res("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    Res("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False),
    Res("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, ("create",)),
)

Key = tuple[str, str, str, str]  # group, plural, namespace, name
Controller = Callable[[dict[str, Any]], None]


@dataclass
class KubeDouble:
    """State and knobs. `controllers[kind]` mutate an object's status each time it is read."""

    version: tuple[str, str] = ("1", "35")
    denied: set[tuple[str, str, str]] = field(default_factory=set)  # (verb, group, resource)
    controllers: dict[str, Controller] = field(default_factory=dict)
    # Schema checks per kind after the apply merge: a message is the API server's 422 Invalid.
    validators: dict[str, Callable[[dict[str, Any]], str | None]] = field(
        default_factory=lambda: {"Application": application_invalid})
    resources: list[Res] = field(default_factory=lambda: list(BUILTIN))
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    port: int = 0
    _rv: int = 100
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ------------------------------------------------------------ state helpers for tests
    def find(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self._lock:
            for (_g, _p, ns, n), obj in self.objects.items():
                if obj.get("kind") == kind and n == name and ns == namespace:
                    return copy.deepcopy(obj)
        return None

    def writes(self) -> list[tuple[str, str, dict[str, list[str]]]]:
        return [r for r in self.requests if r[0] in {"PATCH", "POST", "PUT", "DELETE"}
                and "selfsubjectaccessreviews" not in r[1]]

    def kubeconfig(self, path: Path, context: str = "double") -> Path:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "tester", "user": {"token": "double-token"}}],
            "contexts": [{"name": context, "context": {"cluster": "double", "user": "tester"}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        return path

    # ------------------------------------------------------------ internals
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _res(self, group: str, version: str, plural: str) -> Res | None:
        for r in self.resources:
            if (r.group, r.version, r.plural) == (group, version, plural):
                return r
        return None

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for v in spec.get("versions") or []:
            if not v.get("served", True):
                continue
            res = Res(spec["group"], v["name"], names["plural"], names["kind"], spec.get("scope") == "Namespaced")
            if res not in self.resources:
                self.resources.append(res)
        crd["status"] = {"conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}


Path_ = tuple[str, ...]


def _leaves(value: Any, prefix: Path_ = ()) -> dict[Path_, Any]:
    """The fields an applied object sets, as paths to leaves. Maps are walked; a list is one atomic field (the
    double's simplification: the API server merges lists with merge keys field by field)."""
    if isinstance(value, dict) and value:
        out: dict[Path_, Any] = {}
        for key, sub in value.items():
            out.update(_leaves(sub, (*prefix, str(key))))
        return out
    return {prefix: value}


def _applied_fields(applied: dict[str, Any]) -> dict[Path_, Any]:
    """What an apply configures: everything but identity and status; of metadata, labels and annotations."""
    fields: dict[Path_, Any] = {}
    for key, value in applied.items():
        if key not in {"apiVersion", "kind", "metadata", "status"}:
            fields.update(_leaves(value, (key,)))
    meta = applied.get("metadata") or {}
    for sub in ("labels", "annotations"):
        for name, value in (meta.get(sub) or {}).items():
            fields[("metadata", sub, str(name))] = value
    return fields


def _to_fields_v1(paths: set[Path_]) -> dict[str, Any]:
    """Paths in the managedFields FieldsV1 shape ({"f:spec": {"f:project": {}}})."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def _from_fields_v1(tree: dict[str, Any], prefix: Path_ = ()) -> set[Path_]:
    if not tree:
        return {prefix} if prefix else set()
    out: set[Path_] = set()
    for key, sub in tree.items():
        out |= _from_fields_v1(sub, (*prefix, key.removeprefix("f:")))
    return out


def _remove(obj: dict[str, Any], path: Path_) -> None:
    """Remove one field and the maps it leaves empty."""
    parents = [obj]
    for part in path[:-1]:
        child = parents[-1].get(part)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth]:
            break
        parents[depth - 1].pop(path[depth - 1], None)


def _set(obj: dict[str, Any], path: Path_, value: Any) -> None:
    node = obj
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = copy.deepcopy(value)


def _merge_applied(old: dict[str, Any], applied: dict[str, Any], manager: str) -> dict[str, Any]:
    """Server-side apply with field ownership per manager, as the API server does it (lists atomic): an apply is
    the manager's whole intent. It sets the fields it sends and takes them from other managers (force), and
    removes the fields it applied before and no longer sends, unless another manager owns them too."""
    new = copy.deepcopy(old)
    meta = new.setdefault("metadata", {})
    sent = _applied_fields(applied)
    entries = [dict(m) for m in meta.get("managedFields") or []]
    before: set[Path_] = set()
    others: set[Path_] = set()
    for entry in entries:
        owned = _from_fields_v1(entry.get("fieldsV1") or {})
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            before = owned
        else:
            owned -= sent.keys()  # forced: the applier takes them over
            entry["fieldsV1"] = _to_fields_v1(owned)
            others |= owned
    for path in before - sent.keys():
        if not any(other[:len(path)] == path for other in others):
            _remove(new, path)
    for path, value in sent.items():
        _set(new, path, value)
    mine = {"manager": manager, "operation": "Apply", "apiVersion": applied.get("apiVersion"),
            "fieldsType": "FieldsV1", "fieldsV1": _to_fields_v1(set(sent))}
    at = next((i for i, e in enumerate(entries) if e.get("manager") == manager and e.get("operation") == "Apply"),
              len(entries))
    entries[at:at + 1] = [mine]
    meta["managedFields"] = [e for e in entries if e is mine or e.get("fieldsV1")]
    return new


def application_invalid(obj: dict[str, Any]) -> str | None:
    """The Application CRD's required fields (argoproj.io/v1alpha1 schema): the API server's 422 message."""
    spec = obj.get("spec") or {}
    missing = [f"spec.{f}" for f in ("destination", "project") if f not in spec]
    if "sources" not in spec and "repoURL" not in (spec.get("source") or {}):
        missing.insert(0, "spec.source.repoURL")
    name = obj["metadata"]["name"]
    return (f'Application.argoproj.io "{name}" is invalid: '
            + ", ".join(f"{f}: Required value" for f in missing)) if missing else None


class _Handler(BaseHTTPRequestHandler):
    double: KubeDouble

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002  # keep test output clean
        return

    def _send(self, code: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return yaml.safe_load(raw) if raw else None

    def _route(self, method: str) -> None:
        d = self.double
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        with d._lock:
            d.requests.append((method, parts.path, query))
        if self.headers.get("Authorization") != "Bearer double-token":
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        segs = [s for s in parts.path.split("/") if s]
        try:
            code, body = self._dispatch(method, segs, query)
        except Exception as exc:  # a bug in the double should fail loudly in the test
            code, body = 500, _status(500, "InternalError", repr(exc))
        self._send(code, body)

    def do_GET(self) -> None:
        self._route("GET")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _dispatch(self, method: str, segs: list[str], query: dict[str, list[str]]) -> tuple[int, Any]:
        d = self.double
        if segs == ["version"]:
            major, minor = d.version
            return 200, {"major": major, "minor": minor, "gitVersion": f"v{major}.{minor}.0",
                         "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                         "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}
        if segs == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if segs == ["apis"]:
            return 200, self._groups()
        if segs[:1] == ["api"]:
            group, rest = "", segs[1:]
        elif segs[:1] == ["apis"] and len(segs) >= 3:
            group, rest = segs[1], segs[2:]
        else:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        version, rest = rest[0], rest[1:]
        if not rest:
            return 200, self._resource_list(group, version)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name = rest[0], (rest[1] if len(rest) > 1 else "")
        res = d._res(group, version, plural)
        if res is None:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        if res.plural == "selfsubjectaccessreviews" and method == "POST":
            return 201, self._review(self._body())
        if method == "GET":
            return self._get(res, namespace, name)
        if name and method in {"PATCH", "DELETE"}:
            return self._apply(res, namespace, name, query) if method == "PATCH" else self._delete(res, namespace, name)
        return 405, _status(405, "MethodNotAllowed", f"{method} is not served by this double")

    def _delete(self, res: Res, namespace: str, name: str) -> tuple[int, Any]:
        d = self.double
        with d._lock:
            gone = d.objects.pop((res.group, res.plural, namespace, name), None)
        if gone is None:
            return 404, _status(404, "NotFound", f'{res.plural} "{name}" not found')
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def _groups(self) -> dict[str, Any]:
        groups: dict[str, list[str]] = {}
        for r in self.double.resources:
            if r.group:
                versions = groups.setdefault(r.group, [])
                if r.version not in versions:
                    versions.append(r.version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                for g, vs in groups.items()
            ],
        }

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        items = []
        for r in self.double.resources:
            if (r.group, r.version) == (group, version):
                items.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": list(r.verbs)})
                if r.plural != "selfsubjectaccessreviews":
                    items.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                                  "kind": r.kind, "verbs": ["get", "patch", "update"]})
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}

    def _review(self, body: dict[str, Any]) -> dict[str, Any]:
        attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
        denied = (attrs.get("verb", ""), attrs.get("group", ""), attrs.get("resource", "")) in self.double.denied
        out = copy.deepcopy(body)
        out["status"] = {"allowed": not denied, **({"reason": "denied by test RBAC"} if denied else {})}
        return out

    def _get(self, res: Res, namespace: str, name: str) -> tuple[int, Any]:
        d = self.double
        with d._lock:
            if name:
                obj = d.objects.get((res.group, res.plural, namespace, name))
                if obj is None:
                    return 404, _status(404, "NotFound", f'{res.plural} "{name}" not found')
                self._reconcile(obj)
                return 200, copy.deepcopy(obj)
            items = []
            for (g, p, ns, _n), obj in sorted(d.objects.items()):
                if (g, p) == (res.group, res.plural) and (not namespace or ns == namespace):
                    self._reconcile(obj)
                    items.append(copy.deepcopy(obj))
            return 200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                         "metadata": {"resourceVersion": str(d._rv)}, "items": items}

    def _reconcile(self, obj: dict[str, Any]) -> None:
        controller = self.double.controllers.get(str(obj.get("kind")))
        if controller is not None:
            before = copy.deepcopy(obj.get("status"))
            controller(obj)
            if obj.get("status") != before:
                obj["metadata"]["resourceVersion"] = self.double._next_rv()

    def _apply(self, res: Res, namespace: str, name: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        d = self.double
        if self.headers.get("Content-Type") != "application/apply-patch+yaml":
            return 415, _status(415, "UnsupportedMediaType", "only server-side apply is served")
        manager = (query.get("fieldManager") or [""])[0]
        if not manager:
            return 422, _status(422, "Invalid", "fieldManager is required for apply patch")
        body = self._body()
        if not isinstance(body, dict) or body.get("kind") != res.kind:
            return 400, _status(400, "BadRequest", "body kind does not match the resource")
        if (body.get("metadata") or {}).get("name") != name:
            return 400, _status(400, "BadRequest", "the name of the object does not match the URL")
        with d._lock:
            if res.namespaced and ("", "namespaces", "", namespace) not in d.objects:
                return 404, _status(404, "NotFound", f'namespaces "{namespace}" not found')
            key = (res.group, res.plural, namespace, name)
            old = d.objects.get(key)
            base = old or {"apiVersion": body["apiVersion"], "kind": res.kind,
                           "metadata": {"name": name, **({"namespace": namespace} if namespace else {})}}
            new = _merge_applied(base, body, manager)
            validate = d.validators.get(res.kind)
            invalid = validate(new) if validate else None
            if invalid:
                return 422, _status(422, "Invalid", invalid)
            if old is not None and new == old:
                return 200, copy.deepcopy(old)  # no-op apply: no write, same resourceVersion
            meta = new["metadata"]
            if old is None:
                meta["uid"] = f"uid-{d._rv}"
                meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
                meta["generation"] = 1
            elif {k: v for k, v in new.items() if k != "metadata"} != {k: v for k, v in old.items()
                                                                          if k != "metadata"}:
                meta["generation"] = int(meta.get("generation", 1)) + 1
            meta["resourceVersion"] = d._next_rv()
            if res.kind == "CustomResourceDefinition":
                d._register_crd(new)
            d.objects[key] = new
            return (201 if old is None else 200), copy.deepcopy(new)


@contextmanager
def serve(double: KubeDouble) -> Iterator[KubeDouble]:
    handler = type("Handler", (_Handler,), {"double": double})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    double.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------- simulated controllers


def set_condition(obj: dict[str, Any], status: str, reason: str, message: str) -> None:
    st = obj.setdefault("status", {})
    st["observedGeneration"] = obj["metadata"].get("generation", 1)
    st["conditions"] = [{"type": "Ready", "status": status, "reason": reason, "message": message,
                         "lastTransitionTime": "2026-01-01T00:00:00Z"}]


def deployment_ready(obj: dict[str, Any]) -> None:
    replicas = int((obj.get("spec") or {}).get("replicas", 1))
    obj["status"] = {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": replicas,
                     "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas}


def flux_ready(revision_of: Callable[[dict[str, Any]], str], reads_before_ready: int = 1) -> dict[str, Controller]:
    """source- and kustomize-controller: Progressing for a few reads, then Ready at the remote's revision."""
    seen: dict[str, int] = {}

    def step(obj: dict[str, Any]) -> bool:
        key = f"{obj['kind']}/{obj['metadata']['name']}/{obj['metadata'].get('generation')}"
        seen[key] = seen.get(key, 0) + 1
        return seen[key] > reads_before_ready

    def source(obj: dict[str, Any]) -> None:
        if not step(obj):
            set_condition(obj, "Unknown", "Progressing", "building artifact")
            return
        rev = revision_of(obj)
        set_condition(obj, "True", "Succeeded", f"stored artifact for revision '{rev}'")
        obj["status"]["artifact"] = {"revision": rev, "path": "x", "url": "http://source/x",
                                     "lastUpdateTime": "2026-01-01T00:00:00Z"}

    def kustomization(obj: dict[str, Any]) -> None:
        if not step(obj):
            set_condition(obj, "Unknown", "Progressing", "reconciliation in progress")
            return
        rev = revision_of(obj)
        set_condition(obj, "True", "ReconciliationSucceeded", f"Applied revision: {rev}")
        obj["status"]["lastAppliedRevision"] = rev
        obj["status"]["lastAttemptedRevision"] = rev

    return {"GitRepository": source, "Kustomization": kustomization, "Deployment": deployment_ready}


def flux_never_ready() -> dict[str, Controller]:
    def source(obj: dict[str, Any]) -> None:
        set_condition(obj, "False", "GitOperationFailed",
                      "failed to checkout and determine revision: unable to clone: ssh: handshake failed")

    def kustomization(obj: dict[str, Any]) -> None:
        set_condition(obj, "False", "ArtifactFailed", "Source artifact not found, retrying in 30s")

    return {"GitRepository": source, "Kustomization": kustomization, "Deployment": deployment_ready}


def token_controller(double: KubeDouble, ca_pem: str = "-----BEGIN CERTIFICATE-----\nspoke\n") -> Controller:
    """The token controller: fills a kubernetes.io/service-account-token Secret of an existing ServiceAccount with
    a fresh token (unique per Secret), the cluster CA and the namespace."""
    import base64
    import secrets

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    def secret(obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        account = (meta.get("annotations") or {}).get("kubernetes.io/service-account.name")
        if obj.get("type") != "kubernetes.io/service-account-token" or (obj.get("data") or {}).get("token"):
            return
        if ("", "serviceaccounts", meta.get("namespace", ""), account) not in double.objects:
            return
        obj["data"] = {"token": b64(f"eyJhbGciOi.double-{secrets.token_hex(16)}"), "ca.crt": b64(ca_pem),
                       "namespace": b64(meta.get("namespace", ""))}

    return secret


def argocd_ready(sha_of: Callable[[dict[str, Any]], str]) -> dict[str, Controller]:
    def application(obj: dict[str, Any]) -> None:
        obj["status"] = {"sync": {"status": "Synced", "revision": sha_of(obj)},
                         "health": {"status": "Healthy"}}

    def statefulset(obj: dict[str, Any]) -> None:
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        obj["status"] = {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": replicas,
                         "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas}

    return {"Application": application, "Deployment": deployment_ready, "StatefulSet": statefulset}
