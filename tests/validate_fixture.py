"""A small but complete synthetic fleet repo (Flux + Argo CD + chart + collector + CI) for the validate tests.

Plain helper module (no fixtures): tests write it into a tmp dir and mutate copies of it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CRD_SCHEMAS_ENV = "FLEETSTRAP_CRD_SCHEMAS"

FILES: dict[str, str] = {
    "clusters/dev/flux-system/gotk-sync.yaml": """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  url: https://github.com/acme/fleet-infra
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 10m0s
  path: ./clusters/dev
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
""",
    "clusters/dev/flux-system/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - gotk-sync.yaml
""",
    "clusters/dev/infrastructure.yaml": """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: infra-controllers
  namespace: flux-system
spec:
  interval: 1h
  path: ./infrastructure/controllers
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: infra-configs
  namespace: flux-system
spec:
  dependsOn:
    - name: infra-controllers
  interval: 1h
  path: ./infrastructure/configs
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
""",
    "clusters/dev/apps.yaml": """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  dependsOn:
    - name: infra-configs
  interval: 10m
  path: ./apps/dev
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
""",
    "infrastructure/controllers/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - opentelemetry-operator.yaml
""",
    "infrastructure/controllers/opentelemetry-operator.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: opentelemetry-operator-system
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: open-telemetry
  namespace: opentelemetry-operator-system
spec:
  interval: 24h
  url: https://open-telemetry.github.io/opentelemetry-helm-charts
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: opentelemetry-operator
  namespace: opentelemetry-operator-system
spec:
  interval: 30m
  chart:
    spec:
      chart: opentelemetry-operator
      version: "0.90.0"
      sourceRef:
        kind: HelmRepository
        name: open-telemetry
  values:
    manager:
      collectorImage:
        repository: otel/opentelemetry-collector-contrib
""",
    "infrastructure/configs/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - collector.yaml
""",
    "infrastructure/configs/collector.yaml": """\
apiVersion: opentelemetry.io/v1beta1
kind: OpenTelemetryCollector
metadata:
  name: gateway
  namespace: observability
spec:
  mode: deployment
  config:
    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 0.0.0.0:4317
    processors:
      memory_limiter:
        check_interval: 1s
        limit_percentage: 80
      batch: {}
    exporters:
      debug: {}
      otlp/tempo:
        endpoint: tempo:4317
    service:
      pipelines:
        traces:
          receivers: [otlp]
          processors: [memory_limiter, batch]
          exporters: [otlp/tempo, debug]
""",
    "otel/agent-config.yaml": """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 0.0.0.0:4318
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 200
  batch: {}
exporters:
  otlp:
    endpoint: gateway:4317
extensions:
  health_check: {}
service:
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp]
""",
    "apps/base/checkout/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - helmrelease.yaml
  - image.yaml
""",
    "apps/base/checkout/helmrelease.yaml": """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: checkout
  namespace: checkout
spec:
  interval: 10m
  chart:
    spec:
      chart: ./charts/checkout
      sourceRef:
        kind: GitRepository
        name: flux-system
        namespace: flux-system
  valuesFrom:
    - kind: ConfigMap
      name: checkout-values
""",
    "apps/base/checkout/image.yaml": """\
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: checkout
  namespace: flux-system
spec:
  image: ghcr.io/acme/checkout
  interval: 5m
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: checkout
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: checkout
  policy:
    semver:
      range: ">=1.0.0"
""",
    "apps/dev/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - checkout
""",
    "apps/dev/checkout/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base/checkout
configMapGenerator:
  - name: checkout-values
    namespace: checkout
    files:
      - values.yaml
generatorOptions:
  disableNameSuffixHash: true
""",
    "apps/dev/checkout/values.yaml": """\
replicaCount: 2
image:
  repository: ghcr.io/acme/checkout # {"$imagepolicy": "flux-system:checkout:name"}
  tag: "1.0.0" # {"$imagepolicy": "flux-system:checkout:tag"}
""",
    "charts/checkout/Chart.yaml": """\
apiVersion: v2
name: checkout
description: The checkout service
type: application
version: 0.1.0
appVersion: "1.0.0"
""",
    "charts/checkout/values.yaml": """\
replicaCount: 1
image:
  repository: ghcr.io/acme/checkout
  tag: "1.0.0"
service:
  port: 8080
""",
    "charts/checkout/templates/_helpers.tpl": """\
{{- define "checkout.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
""",
    "charts/checkout/templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels:
    {{- include "checkout.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      {{- include "checkout.labels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "checkout.labels" . | nindent 8 }}
    spec:
      containers:
        - name: checkout
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          ports:
            - containerPort: {{ .Values.service.port }}
""",
    "charts/checkout/templates/service.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector:
    {{- include "checkout.labels" . | nindent 4 }}
  ports:
    - port: {{ .Values.service.port }}
      targetPort: {{ .Values.service.port }}
""",
    "argocd/project.yaml": """\
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: fleet
  namespace: argocd
spec:
  sourceRepos:
    - https://github.com/acme/fleet-infra
  destinations:
    - server: https://kubernetes.default.svc
      namespace: checkout
    - server: https://kubernetes.default.svc
      namespace: "team-*"
""",
    "argocd/checkout.yaml": """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: checkout-dev
  namespace: argocd
spec:
  project: fleet
  source:
    repoURL: https://github.com/acme/fleet-infra
    targetRevision: main
    path: charts/checkout
    helm:
      valueFiles:
        - ../../apps/dev/checkout/values.yaml
  destination:
    server: https://kubernetes.default.svc
    namespace: checkout
""",
    "argocd/appset.yaml": """\
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: checkout
  namespace: argocd
spec:
  generators:
    - list:
        elements:
          - env: dev
  template:
    metadata:
      name: "checkout-{{env}}"
    spec:
      project: fleet
      source:
        repoURL: https://github.com/acme/fleet-infra
        targetRevision: main
        path: charts/checkout
        helm:
          valueFiles:
            - "../../apps/{{env}}/checkout/values.yaml"
      destination:
        server: https://kubernetes.default.svc
        namespace: team-{{env}}
""",
    "deploy/web.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: web
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports:
            - containerPort: 80
          resources:
            limits:
              memory: 128Mi
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: web
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 80
""",
    "services/checkout/Dockerfile": """\
FROM rust:1.80-slim AS build
WORKDIR /src
COPY . .
RUN cargo build --release

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/checkout /usr/local/bin/checkout
USER nonroot
ENTRYPOINT ["/usr/local/bin/checkout"]
""",
    ".github/workflows/ci.yml": """\
name: ci
on:
  pull_request:
  push:
    branches: [main]
permissions:
  contents: read
jobs:
  validate:
    runs-on: ubuntu-latest
    steps:
      - name: Validate
        run: echo "validating"
""",
}


def write_fleet(root: Path, files: dict[str, str] | None = None) -> Path:
    for rel, text in (files or FILES).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def copy_fleet(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def crd_schemas() -> str:
    """$FLEETSTRAP_CRD_SCHEMAS when it names a directory, else the CRD schemas bundled in the package."""
    from fleetstrap.validate.schemas import bundled_schema_dir

    value = os.environ.get(CRD_SCHEMAS_ENV)
    return value if value and Path(value).is_dir() else str(bundled_schema_dir())
