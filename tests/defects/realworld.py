"""Repos in the shapes real fleets use (written here, not copied), each clean, each with injected defects.

- flux-monorepo: the Flux "kustomize + helm" monorepo: clusters/, infrastructure/, apps/base + overlays that
  patch HelmReleases, an ArtifactGenerator whose ExternalArtifact a HelmRelease consumes; flux-system committed.
- multi-tenant: flux-system NOT committed (flux bootstrap made it), tenants patched per environment, a tenant
  Kustomization whose source is the tenant's own repo (its paths are not in this repo).
- argocd: AppProject + Applications over kustomize overlays (strategic-merge and JSON 6902 patches) and a
  local Helm chart with per-environment values.
- service: a service's own repo: its Helm chart and kustomize deploy folders (base + overlays).

Defects use the corpus format (tests/defects/corpus.py): an edit's `old` occurs exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

from defects.corpus import Defect


@dataclass(frozen=True)
class Repo:
    name: str
    files: dict[str, str]
    defects: tuple[Defect, ...]


# --------------------------------------------------------------------------------------- flux monorepo

_GOTK_SYNC = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  secretRef:
    name: flux-system
  url: ssh://git@github.com/example/fleet
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 10m0s
  path: ./clusters/{cluster}
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""

_INFRA_KS = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: infra-controllers
  namespace: flux-system
spec:
  interval: 1h
  retryInterval: 1m
  timeout: 5m
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./infrastructure/controllers
  prune: true
  wait: true
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
  retryInterval: 1m
  timeout: 5m
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./infrastructure/configs
  prune: true
"""

_APPS_KS = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m0s
  dependsOn:
    - name: infra-configs
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./apps/{env}
  prune: true
  wait: true
  timeout: 5m0s
"""

FLUX_MONOREPO: dict[str, str] = {
    "clusters/staging/flux-system/gotk-sync.yaml": _GOTK_SYNC.format(cluster="staging"),
    "clusters/staging/flux-system/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - gotk-sync.yaml
""",
    "clusters/staging/infrastructure.yaml": _INFRA_KS,
    "clusters/staging/apps.yaml": _APPS_KS.format(env="staging"),
    "clusters/staging/artifacts.yaml": """\
apiVersion: source.extensions.fluxcd.io/v1beta1
kind: ArtifactGenerator
metadata:
  name: podinfo-chart
  namespace: flux-system
spec:
  sources:
    - alias: fleet
      kind: GitRepository
      name: flux-system
  artifacts:
    - name: podinfo-chart
      copy:
        - from: "@fleet/charts/podinfo/**"
          to: "@artifact/"
""",
    "clusters/production/flux-system/gotk-sync.yaml": _GOTK_SYNC.format(cluster="production"),
    "clusters/production/flux-system/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - gotk-sync.yaml
""",
    "clusters/production/infrastructure.yaml": _INFRA_KS,
    "clusters/production/apps.yaml": _APPS_KS.format(env="production"),
    "infrastructure/controllers/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - cert-manager.yaml
""",
    "infrastructure/controllers/cert-manager.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: cert-manager
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: cert-manager
  namespace: cert-manager
spec:
  interval: 24h
  url: https://charts.jetstack.io
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: cert-manager
  namespace: cert-manager
spec:
  interval: 30m
  chart:
    spec:
      chart: cert-manager
      version: "1.x"
      sourceRef:
        kind: HelmRepository
        name: cert-manager
        namespace: cert-manager
      interval: 12h
  install:
    crds: Create
  upgrade:
    crds: CreateReplace
  values:
    crds:
      enabled: true
""",
    "infrastructure/configs/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - cluster-issuers.yaml
""",
    "infrastructure/configs/cluster-issuers.yaml": """\
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: letsencrypt
spec:
  acme:
    email: fluxcdbot@users.noreply.github.com
    server: https://acme-staging-v02.api.letsencrypt.org/directory
    privateKeySecretRef:
      name: letsencrypt-nginx
    solvers:
      - http01:
          ingress:
            ingressClassName: nginx
""",
    "apps/base/podinfo/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: podinfo
