"""The fleet and cluster template units, rendered from every blueprint with the real tools.

Each blueprint renders once per test process (tests/support/fleet.py); the checks are: YAML parses,
strict schemas (core: kubernetes-validate; CRDs: $FLEETSTRAP_CRD_SCHEMAS), `kubectl kustomize` on every
kustomization directory, no template leftovers, golden snapshots, workflow linters, Flux/Argo parity.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetstrap.blueprints import list_blueprints
from fleetstrap.pins import action_pins, pin
from fleetstrap.render import ensure_template_mirror
from support import k8s
from support.fleet import RenderedFleet, render_blueprint
from support.parity import appset_params, canonical, go_template, merge_values
from support.tools import require_tool
from support.update_workflow import check_update_workflow

BLUEPRINTS = [b.name for b in list_blueprints()]
GOLDEN = ("starter", "dual-engine")
GOLDEN_DIR = Path(__file__).parent / "golden"
K8S_VERSION = pin("kubernetes_version")
# Go templates are legal only in ApplicationSets ({{.x}}, {{ if ... }}); GitHub expressions only in workflows.
GO_TEMPLATE = re.compile(r"\{\{-?\s*(?:\.[A-Za-z_][\w.]*|if\s[^{}]*|else|end)\s*-?\}\}")
GH_EXPRESSION = re.compile(r"\$\{\{[^{}]*\}\}")
LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\[\[")
JINJA_BLOCK = re.compile(r"\{%|%\}")
JINJA_ANY = re.compile(r"\{%|%\}|\{\{-?\s*[a-z_][a-z0-9_]*\s*(\|[^{}]*)?-?\}\}")


def _is_helm_template(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] == "charts" and "templates" in parts


def _manifest_files(fleet: RenderedFleet) -> list[Path]:
    """YAML files holding Kubernetes objects: not charts, workflows, answers or kustomize/Helm config."""
    out = []
    for p in sorted(fleet.root.rglob("*.y*ml")):
        rel = p.relative_to(fleet.root).as_posix()
        top = rel.split("/")[0]
        if top in {"charts", ".github", ".fleetstrap", ".git", "services"}:
            continue
        if p.name in {"kustomization.yaml", "values.yaml"} or p.name.endswith("-values.yaml"):
            continue
        out.append(p)
    return out


def _objects(fleet: RenderedFleet) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for p in _manifest_files(fleet):
        rel = p.relative_to(fleet.root).as_posix()
        out.extend((rel, d) for d in k8s.load_documents(p)
                   if isinstance(d, dict) and "apiVersion" in d and "kind" in d)
    return out


def _kustomization_dirs(fleet: RenderedFleet) -> list[Path]:
    dirs = sorted(p.parent for p in fleet.root.rglob("kustomization.yaml") if ".git" not in p.parts)
    # Every fleet has at least its cluster folder, the apps and the infrastructure layers.
    assert len(dirs) >= 3, f"{fleet.root}: kustomization.yaml folders {dirs}"
    return dirs


@pytest.fixture(scope="module", params=BLUEPRINTS)
def fleet(request: pytest.FixtureRequest) -> RenderedFleet:
    return render_blueprint(request.param)


# ---------------------------------------------------------------- every blueprint


def test_every_yaml_file_parses(fleet: RenderedFleet) -> None:
    bad = []
    for p in sorted(fleet.root.rglob("*.y*ml")):
        rel = p.relative_to(fleet.root).as_posix()
        if _is_helm_template(rel) or ".git/" in rel:
            continue
        try:
            list(yaml.safe_load_all(p.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            bad.append(f"{rel}: {exc}")
    assert not bad, "\n".join(bad)


def test_core_objects_validate_strictly(fleet: RenderedFleet) -> None:
    objects = [(w, d) for w, d in _objects(fleet) if k8s.is_core(d["apiVersion"])]
    assert objects, "expected core objects (Namespaces, RBAC)"
    problems = k8s.validate_objects(objects, K8S_VERSION)
    assert not problems, "\n".join(map(str, problems))


def test_custom_resources_validate_strictly(fleet: RenderedFleet) -> None:
    objects = [(w, d) for w, d in _objects(fleet) if not k8s.is_core(d["apiVersion"])]
    assert objects
    problems = k8s.validate_objects(objects, K8S_VERSION)
    assert not problems, "\n".join(map(str, problems))


def test_only_current_api_versions(fleet: RenderedFleet) -> None:
    problems = [f"{w}: {why}" for w, d in _objects(fleet) if (why := k8s.outdated_api(d))]
    assert not problems, "\n".join(problems)


def test_every_kustomization_builds_and_validates(fleet: RenderedFleet) -> None:
    dirs = _kustomization_dirs(fleet)
    assert dirs
    for d in dirs:
        rel = d.relative_to(fleet.root)
        objects = k8s.kustomize_build(d)
        docs = [(f"{rel} (built)", o) for o in objects]
        problems = k8s.validate_objects(docs, K8S_VERSION)
        assert not problems, "\n".join(map(str, problems))


def test_no_template_leftovers(fleet: RenderedFleet) -> None:
    """Fleet/cluster output: no `{{ }}`, `{% %}` or `[[` beyond ApplicationSet Go templates and GitHub
    expressions. Other units' files (dashboards, alert templates) only must not carry Jinja syntax."""
    own = dict(fleet.own_files)
    bad = []
    for p in sorted(fleet.root.rglob("*")):
        rel = p.relative_to(fleet.root).as_posix()
        if not p.is_file() or rel.startswith(".git/") or _is_helm_template(rel):
            continue
        assert not p.name.endswith(".jinja") and not p.name.startswith("~"), rel
        text = p.read_text(encoding="utf-8")
        if '"kind": "ApplicationSet"' in text or "kind: ApplicationSet" in text:
            text = GO_TEMPLATE.sub("", text)
        if rel.startswith(".github/workflows/"):
            text = GH_EXPRESSION.sub("", text)
        if rel in own:
            pattern = LEFTOVER
        elif p.suffix == ".json":
            pattern = JINJA_BLOCK
        else:
            pattern = JINJA_ANY
        for n, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                bad.append(f"{rel}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_fleet_workflow_passes_actionlint_and_schema(fleet: RenderedFleet) -> None:
    workflow = fleet.root / ".github/workflows/validate.yml"
    actionlint, checker = require_tool("actionlint"), require_tool("check-jsonschema")
    res = subprocess.run([actionlint, "-no-color", str(workflow)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([checker, "--builtin-schema", "vendor.github-workflows", str(workflow)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    flow = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    assert flow["permissions"] == {"contents": "read"}
    assert "concurrency" in flow
    uses = [s["uses"] for s in flow["jobs"]["validate"]["steps"] if "uses" in s]
    actions = action_pins()
    assert uses == [actions["gha_checkout"].ref, actions["gha_upload_sarif"].ref]


def test_fleet_update_workflow_opens_pull_requests_with_least_privilege(fleet: RenderedFleet) -> None:
    check_update_workflow(fleet.root / ".github/workflows/fleetstrap-update.yml")
    readme = (fleet.root / "README.md").read_text(encoding="utf-8")
    assert "## Template updates" in readme and "FLEETSTRAP_APP_CLIENT_ID" in readme
    assert "do not trigger other workflows" in readme


def test_monitoring_hooks_follow_the_answer(fleet: RenderedFleet) -> None:
    for part in ("controllers", "configs"):
        kfile = fleet.root / "infrastructure" / part / "kustomization.yaml"
        if not kfile.exists():
            assert part == "controllers" and fleet.answers.engine == "argocd"
            continue
        resources = yaml.safe_load(kfile.read_text(encoding="utf-8"))["resources"]
        assert ("monitoring" in resources) is fleet.answers.monitoring, kfile
    gateway = yaml.safe_load((fleet.root / "infrastructure/configs/otel-gateway.yaml").read_text())
    config = gateway["spec"]["config"]
    assert ("prometheus" in config["exporters"]) is fleet.answers.monitoring
    traces = config["service"]["pipelines"]["traces"]
    assert traces["processors"][0] == "memory_limiter" and traces["processors"][-1] == "batch"
    assert "k8s_attributes" in traces["processors"]
    assert config["exporters"]["otlp_grpc/backend"]["endpoint"] == fleet.answers.otlp_endpoint


# ---------------------------------------------------------------- golden snapshots


def _normalize(text: str, version: str) -> str:
    # Copier records the template commit/tag, which changes with every template edit; the workflows and README name
    # the version that rendered the fleet (a development build's changes with every commit).
    text = re.sub(r"^(_commit|_src_path): .*$", r"\1: <normalized>", text, flags=re.MULTILINE)
    return text.replace(version, "<version>")


def _snapshot(fleet: RenderedFleet) -> str:
    version = ensure_template_mirror().ref.removeprefix("v")
    return "".join(f"=== {rel}\n{_normalize(text, version)}" + ("" if text.endswith("\n") else "\n")
                   for rel, text in fleet.own_files)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_tree(name: str) -> None:
    """Fleet + cluster unit output, byte for byte. Update: FLEETSTRAP_UPDATE_GOLDEN=1 pytest ..."""
    actual = _snapshot(render_blueprint(name))
    path = GOLDEN_DIR / f"{name}.txt"
    if os.environ.get("FLEETSTRAP_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"no golden snapshot {path}; run with FLEETSTRAP_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            "golden", "rendered", n=2))
        pytest.fail(f"{name} differs from {path.name} (FLEETSTRAP_UPDATE_GOLDEN=1 to accept):\n{diff[:6000]}")


# ---------------------------------------------------------------- Flux / Argo CD parity










def _argo_appsets(fleet: RenderedFleet, sub: str) -> list[dict[str, Any]]:
    docs = []
    for p in sorted((fleet.root / "argocd" / sub).glob("*.yaml")):
        docs += [d for d in k8s.load_documents(p) if d.get("kind") == "ApplicationSet"]
    return docs


def flux_infrastructure(fleet: RenderedFleet) -> set[tuple[str, str, str, str, str, str]]:
    """(cluster, chart, version, repo URL, namespace, values) for every cluster Flux syncs."""
    objects = k8s.kustomize_build(fleet.root / "infrastructure/controllers")
    repos = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]["url"]
             for o in objects if o["kind"] == "HelmRepository"}
    releases = []
    for o in objects:
        if o["kind"] != "HelmRelease":
            continue
        spec, ns = o["spec"], o["metadata"]["namespace"]
        chart = spec["chart"]["spec"]
        url = repos[(chart["sourceRef"].get("namespace", ns), chart["sourceRef"]["name"])]
        releases.append((chart["chart"], chart["version"], url, spec.get("targetNamespace", ns),
                         canonical(spec.get("values"))))
    out = set()
    for c in fleet.answers.clusters:
        infra = k8s.load_documents(fleet.root / "clusters" / c.name / "infrastructure.yaml")
        paths = {d["spec"]["path"] for d in infra}
        assert "./infrastructure/controllers" in paths and "./infrastructure/configs" in paths
        out |= {(c.name, *r) for r in releases}
    return out


def argo_infrastructure(fleet: RenderedFleet) -> set[tuple[str, str, str, str, str, str]]:
    out = set()
    for appset in _argo_appsets(fleet, "infrastructure"):
        spec = appset["spec"]["template"]["spec"]
        source = spec["source"]
        if "chart" not in source:
            continue
        for params in appset_params(appset):
            out.add((params["name"], source["chart"], source["targetRevision"], source["repoURL"],
                     spec["destination"]["namespace"], canonical(source["helm"].get("valuesObject"))))
    return out


def flux_services(fleet: RenderedFleet) -> set[tuple[str, str, str, str, str]]:
    """(cluster, service, chart path, namespace, merged values) from the Flux Kustomization `apps`."""
    out = set()
    for c in fleet.answers.clusters:
        apps = k8s.load_documents(fleet.root / "clusters" / c.name / "apps.yaml")[0]
        objects = k8s.kustomize_build(fleet.root / apps["spec"]["path"])
        maps = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"] in {"ConfigMap", "Secret"}}
        for o in objects:
            if o["kind"] != "HelmRelease":
                continue
            spec = o["spec"]
            values: dict[str, Any] = {}
            for ref in spec.get("valuesFrom", []):
                source = maps[(ref["kind"], ref["name"])]
                values = merge_values(values, yaml.safe_load(source["data"][ref.get("valuesKey", "values.yaml")]) or {})
            values = merge_values(values, spec.get("values") or {})
            chart = spec["chart"]["spec"]["chart"].removeprefix("./")
            namespace = spec.get("targetNamespace", o["metadata"].get("namespace"))
            out.add((c.name, chart.rsplit("/", 1)[-1], chart, namespace, canonical(values)))
    return out


def argo_services(fleet: RenderedFleet) -> set[tuple[str, str, str, str, str]]:
    (appset,) = _argo_appsets(fleet, "applicationsets")
    template = appset["spec"]["template"]["spec"]
    out = set()
    for params in appset_params(appset):
        chart = go_template(template["source"]["path"], params)
        values: dict[str, Any] = {}
        for vf in template["source"]["helm"]["valueFiles"]:
            path = (fleet.root / chart / go_template(vf, params)).resolve()
            assert path.is_relative_to(fleet.root.resolve()), vf
            values = merge_values(values, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        values = merge_values(values, template["source"]["helm"].get("valuesObject") or {})
        out.add((params["name"], params["service"], chart, go_template(template["destination"]["namespace"], params),
                 canonical(values)))
    return out


PARITY_BLUEPRINT = "multi-env"
PARITY_SERVICES = ["hello", "billing"]


@pytest.fixture(scope="module")
def engines() -> tuple[RenderedFleet, RenderedFleet]:
    data = {"services": PARITY_SERVICES}
    return (render_blueprint(PARITY_BLUEPRINT, engine="flux", **data),
            render_blueprint(PARITY_BLUEPRINT, engine="argocd", **data))


def test_parity_infrastructure(engines: tuple[RenderedFleet, RenderedFleet]) -> None:
    flux, argo = engines
    flux_set, argo_set = flux_infrastructure(flux), argo_infrastructure(argo)
    assert {r[1] for r in flux_set} >= {"cert-manager", "opentelemetry-operator"}
    assert flux_set == argo_set
    # Argo CD applies the same shared configuration directory Flux does, on every cluster.
    configs = [a for a in _argo_appsets(argo, "infrastructure")
               if "chart" not in a["spec"]["template"]["spec"]["source"]]
    assert [a["spec"]["template"]["spec"]["source"]["path"] for a in configs] == ["infrastructure/configs"]
    assert {p["name"] for p in appset_params(configs[0])} == {c.name for c in argo.answers.clusters}


def test_argo_services_cover_every_cluster_and_service(engines: tuple[RenderedFleet, RenderedFleet]) -> None:
    _, argo = engines
    (appset,) = _argo_appsets(argo, "applicationsets")
    params = appset_params(appset)
    assert {(p["name"], p["service"]) for p in params} == {
        (c.name, s) for c in argo.answers.clusters for s in PARITY_SERVICES}
    env_of = {c.name: c.environment for c in argo.answers.clusters}
    for p in params:
        assert p["environment"] == env_of[p["name"]]
        (vf,) = appset["spec"]["template"]["spec"]["source"]["helm"]["valueFiles"]
        resolved = os.path.normpath(f"{go_template('charts/{{.service}}', p)}/{go_template(vf, p)}")
        assert resolved == f"apps/{p['environment']}/{p['service']}/values.yaml"
    patch = appset["spec"]["templatePatch"]
    assert 'if ne .environment "production"' in patch and "automated" in patch
    assert "automated" not in json.dumps(appset["spec"]["template"]["spec"]["syncPolicy"])


def test_parity_services(engines: tuple[RenderedFleet, RenderedFleet]) -> None:
    flux, argo = engines
    missing = [f"apps/{e}/{s}" for e in flux.answers.environments for s in PARITY_SERVICES
               if not (flux.root / "apps" / e / s / "values.yaml").exists()]
    assert not missing, f"service unit output missing: {', '.join(missing)}"
    flux_set, argo_set = flux_services(flux), argo_services(argo)
    assert len(argo_set) == len(flux.answers.clusters) * len(PARITY_SERVICES)
    assert flux_set == argo_set
