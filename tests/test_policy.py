"""Policy as code (answer `policy: kyverno`): the Kyverno controller on both engines, the baseline policies, and
proof with the real Kyverno CLI (built from its Go module at the pinned release, tests/support/kyverno.py) that
everything fleetstrap generates passes them while an offending object is reported.

"Everything" is what the clusters apply: every kustomization the engines build (`kubectl kustomize`), the plain
manifests Argo CD reads, and the service chart rendered with each environment's values (the Helm SDK, as Flux's
helm-controller and Argo CD's repo server render it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetstrap.answers import build_answers
from fleetstrap.blueprints import resolve_blueprint
from fleetstrap.pins import pin
from fleetstrap.validate import ValidateOptions, validate_repo
from support.fleet import RenderedFleet, render_answers, render_blueprint
from support.k8s import kustomize_build
from support.kyverno import kyverno_cli
from support.tools import require_tool
from support_service import helm_sdk

POLICIES = ("restricted-pod-security", "disallow-latest-tag", "require-requests-limits", "require-probes",
            "require-fleet-labels")

# (blueprint, overrides): both engines, both environments' kinds, and the chart variants that change pods
# (Argo Rollouts instead of a Deployment, Flagger's canary mode, the collector sidecar, ServiceMonitor,
# migrations).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "multi-env": ("multi-env", {}),
    "argocd-multi-cluster": ("argocd-multi-cluster", {}),
    "dual-engine": ("dual-engine", {"policy": "kyverno"}),
    # Flagger canaries (Flux): the chart renders no Service or replicas, a Canary and the load-test webhooks.
    "multi-env-flagger": ("multi-env", {"progressive_delivery": "flagger", "monitoring": True}),
    "observability-rollouts-sidecar": ("observability", {
        "policy": "kyverno", "progressive_delivery": True, "collector_mode": "sidecar",
        "secrets": "external-secrets", "environments": ["dev", "production"],
        "clusters": [{"name": "dev", "environment": "dev"}, {"name": "prod", "environment": "production"}]}),
}


def fleet(variant: str) -> RenderedFleet:
    name, overrides = VARIANTS[variant]
    return render_answers(f"policy-{variant}", {**resolve_blueprint(name), **overrides})


# ---------------------------------------------------------------- what the clusters apply


def _kustomize_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("kustomization.yaml")
                  if not {"charts", ".fleetstrap", ".github"} & set(p.relative_to(root).parts))


def fleet_objects(root: Path) -> list[dict[str, Any]]:
    """Every object of the fleet repo as the engines apply it: kustomize builds, plus plain manifests elsewhere."""
    objects: list[dict[str, Any]] = []
    built = _kustomize_dirs(root)
    for directory in built:
        objects += kustomize_build(directory)
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root)
        if {"charts", ".fleetstrap", ".github"} & set(rel.parts) or any(d in path.parents for d in built):
            continue
        objects += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    return [o for o in objects if isinstance(o.get("apiVersion"), str) and isinstance(o.get("kind"), str)]


def chart_objects(rendered: RenderedFleet) -> list[dict[str, Any]]:
    """The service charts rendered (install, tests and hooks included) with each environment's values, and with
    the chart's optional migration Job on; plus the Pods their workloads create (see _pods)."""
    root = rendered.root
    objects: list[dict[str, Any]] = []
    for service in rendered.answers.services:
        chart = root / "charts" / service
        assert chart.is_dir(), f"no chart at {chart}"
        value_sets: list[dict[str, Any]] = [{}, {"migration": {"enabled": True}}]
        for env in rendered.answers.environments:
            env_values = yaml.safe_load((root / "apps" / env / service / "values.yaml").read_text("utf-8"))
            value_sets += [env_values, {**env_values, "migration": {"enabled": True}}]
        for values in value_sets:
            objects += render_chart(chart, service, values)
    return objects + _pods(objects)


def render_chart(chart: Path, release: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """`helm template` (install) of the chart into namespace `release`, as the engines install a service."""
    out = helm_sdk().Chart.load(str(chart)).render(values, name=release, namespace=release, is_install=True)
    objects = []
    for template, text in sorted(out.items()):
        if template.endswith((".yaml", ".yml")):
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict):
                    doc.setdefault("metadata", {}).setdefault("namespace", release)
                    objects.append(doc)
    return objects


