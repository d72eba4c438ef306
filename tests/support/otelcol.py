"""The real OpenTelemetry Collector in tests.

- `otelcol_binary()`: the collector built by scripts/build_otelcol.py (the Collector Builder, pinned version, the
  components of scripts/otelcol-components.yaml), cached under the user cache dir; skips without go (fails in CI).
- `rendered_collector_configs()`: every collector config the templates emit, for every blueprint and every
  collector-affecting answer, with the environment the pod gives the collector.
- `validate_config()`: the collector's own `validate --config`.
- `running_collector()`: a collector process on a config, its listening endpoints moved to free loopback ports;
  stopped (and its pid forgotten) on exit, even when the test fails.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import importlib.util
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from support.tools import missing, stop_process

REPO = Path(__file__).resolve().parents[2]
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")

# What the Downward API gives a pod, for env entries taken from fieldRef (values are representative).
FIELD_REF_VALUES = {
    "metadata.name": "gateway-collector-7d9c5b8f6-x2x4z",
    "metadata.namespace": "observability",
    "metadata.uid": "3f6a8c52-2b1e-4c11-9d53-2f1c7c1b9a10",
    "spec.nodeName": "node-1",
    "status.podIP": "10.244.0.12",
    "status.hostIP": "10.0.0.4",
}


@cache
def build_script() -> ModuleType:
    """scripts/build_otelcol.py as a module (the one place the build logic lives)."""
    path = REPO / "scripts" / "build_otelcol.py"
    spec = importlib.util.spec_from_file_location("build_otelcol", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def otelcol_binary() -> Path:
    """The collector binary: cached, else built now (minutes); without go (or the proxy) the test skips with
    the reason, and fails in CI."""
    script = build_script()
    try:
        binary: Path = script.ensure_otelcol()
    except script.BuildError as exc:
        missing(f"the OpenTelemetry Collector could not be built: {exc}")
        raise AssertionError("unreachable") from exc
    return binary


def built_components(binary: Path) -> dict[str, set[str]]:
    """`<binary> components`: the canonical component type names compiled in, per kind. Deprecated aliases
    (`otlp`, `k8sattributes`, `spanmetrics` in 0.159) still load but are not listed, and `validate` accepts
    them silently: comparing a config's types with this list is what catches them."""
    proc = subprocess.run([str(binary), "components"], capture_output=True, text=True, check=True, timeout=60)
    data = yaml.safe_load(proc.stdout) or {}
    return {kind: {str(item["name"]) for item in data.get(kind) or []} for kind in KINDS}


# ---------------------------------------------------------------- configs the templates emit


def components_of(config: Mapping[str, Any]) -> dict[str, set[str]]:
    """Component types (the part before "/name") defined in each section of a collector config."""
    return {kind: {str(cid).split("/", 1)[0] for cid in (config.get(kind) or {})} for kind in KINDS}


def env_references(config: Any) -> set[str]:
    """Names of the environment variables a config reads (${env:NAME} and ${env:NAME:-default})."""
    return set(ENV_REF.findall(yaml.safe_dump(config)))


def pod_env(env: Any) -> dict[str, str]:
    """A container's `env` list as the pod sees it: plain values, Downward API fields resolved."""
    out: dict[str, str] = {}
    for item in env or []:
        if "value" in item:
            out[item["name"]] = str(item["value"])
        elif field_path := ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"):
            out[item["name"]] = FIELD_REF_VALUES.get(field_path, f"<{field_path}>")
        else:  # secretKeyRef/configMapKeyRef: set in the cluster, a placeholder here
            out[item["name"]] = "placeholder"
    return out


@dataclass(frozen=True)
class FoundConfig:
    label: str  # variant: file: object
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)  # what the pod's environment gives the collector


def configs_in_objects(objects: list[tuple[str, dict[str, Any]]], variant: str) -> list[FoundConfig]:
    """Collector configs in rendered objects: OpenTelemetryCollector spec.config (map or YAML string) and
    ConfigMaps mounted by a collector container, each with that container's environment."""
    from fleetstrap.validate.check_otel import collector_configs

    container_env: dict[str, dict[str, str]] = {}  # ConfigMap name -> env of the container mounting it
    for _, obj in objects:
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        volumes = {v["name"]: (v.get("configMap") or {}).get("name") for v in pod.get("volumes") or []}
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            for mount in container.get("volumeMounts") or []:
                if volumes.get(mount["name"]):
                    container_env[volumes[mount["name"]]] = pod_env(container.get("env"))
    found = []
    for file, obj in objects:
        for path, config in collector_configs(obj):
            name = f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')}"
            if obj.get("kind") == "OpenTelemetryCollector":
                env = pod_env((obj.get("spec") or {}).get("env"))
            else:
                env = container_env.get(str((obj.get("metadata") or {}).get("name")), {})
            found.append(FoundConfig(f"{variant}: {file}: {name} {'.'.join(map(str, path))}", config, env))
    return found