resources:
  - namespace.yaml
  - repository.yaml
  - release.yaml
""",
    "apps/base/podinfo/namespace.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: podinfo
""",
    "apps/base/podinfo/repository.yaml": """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: podinfo
spec:
  interval: 5m
  url: https://stefanprodan.github.io/podinfo
""",
    "apps/base/podinfo/release.yaml": """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
spec:
  releaseName: podinfo
  chart:
    spec:
      chart: podinfo
      sourceRef:
        kind: HelmRepository
        name: podinfo
  interval: 50m
  install:
    remediation:
      retries: 3
  values:
    redis:
      enabled: true
      repository: public.ecr.aws/docker/library/redis
      tag: 7.0.6
    ingress:
      enabled: true
      className: nginx
""",
    "apps/base/podinfo-local/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - release.yaml
""",
    "apps/base/podinfo-local/release.yaml": """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo-local
  namespace: podinfo
spec:
  interval: 10m
  chartRef:
    kind: ExternalArtifact
    name: podinfo-chart
    namespace: flux-system
  values:
    replicaCount: 1
""",
    "apps/staging/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base/podinfo
  - ../base/podinfo-local
patches:
  - path: podinfo-values.yaml
    target:
      kind: HelmRelease
      name: podinfo
""",
    # A patch: standalone it lacks spec.chart (required); only the patched result is checked.
    "apps/staging/podinfo-values.yaml": """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: podinfo
spec:
  chart:
    spec:
      version: ">=1.0.0-alpha"
  test:
    enable: true
  values:
    ingress:
      hosts:
        - host: podinfo.staging
""",
    "apps/production/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base/podinfo
patches:
  - path: podinfo-values.yaml
""",
    "apps/production/podinfo-values.yaml": """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: podinfo
spec:
  chart:
    spec:
      version: ">=1.0.0"
  values:
    ingress:
      hosts:
        - host: podinfo.production
""",
    "charts/podinfo/Chart.yaml": """\
apiVersion: v2
name: podinfo
description: A local copy of a tiny chart that the ArtifactGenerator packages
version: 0.1.0
appVersion: "6.7.0"
""",
    "charts/podinfo/values.yaml": "replicaCount: 1\n",
    "charts/podinfo/templates/configmap.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  replicas: {{ .Values.replicaCount | quote }}
""",
}

_RELEASE = "apps/base/podinfo/release.yaml"
FLUX_MONOREPO_DEFECTS: tuple[Defect, ...] = (
    Defect("hr-wrong-type", ((_RELEASE, "      retries: 3", "      retries: three"),), "schema", _RELEASE,
           "spec.install.remediation.retries"),
    Defect("hr-unknown-field", ((_RELEASE, "  releaseName: podinfo\n", "  releaseName: podinfo\n  timout: 5m\n"),),
           "schema", _RELEASE, "spec.timout", "unknown field"),
    Defect("missing-kustomize-resource", (("apps/base/podinfo/kustomization.yaml", "- repository.yaml",
                                           "- repositories.yaml"),), "kustomize",
           "apps/base/podinfo/kustomization.yaml", "resources", "repositories.yaml"),
    Defect("misspelled-dependson", (("clusters/staging/apps.yaml", "- name: infra-configs", "- name: infra-config"),),
           "xref", "clusters/staging/apps.yaml", "spec.dependsOn[0].name", "did you mean"),
    Defect("patch-makes-invalid", (("apps/staging/podinfo-values.yaml", "enable: true", "enable: sure"),), "schema",
           "apps/staging/podinfo-values.yaml", "spec.test.enable"),
    Defect("external-artifact-misnamed", (("apps/base/podinfo-local/release.yaml", "name: podinfo-chart",
                                           "name: podinfo-charts"),), "xref",
           "apps/base/podinfo-local/release.yaml", "spec.chartRef.name", "podinfo-chart"),
)