def _pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Pod each workload's template makes. Admission checks these pods whoever creates them; Kyverno's autogen
    checks Deployments, Jobs & co. before that, but not an Argo Rollout, whose pod template this makes checked."""
    pods = []
    for obj in objects:
        spec = obj.get("spec") or {}
        template = (spec.get("jobTemplate") or {}).get("spec", {}).get("template") or spec.get("template")
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Rollout"} and template:
            meta = {**(template.get("metadata") or {}), "namespace": obj["metadata"]["namespace"],
                    "name": f"{obj['metadata']['name']}-{obj['kind'].lower()}-pod"}
            pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]})
    return pods


def policy_documents(root: Path) -> list[dict[str, Any]]:
    docs = [d for d in kustomize_build(root / "infrastructure" / "configs")
            if d["apiVersion"].startswith("policies.kyverno.io/")]
    assert sorted(d["metadata"]["name"] for d in docs) == sorted(POLICIES)
    return docs


# ---------------------------------------------------------------- the Kyverno CLI


def _batches(objects: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Objects in as few batches as possible with each identity once per batch (the CLI loads a batch into one
    fake cluster, where a second `Namespace hello` is an error); exact duplicates are dropped."""
    batches: list[tuple[set[tuple[str, ...]], list[dict[str, Any]]]] = []
    seen: set[str] = set()
    for obj in objects:
        text = json.dumps(obj, sort_keys=True)
        if text in seen:
            continue
        seen.add(text)
        meta = obj.get("metadata") or {}
        ident = (obj["apiVersion"], obj["kind"], str(meta.get("namespace", "")), str(meta.get("name", "")))
        batch = next((b for b in batches if ident not in b[0]), None)
        if batch is None:
            batch = (set(), [])
            batches.append(batch)
        batch[0].add(ident)
        batch[1].append(obj)
    return [b[1] for b in batches]


def kyverno_results(policies: list[dict[str, Any]], objects: list[dict[str, Any]], tmp: Path) -> list[dict[str, str]]:
    """`kyverno apply POLICIES --resource OBJECTS --policy-report`: one row per (policy, resource) result."""
    rows: list[dict[str, str]] = []
    for i, batch in enumerate(_batches(objects)):
        rows += _kyverno_apply(policies, batch, tmp / f"batch-{i}")
    return rows


def _kyverno_apply(policies: list[dict[str, Any]], objects: list[dict[str, Any]], tmp: Path) -> list[dict[str, str]]:
    cli = kyverno_cli()
    tmp.mkdir(parents=True, exist_ok=True)
    policy_file, resource_file = tmp / "policies.yaml", tmp / "resources.yaml"
    policy_file.write_text(yaml.safe_dump_all(policies, sort_keys=False), encoding="utf-8")
    resource_file.write_text(yaml.safe_dump_all(objects, sort_keys=False), encoding="utf-8")
    proc = subprocess.run([str(cli), "apply", str(policy_file), "--resource", str(resource_file), "--policy-report",
                           "--output-format", "json", "--remove-color"],
                          capture_output=True, text=True, check=False, timeout=600)
    # Exit 1 means violations (read from the report); anything else is the CLI failing. With no object in scope
    # of any policy it prints no report at all.
    assert proc.returncode in (0, 1), f"kyverno apply failed ({proc.returncode}): {proc.stderr}"
    start = proc.stdout.find("{")
    if start < 0 and proc.returncode == 0 and not proc.stdout.strip():
        return []
    report = json.loads(proc.stdout[start:])
    rows = []
    for result in report.get("results") or []:
        for res in result.get("resources") or [{}]:
            where = "/".join(x for x in (res.get("kind"), res.get("namespace"), res.get("name")) if x)
            rows.append({"policy": str(result["policy"]), "resource": where, "result": str(result["result"]),
                         "message": str(result.get("message", ""))})
    errors = [r for r in rows if r["result"] == "error"]
    assert not errors, f"policy evaluation errors: {errors}"
    assert (proc.returncode == 1) == any(r["result"] == "fail" for r in rows), proc.stderr
    return rows


