"""The generated Rust service, built by cargo and run the way its chart runs it.

- `render_crate(variant)`: the service unit rendered for one of RUST_VARIANTS (cached per process).
- `build_release(crate)`: `cargo build --release --locked`; returns the release binary. Every variant builds in
  ONE shared CARGO_TARGET_DIR under the tool cache (keyed by the toolchain), from a stable copy of its sources
  keyed by their digest, so variants that render the same Rust build once and a warm machine rebuilds nothing.
- `cargo_checks(crate)`: fmt --check, clippy -D warnings, test, each --locked (what the generated CI runs).
- `chart_env(root, ...)`: the container environment the chart's Deployment (or Rollout) gives the service,
  resolved as the kubelet would (envFrom ConfigMap, fieldRef, `$(VAR)` expansion).
- `run_service(binary, env)`: a context manager running the binary with exactly that environment on loopback;
  stops it with SIGTERM and exposes its exit code and JSON log lines.

A machine without cargo skips with the reason (CI fails instead): tools.missing / require_command.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetstrap.answers import build_answers
from fleetstrap.plan import build_service_component
from fleetstrap.render import ensure_template_mirror, render_component
from support.tools import build_lock, cache_key, require_command, stop_process, tool_dir

CARGO_HINT = "install Rust with rustup (https://rustup.rs): cargo, clippy and rustfmt"
TARGET_LOCK = "cargo-target"

# Answer sets that could change the Rust crate or the environment it runs with. The OTLP protocol is a chart
# value (otel.protocol), exercised at run time through chart_env(values=...).
RUST_VARIANTS: dict[str, dict[str, Any]] = {
    "gateway": {},
    "sidecar": {"collector_mode": "sidecar"},
    "progressive": {"progressive_delivery": True},
    "dashed-name": {"service": "order-api", "service_port": 9090},
}
DEFAULT_SERVICE = "checkout"

_RENDERED: dict[str, Path] = {}


def service_name(variant: str) -> str:
    return str(RUST_VARIANTS[variant].get("service", DEFAULT_SERVICE))


def render_root(variant: str) -> Path:
    """The rendered service unit (monorepo layout) of `variant`; cached for the test process."""
    if variant not in _RENDERED:
        data = dict(RUST_VARIANTS[variant])
        name = str(data.pop("service", DEFAULT_SERVICE))
        extra = {k: data.pop(k) for k in list(data) if k.startswith("service_")}
        root = Path(tempfile.mkdtemp(prefix=f"fleetstrap-rust-{variant}-"))
        atexit.register(shutil.rmtree, root, True)
        answers = build_answers({"owner": "acme", "service": name, **data})
        render_component(build_service_component(answers, name, extra), root, ensure_template_mirror())
        _RENDERED[variant] = root
    return _RENDERED[variant]


def render_crate(variant: str) -> Path:
    return render_root(variant) / "services" / service_name(variant)


def crate_files(crate: Path) -> list[Path]:
    """What cargo compiles: the manifest, the lock and the sources (not the Dockerfile or README)."""
    return [crate / "Cargo.toml", crate / "Cargo.lock", *sorted((crate / "src").rglob("*.rs"))]


def source_digest(crate: Path) -> str:
    digest = hashlib.sha256()
    for path in crate_files(crate):
        digest.update(path.relative_to(crate).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cargo() -> str:
    return require_command("cargo", CARGO_HINT)


def toolchain() -> str:
    res = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True)
    return res.stdout


def target_dir() -> Path:
    """The one CARGO_TARGET_DIR every variant builds in (cargo rebuilds on a toolchain change anyway)."""
    return tool_dir("cargo-target", cache_key(toolchain()))


def cargo_env() -> dict[str, str]:
    return {**os.environ, "CARGO_TARGET_DIR": str(target_dir()), "CARGO_TERM_COLOR": "never"}


@dataclass(frozen=True)
class CargoRun:
    command: str
    returncode: int
    output: str


def run_cargo(crate: Path, *args: str) -> CargoRun:
    """One cargo command in `crate`, holding the target-dir lock (one cargo at a time across xdist workers)."""
    with build_lock(TARGET_LOCK):
        res = subprocess.run([cargo(), *args], cwd=crate, env=cargo_env(), capture_output=True, text=True,
                             check=False)
    return CargoRun(f"cargo {' '.join(args)}", res.returncode, res.stdout + res.stderr)


def stable_copy(crate: Path) -> Path:
    """The crate's sources at a path keyed by their digest: cargo's fingerprints include the source path, so a
    stable path lets a warm target dir skip the service's own crate too."""
    home = tool_dir("rust-service", source_digest(crate))
    src = home / "crate"
    if not (src / "Cargo.toml").is_file():
        staging = Path(tempfile.mkdtemp(dir=home))
        for path in crate_files(crate):
            dest = staging / path.relative_to(crate)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        staging.rename(src)  # atomic: a concurrent reader never sees half a crate
    return src


def package_name(crate: Path) -> str:
    import tomllib

    return str(tomllib.loads((crate / "Cargo.toml").read_text(encoding="utf-8"))["package"]["name"])


def build_release(crate: Path) -> Path:
    """`cargo build --release --locked` of the rendered `crate`; the release binary (cached by source digest)."""
    src = stable_copy(crate)
    name = package_name(src)
    binary = src.parent / "bin" / name
    if binary.is_file():
        return binary
    run = run_cargo(src, "build", "--release", "--locked")
    if run.returncode != 0:
        raise AssertionError(f"{run.command} failed:\n{run.output[-6000:]}")
    binary.parent.mkdir(parents=True, exist_ok=True)
    # The shared target dir holds one `release/<name>` per crate name: variants of the same name overwrite it.
    shutil.copy2(target_dir() / "release" / name, binary.with_suffix(".tmp"))
    binary.with_suffix(".tmp").rename(binary)
    return binary