# ----------------------------------------------------------------------------------------- multi-tenant

_TENANT_KS = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {name}
  namespace: flux-system
spec:
  {depends}interval: 5m
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./{path}
  prune: true
"""

MULTI_TENANT: dict[str, str] = {
    # clusters/*/flux-system is not committed: `flux bootstrap` created it in the cluster.
    "clusters/staging/infrastructure.yaml": _TENANT_KS.format(name="infrastructure", depends="",
                                                              path="infrastructure"),
    "clusters/staging/tenants.yaml": _TENANT_KS.format(
        name="tenants", depends="dependsOn:\n    - name: infrastructure\n  ", path="tenants/staging"),
    "clusters/production/infrastructure.yaml": _TENANT_KS.format(name="infrastructure", depends="",
                                                                 path="infrastructure"),
    "clusters/production/tenants.yaml": _TENANT_KS.format(
        name="tenants", depends="dependsOn:\n    - name: infrastructure\n  ", path="tenants/production"),
    "infrastructure/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ingress-nginx.yaml
""",
    "infrastructure/ingress-nginx.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: ingress-nginx
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: ingress-nginx
  namespace: ingress-nginx
spec:
  interval: 24h
  url: https://kubernetes.github.io/ingress-nginx
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: ingress-nginx
  namespace: ingress-nginx
spec:
  interval: 30m
  chart:
    spec:
      chart: ingress-nginx
      version: "*"
      sourceRef:
        kind: HelmRepository
        name: ingress-nginx
  install:
    remediation:
      retries: 3
  values:
    controller:
      service:
        type: LoadBalancer
""",
    "tenants/base/dev-team/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: apps
resources:
  - rbac.yaml
  - sync.yaml
""",
    "tenants/base/dev-team/rbac.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: apps
  labels:
    toolkit.fluxcd.io/tenant: dev-team
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: dev-team
  namespace: apps
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: dev-team-reconciler
  namespace: apps
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: User
    name: gotk:apps:reconciler
  - kind: ServiceAccount
    name: dev-team
    namespace: apps
""",
    "tenants/base/dev-team/sync.yaml": """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: dev-team
  namespace: apps
spec:
  interval: 1m
  url: https://github.com/example/dev-team-apps
  ref:
    branch: main
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: dev-team
  namespace: apps
spec:
  serviceAccountName: dev-team
  interval: 5m
  sourceRef:
    kind: GitRepository
    name: dev-team
  path: ./deploy
  prune: true
""",
    "tenants/staging/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base/dev-team
patches:
  - path: dev-team-patch.yaml
    target:
      kind: Kustomization
""",
    # Patch: the path lives in the tenant's own repo, not this one.
    "tenants/staging/dev-team-patch.yaml": """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: dev-team
  namespace: apps
spec:
  path: ./deploy/staging
""",
    "tenants/production/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base/dev-team
patches:
  - path: dev-team-patch.yaml
    target:
      kind: Kustomization
""",
    "tenants/production/dev-team-patch.yaml": """\
- op: add
  path: /spec/path
  value: ./deploy/production