# ---------------------------------------------------------------- the controller on both engines


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kyverno_is_an_infrastructure_controller_of_each_engine(variant: str) -> None:
    rendered = fleet(variant)
    root, engines = rendered.root, rendered.answers.engines
    values: list[Any] = []
    if "flux" in engines:
        docs = kustomize_build(root / "infrastructure" / "controllers")
        release = next(d for d in docs if d["kind"] == "HelmRelease" and d["metadata"]["name"] == "kyverno")
        repo = next(d for d in docs if d["kind"] == "HelmRepository" and d["metadata"]["namespace"] == "kyverno")
        assert release["spec"]["chart"]["spec"]["version"] == pin("kyverno_chart_version")
        assert release["spec"]["chart"]["spec"]["sourceRef"]["name"] == repo["metadata"]["name"]
        assert repo["spec"]["url"] == pin("kyverno_helm_repo")
        values.append(release["spec"]["values"])
        # The policies are configs: the Flux Kustomization applying them waits for the controllers.
        for cluster in rendered.answers.clusters:
            ks = {d["metadata"]["name"]: d for d in yaml.safe_load_all(
                (root / "clusters" / cluster.name / "infrastructure.yaml").read_text("utf-8")) if d}
            assert {"name": "infra-controllers"} in ks["infra-configs"]["spec"]["dependsOn"]
    if "argocd" in engines:
        appset = yaml.safe_load((root / "argocd" / "infrastructure" / "kyverno.yaml").read_text("utf-8"))
        source = appset["spec"]["template"]["spec"]["source"]
        assert (source["chart"], source["targetRevision"], source["repoURL"]) == (
            "kyverno", pin("kyverno_chart_version"), pin("kyverno_helm_repo"))
        values.append(source["helm"]["valuesObject"])
        configs = yaml.safe_load((root / "argocd" / "infrastructure" / "infra-configs.yaml").read_text("utf-8"))
        wave = "argocd.argoproj.io/sync-wave"
        assert int(appset["metadata"]["annotations"][wave]) < int(configs["metadata"]["annotations"][wave])
    assert values and all(v == values[0] for v in values), "both engines install Kyverno with the same values"
    assert policy_documents(root)


def test_no_kyverno_without_the_answer() -> None:
    root = render_blueprint("starter").root
    assert not list(root.rglob("kyverno.yaml")) and not (root / "infrastructure" / "configs" / "policies").exists()
    assert "policies.kyverno.io" not in json.dumps(kustomize_build(root / "infrastructure" / "configs"))


def test_policy_answer_is_checked() -> None:
    from fleetstrap.errors import AnswersError

    with pytest.raises(AnswersError, match="answer 'policy' must be one of kyverno, none"):
        build_answers({**resolve_blueprint("starter"), "policy": "opa"})


# ---------------------------------------------------------------- Audit outside production, Deny in production


