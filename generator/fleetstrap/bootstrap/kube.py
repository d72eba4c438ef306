"""The one seam for cluster access: a small protocol and its implementation on the official client.

Tests point a kubeconfig at an in-process API double, so this module is exercised over real HTTP.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from fleetstrap.errors import ClusterError, ToolMissingError
from fleetstrap.redact import redact

FIELD_MANAGER = "fleetstrap"
# Requests (refresh and reconcile annotations) go under their own manager: server-side apply reads an object
# applied by a manager as that manager's whole intent, so a small annotation-only object applied as
# FIELD_MANAGER would remove every spec field bootstrap applied (Argo CD's root Application then fails
# validation: 422, spec.project and spec.destination required).
REQUEST_FIELD_MANAGER = "fleetstrap-refresh"
# The last three only from the dry-run client: it compares against the cluster, or could not.
Outcome = Literal["created", "configured", "unchanged", "would create", "would configure", "not compared"]


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without what changes without its values changing: field ownership, resourceVersion, status."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items()
            if k not in {"managedFields", "resourceVersion"}}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


@dataclass(frozen=True)
class Applied:
    kind: str
    namespace: str
    name: str
    outcome: Outcome

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


class KubeClient(Protocol):
    """What bootstrap needs from a cluster; nothing more."""

    def version(self) -> str:
        """Server version as 'MAJOR.MINOR'."""
        ...

    def apply(self, obj: Mapping[str, Any], *, default_namespace: str = "",
              field_manager: str = FIELD_MANAGER) -> Applied: ...

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None: ...

    def list(self, api_version: str, kind: str, namespace: str = "") -> list[dict[str, Any]]: ...

    def can_i(self, verb: str, group: str, resource: str, namespace: str = "") -> bool: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str = "") -> bool:
        """Delete the object; False when it was not there."""
        ...

    def namespaced(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves the kind per namespace; ClusterError when it does not serve it."""
        ...