""",
}

MULTI_TENANT_DEFECTS: tuple[Defect, ...] = (
    Defect("misspelled-dependson", (("clusters/staging/tenants.yaml", "- name: infrastructure",
                                     "- name: infrastucture"),), "xref", "clusters/staging/tenants.yaml",
           "spec.dependsOn[0].name"),
    Defect("hr-wrong-type", (("infrastructure/ingress-nginx.yaml", "retries: 3", "retries: [3]"),), "schema",
           "infrastructure/ingress-nginx.yaml", "spec.install.remediation.retries"),
    Defect("tenant-unknown-field", (("tenants/base/dev-team/sync.yaml", "  serviceAccountName: dev-team\n",
                                     "  serviceAccountName: dev-team\n  serviceAcountName: dev-team\n"),), "schema",
           "tenants/base/dev-team/sync.yaml", "spec.serviceAcountName", "unknown field"),
    Defect("missing-kustomize-resource", (("tenants/staging/kustomization.yaml", "../base/dev-team",
                                           "../base/dev-teams"),), "kustomize", "tenants/staging/kustomization.yaml"),
    Defect("patch-makes-invalid", (("tenants/staging/dev-team-patch.yaml", "  path: ./deploy/staging\n",
                                    "  path: ./deploy/staging\n  prune: maybe\n"),), "schema",
           "tenants/staging/dev-team-patch.yaml", "spec.prune"),
    Defect("json-patch-makes-invalid", (("tenants/production/dev-team-patch.yaml", "value: ./deploy/production",
                                         "value: 42"),), "schema", "tenants/production/dev-team-patch.yaml",
           "spec.path"),
    Defect("misspelled-bootstrap-source", (("clusters/staging/infrastructure.yaml", "    name: flux-system",
                                            "    name: flux-sytem"),), "xref",
           "clusters/staging/infrastructure.yaml", "spec.sourceRef.name", "did you mean 'flux-system'"),
)

# ---------------------------------------------------------------------------------------------- argo cd

_APP = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook-{env}
  namespace: argocd
spec:
  project: team
  source:
    repoURL: https://github.com/example/gitops.git
    targetRevision: HEAD
    path: apps/guestbook/overlays/{env}
  destination:
    server: https://kubernetes.default.svc
    namespace: guestbook-{env}
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
      - CreateNamespace=true
"""

ARGOCD: dict[str, str] = {
    "argocd/projects/team.yaml": """\
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: team
  namespace: argocd
spec:
  description: The team's applications
  sourceRepos:
    - https://github.com/example/gitops.git
  destinations:
    - server: https://kubernetes.default.svc
      namespace: guestbook-*
    - server: https://kubernetes.default.svc
      namespace: redis
  clusterResourceWhitelist:
    - group: ""
      kind: Namespace
""",
    "argocd/apps/guestbook-dev.yaml": _APP.format(env="dev"),
    "argocd/apps/guestbook-prod.yaml": _APP.format(env="prod"),
    "argocd/apps/redis.yaml": """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: redis
  namespace: argocd
spec:
  project: team
  source:
    repoURL: https://github.com/example/gitops.git
    targetRevision: HEAD
    path: charts/redis
    helm:
      valueFiles:
        - values-prod.yaml
  destination:
    server: https://kubernetes.default.svc
    namespace: redis
""",
    "apps/guestbook/base/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
labels:
  - pairs:
      app.kubernetes.io/name: guestbook
resources:
  - deployment.yaml
  - service.yaml
""",
    "apps/guestbook/base/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: guestbook-ui
spec:
  replicas: 1
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      app: guestbook-ui
  template:
    metadata:
      labels:
        app: guestbook-ui
    spec:
      containers:
        - image: gcr.io/heptio-images/ks-guestbook-demo:0.2
          name: guestbook-ui
          ports:
            - containerPort: 80
""",
    "apps/guestbook/base/service.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: guestbook-ui
spec:
  ports:
    - port: 80
      targetPort: 80
  selector:
    app: guestbook-ui
""",
    "apps/guestbook/overlays/dev/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
patches:
  - path: replicas.yaml
""",
    "apps/guestbook/overlays/dev/replicas.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: guestbook-ui
spec:
  replicas: 2
""",
    "apps/guestbook/overlays/prod/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
patchesJson6902:
  - target:
      group: apps
      version: v1
      kind: Deployment
      name: guestbook-ui
    path: replicas.yaml
""",
    "apps/guestbook/overlays/prod/replicas.yaml": """\
- op: replace
  path: /spec/replicas
  value: 4
""",
    "charts/redis/Chart.yaml": """\
apiVersion: v2
name: redis
description: A small Redis for the guestbook
type: application
version: 0.3.0
appVersion: "7.4"
""",
    "charts/redis/values.yaml": """\
image: redis:7.4-alpine
replicas: 1
""",
    "charts/redis/values-prod.yaml": "replicas: 2\n",
    "charts/redis/templates/statefulset.yaml": """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .Release.Name }}
  labels:
    app.kubernetes.io/name: redis
spec:
  serviceName: {{ .Release.Name }}
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: redis
  template:
    metadata:
      labels:
        app.kubernetes.io/name: redis
    spec:
      containers:
        - name: redis
          image: {{ .Values.image | quote }}
          ports:
            - containerPort: 6379
              name: redis
""",
}