def _as_applied(root: Path, patches: list[dict[str, Any]], tmp: Path) -> list[dict[str, Any]]:
    """infrastructure/configs with an engine's kustomize patches, as kustomize-controller or Argo CD builds it."""
    work = tmp / "repo"
    shutil.copytree(root / "infrastructure", work / "infrastructure", dirs_exist_ok=True)
    overlay = work / "as-applied"
    overlay.mkdir(exist_ok=True)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../infrastructure/configs"], "patches": patches}), encoding="utf-8")
    return [d for d in kustomize_build(overlay) if d["apiVersion"].startswith("policies.kyverno.io/")]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_production_clusters_deny_and_the_others_audit(variant: str, tmp_path: Path) -> None:
    rendered = fleet(variant)
    root = rendered.root
    assert {tuple(p["spec"]["validationActions"]) for p in policy_documents(root)} == {("Audit",)}
    seen = 0
    for cluster in rendered.answers.clusters:
        expected = ["Deny"] if cluster.environment == "production" else ["Audit"]
        if "flux" in rendered.answers.engines:
            ks = {d["metadata"]["name"]: d for d in yaml.safe_load_all(
                (root / "clusters" / cluster.name / "infrastructure.yaml").read_text("utf-8")) if d}
            built = _as_applied(root, ks["infra-configs"]["spec"].get("patches", []), tmp_path / f"flux-{cluster.name}")
            assert {p["metadata"]["name"]: p["spec"]["validationActions"] for p in built} == dict.fromkeys(
                POLICIES, expected), f"Flux cluster {cluster.name} ({cluster.environment})"
            seen += 1
        if "argocd" in rendered.answers.engines:
            appset = yaml.safe_load((root / "argocd" / "infrastructure" / "infra-configs.yaml").read_text("utf-8"))
            element = next(e for e in appset["spec"]["generators"][0]["list"]["elements"] if e["name"] == cluster.name)
            # ApplicationSet go templating of this element's fields, as the controller does for each cluster.
            text = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m, e=element: str(e[m.group(1)]),
                          json.dumps(appset["spec"]["template"]["spec"]["source"]["kustomize"]["patches"]))
            built = _as_applied(root, json.loads(text), tmp_path / f"argocd-{cluster.name}")
            assert {p["metadata"]["name"]: p["spec"]["validationActions"] for p in built} == dict.fromkeys(
                POLICIES, expected), f"Argo CD cluster {cluster.name} ({cluster.environment})"
            seen += 1
    assert seen >= len(rendered.answers.clusters)
    assert any(c.environment == "production" for c in rendered.answers.clusters)


# ---------------------------------------------------------------- the real Kyverno CLI


def _namespaces(objects: list[dict[str, Any]]) -> set[str]:
    found = {str(o["metadata"]["namespace"]) for o in objects if o.get("metadata", {}).get("namespace")}
    return found | {str(o["metadata"]["name"]) for o in objects if o["kind"] == "Namespace"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_everything_generated_passes_the_baseline_policies(variant: str, tmp_path: Path) -> None:
    rendered = fleet(variant)
    objects = fleet_objects(rendered.root) + chart_objects(rendered)
    # The chart's workloads are what the policies are about: they must be among the objects checked.
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Namespace", "HelmRelease" if "flux" in rendered.answers.engines else "ApplicationSet"} \
        <= kinds | {"Deployment"}, kinds
    results = kyverno_results(policy_documents(rendered.root), objects, tmp_path)
    failed = [r for r in results if r["result"] != "pass"]
    assert not failed, "\n".join(f"{r['policy']} -> {r['resource']}: {r['message']}" for r in failed)
    passed = {r["policy"] for r in results}
    assert passed == set(POLICIES), f"policies that checked nothing: {set(POLICIES) - passed}"


def _offender(namespace: str) -> list[dict[str, Any]]:
    """A Deployment breaking every baseline policy: latest image, privileged, no resources, no probes, no labels."""
    return [{
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "offender", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "offender"}},
            "template": {
                "metadata": {"labels": {"app": "offender"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:latest",
                                         "securityContext": {"privileged": True}}]},
            },
        },
    }, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "untagged", "namespace": namespace},
        "spec": {"hostNetwork": True, "containers": [{"name": "web", "image": "registry.example.com:5000/web"}]},
    }]


def test_an_offending_object_is_reported_by_every_policy(tmp_path: Path) -> None:
    policies = policy_documents(fleet("multi-env").root)
    results = kyverno_results(policies, _offender("payments"), tmp_path)
    failed: dict[tuple[str, str], str] = {}
    for r in results:
        if r["result"] == "fail":
            failed[(r["policy"], r["resource"])] = r["message"]
    assert {p for p, _ in failed} == set(POLICIES), failed
    deployment, pod = "Deployment/payments/offender", "Pod/payments/untagged"
    assert "latest tag is not allowed" in failed[("disallow-latest-tag", deployment)]
    assert "pinned to a tag or a digest" in failed[("disallow-latest-tag", pod)]
    assert "Privileged containers" in failed[("restricted-pod-security", deployment)]
    assert "Host namespaces" in failed[("restricted-pod-security", pod)]
    assert "request cpu and memory" in failed[("require-requests-limits", deployment)]
    assert "request cpu and memory" in failed[("require-requests-limits", pod)]
    assert "livenessProbe and a readinessProbe" in failed[("require-probes", deployment)]
    assert "app.kubernetes.io/name" in failed[("require-fleet-labels", deployment)]