class OfficialClient:
    """KubeClient on `kubernetes` (DynamicClient for discovery and server-side apply)."""

    def __init__(self, kubeconfig: Path | None = None, context: str | None = None, timeout: float = 20.0) -> None:
        try:
            from kubernetes import config as kconfig
            from kubernetes.dynamic import DynamicClient
        except ImportError as exc:
            raise ToolMissingError(
                "the Kubernetes Python client is not installed", hint="pip install 'fleetstrap[cluster]'"
            ) from exc
        try:
            api = kconfig.new_client_from_config(
                config_file=str(kubeconfig) if kubeconfig else None, context=context or None
            )
        except Exception as exc:  # config errors come in many types; name the input, not the content
            where = str(kubeconfig) if kubeconfig else "the default kubeconfig"
            raise ClusterError(
                f"cannot load kube context {context or '(current)'} from {where}: {type(exc).__name__}"
            ) from exc
        api.configuration.retries = 1
        self._api = api
        self._timeout = timeout
        # Discovery cache per client: a shared file in /tmp could be stale for another cluster.
        self._cache_dir = tempfile.TemporaryDirectory(prefix="fleetstrap-discovery-")
        self._dynamic_cls = DynamicClient
        self._dyn: Any = None
        self.host = str(api.configuration.host)

    def _client(self) -> Any:
        if self._dyn is None:
            try:
                self._dyn = self._dynamic_cls(self._api, cache_file=str(Path(self._cache_dir.name) / "d.json"))
            except Exception as exc:
                raise ClusterError(f"cluster at {self.host} does not answer: {_why(exc)}") from exc
        return self._dyn

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        dyn = self._client()
        try:
            return dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise ClusterError(f"the cluster does not serve {kind} ({api_version})") from exc

    def namespaced(self, api_version: str, kind: str) -> bool:
        return bool(self._resource(api_version, kind).namespaced)

    def version(self) -> str:
        try:
            from kubernetes.client import VersionApi

            info = VersionApi(self._api).get_code(_request_timeout=self._timeout)
        except Exception as exc:
            raise ClusterError(f"cluster at {self.host} does not answer: {_why(exc)}") from exc
        major = str(info.major or "").rstrip("+")
        minor = str(info.minor or "").rstrip("+")
        return f"{major}.{minor}"

    def apply(self, obj: Mapping[str, Any], *, default_namespace: str = "",
              field_manager: str = FIELD_MANAGER) -> Applied:
        kind = str(obj.get("kind"))
        api_version = str(obj.get("apiVersion"))
        meta = dict(obj.get("metadata") or {})
        name = str(meta.get("name", ""))
        res = self._resource(api_version, kind)
        namespace = ""
        body = dict(obj)
        if res.namespaced:
            namespace = str(meta.get("namespace") or default_namespace)
            if not namespace:
                raise ClusterError(f"{kind} {name} needs a namespace")
            meta["namespace"] = namespace
            body["metadata"] = meta
        before = self.get(api_version, kind, name, namespace)
        try:
            after = res.server_side_apply(
                body=body, name=name, namespace=namespace or None, field_manager=field_manager,
                force_conflicts=True, _request_timeout=self._timeout,
            )
        except Exception as exc:
            raise ClusterError(f"apply {kind} {name} failed: {_why(exc)}") from exc
        after_dict: dict[str, Any] = after.to_dict()
        outcome: Outcome
        if before is None:
            outcome = "created"
        elif before["metadata"].get("resourceVersion") == after_dict["metadata"].get("resourceVersion") \
                or _content(before) == _content(after_dict):
            # The API server skips writes for no-op applies, so an unchanged resourceVersion means unchanged.
            # A write that only moved field ownership is no change either: Flux's kustomize-controller takes
            # sole ownership of what it applies from gotk-components.yaml, and our identical re-apply takes
            # a share back, bumping resourceVersion at every bootstrap with every value the same.
            outcome = "unchanged"
        else:
            outcome = "configured"
        return Applied(kind, namespace, name, outcome)

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self._resource(api_version, kind)
        try:
            got = res.get(name=name, namespace=namespace or None, _request_timeout=self._timeout)
        except NotFoundError:
            return None
        except Exception as exc:
            raise ClusterError(f"get {kind} {name} failed: {_why(exc)}") from exc
        out: dict[str, Any] = got.to_dict()
        return out

    def delete(self, api_version: str, kind: str, name: str, namespace: str = "") -> bool:
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self._resource(api_version, kind)
        try:
            res.delete(name=name, namespace=namespace or None, _request_timeout=self._timeout)
        except NotFoundError:
            return False
        except Exception as exc:
            raise ClusterError(f"delete {kind} {name} failed: {_why(exc)}") from exc
        return True

    def list(self, api_version: str, kind: str, namespace: str = "") -> list[dict[str, Any]]:
        res = self._resource(api_version, kind)
        try:
            got = res.get(namespace=namespace or None, _request_timeout=self._timeout)
        except Exception as exc:
            raise ClusterError(f"list {kind} failed: {_why(exc)}") from exc
        return [dict(i) for i in got.to_dict().get("items") or []]

    def can_i(self, verb: str, group: str, resource: str, namespace: str = "") -> bool:
        res = self._resource("authorization.k8s.io/v1", "SelfSubjectAccessReview")
        attrs: dict[str, str] = {"verb": verb, "group": group, "resource": resource}
        if namespace:
            attrs["namespace"] = namespace
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        try:
            got = res.create(body=body, _request_timeout=self._timeout)
        except Exception as exc:
            raise ClusterError(f"access review failed: {_why(exc)}") from exc
        return bool((got.to_dict().get("status") or {}).get("allowed"))


def _why(exc: BaseException) -> str:
    """One safe line: HTTP status and reason, or the exception type; never a body that may echo input."""
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status:
        # The API server's Status message names the field at fault; keep one redacted line of it.
        message = ""
        try:
            message = str(json.loads(getattr(exc, "body", "") or "{}").get("message") or "")
        except (ValueError, AttributeError):
            message = ""
        line = redact(message.splitlines()[0])[:200] if message else ""
        return f"HTTP {status} {reason or ''}".strip() + (f": {line}" if line else "")
    inner = getattr(exc, "reason", None)
    if inner is not None and not isinstance(inner, str):
        return type(inner).__name__
    return type(exc).__name__