ARGOCD_DEFECTS: tuple[Defect, ...] = (
    Defect("app-missing-path", (("argocd/apps/guestbook-dev.yaml", "path: apps/guestbook/overlays/dev",
                                 "path: apps/guestbook/overlays/qa"),), "xref", "argocd/apps/guestbook-dev.yaml",
           "spec.source.path"),
    Defect("app-unknown-field", (("argocd/apps/redis.yaml", "    targetRevision: HEAD\n",
                                  "    targetRevision: HEAD\n    targetRevison: main\n"),), "schema",
           "argocd/apps/redis.yaml", "spec.source.targetRevison", "unknown field"),
    Defect("patch-makes-invalid", (("apps/guestbook/overlays/dev/replicas.yaml", "replicas: 2", "replicas: two"),),
           "schema", "apps/guestbook/overlays/dev/replicas.yaml", "spec.replicas"),
    Defect("json-patch-makes-invalid", (("apps/guestbook/overlays/prod/replicas.yaml", "value: 4", "value: four"),),
           "schema", "apps/guestbook/overlays/prod/replicas.yaml", "spec.replicas"),
    Defect("missing-kustomize-resource", (("apps/guestbook/base/kustomization.yaml", "- service.yaml",
                                           "- svc.yaml"),), "kustomize", "apps/guestbook/base/kustomization.yaml",
           "resources", "svc.yaml"),
    Defect("app-missing-values-file", (("argocd/apps/redis.yaml", "- values-prod.yaml", "- values-production.yaml"),),
           "xref", "argocd/apps/redis.yaml", "spec.source.helm.valueFiles[0]"),
)

# ------------------------------------------------------------------------------------------ service repo

