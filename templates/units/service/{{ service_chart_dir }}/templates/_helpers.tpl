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

{{/* The fleet's OTLP gateway, port by protocol (grpc 4317, http/protobuf 4318). */}}
{{- define "chart.gatewayEndpoint" -}}
{{- $port := ternary 4318 4317 (eq .Values.otel.protocol "http/protobuf") -}}
{{- printf "http://%s:%d" .Values.otel.gateway.host $port -}}
{{- end }}

{{/*
OTLP endpoint of the workload: the pod-local sidecar when enabled (127.0.0.1, the address its receivers
bind: "localhost" may resolve to ::1 first), else the gateway. Scheme always http: opentelemetry-otlp
treats a scheme-less endpoint as https.
*/}}
{{- define "chart.otlpEndpoint" -}}
{{- if .Values.otel.sidecar.enabled -}}
{{- printf "http://127.0.0.1:%d" (ternary 4318 4317 (eq .Values.otel.protocol "http/protobuf")) -}}
{{- else -}}
{{- include "chart.gatewayEndpoint" . -}}
{{- end -}}
{{- end }}

{{/*
Service configuration as environment variables (a YAML map), published by the ConfigMap (its checksum
rolls the pods). The migration hook inlines it (a pre-install hook runs before the ConfigMap exists).
*/}}
{{- define "chart.configEnv" -}}
PORT: {{ .Values.containerPort | quote }}
RUST_LOG: {{ .Values.config.logLevel | quote }}
SHUTDOWN_DELAY_SECONDS: {{ .Values.config.shutdownDelaySeconds | quote }}
SERVICE_VERSION: {{ include "chart.serviceVersion" . | quote }}
DEPLOYMENT_ENVIRONMENT: {{ .Values.environment | quote }}
{{- $reserved := list "PORT" "RUST_LOG" "SHUTDOWN_DELAY_SECONDS" "SERVICE_VERSION" "DEPLOYMENT_ENVIRONMENT" "K8S_POD_NAME" "K8S_NAMESPACE" "K8S_NODE_NAME" "OTEL_SDK_DISABLED" "OTEL_SERVICE_NAME" "OTEL_EXPORTER_OTLP_ENDPOINT" "OTEL_EXPORTER_OTLP_PROTOCOL" "OTEL_PROPAGATORS" "OTEL_TRACES_SAMPLER" "OTEL_TRACES_SAMPLER_ARG" "OTEL_RESOURCE_ATTRIBUTES" }}
{{- range $key, $value := .Values.config.extraEnv }}
{{- /* The chart sets these itself; from envFrom they would lose silently to the container's env. */}}
{{- if has $key $reserved }}
{{- fail (printf "config.extraEnv.%s is set by the chart from its own values; change those instead" $key) }}
{{- end }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "chart.serviceVersion" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end }}

{{/*
OpenTelemetry SDK variables as container `env` entries, not in the ConfigMap: the OpenTelemetry
Operator's inject-sdk webhook only skips variables already in `env` (it ignores envFrom), so from a
ConfigMap its Instrumentation would silently replace endpoint, sampler and service name while
OTEL_EXPORTER_OTLP_PROTOCOL stayed, e.g. gRPC sent to the gateway's HTTP port 4318.
Pass (dict "root" $ "endpoint" URL) to override the endpoint (the migration Job has no sidecar).
*/}}
{{- define "chart.otelEnv" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
- name: OTEL_SDK_DISABLED
  value: {{ (not $values.otel.enabled) | toString | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ include "chart.otelServiceName" $root | quote }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | default (include "chart.otlpEndpoint" $root) | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $values.otel.protocol | quote }}
- name: OTEL_PROPAGATORS
  value: "tracecontext,baggage"
- name: OTEL_TRACES_SAMPLER
  value: {{ $values.otel.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $values.otel.samplerArg | quote }}
{{- end }}

{{/*
Per-pod environment: downward API values, the OTel SDK variables, and OTEL_RESOURCE_ATTRIBUTES last
(it refers to the K8S_* variables, which must be defined before it). Takes the same dict as chart.otelEnv.
*/}}
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
{{ include "chart.otelEnv" . }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ include "chart.resourceAttributes" .root | quote }}
{{- end }}

{{/*
service.version and deployment.environment.name (current semantic conventions) ride on the resource of
every signal, as do the pod coordinates; otel.resourceAttributes may override any of them.
*/}}
{{- define "chart.resourceAttributes" -}}
{{- $attributes := dict "service.version" (include "chart.serviceVersion" .) "k8s.pod.name" "$(K8S_POD_NAME)" "k8s.namespace.name" "$(K8S_NAMESPACE)" "k8s.node.name" "$(K8S_NODE_NAME)" -}}
{{- with .Values.environment }}
{{- $_ := set $attributes "deployment.environment.name" . }}
{{- end }}
{{- range $key, $value := .Values.otel.resourceAttributes }}
{{- $_ := set $attributes $key $value }}
{{- end }}
{{- $pairs := list -}}
{{- range $key := keys $attributes | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $attributes $key)) }}
{{- end }}
{{- join "," $pairs -}}
{{- end }}

{{/* Pod template shared by the Deployment and the Argo Rollouts Rollout. */}}
{{- define "chart.podTemplate" -}}
{{- if ge (int .Values.config.shutdownDelaySeconds) (int .Values.terminationGracePeriodSeconds) }}
{{- fail "config.shutdownDelaySeconds must be below terminationGracePeriodSeconds: the kubelet would kill the service before it drains and flushes telemetry" }}
{{- end }}
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
        {{- include "chart.podEnv" (dict "root" .) | nindent 8 }}
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