def test_system_namespaces_are_left_alone(tmp_path: Path) -> None:
    policies = policy_documents(fleet("multi-env").root)
    excluded = policies[0]["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert {"kube-system", "flux-system", "argocd", "kyverno", "cert-manager"} <= set(excluded)
    results = kyverno_results(policies, _offender("kube-system") + _offender("kyverno"), tmp_path)
    assert not [r for r in results if r["result"] == "fail"], results


def test_a_latest_tag_in_environment_values_is_reported(tmp_path: Path) -> None:
    """The same path as the fleet test, with one bad edit a user could make: production's tag set to latest."""
    rendered = fleet("multi-env")
    values = yaml.safe_load((rendered.root / "apps/production/hello/values.yaml").read_text("utf-8"))
    values["image"]["tag"] = "latest"
    objects = render_chart(rendered.root / "charts" / "hello", "hello", values)
    failed = {(r["policy"], r["resource"]) for r in kyverno_results(policy_documents(rendered.root),
                                                                    objects + _pods(objects), tmp_path)
              if r["result"] == "fail"}
    assert failed == {("disallow-latest-tag", "Deployment/hello/hello"),
                      ("disallow-latest-tag", "Pod/hello/hello-deployment-pod")}


def test_validate_checks_policies_against_kyverno_crd_schemas(tmp_path: Path) -> None:
    """`fleetstrap validate` knows the Kyverno kinds (schemas from the pinned module's CRDs): clean as generated,
    and a misspelt field is an error at its file."""
    repo = tmp_path / "fleet"
    shutil.copytree(fleet("multi-env").root, repo)
    options = ValidateOptions(offline=True, fast=True)
    assert not [f for f in validate_repo(repo, options).errors if "polic" in f.file], "clean as generated"
    target = repo / "infrastructure/configs/policies/require-probes.yaml"
    target.write_text(target.read_text("utf-8").replace("validationActions:", "validationAction:"), "utf-8")
    errors = [f for f in validate_repo(repo, options).errors if f.file.endswith("require-probes.yaml")]
    assert errors and "validationAction" in " ".join(f.message + f.path for f in errors), errors


def _set(path: str, value: Any) -> Any:
    """A mutation setting a dotted path (list indexes as numbers) of a pod or workload; value None deletes."""
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = obj
        for key in parents:
            node = node[key] if isinstance(key, int) else node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return mutate


DIGEST = "ghcr.io/example-org/hello@sha256:" + "0123456789abcdef" * 4
# (case, kind, mutation of the compliant chart object, policy expected to fail or None, message fragment)
SINGLE_VIOLATIONS: list[tuple[str, str, Any, str | None, str]] = [
    ("host-network", "Pod", _set("spec.hostNetwork", True), "restricted-pod-security", "Host namespaces"),
    ("host-pid", "Pod", _set("spec.hostPID", True), "restricted-pod-security", "Host namespaces"),
    ("privileged", "Pod", _set("spec.containers.0.securityContext.privileged", True), "restricted-pod-security",
     "Privileged"),
    ("escalation", "Pod", _set("spec.containers.0.securityContext.allowPrivilegeEscalation", True),
     "restricted-pod-security", "allowPrivilegeEscalation"),
    ("escalation-unset", "Pod", _set("spec.containers.0.securityContext.allowPrivilegeEscalation", None),
     "restricted-pod-security", "allowPrivilegeEscalation"),
    ("root-container", "Pod", _set("spec.containers.0.securityContext.runAsNonRoot", False),
     "restricted-pod-security", "non-root"),
    ("uid-0", "Pod", _set("spec.containers.0.securityContext.runAsUser", 0), "restricted-pod-security", "UID 0"),
    ("seccomp-unconfined", "Pod", _set("spec.containers.0.securityContext.seccompProfile", {"type": "Unconfined"}),
     "restricted-pod-security", "seccomp"),
    ("seccomp-unset", "Pod", _set("spec.securityContext.seccompProfile", None), "restricted-pod-security", "seccomp"),
    ("caps-kept", "Pod", _set("spec.containers.0.securityContext.capabilities", {"drop": ["NET_RAW"]}),
     "restricted-pod-security", "capabilities"),
    ("caps-added", "Pod", _set("spec.containers.0.securityContext.capabilities", {"drop": ["ALL"],
                                                                                  "add": ["NET_ADMIN"]}),
     "restricted-pod-security", "capabilities"),
    ("caps-net-bind", "Pod", _set("spec.containers.0.securityContext.capabilities", {"drop": ["ALL"],
                                                                                     "add": ["NET_BIND_SERVICE"]}),
     None, ""),
    ("host-path", "Pod", _set("spec.volumes", [{"name": "root", "hostPath": {"path": "/"}}]),
     "restricted-pod-security", "volumes"),
    ("host-port", "Pod", _set("spec.containers.0.ports.0.hostPort", 8080), "restricted-pod-security", "Host ports"),
    ("apparmor", "Pod", _set("spec.securityContext.appArmorProfile", {"type": "Unconfined"}),
     "restricted-pod-security", "AppArmor"),
    ("selinux-user", "Pod", _set("spec.containers.0.securityContext.seLinuxOptions", {"user": "root"}),
     "restricted-pod-security", "SELinux"),
    ("sysctl", "Pod", _set("spec.securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]),
     "restricted-pod-security", "sysctls"),
    ("proc-mount", "Pod", _set("spec.containers.0.securityContext.procMount", "Unmasked"),
     "restricted-pod-security", "/proc"),
    ("latest", "Pod", _set("spec.containers.0.image", "ghcr.io/example-org/hello:latest"), "disallow-latest-tag",
     "latest tag"),
    ("untagged", "Pod", _set("spec.containers.0.image", "ghcr.io/example-org/hello"), "disallow-latest-tag",
     "pinned"),
    ("registry-port-untagged", "Pod", _set("spec.containers.0.image", "registry.example.com:5000/hello"),
     "disallow-latest-tag", "pinned"),
    ("digest", "Pod", _set("spec.containers.0.image", DIGEST), None, ""),
    ("no-memory-limit", "Pod", _set("spec.containers.0.resources.limits.memory", None), "require-requests-limits",
     "memory limit"),
    ("no-cpu-request", "Pod", _set("spec.containers.0.resources.requests.cpu", None), "require-requests-limits",
     "request cpu"),
    ("no-readiness", "Deployment", _set("spec.template.spec.containers.0.readinessProbe", None), "require-probes",
     "readinessProbe"),
    ("no-part-of", "Deployment", lambda o: o["spec"]["template"]["metadata"]["labels"].pop("app.kubernetes.io/part-of"),
     "require-fleet-labels", "Pod templates"),
]


def test_each_rule_reports_its_own_violation(tmp_path: Path) -> None:
    """One change at a time to the chart's compliant Deployment (or the Pod it makes): exactly the rule for that
    change fails, with its message; the allowed variants (NET_BIND_SERVICE, a digest) pass."""
    rendered = fleet("multi-env")
    values = yaml.safe_load((rendered.root / "apps/production/hello/values.yaml").read_text("utf-8"))
    deployment = next(o for o in render_chart(rendered.root / "charts" / "hello", "hello", values)
                      if o["kind"] == "Deployment")
    pod = _pods([deployment])[0]
    objects = []
    for case, kind, mutate, _, _ in SINGLE_VIOLATIONS:
        obj = json.loads(json.dumps(pod if kind == "Pod" else deployment))
        mutate(obj)
        obj["metadata"]["name"] = case
        objects.append(obj)
    results = kyverno_results(policy_documents(rendered.root), objects, tmp_path)
    for case, kind, _, policy, fragment in SINGLE_VIOLATIONS:
        mine = [r for r in results if r["resource"] == f"{kind}/hello/{case}"]
        assert mine, f"{case}: no policy checked it"
        failed = [(r["policy"], r["message"]) for r in mine if r["result"] != "pass"]
        if policy is None:
            assert not failed, f"{case}: {failed}"
        else:
            assert len(failed) == 1 and failed[0][0] == policy and fragment in failed[0][1], f"{case}: {failed}"


def kyverno_chart(tmp: Path) -> Path:
    """charts/kyverno of the pinned release's Go module (the chart repository is not reachable offline), without
    the subcharts that come from other repositories (CRDs of policies.kyverno.io and openreports, reports-server)."""
    require_tool("go", "fetches the Kyverno chart from its Go module")
    from support.cluster_tools import module_dir

    chart = tmp / "kyverno"
    shutil.copytree(module_dir("github.com/kyverno/kyverno", pin("kyverno_version")) / "charts" / "kyverno", chart)
    for path in chart.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text("utf-8"))
    assert (meta["version"], meta["appVersion"]) == (pin("kyverno_chart_version"), pin("kyverno_version"))
    meta["dependencies"] = [d for d in meta["dependencies"] if not d.get("repository")]
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    (chart / "Chart.lock").unlink()
    return chart


def kyverno_release_values() -> dict[str, Any]:
    release = next(d for d in kustomize_build(fleet("multi-env").root / "infrastructure" / "controllers")
                   if d["kind"] == "HelmRelease" and d["metadata"]["name"] == "kyverno")
    values: dict[str, Any] = release["spec"]["values"]
    return values


def test_kyverno_values_fit_the_pinned_chart(tmp_path: Path) -> None:
    """The values both engines give, rendered with the pinned chart itself: the chart version matches the pin and
    the admission controller really runs three replicas."""
    rendered = render_chart(kyverno_chart(tmp_path), "kyverno", kyverno_release_values())
    deployments = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "Deployment"}
    assert deployments["kyverno-admission-controller"]["spec"]["replicas"] == 3
    # Only the admission controller is scaled; the background, cleanup and reports controllers keep the default.
    assert {n: d["spec"].get("replicas") for n, d in deployments.items()
            if n != "kyverno-admission-controller" and d["spec"].get("replicas") not in (None, 1)} == {}