SERVICE: dict[str, str] = {
    "chart/orders/Chart.yaml": """\
apiVersion: v2
name: orders
description: The orders service
type: application
version: 1.4.0
appVersion: "1.4.0"
""",
    "chart/orders/values.yaml": """\
image:
  repository: ghcr.io/example/orders
  tag: ""
replicaCount: 2
service:
  port: 8080
""",
    "chart/orders/templates/_helpers.tpl": """\
{{- define "orders.labels" -}}
app.kubernetes.io/name: orders
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
""",
    "chart/orders/templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels:
    {{- include "orders.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      {{- include "orders.labels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "orders.labels" . | nindent 8 }}
    spec:
      containers:
        - name: orders
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
          ports:
            - name: http
              containerPort: {{ .Values.service.port }}
""",
    "chart/orders/templates/service.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
  labels:
    {{- include "orders.labels" . | nindent 4 }}
spec:
  selector:
    {{- include "orders.labels" . | nindent 4 }}
  ports:
    - name: http
      port: 80
      targetPort: http
""",
    "deploy/base/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
  - service.yaml
images:
  - name: ghcr.io/example/orders
    newTag: 1.4.0
""",
    "deploy/base/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
spec:
  replicas: 1
  selector:
    matchLabels:
      app: orders
  template:
    metadata:
      labels:
        app: orders
    spec:
      containers:
        - name: orders
          image: ghcr.io/example/orders
          ports:
            - name: http
              containerPort: 8080
          resources:
            requests:
              cpu: 50m
              memory: 64Mi
""",
    "deploy/base/service.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: orders
spec:
  selector:
    app: orders
  ports:
    - name: http
      port: 80
      targetPort: http
""",
    "deploy/overlays/staging/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: orders-staging
resources:
  - ../../base
patches:
  - path: resources.yaml
""",
    "deploy/overlays/staging/resources.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
spec:
  template:
    spec:
      containers:
        - name: orders
          resources:
            limits:
              memory: 128Mi
""",
    "deploy/overlays/production/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: orders
resources:
  - ../../base
patches:
  - path: replicas.yaml
""",
    "deploy/overlays/production/replicas.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
spec:
  replicas: 3
""",
}

SERVICE_DEFECTS: tuple[Defect, ...] = (
    Defect("deployment-unknown-field", (("deploy/base/deployment.yaml", "          image: ghcr.io/example/orders\n",
                                         "          image: ghcr.io/example/orders\n"
                                         "          imagePullPolicyy: Always\n"),),
           "schema", "deploy/base/deployment.yaml", "spec.template.spec.containers[0].imagePullPolicyy",
           "unknown field"),
    Defect("missing-kustomize-resource", (("deploy/base/kustomization.yaml", "- service.yaml", "- services.yaml"),),
           "kustomize", "deploy/base/kustomization.yaml", "resources", "services.yaml"),
    Defect("patch-makes-invalid", (("deploy/overlays/production/replicas.yaml", "replicas: 3", "replicas: '3'"),),
           "schema", "deploy/overlays/production/replicas.yaml", "spec.replicas"),
    Defect("patch-unknown-field", (("deploy/overlays/staging/resources.yaml", "            limits:",
                                    "            limitz:"),), "schema", "deploy/overlays/staging/resources.yaml",
           "spec.template.spec.containers[0].resources.limitz", "unknown field"),
)


# --------------------------------------------------------------------------------------- home lab
# A home-lab Flux repo: YAML that Go reads and PyYAML's YAML 1.1 loader rejects (`matchType: =`, an anchor
# defined twice, application tags in an app config a configMapGenerator ships, `!!python/name:` in mkdocs.yml).

HOMELAB: dict[str, str] = {
    "clusters/home/flux-system/gotk-sync.yaml": _GOTK_SYNC.format(cluster="home"),
    "clusters/home/apps.yaml": """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./apps/home
  prune: true
""",
    "apps/home/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base/monitoring
  - ../base/recyclarr
""",
    "apps/base/monitoring/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: monitoring
resources:
  - namespace.yaml
  - alertmanagerconfig.yaml
  - tls.yaml
""",
    "apps/base/monitoring/namespace.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: monitoring
""",
    "apps/base/monitoring/alertmanagerconfig.yaml": """\
apiVersion: monitoring.coreos.com/v1alpha1
kind: AlertmanagerConfig
metadata:
  name: home
spec:
  route:
    receiver: pushover
    groupBy: [alertname]
    matchers:
      - name: alertname
        matchType: =
        value: Watchdog
      - name: severity
        matchType: =~
        value: info|none
  receivers:
    - name: "null"
    - name: pushover
""",
    "apps/base/monitoring/tls.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: tls-keys
data:
  crt: &key tls.crt
  crtName: *key
  key: &key tls.key
  keyName: *key
  note: "why? cert-manager writes both keys"
""",
    "apps/base/recyclarr/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: media
configMapGenerator:
  - name: recyclarr
    files:
      - recyclarr.yml
""",
    "apps/base/recyclarr/recyclarr.yml": """\
sonarr:
  series:
    base_url: http://sonarr.media.svc:8989
    api_key: !env_var SONARR_API_KEY
    quality_definition:
      type: series
""",
    "mkdocs.yml": """\
site_name: Home lab
theme:
  name: material
markdown_extensions:
  - pymdownx.emoji:
      emoji_index: !!python/name:material.extensions.emoji.twemoji
      emoji_generator: !!python/name:material.extensions.emoji.to_svg
""",
}

