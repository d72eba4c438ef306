"""Build a real control plane and the real Flux controllers from the Go module proxy (cached, locked).

Everything here comes from Go modules, so a machine that reaches only the Go module proxy can run it:
- kube-apiserver, kube-controller-manager, kube-scheduler and etcd: one wrapper module requiring
  k8s.io/kubernetes. Its go.mod maps every staging module (k8s.io/api, client-go, ...) to ./staging folders that
  the module zip lacks, so the wrapper replaces each with its tagged v0.<minor>.<patch> release. One `go build`
  for all four binaries shares the compilation of the common packages. The version is stamped with ldflags,
  or /version says v0.0.0 (Helm's kubeVersion and bootstrap's preflight read it).
- kwok (the node agent that makes Pods Ready without containers) and its Stage configs from its module.
- the Flux controllers of the pinned Flux release: the flux2 module's manifests/bases name each controller's
  version; each controller module replaces its `api` submodule with ./api, which is dropped for the tagged
  api release, then built from a writable copy of the module.

Each build lives under tools.tool_dir keyed by versions; a warm machine only checks that the binaries exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from support.tools import build_lock, cache_key, tool_dir

# Kubernetes: the newest patch of the newest minor Flux 2.9 supports (1.34-1.36), >= pins.kubernetes_min_version.
KUBERNETES_VERSION = "1.36.3"
KWOK_VERSION = "v0.8.0"
FLUX_MODULE = "github.com/fluxcd/flux2/v2"
FLUX_CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
KWOK_STAGES = ("node/fast", "node/heartbeat", "pod/fast")
GO_HINT = "Go >= 1.26 builds the control plane from the Go module proxy"


class BuildError(RuntimeError):
    """A Go build failed; the message carries the tail of go's output."""


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    # No VCS stamping: the build directories are not repositories.
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -buildvcs=false").strip()
    return env


def run_go(args: list[str], cwd: Path) -> str:
    res = subprocess.run(["go", *args], cwd=cwd, env=go_env(), capture_output=True, text=True, check=False)
    if res.returncode != 0:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-30:])
        raise BuildError(f"go {' '.join(args[:3])} ... failed in {cwd}:\n{tail}")
    return res.stdout


UNAVAILABLE = re.compile(r"(\S+)@(v[^:\s]+): reading \S+\.zip: 403 Forbidden")


def _zip_available(module: str, version: str) -> bool:
    res = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], env=go_env(),
                         capture_output=True, text=True, check=False)
    return res.returncode == 0


def _nearest_available(module: str, version: str) -> str | None:
    """The closest release of module with a downloadable zip: lower patches of the same minor first."""
    found = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", version)
    if found is None:
        return None
    major, minor, patch = map(int, found.groups())
    candidates = [f"v{major}.{minor}.{p}" for p in range(patch - 1, -1, -1)]
    candidates += [f"v{major}.{minor}.{p}" for p in range(patch + 1, patch + 4)]
    return next((c for c in candidates if _zip_available(module, c)), None)


def build_with_substitutes(args: list[str], src: Path, log: Path) -> None:
    """`go <args>` in module `src`; a dependency whose zip the module proxy refuses (403 "not available",
    seen for some versions on mirrored proxies) is replaced by its nearest available patch release, and
    every such substitution is written to `log` so the deviation is visible."""
    for _ in range(8):
        try:
            run_go(args, src)
            return
        except BuildError as err:
            missing_zips = sorted(set(UNAVAILABLE.findall(str(err))))
            if not missing_zips:
                raise
            replaced = {(r["New"]["Path"], r["New"].get("Version", "")): r["Old"]["Path"]
                        for r in json.loads(run_go(["mod", "edit", "-json"], src)).get("Replace") or []}
            for module, version in missing_zips:
                if (module, version) in replaced:
                    # A fork pinned by a replace line that the proxy does not serve: build with the upstream
                    # module the controller requires instead.
                    run_go(["mod", "edit", f"-dropreplace={replaced[module, version]}"], src)
                    with log.open("a", encoding="utf-8") as out:
                        out.write(f"replace {replaced[module, version]} => {module} {version} dropped\n")
                    continue
                substitute = _nearest_available(module, version)
                if substitute is None:
                    raise BuildError(f"{module}@{version} is not on the module proxy, nor a nearby patch") from err
                run_go(["mod", "edit", f"-replace={module}={module}@{substitute}"], src)
                with log.open("a", encoding="utf-8") as out:
                    out.write(f"{module} {version} -> {substitute}\n")
    raise BuildError(f"go {' '.join(args)}: too many unavailable modules in {src}")


