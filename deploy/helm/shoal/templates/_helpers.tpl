{{/*
Shared templates. Every per-service object is rendered from a "component": one entry of
.Values.services merged over .Values.defaults (see shoal.components), so that each template
ranges over the components and no service has its own copy of anything.
*/}}

{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shoal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "shoal.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "shoal.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "shoal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object of the release. */}}
{{- define "shoal.labels" -}}
helm.sh/chart: {{ include "shoal.chart" . }}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shoal
{{- end -}}

{{/*
The gRPC service of each Shoal service (its health-check name), as in the protos:
tests/unit/test_helm_chart.py checks them against the generated descriptors.
*/}}
{{- define "shoal.grpcServices" -}}
ingest: shoal.ingest.v1.IngestService
analysis: shoal.analysis.v1.AnalysisService
sampler: shoal.sampler.v1.SamplerService
labeling_bridge: shoal.labeling_bridge.v1.LabelingBridgeService
{{- end -}}

{{/*
The stores each service uses (its ServiceSpec.stores and also_uses, checked by the same test), and
so where its NetworkPolicy lets it connect.
*/}}
{{- define "shoal.egressTargets" -}}
ingest: [kafka, clickhouse, milvus]
analysis: [kafka, clickhouse, milvus]
sampler: [kafka, clickhouse, milvus]
labeling_bridge: [kafka, clickhouse, labelingPlatform]
{{- end -}}

{{/*
The enabled components, as a JSON list of {service, name, fullname, grpc, grpcService, egress, values}:
service is the key (labeling_bridge), name its DNS form (labeling-bridge), grpc true for the four gRPC
services and false for the console (an HTTP server calling them), values the entry merged over
.Values.defaults.
*/}}
{{- define "shoal.components" -}}
{{- $grpc := include "shoal.grpcServices" . | fromYaml -}}
{{- $egress := include "shoal.egressTargets" . | fromYaml -}}
{{- $out := list -}}
{{- range $service := keys .Values.services | sortAlpha -}}
{{- $values := mergeOverwrite (deepCopy $.Values.defaults) (deepCopy (index $.Values.services $service)) -}}
{{- if $values.enabled -}}
{{- $name := $service | replace "_" "-" -}}
{{- $fullname := printf "%s-%s" (include "shoal.fullname" $) $name | trunc 63 | trimSuffix "-" -}}
{{- $isGrpc := hasKey $grpc $service -}}
{{- $out = append $out (dict "service" $service "name" $name "fullname" $fullname "grpc" $isGrpc "grpcService" (index $grpc $service | default "") "egress" (index $egress $service | default (list)) "values" $values) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The enabled gRPC services alone (shoal.components without the console), as a JSON list. */}}
{{- define "shoal.grpcComponents" -}}
{{- $out := list -}}
{{- range $c := include "shoal.components" . | fromJsonArray -}}
{{- if $c.grpc }}{{ $out = append $out $c }}{{ end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The console's component as JSON when it is enabled, else {}. */}}
{{- define "shoal.console" -}}
{{- $out := dict -}}
{{- range $c := include "shoal.components" . | fromJsonArray -}}
{{- if eq $c.service "console" }}{{ $out = $c }}{{ end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Selector labels of a component; call with (dict "root" $ "c" $component). */}}
{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .c.name }}
{{- end -}}

{{- define "shoal.componentLabels" -}}
{{ include "shoal.labels" .root }}
app.kubernetes.io/component: {{ .c.name }}
{{- end -}}

{{- define "shoal.serviceAccountName" -}}
{{- if .c.values.serviceAccount.create -}}
{{- default .c.fullname .c.values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .c.values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "shoal.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: longer than the server's own shutdown, which is at most
drain + grace (consumers and jobs stopping) + grace (in-flight RPCs) and is cut by its watchdog
at drain + 2 * grace + 10 seconds (services/common/server.py), plus 5 seconds of margin.
*/}}
{{- define "shoal.terminationGracePeriodSeconds" -}}
{{- add (int .Values.shutdown.drainSeconds) (mul 2 (int .Values.shutdown.graceSeconds)) 15 -}}
{{- end -}}

{{/* The port kubelet gRPC probes use: the health-only plaintext port when TLS is on. */}}
{{- define "shoal.probePort" -}}
{{- if .Values.tls.enabled -}}{{ .Values.tls.healthPort }}{{- else -}}{{ .Values.ports.grpc }}{{- end -}}
{{- end -}}

{{- define "shoal.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{/* The container's environment: every name is a real setting of services/common/settings.py. */}}
{{- define "shoal.env" -}}
{{- $root := .root -}}
{{- $c := .c -}}
{{- $v := $root.Values -}}
- name: SHOAL_HOST
  value: "0.0.0.0"
- name: SHOAL_PORT
  value: {{ $v.ports.grpc | quote }}
- name: SHOAL_DATA_DIR
  value: /var/lib/shoal
- name: SHOAL_DRAIN_SECONDS
  value: {{ $v.shutdown.drainSeconds | quote }}
- name: SHOAL_GRACE_SECONDS
  value: {{ $v.shutdown.graceSeconds | quote }}
- name: SHOAL_LOG_LEVEL
  value: {{ $v.logging.level | quote }}
- name: SHOAL_LOG_FORMAT
  value: {{ $v.logging.format | quote }}
{{- if $v.metrics.enabled }}
- name: SHOAL_METRICS_PORT
  value: {{ $v.ports.metrics | quote }}
{{- end }}
{{- if eq $c.service "labeling_bridge" }}
- name: SHOAL_WEBHOOK_PORT
  value: {{ $v.ports.webhook | quote }}
{{- end }}
{{- if $v.tls.enabled }}
- name: SHOAL_HEALTH_PORT
  value: {{ $v.tls.healthPort | quote }}
- name: SHOAL_TLS_CERT_FILE
  value: /etc/shoal/tls/tls.crt
- name: SHOAL_TLS_KEY_FILE
  value: /etc/shoal/tls/tls.key
{{- if $v.tls.clientCaKey }}
- name: SHOAL_TLS_CLIENT_CA_FILE
  value: /etc/shoal/tls/{{ $v.tls.clientCaKey }}
{{- end }}
{{- end }}
{{- if eq $c.service "labeling_bridge" }}
{{- $targets := include "shoal.bridgeTargets" $root | fromJson }}
- name: SHOAL_ANALYSIS_TARGET
  value: {{ $targets.analysis | quote }}
- name: SHOAL_SAMPLER_TARGET
  value: {{ $targets.sampler | quote }}
{{- if $v.tls.enabled }}
- name: SHOAL_CONSOLE_GRPC_CA_FILE
  value: /etc/shoal/tls/{{ $v.tls.caKey }}
{{- with $v.console.grpcServerName }}
- name: SHOAL_CONSOLE_GRPC_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- if $v.tls.clientCaKey }}
- name: SHOAL_CONSOLE_GRPC_CLIENT_CERT_FILE
  value: /etc/shoal/tls/tls.crt
- name: SHOAL_CONSOLE_GRPC_CLIENT_KEY_FILE
  value: /etc/shoal/tls/tls.key
{{- end }}
{{- end }}
{{- end }}
- name: SHOAL_METRICS_URL
  value: {{ required "set clickhouse.url, e.g. http://clickhouse.db:8123" $v.clickhouse.url | quote }}
- name: SHOAL_CLICKHOUSE_DATABASE
  value: {{ $v.clickhouse.database | quote }}
- name: SHOAL_CLICKHOUSE_USERNAME
  value: {{ $v.clickhouse.username | quote }}
{{- if $v.clickhouse.existingSecret }}
{{ include "shoal.secretEnv" (dict "name" "SHOAL_CLICKHOUSE_PASSWORD" "secret" $v.clickhouse.existingSecret "key" $v.clickhouse.passwordKey) }}
{{- end }}
- name: SHOAL_CLICKHOUSE_VERIFY_TLS
  value: {{ $v.clickhouse.verifyTls | quote }}
{{- if $v.clickhouse.tls.caSecret }}
- name: SHOAL_CLICKHOUSE_CA_FILE
  value: /etc/shoal/clickhouse-ca/{{ $v.clickhouse.tls.caKey }}
{{- end }}
{{- /* `shoal serve --service` wants all three stores named, also where a service never reaches one */}}
- name: SHOAL_VECTORS_URL
  value: {{ required "set milvus.url, e.g. http://milvus.db:19530" $v.milvus.url | quote }}
{{- if has "milvus" $c.egress }}
{{- if $v.milvus.dbName }}
- name: SHOAL_MILVUS_DB_NAME
  value: {{ $v.milvus.dbName | quote }}
{{- end }}
{{- if $v.milvus.existingSecret }}
{{ include "shoal.secretEnv" (dict "name" "SHOAL_MILVUS_TOKEN" "secret" $v.milvus.existingSecret "key" $v.milvus.tokenKey) }}
{{- end }}
{{- if $v.milvus.tls.caSecret }}
- name: SHOAL_MILVUS_CA_FILE
  value: /etc/shoal/milvus-ca/{{ $v.milvus.tls.caKey }}
{{- end }}
{{- end }}
- name: SHOAL_KAFKA_BOOTSTRAP_SERVERS
  value: {{ required "set kafka.bootstrapServers, e.g. kafka-0.kafka:9092" $v.kafka.bootstrapServers | quote }}
{{- if has "kafka" $c.egress }}
- name: SHOAL_KAFKA_SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
{{- if $v.kafka.sasl.mechanism }}
- name: SHOAL_KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: SHOAL_KAFKA_SASL_USERNAME
  value: {{ required "set kafka.sasl.username with kafka.sasl.mechanism" $v.kafka.sasl.username | quote }}
{{ include "shoal.secretEnv" (dict "name" "SHOAL_KAFKA_SASL_PASSWORD" "secret" (required "set kafka.sasl.existingSecret with kafka.sasl.mechanism" $v.kafka.sasl.existingSecret) "key" $v.kafka.sasl.passwordKey) }}
{{- end }}
{{- if $v.kafka.tls.caSecret }}
- name: SHOAL_KAFKA_SSL_CAFILE
  value: /etc/shoal/kafka-ca/{{ $v.kafka.tls.caKey }}
{{- end }}
- name: SHOAL_TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
- name: SHOAL_TOPIC_PARTITIONS
  value: {{ $v.kafka.topicPartitions | quote }}
- name: SHOAL_TOPIC_REPLICATION_FACTOR
  value: {{ $v.kafka.topicReplicationFactor | quote }}
{{- end }}
{{- if $v.adminApiKey.existingSecret }}
{{ include "shoal.secretEnv" (dict "name" "SHOAL_ADMIN_API_KEY" "secret" $v.adminApiKey.existingSecret "key" $v.adminApiKey.key) }}
{{- end }}
{{- if and (eq $c.service "analysis") $v.automations.secretKey.existingSecret }}
{{ include "shoal.secretEnv" (dict "name" "SHOAL_AUTOMATIONS_SECRET_KEY" "secret" $v.automations.secretKey.existingSecret "key" $v.automations.secretKey.key) }}
{{- end }}
{{- range $name := keys $c.values.env | sortAlpha }}
- name: {{ $name }}
  value: {{ index $c.values.env $name | toString | quote }}
{{- end }}
{{- range $name := keys $c.values.secretEnv | sortAlpha }}
{{- $ref := index $c.values.secretEnv $name }}
{{ include "shoal.secretEnv" (dict "name" $name "secret" $ref.secret "key" $ref.key) }}
{{- end }}
- name: NUMBA_CACHE_DIR
  value: /tmp/numba
{{- end -}}


{{/*
Where the console reaches each service, as JSON {service: host:port}: the release's own Service
(<fullname>.<namespace>.svc, the name the services' certificate is expected to carry), or
console.serviceTargets for a service it does not run. Fails, saying what to set, when a service is
nowhere or when the services require client certificates, which the console does not present.
*/}}
{{- define "shoal.consoleTargets" -}}
{{- $v := .Values -}}
{{- if and $v.tls.enabled $v.tls.clientCaKey -}}
{{- fail "the console presents no client certificate, so it cannot call services that require one (tls.clientCaKey): set services.console.enabled=false, or leave tls.clientCaKey empty" -}}
{{- end -}}
{{- $targets := dict -}}
{{- range $c := include "shoal.grpcComponents" . | fromJsonArray -}}
{{- $_ := set $targets $c.service (printf "%s.%s.svc:%v" $c.fullname $.Release.Namespace $v.ports.grpc) -}}
{{- end -}}
{{- range $service, $target := $v.console.serviceTargets -}}
{{- $_ := set $targets $service $target -}}
{{- end -}}
{{- range $service := keys (include "shoal.grpcServices" . | fromYaml) | sortAlpha -}}
{{- if not (hasKey $targets $service) -}}
{{- fail (printf "the console calls every service, and services.%s is disabled: set console.serviceTargets.%s to where it runs (host:port), or services.console.enabled=false" $service $service) -}}
{{- end -}}
{{- end -}}
{{- toJson $targets -}}
{{- end -}}

{{/*
Where the labeling bridge reaches analysis and the sampler, as JSON {service: host:port}: the
release's own Service, or labelingBridge.serviceTargets for one it does not run. Fails, saying what
to set, when one is nowhere.
*/}}
{{- define "shoal.bridgeTargets" -}}
{{- $v := .Values -}}
{{- $targets := dict -}}
{{- range $c := include "shoal.grpcComponents" . | fromJsonArray -}}
{{- if has $c.service (list "analysis" "sampler") -}}
{{- $_ := set $targets $c.service (printf "%s.%s.svc:%v" $c.fullname $.Release.Namespace $v.ports.grpc) -}}
{{- end -}}
{{- end -}}
{{- range $service, $target := $v.labelingBridge.serviceTargets -}}
{{- $_ := set $targets $service $target -}}
{{- end -}}
{{- range $service := list "analysis" "sampler" -}}
{{- if not (hasKey $targets $service) -}}
{{- fail (printf "the labeling bridge reads label-issues jobs from analysis and campaigns from the sampler, and services.%s is disabled: set labelingBridge.serviceTargets.%s to where it runs (host:port)" $service $service) -}}
{{- end -}}
{{- end -}}
{{- toJson $targets -}}
{{- end -}}

{{/* HTTPS or HTTP: the console's own port serves TLS when tls.enabled. */}}
{{- define "shoal.consoleScheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/* The thumbnail cache's emptyDir: room for console.cacheMaxMb and a quarter more, since a file is
written before older ones are evicted. */}}
{{- define "shoal.consoleCacheSizeLimit" -}}
{{- $mb := int .Values.console.cacheMaxMb -}}
{{- printf "%dMi" (add $mb (div $mb 4) 64) -}}
{{- end -}}

{{/* The console's environment: where the services are and how to reach them, its port, its media and
cache. No store address, no credential: it calls the services with each person's own API key. */}}
{{- define "shoal.consoleEnv" -}}
{{- $root := .root -}}
{{- $c := .c -}}
{{- $v := $root.Values -}}
{{- $cv := $v.console -}}
- name: SHOAL_HOST
  value: "0.0.0.0"
- name: SHOAL_CONSOLE_PORT
  value: {{ $v.ports.console | quote }}
- name: SHOAL_LOG_LEVEL
  value: {{ $v.logging.level | quote }}
- name: SHOAL_LOG_FORMAT
  value: {{ $v.logging.format | quote }}
- name: SHOAL_CONSOLE_SERVICE_TARGETS
  value: {{ include "shoal.consoleTargets" $root | quote }}
{{- if $v.tls.enabled }}
- name: SHOAL_CONSOLE_GRPC_CA_FILE
  value: /etc/shoal/grpc-ca/{{ $v.tls.caKey }}
{{- with $cv.grpcServerName }}
- name: SHOAL_CONSOLE_GRPC_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
- name: SHOAL_TLS_CERT_FILE
  value: /etc/shoal/tls/tls.crt
- name: SHOAL_TLS_KEY_FILE
  value: /etc/shoal/tls/tls.key
{{- end }}
{{- if and $cv.ingress.enabled $cv.ingress.tlsSecret }}
- name: SHOAL_CONSOLE_COOKIE_SECURE
  value: "true"
{{- end }}
{{- with $cv.media.volumes }}
{{- $roots := list }}
{{- range $m := . }}{{ $roots = append $roots $m.mountPath }}{{ end }}
- name: SHOAL_CONSOLE_MEDIA_ROOTS
  value: {{ toJson $roots | quote }}
{{- end }}
- name: SHOAL_CONSOLE_ALLOW_PRIVATE_HTTP
  value: {{ $cv.allowPrivateHttp | quote }}
- name: SHOAL_CONSOLE_CACHE_DIR
  value: /var/cache/shoal-console
- name: SHOAL_CONSOLE_CACHE_MAX_MB
  value: {{ $cv.cacheMaxMb | quote }}
{{- range $name := keys $c.values.env | sortAlpha }}
- name: {{ $name }}
  value: {{ index $c.values.env $name | toString | quote }}
{{- end }}
{{- range $name := keys $c.values.secretEnv | sortAlpha }}
{{- $ref := index $c.values.secretEnv $name }}
{{ include "shoal.secretEnv" (dict "name" $name "secret" $ref.secret "key" $ref.key) }}
{{- end }}
{{- end -}}

{{/*
"true" when the component's jobs run as Kubernetes Jobs (jobs.executor kubernetes, and the
component is one that runs jobs: analysis or sampler); call with (dict "root" $ "c" $component).
*/}}
{{- define "shoal.jobsOnKubernetes" -}}
{{- if and (eq .root.Values.jobs.executor "kubernetes") (has .c.service (list "analysis" "sampler")) -}}true{{- end -}}
{{- end -}}

{{/* The labels of a component's job Pods that its NetworkPolicy selects (the executor adds the last two). */}}
{{- define "shoal.jobPodSelectorLabels" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: shoal-job-executor
shoal.dev/service: {{ .c.service }}
{{- end -}}

{{/*
What a component's job Pods share with its own Pod, as the JSON of SHOAL_KUBERNETES_JOB_POD_TEMPLATE:
its settings and secrets (the same env without the server's ports and certificate, and without the
executor's settings, so a job Pod runs its job in-process), the CA files of its stores, a data directory, the release's instance label
and where jobs.kubernetes places them.
*/}}
{{- define "shoal.jobPodTemplate" -}}
{{- $v := .root.Values -}}
{{- $c := .c -}}
{{- $k := $v.jobs.kubernetes -}}
{{- $mounts := list (dict "name" "tmp" "mountPath" "/tmp") (dict "name" "data" "mountPath" "/var/lib/shoal") -}}
{{- $volumes := list (dict "name" "tmp" "emptyDir" (dict "sizeLimit" $c.values.scratch.tmpSizeLimit)) (dict "name" "data" "emptyDir" (dict "sizeLimit" $c.values.scratch.dataSizeLimit)) -}}
{{- range $store := list "kafka" "clickhouse" "milvus" -}}
{{- $secret := (index $v $store).tls.caSecret -}}
{{- if and $secret (or (eq $store "clickhouse") (has $store $c.egress)) -}}
{{- $mounts = append $mounts (dict "name" (printf "%s-ca" $store) "mountPath" (printf "/etc/shoal/%s-ca" $store) "readOnly" true) -}}
{{- $volumes = append $volumes (dict "name" (printf "%s-ca" $store) "secret" (dict "secretName" $secret "defaultMode" 288)) -}}
{{- end -}}
{{- end -}}
{{- $env := list -}}
{{- $serverOnly := list "SHOAL_HOST" "SHOAL_PORT" "SHOAL_HEALTH_PORT" "SHOAL_METRICS_PORT" "SHOAL_WEBHOOK_PORT" "SHOAL_TLS_CERT_FILE" "SHOAL_TLS_KEY_FILE" "SHOAL_TLS_CLIENT_CA_FILE" -}}
{{- range $e := include "shoal.env" . | fromYamlArray -}}
{{- if not (has $e.name $serverOnly) }}{{ $env = append $env $e }}{{ end -}}
{{- end -}}
{{- $out := dict
  "labels" (dict "app.kubernetes.io/instance" .root.Release.Name)
  "env" $env
  "volumes" $volumes
  "volumeMounts" $mounts
  "imagePullSecrets" ($v.imagePullSecrets | default list)
  "nodeSelector" ($k.nodeSelector | default dict)
  "tolerations" ($k.tolerations | default list)
  "affinity" ($k.affinity | default dict)
  "priorityClassName" ($k.priorityClassName | default "") -}}
{{- toJson $out -}}
{{- end -}}

{{/* The Deployment's settings for the Kubernetes executor (env entries), with the pod template mounted. */}}
{{- define "shoal.jobExecutorEnv" -}}
{{- $v := .root.Values -}}
{{- $k := $v.jobs.kubernetes -}}
- name: SHOAL_JOB_EXECUTOR
  value: kubernetes
- name: SHOAL_KUBERNETES_JOB_IMAGE
  value: {{ include "shoal.image" .root | quote }}
- name: SHOAL_KUBERNETES_JOB_SERVICE_ACCOUNT
  value: {{ include "shoal.serviceAccountName" . | quote }}
- name: SHOAL_KUBERNETES_JOB_POD_TEMPLATE
  value: /etc/shoal/job-pod/pod.json
- name: SHOAL_KUBERNETES_JOB_REQUESTS
  value: {{ $k.resources.requests | default dict | toJson | quote }}
- name: SHOAL_KUBERNETES_JOB_LIMITS
  value: {{ $k.resources.limits | default dict | toJson | quote }}
- name: SHOAL_KUBERNETES_JOB_SHARDS
  value: {{ $k.shards | default 1 | quote }}
- name: SHOAL_KUBERNETES_JOB_DEADLINE_SECONDS
  value: {{ $k.activeDeadlineSeconds | quote }}
- name: SHOAL_KUBERNETES_JOB_TTL_SECONDS
  value: {{ $k.ttlSecondsAfterFinished | quote }}
{{- end -}}

{{/* Egress rules to DNS and to the stores a component uses (its NetworkPolicy's, and its job Pods'). */}}
{{- define "shoal.storeEgress" -}}
{{- $np := .root.Values.networkPolicy -}}
- ports:
    {{- toYaml $np.egress.dns.ports | nindent 4 }}
  to:
    - namespaceSelector:
        {{- toYaml $np.egress.dns.namespaceSelector | nindent 8 }}
      {{- with $np.egress.dns.podSelector }}
      podSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- range $target := .c.egress }}
{{- $e := index $np.egress $target }}
- ports:
    {{- toYaml $e.ports | nindent 4 }}
  {{- if or $e.cidrs $e.peers }}
  to:
    {{- range $cidr := $e.cidrs }}
    - ipBlock:
        cidr: {{ $cidr }}
    {{- end }}
    {{- with $e.peers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end -}}