def cargo_checks(crate: Path) -> list[CargoRun]:
    """What the generated CI runs, in the stable copy of `crate`: fmt, clippy and the unit tests, all --locked."""
    src = stable_copy(crate)
    return [
        run_cargo(src, "fmt", "--check"),
        run_cargo(src, "clippy", "--all-targets", "--locked", "--", "-D", "warnings"),
        run_cargo(src, "test", "--locked"),
    ]


def prebuild() -> list[Path]:
    """Fetch the crates and build every distinct variant (release, clippy, test) into the cached target dir."""
    seen: dict[str, Path] = {}
    for variant in RUST_VARIANTS:
        crate = render_crate(variant)
        if source_digest(crate) in seen:
            continue
        runs = cargo_checks(crate)
        failed = [r for r in runs if r.returncode != 0]
        if failed:
            raise SystemExit(f"{failed[0].command} failed for {variant}:\n{failed[0].output[-4000:]}")
        seen[source_digest(crate)] = build_release(crate)
    return list(seen.values())


# ---------------------------------------------------------------- the chart's environment


FAKE_NODE = "node-a"


def chart_objects(root: Path, name: str, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    import helm_python  # the `helm` extra: the real Helm v4 SDK

    chart = root / "charts" / name
    rendered = helm_python.Chart.load(str(chart)).render(dict(values or {}), name=name, namespace=name,
                                                         is_install=True)
    return [doc for template, text in sorted(rendered.items()) if template.endswith((".yaml", ".yml"))
            for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
                    else value)
    return out


def chart_env(root: Path, name: str, values: Mapping[str, Any] | None = None,
              environment: str = "dev") -> dict[str, str]:
    """The service container's environment as the fleet deploys it: the chart rendered with the environment's
    values file (apps/<environment>/<name>/values.yaml, as the HelmRelease / Argo CD Application pass it) and
    `values` on top, resolved as the kubelet resolves it."""
    env_values = root / "apps" / environment / name / "values.yaml"
    fleet_values = yaml.safe_load(env_values.read_text(encoding="utf-8")) if env_values.is_file() else {}
    objects = chart_objects(root, name, merged(fleet_values or {}, values or {}))
    workload = next(o for o in objects if o.get("kind") in {"Deployment", "Rollout"})
    pod = workload["spec"]["template"]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == name)
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o.get("kind") == "ConfigMap"}
    fields = {"metadata.name": f"{name}-7c9d8f6b5-x2x7q", "metadata.namespace": name,
              "spec.nodeName": FAKE_NODE, "status.podIP": "127.0.0.1"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update({k: str(v) for k, v in config_maps[source["configMapRef"]["name"]].items()})
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = expand(str(entry["value"]), env)
        elif "fieldRef" in entry.get("valueFrom", {}):
            env[entry["name"]] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        elif "configMapKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["configMapKeyRef"]
            env[entry["name"]] = str(config_maps[ref["name"]][ref["key"]])
        else:
            raise AssertionError(f"chart_env cannot resolve {entry}")
    return env


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables are replaced, `$$` escapes, unknown ones stay as they are."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            end = value.index(")", i)
            var = value[i + 2:end]
            out.append(env.get(var, value[i:end + 1]))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


# ---------------------------------------------------------------- running it


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stderr_path: Path
    env: dict[str, str] = field(default_factory=dict)
    captured: str | None = None  # stdout, kept when the run ends (its temporary directory is removed)

    def get(self, path: str, headers: Mapping[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as err:
            return int(err.code), bytes(err.read())

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (a line that is not JSON fails the caller: the contract is JSON)."""
        text = self.captured if self.captured is not None else self.log_path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(service: RunningService, deadline_seconds: float = 60) -> None:
    """Poll /ready until 200 (the listener is bound); fail with the service's stderr if it exits first."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"service exited with {service.process.returncode}: "
                                 f"{service.stderr_path.read_text(errors='replace')}")
        try:
            if service.get("/ready", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("service did not become ready")


@contextmanager
def run_service(binary: Path, env: Mapping[str, str], *, port: int | None = None,
                overrides: Mapping[str, str] | None = None,
                wrapper: Sequence[str] = ()) -> Iterator[RunningService]:
    """Run `binary` with exactly `env` (+ `overrides`, e.g. the OTLP endpoint of a test receiver) on loopback.

    Two deviations from the pod, both about this machine: PORT is a free port (the chart's containerPort may be
    taken) and LISTEN_ADDRESS is loopback (tests never listen beyond 127.0.0.1). Nothing else of this
    process's environment leaks in. Stopped with SIGTERM on exit. `wrapper` runs it under another command
    (benchmarks: `taskset` to give it a CPU of its own, `valgrind` to count its instructions).
    """
    port = port or free_port()
    full = {**env, **(overrides or {}), "PORT": str(port), "LISTEN_ADDRESS": "127.0.0.1"}
    logdir = Path(tempfile.mkdtemp(prefix="fleetstrap-service-run-"))
    log_path, stderr_path = logdir / "stdout.jsonl", logdir / "stderr.log"
    with log_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen([*wrapper, str(binary)], env=full, stdout=stdout, stderr=stderr,
                                   stdin=subprocess.DEVNULL)
    service = RunningService(f"http://127.0.0.1:{port}", process, log_path, stderr_path, full)
    try:
        wait_until_ready(service)
        yield service
    finally:
        stop_process(process, grace=60)
        service.captured = log_path.read_text(encoding="utf-8", errors="replace")
        shutil.rmtree(logdir, ignore_errors=True)