@cache
def module_dir(module: str, version: str) -> Path:
    """The read-only module cache folder of module@version (downloaded through the module proxy)."""
    out = run_go(["mod", "download", "-json", f"{module}@{version}"], Path.cwd())
    return Path(json.loads(out)["Dir"])


# ---------------------------------------------------------------- Kubernetes + etcd


def staging_modules(version: str) -> list[str]:
    """The staging modules k8s.io/kubernetes@v<version> maps to local folders (read from its go.mod)."""
    gomod = (module_dir("k8s.io/kubernetes", f"v{version}") / "go.mod").read_text(encoding="utf-8")
    mods = re.findall(r"^\s*(?:replace\s+)?(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, re.MULTILINE)
    # The sample-* modules are examples nothing here imports (some tags are not even on the proxy).
    return sorted(m for m in set(mods) if not m.startswith("k8s.io/sample-"))


def kubernetes_ldflags(version: str) -> str:
    major, minor, _ = version.split(".")
    stamp = {
        "k8s.io/component-base/version.gitVersion": f"v{version}",
        "k8s.io/component-base/version.gitMajor": major,
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/client-go/pkg/version.gitVersion": f"v{version}",
    }
    return " ".join(["-s", "-w", *(f"-X {k}={v}" for k, v in stamp.items())])


def kubernetes_wrapper(version: str) -> str:
    _, minor, patch = version.split(".")
    lines = ["module fleetstrap.local/controlplane", "", "go 1.26.0", "", f"require k8s.io/kubernetes v{version}", ""]
    lines += [f"replace {m} => {m} v0.{minor}.{patch}" for m in staging_modules(version)]
    return "\n".join(lines) + "\n"


def build_kubernetes(version: str = KUBERNETES_VERSION) -> Path:
    """bin/ with kube-apiserver, kube-controller-manager, kube-scheduler and etcd of Kubernetes `version`."""
    home = tool_dir("kubernetes", cache_key(version, "k8s+etcd"))
    bins = home / "bin"
    if all((bins / b).is_file() for b in K8S_BINARIES):
        return bins
    with build_lock("kubernetes"):
        if all((bins / b).is_file() for b in K8S_BINARIES):
            return bins
        src = home / "src"
        src.mkdir(exist_ok=True)
        (src / "go.mod").write_text(kubernetes_wrapper(version), encoding="utf-8")
        # etcd at the version k8s.io/kubernetes itself requires: its server module is a main package.
        packages = [f"k8s.io/kubernetes/cmd/{b}" for b in K8S_BINARIES if b != "etcd"] + ["go.etcd.io/etcd/server/v3"]
        staged = home / "staged"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        build_with_substitutes(["build", "-mod=mod", "-trimpath", "-ldflags", kubernetes_ldflags(version), "-o",
                                f"{staged}/", *packages], src, home / "substitutions.txt")
        (staged / "server").rename(staged / "etcd")
        shutil.rmtree(bins, ignore_errors=True)
        staged.rename(bins)
    return bins


# ---------------------------------------------------------------- kwok


@dataclass(frozen=True)
class Kwok:
    binary: Path
    stages: Path  # one multi-document file of Stage objects (kwok >= 0.8 ships none built in)


def build_kwok(version: str = KWOK_VERSION) -> Kwok:
    home = tool_dir("kwok", cache_key(version))
    binary, stages = home / "kwok", home / "stages.yaml"
    if binary.is_file() and stages.is_file():
        return Kwok(binary, stages)
    with build_lock("kwok"):
        if not binary.is_file():
            env_dir = home / "bin"
            env_dir.mkdir(exist_ok=True)
            res = subprocess.run(["go", "install", "-trimpath", f"sigs.k8s.io/kwok/cmd/kwok@{version}"],
                                 env={**go_env(), "GOBIN": str(env_dir)}, capture_output=True, text=True,
                                 check=False)
            if res.returncode != 0:
                raise BuildError(f"go install kwok@{version} failed:\n{res.stderr[-3000:]}")
            (env_dir / "kwok").rename(binary)
        root = module_dir("sigs.k8s.io/kwok", version) / "kustomize" / "stage"
        docs = [p.read_text(encoding="utf-8") for stage in KWOK_STAGES for p in sorted((root / stage).glob("*.yaml"))
                if p.name != "kustomization.yaml"]
        stages.write_text("\n---\n".join(d.strip().removeprefix("---").strip() for d in docs) + "\n",
                          encoding="utf-8")
    return Kwok(binary, stages)


# ---------------------------------------------------------------- Flux


@cache
def flux_controller_versions(flux_version: str) -> dict[str, str]:
    """controller -> version as the flux2 module of `flux_version` distributes them (manifests/bases)."""
    bases = module_dir(FLUX_MODULE, f"v{flux_version.lstrip('v')}") / "manifests" / "bases"
    out: dict[str, str] = {}
    for name in FLUX_CONTROLLERS:
        text = (bases / name / "kustomization.yaml").read_text(encoding="utf-8")
        found = re.search(rf"fluxcd/{name}/releases/download/(v[\w.\-]+)/", text)
        if found is None:
            raise BuildError(f"flux2 v{flux_version} manifests/bases/{name} names no release")
        out[name] = found.group(1)
    return out


@dataclass(frozen=True)
class FluxBuild:
    version: str
    binaries: dict[str, Path]
    modules: dict[str, Path]  # controller -> read-only module folder (config/crd/bases, config/manager, ...)

    def crd_files(self) -> list[Path]:
        return sorted(p for m in self.modules.values() for p in (m / "config" / "crd" / "bases").glob("*.yaml"))


def load_all(text: str) -> list[object]:
    """YAML documents; a bare `=` (an enum value in some CRDs) is YAML 1.1's `value` tag, read as the string."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))
    return list(yaml.load_all(text, Loader=Loader))


def crd_names(files: list[Path]) -> list[str]:
    """metadata.name of every CustomResourceDefinition in `files`."""
    return [d["metadata"]["name"] for p in files for d in load_all(p.read_text(encoding="utf-8"))
            if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]


def build_from_module(tool: str, module: str, version: str, package: str = ".", *, name: str | None = None,
                      prepare: Callable[[Path], None] | None = None, stamp: dict[str, str] | None = None) -> Path:
    """`go build` of `package` from `module`@`version`'s source, copied writable out of the module cache, into
    the cache dir of `tool` keyed by version, as `name` (default `tool`). `prepare` edits the copied source first
    (go.mod replaces); `stamp` sets string variables with `-X` (a version the binary would otherwise not know)."""
    home = tool_dir(tool, cache_key(version))
    name = name or tool
    binary = home / name
    if binary.is_file():
        return binary
    with build_lock(tool):
        if binary.is_file():
            return binary
        src = home / "src"
        shutil.rmtree(src, ignore_errors=True)
        (home / "substitutions.txt").unlink(missing_ok=True)
        shutil.copytree(module_dir(module, version), src)
        for path in [src, *src.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only
        if prepare is not None:
            prepare(src)
        ldflags = " ".join(["-s", "-w", *(f"-X {var}={value}" for var, value in (stamp or {}).items())])
        build_with_substitutes(["build", "-mod=mod", "-trimpath", "-ldflags", ldflags, "-o", str(home / f"{name}.tmp"),
                                package], src, home / "substitutions.txt")
        (home / f"{name}.tmp").rename(binary)
        shutil.rmtree(src, ignore_errors=True)
    return binary


def build_flux_controller(name: str, version: str) -> Path:
    module = f"github.com/fluxcd/{name}"

    def use_tagged_api(src: Path) -> None:
        # The local ./api replace is for development in their repository; the tagged api release is identical.
        run_go(["mod", "edit", f"-dropreplace={module}/api", f"-require={module}/api@{version}"], src)

    return build_from_module(f"flux-{name}", module, version, name=name, prepare=use_tagged_api)


def build_flagger(version: str) -> Path:
    """The Flagger controller of `version` (templates/pins.yml flagger_version), built from its Go module."""
    return build_from_module("flagger", "github.com/fluxcd/flagger", version, "./cmd/flagger")


def flux_modules(flux_version: str) -> FluxBuild:
    """The controllers' module folders only (CRDs, manifests): nothing is built."""
    versions = flux_controller_versions(flux_version)
    return FluxBuild(flux_version, {}, {n: module_dir(f"github.com/fluxcd/{n}", v) for n, v in versions.items()})


def build_flux(flux_version: str) -> FluxBuild:
    versions = flux_controller_versions(flux_version)
    binaries = {name: build_flux_controller(name, ver) for name, ver in versions.items()}
    return FluxBuild(flux_version, binaries, flux_modules(flux_version).modules)


def build_all(flux_version: str, *, with_flux: bool) -> tuple[Path, Kwok, FluxBuild]:
    """Every binary the control-plane tests use (what .ci/run prebuilds); the Flux controllers on request."""
    flux = build_flux(flux_version) if with_flux else flux_modules(flux_version)
    return build_kubernetes(), build_kwok(), flux


# ---------------------------------------------------------------- CRDs of the pinned controllers


@dataclass(frozen=True)
class CrdModule:
    """Where a controller's CRDs are in its Go module zip; `pin` names the version pin (None: fixed here)."""

    family: str
    module: str
    version: str
    globs: tuple[str, ...]


def crd_modules() -> list[CrdModule]:
    """The CRD-carrying module of every controller a fleet may target, at its pinned version.

    App versions behind chart pins (facts/versions.md §3, kept in templates/pins.yml beside the chart pins, the same
    versions validate's bundled schemas come from): cert-manager chart v1.21.1 = app v1.21.1, kube-prometheus-stack
    88.5.3 ships prometheus-operator v0.93.1, sealed-secrets chart 2.18.5 ships v0.36.6.
    The OpenTelemetry operator and external-secrets v2 are not on the module proxy (403 / no /v2 module path):
    see otel_crds_from_schemas.
    """
    from fleetstrap.pins import pin

    return [
        CrdModule("argo-cd", "github.com/argoproj/argo-cd/v3", pin("argocd_version"), ("manifests/crds/*-crd.yaml",)),
        CrdModule("argo-rollouts", "github.com/argoproj/argo-rollouts", pin("argo_rollouts_version"),
                  ("manifests/crds/*-crd.yaml",)),
        CrdModule("argocd-image-updater", "github.com/argoproj-labs/argocd-image-updater",
                  pin("argocd_image_updater_version"), ("config/crd/bases/*.yaml",)),
        CrdModule("cert-manager", "github.com/cert-manager/cert-manager", pin("cert_manager_chart_version"),
                  ("deploy/crds/*.yaml",)),
        CrdModule("prometheus-operator", "github.com/prometheus-operator/prometheus-operator",
                  pin("prometheus_operator_version"),
                  ("example/prometheus-operator-crd/*.yaml",)),
        CrdModule("sealed-secrets", "github.com/bitnami-labs/sealed-secrets", pin("sealed_secrets_version"),
                  ("helm/sealed-secrets/crds/*.yaml",)),
        # The Flagger chart's crds/crd.yaml is this file (chart version = module version).
        CrdModule("flagger", "github.com/fluxcd/flagger", pin("flagger_version"), ("artifacts/flagger/crd.yaml",)),
        # The chart pin ships this app version (templates/pins.yml); the policy kinds the fleet writes.
        CrdModule("kyverno", "github.com/kyverno/kyverno", pin("kyverno_version"),
                  ("config/crds/policies.kyverno.io/*.yaml",)),
    ]


def module_crd_files(spec: CrdModule) -> list[Path]:
    root = module_dir(spec.module, spec.version)
    files = sorted(p for g in spec.globs for p in root.glob(g))
    if not files:
        raise BuildError(f"{spec.module}@{spec.version} has no CRDs at {spec.globs}")
    return files


def crd_from_json_schemas(group: str, plural: str, kind: str, versions: dict[str, Path]) -> dict[str, object]:
    """A CRD built from kubeconform-layout JSON schemas (the fallback where no module carries the CRD).

    Those schemas were converted from the real CRDs with `additionalProperties: false` added to every object
    (kubeconform's strict mode); a structural CRD schema may not combine that with `properties`, so it is dropped
    again (the apiserver's strict field validation rejects unknown fields anyway)."""

    def structural(node: object) -> object:
        if isinstance(node, dict):
            out = {k: structural(v) for k, v in node.items()
                   if k != "$schema" and not (k == "additionalProperties" and v is False)}
            # The bundled compact schemas keep int-or-string only as its canonical anyOf; a structural
            # schema needs the marker back (a node without `type` is otherwise refused).
            if "type" not in out and out.get("anyOf") == [{"type": "integer"}, {"type": "string"}]:
                out["x-kubernetes-int-or-string"] = True
            return out
        if isinstance(node, list):
            return [structural(v) for v in node]
        return node

    storage = sorted(versions)[-1]
    entries = []
    for name, path in sorted(versions.items()):
        schema = structural(json.loads(path.read_text(encoding="utf-8")))
        assert isinstance(schema, dict)
        props = schema.setdefault("properties", {})
        for builtin in ("apiVersion", "kind"):
            props.pop(builtin, None)
        entries.append({"name": name, "served": True, "storage": name == storage,
                        "schema": {"openAPIV3Schema": schema}, "subresources": {"status": {}}})
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced", "versions": entries,
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"}},
    }


