{{/*
Names, labels and the shared pod template. Helper names are chart-agnostic ("chart.*") so the
templates stay identical across services; only Chart.yaml and values.yaml carry the service name.
*/}}

{{- define "chart.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters (DNS label). The release name is used alone
when it already contains the chart name.
*/}}
{{- define "chart.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "chart.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chart.labels" -}}
helm.sh/chart: {{ include "chart.chart" . }}
{{ include "chart.selectorLabels" . }}
app.kubernetes.io/version: {{ include "chart.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "chart.name" . }}
{{- end }}

{{/* Labels for hook pods (migration, helm test): no app.kubernetes.io/name, so Services and PDBs skip them. */}}
{{- define "chart.hookLabels" -}}
helm.sh/chart: {{ include "chart.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "chart.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "chart.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chart.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chart.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chart.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The deployed version: the image tag, else the chart's appVersion. Labels allow no "+". */}}
{{- define "chart.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | replace "+" "_" | trunc 63 -}}
{{- end }}

{{- define "chart.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "chart.otelServiceName" -}}
{{- default (include "chart.name" .) .Values.otel.serviceName }}
{{- end }}

{{/* OTLP endpoint: the pod-local sidecar when enabled, else the cluster gateway; port by protocol. */}}
{{- define "chart.otlpEndpoint" -}}
{{- $port := ternary 4318 4317 (eq .Values.otel.protocol "http/protobuf") -}}
{{- $host := ternary "localhost" .Values.otel.gateway.host .Values.otel.sidecar.enabled -}}
{{- printf "http://%s:%d" $host $port -}}
{{- end }}

{{/*
Service configuration as environment variables (a YAML map). The ConfigMap publishes it for the
workload; the migration hook inlines it (a pre-install hook runs before the ConfigMap exists).
*/}}
{{- define "chart.configEnv" -}}
PORT: {{ .Values.containerPort | quote }}
RUST_LOG: {{ .Values.config.logLevel | quote }}
SHUTDOWN_DELAY_SECONDS: {{ .Values.config.shutdownDelaySeconds | quote }}
SERVICE_VERSION: {{ default .Chart.AppVersion .Values.image.tag | quote }}
DEPLOYMENT_ENVIRONMENT: {{ .Values.environment | quote }}
OTEL_SDK_DISABLED: {{ (not .Values.otel.enabled) | toString | quote }}
OTEL_SERVICE_NAME: {{ include "chart.otelServiceName" . | quote }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ include "chart.otlpEndpoint" . | quote }}
OTEL_EXPORTER_OTLP_PROTOCOL: {{ .Values.otel.protocol | quote }}
OTEL_PROPAGATORS: "tracecontext,baggage"
OTEL_TRACES_SAMPLER: {{ .Values.otel.sampler | quote }}
OTEL_TRACES_SAMPLER_ARG: {{ .Values.otel.samplerArg | quote }}
{{- range $key, $value := .Values.config.extraEnv }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Per-pod resource attributes from the downward API, plus any from values. */}}
{{- define "chart.podEnv" -}}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ include "chart.resourceAttributes" . | quote }}
{{- end }}

{{- define "chart.resourceAttributes" -}}
{{- $attributes := list "k8s.pod.name=$(K8S_POD_NAME)" "k8s.namespace.name=$(K8S_NAMESPACE)" "k8s.node.name=$(K8S_NODE_NAME)" -}}
{{- range $key, $value := .Values.otel.resourceAttributes }}
{{- $attributes = append $attributes (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $attributes -}}
{{- end }}

{{/* Pod template shared by the Deployment and the Argo Rollouts Rollout. */}}
{{- define "chart.podTemplate" -}}
metadata:
  annotations:
    # Roll pods when the configuration (or the collector sidecar's) changes.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if .Values.otel.sidecar.enabled }}
    checksum/otel-sidecar: {{ include (print $.Template.BasePath "/otel-sidecar-configmap.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.otel.operator.injectSdk }}
    instrumentation.opentelemetry.io/inject-sdk: {{ . | quote }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "chart.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  serviceAccountName: {{ include "chart.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automount }}
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- if .Values.otel.sidecar.enabled }}
  initContainers:
    # Native sidecar (restartPolicy: Always): starts before and stops after the service,
    # so the spans flushed at shutdown still reach a running collector.
    - name: otel-collector
      image: "{{ .Values.otel.sidecar.image.repository }}:{{ .Values.otel.sidecar.image.tag }}"
      imagePullPolicy: {{ .Values.otel.sidecar.image.pullPolicy }}
      restartPolicy: Always
      args: ["--config=/conf/config.yaml"]
      ports:
        - name: otlp-grpc
          containerPort: 4317
          protocol: TCP
        - name: otlp-http
          containerPort: 4318
          protocol: TCP
        {{- if .Values.serviceMonitor.enabled }}
        - name: metrics
          containerPort: {{ .Values.otel.sidecar.metricsPort }}
          protocol: TCP
        {{- end }}
        - name: otel-health
          containerPort: 13133
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /
          port: otel-health
      readinessProbe:
        httpGet:
          path: /
          port: otel-health
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.otel.sidecar.resources | nindent 8 }}
      volumeMounts:
        - name: otel-collector-config
          mountPath: /conf
          readOnly: true
  {{- end }}
  containers:
    - name: {{ .Chart.Name }}
      image: {{ include "chart.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "chart.fullname" . }}
      env:
        {{- include "chart.podEnv" . | nindent 8 }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      {{- with .Values.volumeMounts }}
      volumeMounts:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  {{- if or .Values.otel.sidecar.enabled .Values.volumes }}
  volumes:
    {{- if .Values.otel.sidecar.enabled }}
    - name: otel-collector-config
      configMap:
        name: {{ include "chart.fullname" . }}-otel-collector
    {{- end }}
    {{- with .Values.volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