def connect(kubeconfig: Path | None, context: str | None) -> KubeClient:
    return OfficialClient(kubeconfig, context)


@dataclass
class DryRunJournal:
    """What a dry run recorded: the objects it would apply (secrets redacted) and their diffs to the cluster."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    offline: str = ""  # why there is no cluster to compare with ("" when there is one)


class RecordingClient:
    """The dry-run KubeClient: reads go to the cluster when one answers, writes are only recorded.

    Without a cluster it answers as the oldest supported cluster would (so the objects are still schema-checked
    for it) and every object is recorded as "not compared"."""

    def __init__(self, inner: KubeClient | None, journal: DryRunJournal) -> None:
        self.inner = inner
        self.journal = journal

    def version(self) -> str:
        from fleetstrap.pins import pin

        return self.inner.version() if self.inner else pin("kubernetes_min_version")

    def can_i(self, verb: str, group: str, resource: str, namespace: str = "") -> bool:
        return self.inner.can_i(verb, group, resource, namespace) if self.inner else True

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        return self.inner.get(api_version, kind, name, namespace) if self.inner else None

    def list(self, api_version: str, kind: str, namespace: str = "") -> list[dict[str, Any]]:
        return self.inner.list(api_version, kind, namespace) if self.inner else []

    def namespaced(self, api_version: str, kind: str) -> bool:
        return self.inner.namespaced(api_version, kind) if self.inner else True

    def delete(self, api_version: str, kind: str, name: str, namespace: str = "") -> bool:
        """Nothing is deleted; whether there was something to delete."""
        return self.inner.get(api_version, kind, name, namespace) is not None if self.inner else False

    def apply(self, obj: Mapping[str, Any], *, default_namespace: str = "",
              field_manager: str = FIELD_MANAGER) -> Applied:  # noqa: ARG002  # nothing is sent
        from fleetstrap.bootstrap.objects import redacted

        shown = redacted(obj)
        self.journal.objects.append(shown)
        meta = obj.get("metadata") or {}
        kind, api_version, name = str(obj.get("kind")), str(obj.get("apiVersion")), str(meta.get("name", ""))
        if self.inner is None:
            return Applied(kind, str(meta.get("namespace") or ""), name, "not compared")
        try:
            namespace = str(meta.get("namespace") or default_namespace) if self.inner.namespaced(
                api_version, kind) else ""
            live = self.inner.get(api_version, kind, name, namespace)
        except ClusterError:  # the kind is not served yet: its CRD is part of this same install
            namespace, live = str(meta.get("namespace") or default_namespace), None
        if live is None:
            return Applied(kind, namespace, name, "would create")
        diff = build_diff(redacted(_project(live, obj)), shown, f"{kind} {namespace + '/' if namespace else ''}{name}")
        if not diff:
            return Applied(kind, namespace, name, "unchanged")
        self.journal.diffs.append(diff)
        return Applied(kind, namespace, name, "would configure")


def _project(live: Any, wanted: Any) -> Any:
    """The live object cut down to the fields fleetstrap sets (server defaults and status are not changes)."""
    if isinstance(wanted, Mapping) and isinstance(live, Mapping):
        return {k: _project(live[k], v) for k, v in wanted.items() if k in live}
    if isinstance(wanted, list) and isinstance(live, list) and len(wanted) == len(live):
        return [_project(lv, wv) for lv, wv in zip(live, wanted, strict=True)]
    return live


def build_diff(live: Mapping[str, Any], wanted: Mapping[str, Any], ref: str) -> str:
    """A unified diff (YAML) from what the cluster has to what would be applied; "" when they agree."""
    import difflib

    import yaml

    before = yaml.safe_dump(dict(live), sort_keys=True).splitlines(keepends=True)
    after = yaml.safe_dump(dict(wanted), sort_keys=True).splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, f"{ref} (cluster)", f"{ref} (fleetstrap)"))