def otel_crds_from_schemas(schemas: Path) -> list[dict[str, object]]:
    """The OpenTelemetry operator's CRDs, rebuilt from the schema catalog: its Go module is not on the proxy."""
    base = schemas / "opentelemetry.io"
    return [
        crd_from_json_schemas("opentelemetry.io", "opentelemetrycollectors", "OpenTelemetryCollector", {
            "v1alpha1": base / "opentelemetrycollector_v1alpha1.json",
            "v1beta1": base / "opentelemetrycollector_v1beta1.json"}),
        crd_from_json_schemas("opentelemetry.io", "instrumentations", "Instrumentation",
                              {"v1alpha1": base / "instrumentation_v1alpha1.json"}),
    ]


# ---------------------------------------------------------------- Flux install manifest


def flux_install_manifest(build: FluxBuild, workdir: Path) -> str:
    """The install.yaml of the pinned Flux release, assembled from the Go modules instead of GitHub.

    flux2's manifests/install kustomization is what the release's install.yaml is built from; its per-controller
    bases fetch `<controller>.crds.yaml` and `<controller>.deployment.yaml` from GitHub releases. Those two files
    are rebuilt from each controller module (config/crd/bases and config/manager), the bases point at them, and
    only the default components (the four controllers built here) are kept.
    """
    from support.k8s import kubectl

    manifests = workdir / "manifests"
    shutil.rmtree(manifests, ignore_errors=True)
    shutil.copytree(module_dir(FLUX_MODULE, f"v{build.version.lstrip('v')}") / "manifests", manifests)
    for path in [manifests, *manifests.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for name, module in build.modules.items():
        base = manifests / "bases" / name
        crds = "".join(f"---\n{p.read_text(encoding='utf-8')}" for p in sorted(
            (module / "config" / "crd" / "bases").glob("*.yaml")))
        (base / f"{name}.crds.yaml").write_text(crds, encoding="utf-8")
        deployment = subprocess.run([kubectl(), "kustomize", str(module / "config" / "manager")],
                                    capture_output=True, text=True, check=True).stdout
        (base / f"{name}.deployment.yaml").write_text(deployment, encoding="utf-8")
        kust = base / "kustomization.yaml"
        kust.write_text(re.sub(rf"https://github\.com/fluxcd/{name}/releases/download/[^/]+/", "",
                               kust.read_text(encoding="utf-8")), encoding="utf-8")
    install = manifests / "install" / "kustomization.yaml"
    text = install.read_text(encoding="utf-8")
    for base in re.findall(r"^\s*-\s*\.\./bases/([\w-]+)\s*$", text, re.MULTILINE):
        if base not in build.modules:
            text = re.sub(rf"^\s*-\s*\.\./bases/{base}\s*\n", "", text, flags=re.MULTILINE)
    install.write_text(text, encoding="utf-8")
    built = subprocess.run([kubectl(), "kustomize", str(manifests / "install")], capture_output=True, text=True,
                           check=False)
    if built.returncode != 0:
        raise BuildError(f"assembling the Flux {build.version} install manifest: {built.stderr.strip()}")
    header = f"---\n# Flux version: v{build.version.lstrip('v')}\n# Components: {','.join(build.modules)}\n"
    return header + built.stdout
