#!/usr/bin/env python3
"""Build the OpenTelemetry Collector that proves fleetstrap's collector configs, from the Go module proxy.

The OpenTelemetry Collector Builder (go.opentelemetry.io/collector/cmd/builder) compiles a distribution with
exactly the components listed in scripts/otelcol-components.yaml, at the collector version of the contrib image
pinned in templates/pins.yml (`otel_collector_image`). That list is not written by hand: `--update-components`
renders every blueprint and collector-affecting answer, extracts each collector config and writes the component
types they use (tests/test_otelcol.py fails when the file and the rendered configs disagree).

The build is cached under the user cache directory (tests/support/tools.py), keyed by the version and the
component list, and file-locked so two pytest workers or .ci/run never build it twice at once.

    python scripts/build_otelcol.py                      # build if needed, print the binary's path
    python scripts/build_otelcol.py --update-components  # re-derive the component list from the templates

Needs `go` (1.25+) on PATH and the Go module proxy; set GOTOOLCHAIN to let go fetch a newer toolchain.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "templates" / "pins.yml"
COMPONENTS_FILE = Path(__file__).resolve().parent / "otelcol-components.yaml"
BINARY_NAME = "otelcol-fleetstrap"
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")

CORE = "go.opentelemetry.io/collector"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib"
BUILDER = f"{CORE}/cmd/builder"

# Component type (as written in a config, before any "/name") -> Go module, per kind. Where each type lives is
# a fact about the collector repositories, not something a config can tell; a type missing here stops the build
# with a message naming it. Core modules are versioned with the release (v0.X.Y), like contrib's.
MODULES: dict[str, dict[str, str]] = {
    "receivers": {
        "otlp": f"{CORE}/receiver/otlpreceiver",
        "prometheus": f"{CONTRIB}/receiver/prometheusreceiver",
        "hostmetrics": f"{CONTRIB}/receiver/hostmetricsreceiver",
        "filelog": f"{CONTRIB}/receiver/filelogreceiver",
        "k8s_cluster": f"{CONTRIB}/receiver/k8sclusterreceiver",
        "kubeletstats": f"{CONTRIB}/receiver/kubeletstatsreceiver",
    },
    "processors": {
        "batch": f"{CORE}/processor/batchprocessor",
        "memory_limiter": f"{CORE}/processor/memorylimiterprocessor",
        "k8s_attributes": f"{CONTRIB}/processor/k8sattributesprocessor",
        "k8sattributes": f"{CONTRIB}/processor/k8sattributesprocessor",  # deprecated alias
        "resource": f"{CONTRIB}/processor/resourceprocessor",
        "attributes": f"{CONTRIB}/processor/attributesprocessor",
        "resourcedetection": f"{CONTRIB}/processor/resourcedetectionprocessor",
        "filter": f"{CONTRIB}/processor/filterprocessor",
        "transform": f"{CONTRIB}/processor/transformprocessor",
        "tail_sampling": f"{CONTRIB}/processor/tailsamplingprocessor",
        "probabilistic_sampler": f"{CONTRIB}/processor/probabilisticsamplerprocessor",
    },
    "exporters": {
        "otlp_grpc": f"{CORE}/exporter/otlpexporter",
        "otlp": f"{CORE}/exporter/otlpexporter",  # deprecated alias
        "otlp_http": f"{CORE}/exporter/otlphttpexporter",
        "otlphttp": f"{CORE}/exporter/otlphttpexporter",
        "debug": f"{CORE}/exporter/debugexporter",
        "nop": f"{CORE}/exporter/nopexporter",
        "prometheus": f"{CONTRIB}/exporter/prometheusexporter",
        "prometheus_remote_write": f"{CONTRIB}/exporter/prometheusremotewriteexporter",
    },
    "connectors": {
        "span_metrics": f"{CONTRIB}/connector/spanmetricsconnector",
        "spanmetrics": f"{CONTRIB}/connector/spanmetricsconnector",  # deprecated alias
        "forward": f"{CORE}/connector/forwardconnector",
        "routing": f"{CONTRIB}/connector/routingconnector",
    },
    "extensions": {
        "health_check": f"{CONTRIB}/extension/healthcheckextension",
        "pprof": f"{CONTRIB}/extension/pprofextension",
        "zpages": f"{CORE}/extension/zpagesextension",
        "file_storage": f"{CONTRIB}/extension/storage/filestorage",
    },
}


class BuildError(Exception):
    pass


def collector_version() -> str:
    """`0.159.0` from pins.otel_collector_image (`otel/opentelemetry-collector-contrib:0.159.0`)."""
    pins = yaml.safe_load(PINS.read_text(encoding="utf-8"))["pins"]["default"]
    return str(pins["otel_collector_image"]).rsplit(":", 1)[1].removeprefix("v")


def load_components(path: Path = COMPONENTS_FILE) -> dict[str, list[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {kind: sorted(str(t) for t in data.get(kind) or []) for kind in KINDS}


def write_components(components: dict[str, list[str]], path: Path = COMPONENTS_FILE) -> None:
    lines = [
        "# The component types fleetstrap's collector configs use, derived from the rendered templates.",
        "# Generated by `python scripts/build_otelcol.py --update-components`; do not edit by hand",
        "# (tests/test_otelcol.py fails when this list and the rendered configs disagree).",
    ]
    lines += [f"{kind}: [{', '.join(sorted(components.get(kind, [])))}]" for kind in KINDS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_manifest(version: str, components: dict[str, list[str]], output: Path) -> dict[str, Any]:
    """The builder's manifest: each component type's module at the release's version (one module per line)."""
    manifest: dict[str, Any] = {
        "dist": {
            "name": BINARY_NAME,
            "description": "OpenTelemetry Collector with the components of fleetstrap's generated configs",
            "output_path": str(output),
            "version": version,
        },
    }
    for kind in KINDS:
        modules = []
        for ctype in components.get(kind, []):
            module = MODULES[kind].get(ctype)
            if module is None:
                raise BuildError(f"no Go module known for {kind[:-1]} {ctype!r}: add it to MODULES in {__file__}")
            if module not in modules:
                modules.append(module)
        if modules:
            manifest[kind] = [{"gomod": f"{m} v{version}"} for m in modules]
    return manifest


