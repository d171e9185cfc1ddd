{{/* Names and labels. */}}
{{- define "streamproc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamproc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "streamproc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamproc.labels" -}}
helm.sh/chart: {{ include "streamproc.chart" . }}
{{ include "streamproc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "streamproc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamproc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streamproc.workerName" -}}
{{- printf "%s-worker" (include "streamproc.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamproc.forwarderName" -}}
{{- printf "%s-forwarder" (include "streamproc.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamproc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "streamproc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "streamproc.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding the SASL password: kafkaAuth.existingSecret, or the chart's own. */}}
{{- define "streamproc.secretName" -}}
{{- if .Values.kafkaAuth.existingSecret -}}
{{- .Values.kafkaAuth.existingSecret -}}
{{- else if .Values.kafkaAuth.password -}}
{{- printf "%s-kafka" (include "streamproc.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The SASL username: kafkaAuth.username, else [kafka.client] sasl.username. */}}
{{- define "streamproc.saslUsername" -}}
{{- $client := .Values.config.kafka.client | default dict -}}
{{- default (index $client "sasl.username" | default "") .Values.kafkaAuth.username -}}
{{- end -}}

{{/* ---------------------------------------------------------------------------------
     monitor.toml from .Values.config. A small TOML writer: in each table the plain keys
     first, then its sub-tables as [a.b] headers; strings as JSON strings (valid TOML basic
     strings), integral numbers as integers (Helm reads every YAML number as a float),
     booleans, lists of those. Keys that are not bare TOML keys are quoted.
     --------------------------------------------------------------------------------- */}}
{{- define "streamproc.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "streamproc.toml.value" -}}
{{- if kindIs "string" . -}}
{{ toJson . }}
{{- else if kindIs "bool" . -}}
{{ . }}
{{- else if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) -}}
{{ . }}
{{- else if kindIs "slice" . -}}
[{{- range $i, $e := . -}}{{- if $i }}, {{ end -}}{{- include "streamproc.toml.value" $e -}}{{- end -}}]
{{- else if kindIs "map" . -}}
{ {{- $first := true -}}{{- range $k, $v := . -}}{{- if not $first }}, {{ end -}}{{- $first = false -}}{{ include "streamproc.toml.key" $k }} = {{ include "streamproc.toml.value" $v }}{{- end -}} }
{{- else -}}
{{- fail (printf "config: cannot write %v (%s) to TOML" . (kindOf .)) -}}
{{- end -}}
{{- end -}}

{{- define "streamproc.toml.table" -}}
{{- $prefix := .prefix -}}
{{- range $k, $v := .table }}
{{- if not (kindIs "map" $v) }}
{{ include "streamproc.toml.key" $k }} = {{ include "streamproc.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .table }}
{{- if and (kindIs "map" $v) (not (empty $v)) }}
{{- $name := include "streamproc.toml.key" $k }}
{{- if $prefix }}{{ $name = printf "%s.%s" $prefix $name }}{{ end }}

[{{ $name }}]
{{- include "streamproc.toml.table" (dict "table" $v "prefix" $name) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The config the pods read: .Values.config with [metrics] and [references] set. */}}
{{- define "streamproc.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $_ := set $config "metrics" (dict "host" "0.0.0.0" "port" .Values.metrics.port) -}}
{{- $refs := dict -}}
{{- range $model, $file := .Values.references.models -}}
{{- $_ := set $refs $model (printf "%s/%s" (trimSuffix "/" $.Values.references.mountPath) $file) -}}
{{- end -}}
{{- $_ := set $config "references" $refs -}}
{{- toJson $config -}}
{{- end -}}

{{- define "streamproc.monitorToml" -}}
# monitor.toml rendered by the streamproc Helm chart from .Values.config
# (every key: docs/monitor.example.toml). The pod name sets [kafka] instance_id
# (STREAMPROC_KAFKA_INSTANCE_ID); the SASL password comes from a Secret.
{{- include "streamproc.toml.table" (dict "table" (include "streamproc.config" . | fromJson) "prefix" "") }}
{{- end -}}

{{/* ---------------------------------------------------------------------------------
     Pod parts shared by the worker and the forwarder.
     --------------------------------------------------------------------------------- */}}
{{- define "streamproc.kafkaEnv" -}}
{{- $secret := .secret -}}
{{- if .username }}
- name: STREAMPROC_KAFKA_SASL_USERNAME
  value: {{ .username | quote }}
{{- end }}
{{- if $secret }}
- name: STREAMPROC_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .passwordKey }}
{{- end }}
{{- range $name, $key := .root.Values.kafkaAuth.extraSecretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ required "kafkaAuth.extraSecretEnv needs kafkaAuth.existingSecret (or password)" $secret }}
      key: {{ $key }}
{{- end }}
{{- if .root.Values.kafkaAuth.caSecret }}
- name: STREAMPROC_KAFKA_SSL_CA_LOCATION
  value: /etc/streamproc/kafka-ca/{{ .root.Values.kafkaAuth.caKey }}
{{- end }}
{{- end -}}

{{- define "streamproc.configVolumeMounts" -}}
- name: config
  mountPath: /etc/streamproc/monitor.toml
  subPath: monitor.toml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.kafkaAuth.caSecret }}
- name: kafka-ca
  mountPath: /etc/streamproc/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "streamproc.configVolumes" -}}
- name: config
  configMap:
    name: {{ include "streamproc.fullname" . }}-config
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.worker.tmpSizeLimit }}
{{- if .Values.kafkaAuth.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafkaAuth.caSecret }}
    items:
      - key: {{ .Values.kafkaAuth.caKey }}
        path: {{ .Values.kafkaAuth.caKey }}
{{- end }}
{{- end -}}

{{/* KEDA's SASL mode and TLS switch, from keda.sasl/tls or config.kafka.client. */}}
{{- define "streamproc.kedaSasl" -}}
{{- $client := .Values.config.kafka.client | default dict -}}
{{- $mechanism := upper (toString (index $client "sasl.mechanism" | default "")) -}}
{{- if .Values.keda.sasl -}}{{ .Values.keda.sasl }}
{{- else if eq $mechanism "SCRAM-SHA-512" -}}scram_sha512
{{- else if eq $mechanism "SCRAM-SHA-256" -}}scram_sha256
{{- else if eq $mechanism "PLAIN" -}}plaintext
{{- end -}}
{{- end -}}

{{- define "streamproc.kedaTls" -}}
{{- $client := .Values.config.kafka.client | default dict -}}
{{- $protocol := upper (toString (index $client "security.protocol" | default "")) -}}
{{- if .Values.keda.tls -}}{{ .Values.keda.tls }}
{{- else if or (eq $protocol "SSL") (eq $protocol "SASL_SSL") -}}enable
{{- end -}}
{{- end -}}

{{/* Checks that fail the render with a message instead of a broken deployment. */}}
{{- define "streamproc.validate" -}}
{{- $partitions := int .Values.predictionsPartitions -}}
{{- if lt $partitions 1 -}}
{{- fail "predictionsPartitions must be >= 1 (the partitions of the predictions topic)" -}}
{{- end -}}
{{- if and (not .Values.keda.enabled) (gt (int .Values.worker.replicas) $partitions) -}}
{{- fail (printf "worker.replicas (%d) exceeds predictionsPartitions (%d): the extra workers would sit idle" (int .Values.worker.replicas) $partitions) -}}
{{- end -}}
{{- if .Values.keda.enabled -}}
{{- $max := int (default $partitions .Values.keda.maxReplicaCount) -}}
{{- if gt $max $partitions -}}
{{- fail (printf "keda.maxReplicaCount (%d) exceeds predictionsPartitions (%d)" $max $partitions) -}}
{{- end -}}
{{- if gt (int .Values.keda.minReplicaCount) $max -}}
{{- fail "keda.minReplicaCount exceeds keda.maxReplicaCount" -}}
{{- end -}}
{{- end -}}
{{- $sources := 0 -}}
{{- range $s := list .Values.references.configMap .Values.references.secret .Values.references.existingClaim -}}
{{- if $s }}{{ $sources = add1 $sources }}{{ end -}}
{{- end -}}
{{- if .Values.references.initContainer.enabled }}{{ $sources = add1 $sources }}{{ end -}}
{{- if gt $sources 1 -}}
{{- fail "references: set only one of configMap, secret, existingClaim, initContainer.enabled" -}}
{{- end -}}
{{- if and .Values.references.models (eq $sources 0) -}}
{{- fail "references.models is set but no source holds the files: set references.configMap, secret, existingClaim or initContainer" -}}
{{- end -}}
{{- if and .Values.references.initContainer.enabled (not .Values.references.initContainer.image) -}}
{{- fail "references.initContainer.image is required when references.initContainer.enabled" -}}
{{- end -}}
{{- if hasKey (.Values.config.kafka | default dict) "instance_id" -}}
{{- if .Values.config.kafka.instance_id -}}
{{- fail "config.kafka.instance_id: leave it out, each pod's name is its instance id" -}}
{{- end -}}
{{- end -}}
{{- if hasKey (.Values.config.kafka.client | default dict) "sasl.password" -}}
{{- fail "config.kafka.client: no sasl.password here (it would land in a ConfigMap); use kafkaAuth.existingSecret or kafkaAuth.password" -}}
{{- end -}}
{{- if and .Values.kafkaAuth.existingSecret .Values.kafkaAuth.password -}}
{{- fail "kafkaAuth: set existingSecret or password, not both" -}}
{{- end -}}
{{- end -}}