@pytest.mark.xdist_group("controlplane")
def test_argocd_ignores_what_the_aggregation_controller_writes(control_plane: Any, tmp_path: Path) -> None:
    """Kyverno's aggregated ClusterRoles (from the pinned chart) applied the way Argo CD syncs them (server-side):
    the real kube-controller-manager fills their rules under the field manager that the generated
    ignoreDifferences names, and Argo CD's own manager owns no rules there (so nothing else is ignored)."""
    import time

    root = fleet("argocd-multi-cluster").root
    appset = yaml.safe_load((root / "argocd" / "infrastructure" / "kyverno.yaml").read_text("utf-8"))
    ignored = appset["spec"]["template"]["spec"]["ignoreDifferences"]
    managers = {m for entry in ignored if entry["kind"] == "ClusterRole" for m in entry["managedFieldsManagers"]}
    roles = [d for d in render_chart(kyverno_chart(tmp_path), "kyverno", kyverno_release_values())
             if d["kind"] == "ClusterRole"]
    aggregated = [r["metadata"]["name"] for r in roles if r.get("aggregationRule")]
    assert aggregated, "the chart has no aggregated ClusterRoles any more: drop the ignoreDifferences"
    manifest = tmp_path / "roles.yaml"
    manifest.write_text(yaml.safe_dump_all(roles), encoding="utf-8")
    control_plane.apply_files([manifest], manager="argocd-controller")
    owners: dict[str, set[str]] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(owners) < len(aggregated):
        for name in aggregated:
            _, live = control_plane.request("GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}")
            entries = live["metadata"].get("managedFields") or []
            rule_owners = {e["manager"] for e in entries if "f:rules" in json.dumps(e.get("fieldsV1", {}))}
            if live.get("rules") and rule_owners:
                owners[name] = rule_owners
        time.sleep(0.5)
    assert set(owners) == set(aggregated), f"rules never aggregated: {set(aggregated) - set(owners)}"
    for name, found in owners.items():
        assert found <= managers, f"{name}: rules written by {found}, ignoreDifferences names {managers}"