def build_key(version: str, components: dict[str, list[str]]) -> str:
    from support.tools import cache_key

    return cache_key("otelcol", version, json.dumps(components, sort_keys=True))


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("go is not installed (the collector is built from the Go module proxy)")
    return go


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BuildError(f"{' '.join(cmd[:3])} failed (exit {proc.returncode}):\n{tail}")


def ensure_otelcol(log: Any = None) -> Path:
    """The collector binary for the pinned version and component list: cached, else built (minutes, cold)."""
    from support.tools import build_lock, tool_dir

    version = collector_version()
    components = load_components()
    key = build_key(version, components)
    home = tool_dir("otelcol", key)
    binary = home / BINARY_NAME
    if binary.is_file():
        return binary
    with build_lock(f"otelcol-{key}"):
        if binary.is_file():  # another process built it while this one waited
            return binary
        go = _go()
        env = dict(os.environ, GOBIN=str(home / "bin"), CGO_ENABLED="0")
        started = time.monotonic()
        if log:
            log(f"building the OpenTelemetry Collector {version} with {BUILDER}@v{version} (cold: minutes)")
        _run([go, "install", f"{BUILDER}@v{version}"], env)
        src = home / "src"
        shutil.rmtree(src, ignore_errors=True)
        manifest = home / "manifest.yaml"
        manifest.write_text(yaml.safe_dump(build_manifest(version, components, src), sort_keys=False),
                            encoding="utf-8")
        # Strict versioning: fail if dependency resolution moved any listed module off the release's version,
        # so the binary really is the pinned release's components.
        _run([str(home / "bin" / "builder"), "--config", str(manifest), "--skip-strict-versioning=false"], env)
        built = src / BINARY_NAME
        if not built.is_file():
            raise BuildError(f"the builder finished without producing {built}")
        seconds = time.monotonic() - started
        (home / "build.json").write_text(json.dumps({"version": version, "components": components,
                                                     "seconds": round(seconds, 1)}, indent=2), encoding="utf-8")
        built.replace(binary)  # last: the binary's presence means a complete build
        if log:
            log(f"built {binary} in {seconds:.0f}s")
    return binary


def derive_components() -> dict[str, list[str]]:
    """Component types used by every collector config the templates emit (renders each variant)."""
    from support.otelcol import components_of, rendered_collector_configs

    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for found in rendered_collector_configs():
        for kind, types in components_of(found.config).items():
            used[kind] |= types
    return {kind: sorted(types) for kind, types in used.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--update-components", action="store_true",
                        help=f"re-derive {COMPONENTS_FILE.name} from the rendered templates, then build")
    parser.add_argument("--no-build", action="store_true", help="only update the component list")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if args.update_components:
            write_components(derive_components())
            log(f"wrote {COMPONENTS_FILE.relative_to(ROOT)}")
        if args.no_build:
            return 0
        started = time.monotonic()
        binary = ensure_otelcol(log)
        log(f"collector ready in {time.monotonic() - started:.1f}s")
    except BuildError as exc:
        log(f"error: {exc}")
        return 1
    print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