HOMELAB_DEFECTS: tuple[Defect, ...] = (
    Defect("matcher-unknown-field", (("apps/base/monitoring/alertmanagerconfig.yaml",
                                      "        matchType: =\n", "        matchTyp: =\n"),),
           "schema", "apps/base/monitoring/alertmanagerconfig.yaml", None, "matchTyp"),
    Defect("duplicate-key-beside-anchors", (("apps/base/monitoring/tls.yaml", "  keyName: *key\n",
                                             "  keyName: *key\n  crt: again\n"),),
           "yaml", "apps/base/monitoring/tls.yaml", None, "duplicate key"),
)


# --------------------------------------------------------------------------------------- platform (Argo CD)
# An Argo CD repo with Ansible roles (Jinja templates), tool configs and example docs beside its manifests: only
# what its Applications deploy is judged as manifests; .sourceignore'd and unreferenced files at most a note.

PLATFORM: dict[str, str] = {
    "bootstrap/root.yaml": """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: root
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://git.example.com/platform.git
    targetRevision: main
    path: apps
    directory:
      recurse: true
  destination:
    server: https://kubernetes.default.svc
    namespace: argocd
""",
    "apps/guestbook.yaml": """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://git.example.com/platform.git
    targetRevision: main
    path: manifests/guestbook
  destination:
    server: https://kubernetes.default.svc
    namespace: guestbook
""",
    "manifests/guestbook/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: guestbook
spec:
  selector:
    matchLabels:
      app: guestbook
  template:
    metadata:
      labels:
        app: guestbook
    spec:
      containers:
        - name: guestbook
          image: ghcr.io/example/guestbook:1.0.0
          ports:
            - containerPort: 8080
""",
    "manifests/guestbook/service.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: guestbook
spec:
  selector:
    app: guestbook
  ports:
    - port: 80
      targetPort: 8080
""",
    "ansible/roles/metallb/templates/pool.yaml": """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: default
  namespace: metallb-system
spec:
  addresses:
{% for range in metallb_ranges %}
    - {{ range }}
{% endfor %}
""",
    "ansible/roles/metallb/tasks/main.yml": """\
- name: Apply the address pool
  kubernetes.core.k8s:
    state: present
    template: pool.yaml
""",
    "skaffold.yaml": """\
apiVersion: skaffold/v4beta11
kind: Config
build:
  artifacts:
    - image: ghcr.io/example/guestbook
""",
    "docs/examples/widget.yaml": """\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: example
""",
    "examples/widget.yaml": """\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: example
""",
    ".sourceignore": "docs/\n",
    ".gitlab-ci.yml": "stages: [lint]\nlint:\n  stage: lint\n  script: [make lint]\n",
}

PLATFORM_DEFECTS: tuple[Defect, ...] = (
    Defect("deployed-unknown-field", (("manifests/guestbook/deployment.yaml", "            - containerPort: 8080\n",
                                       "            - containerPort: 8080\n              protocl: TCP\n"),),
           "schema", "manifests/guestbook/deployment.yaml", "spec.template.spec.containers[0].ports[0].protocl",
           "unknown field"),
)

REPOS: tuple[Repo, ...] = (
    Repo("flux-monorepo", FLUX_MONOREPO, FLUX_MONOREPO_DEFECTS),
    Repo("multi-tenant", MULTI_TENANT, MULTI_TENANT_DEFECTS),
    Repo("argocd", ARGOCD, ARGOCD_DEFECTS),
    Repo("service", SERVICE, SERVICE_DEFECTS),
    Repo("homelab", HOMELAB, HOMELAB_DEFECTS),
    Repo("platform", PLATFORM, PLATFORM_DEFECTS),
)