# Every answer that changes a collector config, on top of a blueprint (the starter unless named).
FLEET_VARIANTS: dict[str, dict[str, Any]] = {
    **{f"{backend}-monitoring-{'on' if monitoring else 'off'}": {"telemetry_backend": backend,
                                                                   "monitoring": monitoring}
       for backend in ("jaeger", "tempo", "otlp") for monitoring in (False, True)},
    "sidecar": {"collector_mode": "sidecar"},
    "sidecar-monitoring": {"collector_mode": "sidecar", "monitoring": True, "telemetry_backend": "otlp"},
    # span_metrics labelled by workload for Flagger's canary analysis.
    "flagger": {"monitoring": True, "progressive_delivery": "flagger"},
}
# Chart values that change the sidecar's config, on top of each environment's values file.
CHART_TOGGLES: dict[str, dict[str, Any]] = {
    "sidecar": {"otel": {"sidecar": {"enabled": True}}},
    "sidecar-servicemonitor": {"otel": {"sidecar": {"enabled": True}}, "serviceMonitor": {"enabled": True}},
}


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def fleet_configs(root: Path, variant: str) -> list[FoundConfig]:
    """Collector configs of a rendered fleet: its manifests, and each chart rendered with its values files."""
    objects: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(root.rglob("*.y*ml")):
        rel = path.relative_to(root).as_posix()
        if ".git" in path.parts or "/templates/" in f"/{rel}" or path.parent.name == ".github":
            continue
        with contextlib.suppress(yaml.YAMLError, UnicodeDecodeError):
            objects += [(rel, d) for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    found = configs_in_objects(objects, variant)
    for chart in sorted(p.parent for p in root.rglob("Chart.yaml")):
        found += chart_configs(chart, root, variant)
    return found


def chart_configs(chart: Path, root: Path, variant: str) -> list[FoundConfig]:
    """The chart's collector configs: defaults, each values file the fleet gives it, and the CHART_TOGGLES."""
    from support_service import render_chart

    name = chart.name
    value_sets: dict[str, dict[str, Any]] = {"defaults": {}}
    for values in sorted(root.glob(f"apps/*/{name}/values.yaml")):
        value_sets[values.relative_to(root).as_posix()] = yaml.safe_load(values.read_text(encoding="utf-8")) or {}
    for label, toggle in CHART_TOGGLES.items():
        value_sets[f"defaults+{label}"] = dict(toggle)
    found = []
    for label, values in value_sets.items():
        objects = render_chart(chart, values)
        found += configs_in_objects(objects, f"{variant} chart {name} values {label}")
    return found


def rendered_collector_configs() -> list[FoundConfig]:
    """Every collector config the templates emit: each blueprint, then each collector-affecting answer."""
    from fleetstrap.blueprints import list_blueprints
    from support.fleet import render_blueprint

    found: list[FoundConfig] = []
    for blueprint in list_blueprints():
        found += fleet_configs(render_blueprint(blueprint.name).root, f"blueprint {blueprint.name}")
    for variant, overrides in FLEET_VARIANTS.items():
        found += fleet_configs(render_blueprint("starter", **overrides).root, f"starter+{variant}")
    return found


STANDIN_POD = {"k8s.namespace.name": "checkout", "k8s.pod.name": "checkout-5d8f7c9b4-abcde",
               "k8s.pod.uid": "0b7a2c1e-7c5d-4f8e-9a61-2d3c4b5a6f70", "k8s.deployment.name": "checkout",
               "k8s.node.name": "node-1"}


def gateway_config(root: Path) -> dict[str, Any]:
    """The gateway's config (OpenTelemetryCollector observability/gateway) of a rendered fleet, as a copy."""
    path = root / "infrastructure" / "configs" / "otel-gateway.yaml"
    objects = [(path.name, d) for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    found = configs_in_objects(objects, path.name)
    assert len(found) == 1, f"{path}: expected one collector config, found {len(found)}"
    return copy.deepcopy(found[0].config)


def standin_gateway(config: Mapping[str, Any], backend_url: str,
                    pod: Mapping[str, str] = STANDIN_POD) -> dict[str, Any]:
    """The generated gateway config made runnable outside a cluster, for tests only:
    - k8s_attributes needs the Kubernetes API; a `resource` processor upserts the attributes it would extract
      for the sending pod (its `extract.metadata` keys, values from `pod`) at the same place in the pipelines;
    - the backend exporter points at `backend_url`, a test OTLP/gRPC receiver on loopback (plain text).
    Everything else (receivers, memory_limiter, the fleet's resource attributes, batch, connectors) is kept."""
    out: dict[str, Any] = copy.deepcopy(dict(config))
    extract = out["processors"].pop("k8s_attributes")["extract"]["metadata"]
    values = {**STANDIN_POD, **pod}
    out["processors"]["resource/k8sattributes-standin"] = {
        "attributes": [{"key": key, "value": values[key], "action": "upsert"} for key in extract]}
    for pipeline in out["service"]["pipelines"].values():
        pipeline["processors"] = ["resource/k8sattributes-standin" if p == "k8s_attributes" else p
                                  for p in pipeline["processors"]]
    exporter = out["exporters"]["otlp_grpc/backend"]
    exporter["endpoint"] = backend_url.removeprefix("http://")
    exporter["tls"] = {"insecure": True}
    return out


# ---------------------------------------------------------------- the collector's own validate


def collector_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for the collector: PATH/HOME only, plus what the pod would set."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "TMPDIR", "LANG"}}
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Validation:
    returncode: int
    output: str  # stdout + stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def warnings(self) -> list[str]:
        """Log lines at warn level or above (deprecated names, unset variables, ...)."""
        return [line for line in self.output.splitlines() if re.search(r"\b(warn|WARN|error|ERROR)\b", line)]


def validate_config(binary: Path, config: Mapping[str, Any] | str, env: Mapping[str, str] | None = None) -> Validation:
    """Run `<binary> validate --config=<file>` on a config (mapping or YAML text)."""
    text = config if isinstance(config, str) else yaml.safe_dump(dict(config), sort_keys=False)
    with tempfile.TemporaryDirectory(prefix="otelcol-validate-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        proc = subprocess.run([str(binary), "validate", f"--config=file:{path}"], capture_output=True, text=True,
                              check=False, timeout=120, env=collector_env(env))
    return Validation(proc.returncode, (proc.stdout + proc.stderr).strip())


# ---------------------------------------------------------------- a running collector


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PIDS: set[int] = set()


def _kill_leftovers() -> None:
    for pid in list(_PIDS):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


atexit.register(_kill_leftovers)


@dataclass
class RunningCollector:
    process: subprocess.Popen[bytes]
    config: dict[str, Any]
    ports: dict[str, int]  # "receivers.otlp.grpc", "extensions.health_check", "telemetry", ...
    log: Path
    captured: str | None = None  # the whole log, kept when the collector stops (its directory is removed)

    def output(self) -> str:
        if self.captured is not None:
            return self.captured
        return self.log.read_text(encoding="utf-8", errors="replace")

    def endpoint(self, key: str) -> str:
        return f"127.0.0.1:{self.ports[key]}"


def bind_loopback(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """A copy of `config` whose listening endpoints (receivers, extensions, the prometheus exporter and the
    collector's own metrics) are free loopback ports; returns it with the port of each."""
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(dict(config)))
    ports: dict[str, int] = {}

    def rebind(node: Any, key: str) -> None:
        if not isinstance(node, dict):
            return
        for k, v in node.items():
            if k == "endpoint" and isinstance(v, str) and ":" in v:
                ports[key] = free_port()
                node[k] = f"127.0.0.1:{ports[key]}"
            else:
                rebind(v, f"{key}.{k}")

    for kind in ("receivers", "extensions"):
        for cid, settings in (out.get(kind) or {}).items():
            rebind(settings, f"{kind}.{cid}")
    for cid, settings in (out.get("exporters") or {}).items():
        if str(cid).split("/")[0] == "prometheus":
            rebind(settings, f"exporters.{cid}")
    service = out.setdefault("service", {})
    telemetry = service.setdefault("telemetry", {})
    ports["telemetry"] = free_port()
    telemetry["metrics"] = {"readers": [{"pull": {"exporter": {"prometheus": {
        "host": "127.0.0.1", "port": ports["telemetry"]}}}}]}
    return out, ports


def _wait_ready(proc: subprocess.Popen[bytes], ports: Mapping[str, int], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    health = ports.get("extensions.health_check")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"collector exited {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        if health is not None:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{health}/",
                                                                       timeout=1) as response:
                if response.status == 200:
                    return
        elif "Everything is ready" in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"collector not ready after {timeout:.0f}s:\n{log.read_text(errors='replace')[-4000:]}")


@contextlib.contextmanager
def running_collector(binary: Path, config: Mapping[str, Any], env: Mapping[str, str] | None = None,
                      timeout: float = 60) -> Iterator[RunningCollector]:
    """Run the collector on `config` with loopback ports (see bind_loopback); stop it on exit, even on failure."""
    bound, ports = bind_loopback(config)
    with tempfile.TemporaryDirectory(prefix="otelcol-run-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(bound, sort_keys=False), encoding="utf-8")
        log = Path(tmp) / "collector.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen([str(binary), f"--config=file:{path}"], stdout=sink, stderr=subprocess.STDOUT,
                                    env=collector_env(env), start_new_session=True)
        _PIDS.add(proc.pid)
        (Path(tmp) / "otelcol.pid").write_text(str(proc.pid), encoding="utf-8")
        running = RunningCollector(proc, bound, ports, log)
        try:
            _wait_ready(proc, ports, log, timeout)
            yield running
        finally:
            stop_process(proc, grace=15)
            _PIDS.discard(proc.pid)
            running.captured = log.read_text(encoding="utf-8", errors="replace")
