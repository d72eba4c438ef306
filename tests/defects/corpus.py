"""Table of injected defects: (id, edits, expected check, expected file, path fragment, message fragment).

An edit is (file, old, new): `old` must occur exactly once in the clean file; old="" creates the file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defect:
    id: str
    edits: tuple[tuple[str, str, str], ...]
    check: str
    file: str
    path: str | None = None  # expected JSON path (exact) of at least one finding
    message: str | None = None  # expected fragment of that finding's message
    severity: str = "error"


WEB = "deploy/web.yaml"
HR = "apps/base/checkout/helmrelease.yaml"
INFRA = "clusters/dev/infrastructure.yaml"
APPS = "clusters/dev/apps.yaml"
COLL = "infrastructure/configs/collector.yaml"
AGENT = "otel/agent-config.yaml"
ARGO_APP = "argocd/checkout.yaml"
APPSET = "argocd/appset.yaml"
DEPLOY_TPL = "charts/checkout/templates/deployment.yaml"
DEV_K = "apps/dev/checkout/kustomization.yaml"
DEV_VALUES = "apps/dev/checkout/values.yaml"

DEFECTS: tuple[Defect, ...] = (
    # --- schema: core kinds
    Defect("core-wrong-type", ((WEB, "replicas: 2", "replicas: two"),), "schema", WEB, "spec.replicas"),
    Defect("core-unknown-field", ((WEB, "  replicas: 2\n", "  replicas: 2\n  replicaz: 3\n"),), "schema", WEB,
           "spec.replicaz", "unknown field"),
    Defect("core-missing-required", ((WEB, "        - name: web\n          image", "        - image"),), "schema", WEB,
           "spec.template.spec.containers[0]", "name"),
    Defect("core-nested-wrong-type", ((WEB, "    - port: 80\n", "    - port: eighty\n"),), "schema", WEB,
           "spec.ports[0].port"),
    Defect("core-deep-unknown-field", ((WEB, "              memory: 128Mi", "              memory: 128Mi\n"
                                        "            limitz: {}"),), "schema", WEB,
           "spec.template.spec.containers[0].resources.limitz"),
    # --- schema: custom resources
    Defect("cr-unknown-field", ((HR, "  interval: 10m\n", "  interval: 10m\n  intervall: 5m\n"),), "schema", HR,
           "spec.intervall"),
    Defect("cr-wrong-type", ((APPS, "prune: true", "prune: yes-please"),), "schema", APPS, "spec.prune"),
    Defect("otelcol-unknown-field", ((COLL, "  mode: deployment\n", "  mode: deployment\n  replicaz: 2\n"),),
           "schema", COLL, "spec.replicaz"),
    Defect("argo-wrong-type", (("argocd/project.yaml", "  sourceRepos:\n    - https", "  sourceRepos: https"),),
           "schema", "argocd/project.yaml", "spec.sourceRepos"),
    # Where Flux applies it (./clusters/dev has no kustomization.yaml: every file under it): in a file the repo
    # does not deploy, an object without a schema is only a note (validate.manifests).
    Defect("no-schema", (("clusters/dev/widget.yaml", "", "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n"
                          "  name: w\n"),), "schema", "clusters/dev/widget.yaml", "", "no schema", "warning"),
    # --- yaml
    Defect("duplicate-key", ((WEB, "  name: web\n  namespace: web\nspec:\n  replicas",
                              "  name: web\n  name: web\n  namespace: web\nspec:\n  replicas"),),
           "yaml", WEB, "metadata.name", "duplicate key"),
    Defect("yaml-syntax", (("deploy/broken.yaml", "", "a: [1, 2\nb: 3\n"),), "yaml", "deploy/broken.yaml", None,
           "does not parse"),
    # --- kustomize
    Defect("kustomize-missing-base", ((DEV_K, "../../base/checkout", "../../base/checkoutt"),), "kustomize", DEV_K),
    Defect("kustomize-missing-resource", (("infrastructure/configs/kustomization.yaml", "- collector.yaml",
                                           "- collectors.yaml"),), "kustomize",
           "infrastructure/configs/kustomization.yaml"),
    Defect("kustomize-patch-unknown-field", ((DEV_K, "generatorOptions:", "patches:\n  - target:\n"
                                              "      kind: HelmRelease\n    patch: |\n      - op: add\n"
                                              "        path: /spec/timeoutt\n        value: 5m\n"
                                              "generatorOptions:"),), "schema", DEV_K, "spec.timeoutt"),
    # --- helm
    Defect("chart-template-error", ((DEPLOY_TPL, "{{ .Values.replicaCount }}", "{{ .Values.replicaCount.x.y }}"),),
           "helm", DEPLOY_TPL, None, "replicaCount"),
    Defect("chart-renders-unknown-field", ((DEPLOY_TPL, "- containerPort:", "- containerPortt:"),), "schema",
           DEPLOY_TPL, "spec.template.spec.containers[0].ports[0].containerPortt"),
    Defect("values-file-wrong-type", ((DEV_VALUES, "replicaCount: 2", "replicaCount: two"),), "schema", DEPLOY_TPL,
           "spec.replicas"),
    Defect("chart-bad-version", (("charts/checkout/Chart.yaml", "version: 0.1.0", "version: not-semver"),), "helm",
           "charts/checkout/Chart.yaml"),
    # --- xref: Flux
    Defect("broken-dependson", ((APPS, "- name: infra-configs", "- name: infra-config"),), "xref", APPS,
           "spec.dependsOn[0].name"),
    Defect("dependson-cycle", ((INFRA, "  name: infra-controllers\n  namespace: flux-system\nspec:\n",
                                "  name: infra-controllers\n  namespace: flux-system\nspec:\n  dependsOn:\n"
                                "    - name: apps\n"),), "xref", APPS, "spec.dependsOn", "cycle"),
    Defect("missing-path", ((APPS, "path: ./apps/dev", "path: ./apps/prod"),), "xref", APPS, "spec.path"),
    Defect("bad-sourceref", ((INFRA, "  path: ./infrastructure/controllers\n  prune: true\n  sourceRef:\n"
                                     "    kind: GitRepository\n    name: flux-system",
                              "  path: ./infrastructure/controllers\n  prune: true\n  sourceRef:\n"
                              "    kind: GitRepository\n    name: fleet"),), "xref", INFRA, "spec.sourceRef.name"),
    Defect("helmrelease-chart-path", ((HR, "chart: ./charts/checkout", "chart: ./charts/checkoutt"),), "xref", HR,
           "spec.chart.spec.chart"),
    Defect("helmrelease-helmrepository", (("infrastructure/controllers/opentelemetry-operator.yaml",
                                           "        name: open-telemetry", "        name: otel"),), "xref",
           "infrastructure/controllers/opentelemetry-operator.yaml", "spec.chart.spec.sourceRef.name"),
    Defect("helmrelease-values-configmap", ((HR, "name: checkout-values", "name: checkout-valuez"),), "xref", HR,
           "spec.valuesFrom[0].name"),
    Defect("missing-imagepolicy", ((DEV_VALUES, "flux-system:checkout:tag", "flux-system:checkuot:tag"),), "xref",
           DEV_VALUES, None, "ImagePolicy flux-system/checkuot"),
    Defect("malformed-setter", ((DEV_VALUES, "flux-system:checkout:name", "flux-system:checkout:nmae"),), "xref",
           DEV_VALUES, None, "malformed"),
    Defect("imagepolicy-repository-ref", (("apps/base/checkout/image.yaml", "imageRepositoryRef:\n    name: checkout",
                                           "imageRepositoryRef:\n    name: chekout"),), "xref",
           "apps/base/checkout/image.yaml", "spec.imageRepositoryRef.name"),
    # --- xref: Argo CD
    Defect("argo-missing-project", ((ARGO_APP, "project: fleet", "project: fleat"),), "xref", ARGO_APP,
           "spec.project"),
    Defect("argo-missing-path", ((ARGO_APP, "path: charts/checkout", "path: charts/checkot"),), "xref", ARGO_APP,
           "spec.source.path"),
    Defect("argo-destination-denied", ((ARGO_APP, "    namespace: checkout\n", "    namespace: payments\n"),),
           "xref", ARGO_APP, "spec.destination", "not allowed"),
    Defect("argo-missing-values-file", ((ARGO_APP, "dev/checkout/values.yaml", "dev/checkout/values-x.yaml"),),
           "xref", ARGO_APP, "spec.source.helm.valueFiles[0]"),
    Defect("appset-destination-denied", ((APPSET, "namespace: team-{{env}}", "namespace: prod-{{env}}"),), "xref",
           APPSET, "spec.template.spec.destination"),
    Defect("appset-missing-path", ((APPSET, "- env: dev", "- env: qa"),), "xref", APPSET,
           "spec.template.spec.source.helm.valueFiles[0]"),
    # --- otel
    Defect("undefined-exporter", ((COLL, "[otlp/tempo, debug]", "[otlp/tempo, debug, otlp/loki]"),), "otel", COLL,
           "spec.config.service.pipelines.traces.exporters[2]", "otlp/loki"),
    Defect("undefined-receiver-standalone", ((AGENT, "receivers: [otlp]", "receivers: [otlp, jaeger]"),), "otel",
           AGENT, "service.pipelines.metrics.receivers[1]"),
    Defect("undefined-extension", ((AGENT, "extensions: [health_check]", "extensions: [health_check, pprof]"),),
           "otel", AGENT, "service.extensions[1]"),
    Defect("unused-exporter", ((AGENT, "    endpoint: gateway:4317\n", "    endpoint: gateway:4317\n  debug: {}\n"),),
           "otel", AGENT, "exporters.debug", "not used", "warning"),
    Defect("processor-order", ((AGENT, "[memory_limiter, batch]", "[batch, memory_limiter]"),), "otel", AGENT,
           "service.pipelines.metrics.processors[0]", "batch", "warning"),
    # --- workflows, dockerfile
    Defect("bad-workflow-key", ((".github/workflows/ci.yml", "runs-on:", "runs_on:"),), "workflows",
           ".github/workflows/ci.yml", None, "runs_on"),
    Defect("bad-workflow-expression", ((".github/workflows/ci.yml", 'echo "validating"',
                                        'echo "${{ github.evnt.name }}"'),), "workflows", ".github/workflows/ci.yml",
           None, "evnt"),
    Defect("dockerfile-error", (("services/checkout/Dockerfile", "COPY . .", "COPY a b c"),), "dockerfile",
           "services/checkout/Dockerfile", None, "DL3021"),
)
