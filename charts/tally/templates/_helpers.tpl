{{/*
Names, labels, and what each role is: the roles and consumer groups of services/main.ts.
*/}}

{{- define "tally.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tally.fullname" -}}
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

{{/*
The full name cut to leave room for a suffix: every name the chart makes is <this>-<suffix>, the
longest suffix being "-aggregator-headless" (20 characters), so that with any release name Helm
accepts (at most 53 characters) every name fits in 63 characters, the limit of a DNS label, and
two names never collide by being cut.
*/}}
{{- define "tally.prefix" -}}
{{- include "tally.fullname" . | trunc 42 | trimSuffix "-" }}
{{- end }}

{{/* The name of a role's objects: (dict "root" $ "role" "gateway") → tally-gateway */}}
{{- define "tally.roleName" -}}
{{- printf "%s-%s" (include "tally.prefix" .root) .role }}
{{- end }}

{{- define "tally.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tally.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tally.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tally.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tally.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tally.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tally
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* (dict "root" $ "role" "gateway") */}}
{{- define "tally.roleSelectorLabels" -}}
{{ include "tally.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "tally.roleLabels" -}}
{{ include "tally.labels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{/* Every role, in services/main.ts's order. */}}
{{- define "tally.roles" -}}
[gateway, ingest, query, persister, counter, aggregator, alerter, router, projector, sender]
{{- end }}

{{/* The consumer roles and their consumer groups (before TALLY_GROUP_PREFIX), as in services/main.ts. */}}
{{- define "tally.consumerGroups" -}}
persister: group_persistence
counter: group_realtimecounter
aggregator: group_aggregation
alerter: group_alerting
router: group_routing
projector: group_projection
sender: group_sending
{{- end }}

{{/*
The topic each consumer role reads, by its configuration name (the role table's `topic`,
services/roles.ts): the persister reads the events topic and forwards what it accepts; the counter,
the aggregator, the alerter, the router and the projector read the accepted topic. Their KEDA triggers watch the lag there.
The sender reads every enabled destination's topic (`deliveries`: a set that changes as destinations
are made and deleted): its trigger names no topic, and KEDA sums the group's lag over every topic the
group committed on.
*/}}
{{- define "tally.consumerTopics" -}}
persister: events
counter: accepted
aggregator: accepted
alerter: accepted
router: accepted
projector: accepted
sender: deliveries
{{- end }}

{{/* A topic's name from its configuration name: (dict "root" $ "topic" "accepted") → kafka.acceptedTopic */}}
{{- define "tally.topicName" -}}
{{- $kafka := .root.Values.kafka }}
{{- $name := get (dict "events" $kafka.eventsTopic "accepted" $kafka.acceptedTopic) .topic }}
{{- if not $name }}
{{- fail (printf "tally.topicName: no topic %q (a mistake in tally.consumerTopics)" .topic) }}
{{- end }}
{{- $name }}
{{- end }}

{{/* The roles serving gRPC (ingest, query): the rest serve HTTP only. */}}
{{- define "tally.grpcRoles" -}}
[ingest, query]
{{- end }}

{{/* Which backends each role opens (services/main.ts openBackends). */}}
{{- define "tally.backends" -}}
gateway: [kafka]
{{- /* With access control on, ingest checks keys in PostgreSQL (services/run-roles.ts portsOf). */}}
ingest: [kafka{{ if .Values.auth.enabled }}, postgres{{ end }}]
{{- /* Kafka: the destinations' topics, made and deleted with them (docs/delivery.md). */}}
query: [kafka, redis, postgres]
persister: [kafka, postgres]
counter: [kafka, redis]
aggregator: [kafka, postgres]
{{- /* The alert rules and notifications in PostgreSQL, the milestone counts in Redis. */}}
alerter: [kafka, redis, postgres]
{{- /* The destinations in PostgreSQL; their topics in Kafka. */}}
router: [kafka, postgres]
{{- /* The projections, the entities and their live counts in PostgreSQL. */}}
projector: [kafka, postgres]
{{- /* The destinations and the parked deliveries in PostgreSQL, the circuit breakers in Redis. */}}
sender: [kafka, redis, postgres]
{{- end }}

{{/* "true" when an enabled role uses PostgreSQL (then the migration Job runs). */}}
{{- define "tally.sqlOn" -}}
{{- $root := . }}
{{- range $role, $uses := include "tally.backends" . | fromYaml }}
{{- if and (index $root.Values.roles $role).enabled (has "postgres" $uses) }}true{{ end }}
{{- end }}
{{- end }}

{{- define "tally.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The port where a role serves /healthz, /readyz and /metrics: (dict "root" $ "role" "gateway") */}}
{{- define "tally.statusPort" -}}
{{- if eq .role "gateway" }}{{ .root.Values.config.ports.http }}{{ else }}{{ .root.Values.config.ports.metrics }}{{ end }}
{{- end }}

{{/* Seconds from the pod's deletion to SIGKILL: the preStop sleep, the drain, the process's own
force margin of 5 s (services/main.ts), and 5 s more. */}}
{{- define "tally.terminationGracePeriodSeconds" -}}
{{- $drain := divf .root.Values.config.drainTimeoutMs 1000 | ceil | int }}
{{- add $drain 5 5 (int .r.preStopSleepSeconds) }}
{{- end }}

{{/* The Secret the chart makes for URLs given in values, read by the roles (a release object). */}}
{{- define "tally.backendsSecretName" -}}
{{- printf "%s-backends" (include "tally.prefix" .) }}
{{- end }}

{{/* Its copy for the migration hook, which runs before the release's objects exist. */}}
{{- define "tally.migrateSecretName" -}}
{{- printf "%s-migrate" (include "tally.prefix" .) }}
{{- end }}

{{/* The Secret with KEDA's non-secret Kafka settings (SASL mechanism, user name, TLS). */}}
{{- define "tally.kedaKafkaSecretName" -}}
{{- printf "%s-keda-kafka" (include "tally.prefix" .) }}
{{- end }}

{{/*
Where KEDA's operator reaches Kafka. It runs in its own namespace, where a Service name of the
release's namespace does not resolve: keda.bootstrapServers when set (Kafka outside the cluster,
or seen from KEDA by another name), else kafka.brokers with every host name without a dot
qualified as <host>.<release namespace>.svc. Names with a dot (other namespaces, FQDNs, IPs) are
kept as they are.
*/}}
{{- define "tally.kedaBootstrapServers" -}}
{{- if .Values.keda.bootstrapServers }}
{{- .Values.keda.bootstrapServers }}
{{- else }}
{{- $out := list }}
{{- range $addr := splitList "," .Values.kafka.brokers }}
{{- $addr = trim $addr }}
{{- $host := regexReplaceAll ":[0-9]+$" $addr "" }}
{{- $port := regexFind "[0-9]+$" $addr }}
{{- if contains "." $host }}
{{- $out = append $out $addr }}
{{- else }}
{{- $out = append $out (printf "%s.%s.svc:%s" $host $.Release.Namespace $port) }}
{{- end }}
{{- end }}
{{- join "," $out }}
{{- end }}
{{- end }}

{{/* KEDA's name of the SASL mechanism of kafka.sasl.mechanism. */}}
{{- define "tally.kedaSasl" -}}
{{- get (dict "plain" "plaintext" "scram-sha-256" "scram_sha256" "scram-sha-512" "scram_sha512") .Values.kafka.sasl.mechanism }}
{{- end }}

{{/* Whether the scalers need a TriggerAuthentication: Kafka asks for SASL or TLS. */}}
{{- define "tally.kedaNeedsAuth" -}}
{{- if or .Values.kafka.sasl.mechanism .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name }}true{{ end }}
{{- end }}

{{/* Whether any consumer role is scaled by KEDA. */}}
{{- define "tally.kedaOn" -}}
{{- $root := . }}
{{- range $role, $_ := include "tally.consumerGroups" . | fromYaml }}
{{- $r := index $root.Values.roles $role }}
{{- if and $r.enabled $r.keda.enabled }}true{{ end }}
{{- end }}
{{- end }}

{{- define "tally.needsBackendsSecret" -}}
{{- $pg := .Values.postgres }}
{{- if or (and (not $pg.urlSecret.name) $pg.url) (and (not .Values.redis.clusterNodes) (not .Values.redis.existingSecret.name) .Values.redis.url) }}true{{ end }}
{{- end }}

{{/* The keys of the chart's backends Secret. */}}
{{- define "tally.backendsSecretData" -}}
{{- $pg := .Values.postgres }}
{{- if and (not $pg.urlSecret.name) $pg.url }}
pg-url: {{ $pg.url | quote }}
{{- with $pg.readUrls }}
pg-read-urls: {{ join "," . | quote }}
{{- end }}
{{- end }}
{{- $redis := .Values.redis }}
{{- if and (not $redis.clusterNodes) (not $redis.existingSecret.name) $redis.url }}
redis-url: {{ $redis.url | quote }}
{{- end }}
{{- end }}

{{/* Which of the three PostgreSQL ways the values choose: urlSecret, url, credentials, or "". */}}
{{- define "tally.pgMode" -}}
{{- $pg := .Values.postgres }}
{{- if $pg.urlSecret.name }}urlSecret
{{- else if $pg.url }}url
{{- else if $pg.credentialsSecret.name }}credentials
{{- end }}
{{- end }}

{{/* The PostgreSQL variables: TALLY_PG_URL, TALLY_PG_READ_URLS, TALLY_PG_SCHEMA, TALLY_PG_POOL_SIZE.
The root context, or (dict "root" $ "migrate" true) for the migration Job (its own Secret copy). */}}
{{- define "tally.pgEnv" -}}
{{- $migrate := false }}
{{- $ctx := . }}
{{- if hasKey . "root" }}{{ $ctx = .root }}{{ $migrate = .migrate }}{{ end }}
{{- with $ctx }}
{{- $pg := .Values.postgres }}
{{- $mode := include "tally.pgMode" . }}
{{- if eq $mode "urlSecret" }}
- name: TALLY_PG_URL
  valueFrom:
    secretKeyRef: { name: {{ $pg.urlSecret.name | quote }}, key: {{ $pg.urlSecret.urlKey | quote }} }
{{- if $pg.urlSecret.readUrlsKey }}
- name: TALLY_PG_READ_URLS
  valueFrom:
    secretKeyRef: { name: {{ $pg.urlSecret.name | quote }}, key: {{ $pg.urlSecret.readUrlsKey | quote }} }
{{- end }}
{{- else if eq $mode "url" }}
{{- $secret := ternary (include "tally.migrateSecretName" .) (include "tally.backendsSecretName" .) $migrate }}
- name: TALLY_PG_URL
  valueFrom:
    secretKeyRef: { name: {{ $secret | quote }}, key: pg-url }
{{- if $pg.readUrls }}
- name: TALLY_PG_READ_URLS
  valueFrom:
    secretKeyRef: { name: {{ $secret | quote }}, key: pg-read-urls }
{{- end }}
{{- else if eq $mode "credentials" }}
{{- /* Kubernetes expands $(PGUSER) and $(PGPASSWORD) from the variables defined before. */}}
- name: PGUSER
  valueFrom:
    secretKeyRef: { name: {{ $pg.credentialsSecret.name | quote }}, key: {{ $pg.credentialsSecret.usernameKey | quote }} }
- name: PGPASSWORD
  valueFrom:
    secretKeyRef: { name: {{ $pg.credentialsSecret.name | quote }}, key: {{ $pg.credentialsSecret.passwordKey | quote }} }
- name: TALLY_PG_URL
  value: {{ printf "postgres://$(PGUSER):$(PGPASSWORD)@%s:%d/%s" $pg.host (int $pg.port) $pg.database | quote }}
{{- if $pg.readHost }}
- name: TALLY_PG_READ_URLS
  value: {{ printf "postgres://$(PGUSER):$(PGPASSWORD)@%s:%d/%s" $pg.readHost (int $pg.port) $pg.database | quote }}
{{- end }}
{{- else }}
{{- fail "postgres: the persister, aggregator, alerter, router, projector, sender and query roles and the migrations need PostgreSQL: set postgres.credentialsSecret.name (with postgres.host), postgres.url, or postgres.urlSecret.name" }}
{{- end }}
- name: TALLY_PG_SCHEMA
  value: {{ $pg.schema | quote }}
- name: TALLY_PG_POOL_SIZE
  value: {{ $pg.poolSize | toString | quote }}
{{- end }}
{{- end }}

{{/* The Redis variables. */}}
{{- define "tally.redisEnv" -}}
{{- $redis := .Values.redis }}
{{- if $redis.clusterNodes }}
- name: TALLY_REDIS_CLUSTER_NODES
  value: {{ $redis.clusterNodes | quote }}
{{- else if $redis.existingSecret.name }}
- name: TALLY_REDIS_URL
  valueFrom:
    secretKeyRef: { name: {{ $redis.existingSecret.name | quote }}, key: {{ $redis.existingSecret.key | quote }} }
{{- else if $redis.url }}
- name: TALLY_REDIS_URL
  valueFrom:
    secretKeyRef: { name: {{ include "tally.backendsSecretName" . | quote }}, key: redis-url }
{{- else }}
{{- fail "redis: the counter, alerter and query roles need Redis: set redis.clusterNodes, redis.url or redis.existingSecret.name" }}
{{- end }}
- name: TALLY_REDIS_PREFIX
  value: {{ $redis.prefix | quote }}
{{- with $redis.auth }}
{{- if .passwordSecret.name }}
{{- with .username }}
- name: TALLY_REDIS_USERNAME
  value: {{ . | quote }}
{{- end }}
- name: TALLY_REDIS_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ .passwordSecret.name | quote }}, key: {{ .passwordSecret.key | quote }} }
{{- end }}
{{- end }}
{{- if or $redis.tls.enabled $redis.tls.caSecret.name }}
- name: TALLY_REDIS_TLS
  value: "true"
{{- end }}
{{- if $redis.tls.caSecret.name }}
- name: TALLY_REDIS_TLS_CA_FILE
  value: {{ include "tally.redisCaFile" . | quote }}
{{- end }}
{{- end }}

{{/* Where the Redis CA certificate is mounted (redis.tls.caSecret). */}}
{{- define "tally.redisCaFile" -}}
/etc/tally/redis-ca/{{ .Values.redis.tls.caSecret.key }}
{{- end }}

{{/* The Kafka variables. */}}
{{- define "tally.kafkaEnv" -}}
{{- $kafka := .Values.kafka }}
{{- if not $kafka.brokers }}
{{- fail "kafka.brokers: every role but query needs Kafka: set kafka.brokers (host:port,…)" }}
{{- end }}
- name: TALLY_KAFKA_BROKERS
  value: {{ $kafka.brokers | quote }}
- name: TALLY_KAFKA_CLIENT_ID
  value: {{ $kafka.clientId | quote }}
{{- if or (eq $kafka.acceptedTopic $kafka.eventsTopic) (eq $kafka.acceptedTopic $kafka.dlqTopic) }}
{{- fail (printf "kafka.acceptedTopic (%s) must be a topic of its own, not kafka.eventsTopic or kafka.dlqTopic: the persister forwards the events it accepted there, and the counter, the aggregator and the alerter read only those" $kafka.acceptedTopic) }}
{{- end }}
{{- if has $kafka.notificationsTopic (list $kafka.eventsTopic $kafka.acceptedTopic $kafka.dlqTopic) }}
{{- fail (printf "kafka.notificationsTopic (%s) must be a topic of its own, not kafka.eventsTopic, kafka.acceptedTopic or kafka.dlqTopic: the alerter writes notifications there, which are no events" $kafka.notificationsTopic) }}
{{- end }}
- name: TALLY_EVENTS_TOPIC
  value: {{ $kafka.eventsTopic | quote }}
- name: TALLY_EVENTS_PARTITIONS
  value: {{ $kafka.eventsPartitions | toString | quote }}
- name: TALLY_ACCEPTED_TOPIC
  value: {{ $kafka.acceptedTopic | quote }}
- name: TALLY_DLQ_TOPIC
  value: {{ $kafka.dlqTopic | quote }}
- name: TALLY_NOTIFICATIONS_TOPIC
  value: {{ $kafka.notificationsTopic | quote }}
{{- with $kafka.groupPrefix }}
- name: TALLY_GROUP_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- with $kafka.sasl }}
{{- if .mechanism }}
- name: TALLY_KAFKA_SASL_MECHANISM
  value: {{ .mechanism | quote }}
- name: TALLY_KAFKA_SASL_USERNAME
  value: {{ .username | quote }}
- name: TALLY_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ .passwordSecret.name | quote }}, key: {{ .passwordSecret.key | quote }} }
{{- end }}
{{- end }}
{{- if or $kafka.tls.enabled $kafka.tls.caSecret.name }}
- name: TALLY_KAFKA_TLS
  value: "true"
{{- end }}
{{- if $kafka.tls.caSecret.name }}
- name: TALLY_KAFKA_TLS_CA_FILE
  value: {{ include "tally.kafkaCaFile" . | quote }}
{{- end }}
{{- end }}

{{/* Where the Kafka CA certificate is mounted (kafka.tls.caSecret). */}}
{{- define "tally.kafkaCaFile" -}}
/etc/tally/kafka-ca/{{ .Values.kafka.tls.caSecret.key }}
{{- end }}

{{/* The TALLY_* variables the chart sets from its values: config.env and a role's env may not set them. */}}
{{- define "tally.managedEnvNames" -}}
[TALLY_LOG_LEVEL, TALLY_DRAIN_TIMEOUT_MS, TALLY_HTTP_PORT, TALLY_GRPC_PORT, TALLY_METRICS_PORT,
 TALLY_INGEST_ADDR, TALLY_QUERY_ADDR, TALLY_PG_MIGRATE, TALLY_KAFKA_BROKERS, TALLY_KAFKA_CLIENT_ID,
 TALLY_EVENTS_TOPIC, TALLY_EVENTS_PARTITIONS, TALLY_ACCEPTED_TOPIC, TALLY_DLQ_TOPIC, TALLY_NOTIFICATIONS_TOPIC,
 TALLY_GROUP_PREFIX,
 TALLY_REDIS_CLUSTER_NODES, TALLY_REDIS_URL, TALLY_REDIS_PREFIX, TALLY_PG_URL, TALLY_PG_READ_URLS,
 TALLY_PG_SCHEMA, TALLY_PG_POOL_SIZE, TALLY_KAFKA_SASL_MECHANISM, TALLY_KAFKA_SASL_USERNAME,
 TALLY_KAFKA_SASL_PASSWORD, TALLY_KAFKA_TLS, TALLY_KAFKA_TLS_CA_FILE, TALLY_REDIS_USERNAME,
 TALLY_REDIS_PASSWORD, TALLY_REDIS_TLS, TALLY_REDIS_TLS_CA_FILE, TALLY_TLS_CERT_FILE, TALLY_TLS_KEY_FILE,
 TALLY_TLS_CLIENT_CA_FILE, TALLY_GRPC_TLS, TALLY_GRPC_TLS_CA_FILE, TALLY_GRPC_TLS_CLIENT_CERT_FILE,
 TALLY_GRPC_TLS_CLIENT_KEY_FILE, TALLY_AUTH, TALLY_BOOTSTRAP_ADMIN_KEY, TALLY_METRICS_TOKEN,
 TALLY_JWT_JWKS_URL, TALLY_JWT_PUBLIC_KEY_FILE, TALLY_JWT_ISSUER, TALLY_JWT_AUDIENCE, TALLY_JWT_ALGORITHMS,
 TALLY_JWT_SCOPES_CLAIM, TALLY_JWT_CLOCK_TOLERANCE_S]
{{- end }}

{{/*
A role's container environment: (dict "root" $ "role" "gateway" "r" $role-values). The chart's
own variables, then config.env and the role's env (the role's wins), then extraEnv.
*/}}
{{- define "tally.env" -}}
{{- $root := .root }}
{{- $role := .role }}
{{- $backends := index (include "tally.backends" $root | fromYaml) $role }}
{{- include "tally.baseEnv" . }}
{{- include "tally.tlsEnv" . }}
{{- include "tally.authEnv" . }}
{{- if has "kafka" $backends }}
{{- include "tally.kafkaEnv" $root }}
{{- end }}
{{- if has "redis" $backends }}
{{- include "tally.redisEnv" $root }}
{{- end }}
{{- if has "postgres" $backends }}
{{- include "tally.pgEnv" $root }}
{{- end }}
{{- include "tally.userEnv" . }}
{{- end }}

{{/* config.env and the role's env, then extraEnv: (dict "root" $ "role" "gateway" "r" $role-values) */}}
{{- define "tally.userEnv" -}}
{{- $root := .root }}
{{- $managed := include "tally.managedEnvNames" $root | fromYamlArray }}
{{- $extra := merge (deepCopy (default dict .r.env)) (deepCopy (default dict $root.Values.config.env)) }}
{{- range $name := keys $extra | sortAlpha }}
{{- if has $name $managed }}
{{- fail (printf "%s is set by the chart from its values (see values.yaml): set that value instead of config.env or roles.<role>.env" $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ index $extra $name | toString | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The variables every role gets: ports, log level, drain, migrations. */}}
{{- define "tally.baseEnv" -}}
{{- $root := .root }}
{{- $ports := $root.Values.config.ports }}
- name: TALLY_LOG_LEVEL
  value: {{ $root.Values.config.logLevel | quote }}
- name: TALLY_DRAIN_TIMEOUT_MS
  value: {{ $root.Values.config.drainTimeoutMs | toString | quote }}
{{- if eq .role "gateway" }}
- name: TALLY_HTTP_PORT
  value: {{ $ports.http | toString | quote }}
{{- /* A headless Service lists every ready pod: the gateway's round_robin client balances calls over them. */}}
{{- range $target := list "ingest" "query" }}
{{- $name := include "tally.roleName" (dict "root" $root "role" $target) }}
{{- $headless := default false (dig "service" "headless" false (index $root.Values.roles $target)) }}
{{- $addr := ternary (printf "dns:///%s-headless:%d" $name (int $ports.grpc)) (printf "%s:%d" $name (int $ports.grpc)) $headless }}
- name: TALLY_{{ upper $target }}_ADDR
  value: {{ default $addr (get $.r (printf "%sAddr" $target)) | quote }}
{{- end }}
{{- else }}
- name: TALLY_METRICS_PORT
  value: {{ $ports.metrics | toString | quote }}
{{- end }}
{{- if has .role (include "tally.grpcRoles" $root | fromYamlArray) }}
- name: TALLY_GRPC_PORT
  value: {{ $ports.grpc | toString | quote }}
{{- end }}
{{- if has "postgres" (index (include "tally.backends" $root | fromYaml) .role) }}
- name: TALLY_PG_MIGRATE
  value: {{ ternary "false" "true" $root.Values.migrations.enabled | quote }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by the Deployments and the migration Job: (dict "root" $ "role" … "r" $role-values).
The Job runs as a pre-install hook, before the chart's ServiceAccount exists: it keeps the namespace's default.
*/}}
{{- define "tally.podCommon" -}}
{{- $root := .root }}
{{- if ne .role "migrate" }}
serviceAccountName: {{ include "tally.serviceAccountName" $root }}
{{- end }}
automountServiceAccountToken: false
{{- /* Service links would add TALLY_<SERVICE>_* variables (from Services named tally-…) next to Tally's own. */}}
enableServiceLinks: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with (default $root.Values.nodeSelector .r.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.tolerations .r.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.affinity .r.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The TLS variables of a role (tls.enabled): its listeners' certificate from the mounted Secret; on
ingest and query with tls.clientAuth, the client CA; on the gateway, TLS to ingest and query.
*/}}
{{- define "tally.tlsEnv" -}}
{{- $tls := .root.Values.tls }}
{{- if $tls.enabled }}
{{- if not $tls.secretName }}
{{- fail "tls.secretName: tls.enabled needs an existing kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt)" }}
{{- end }}
- name: TALLY_TLS_CERT_FILE
  value: /etc/tally/tls/tls.crt
- name: TALLY_TLS_KEY_FILE
  value: /etc/tally/tls/tls.key
{{- if and $tls.clientAuth (has .role (include "tally.grpcRoles" .root | fromYamlArray)) }}
- name: TALLY_TLS_CLIENT_CA_FILE
  value: /etc/tally/tls/ca.crt
{{- end }}
{{- if eq .role "gateway" }}
- name: TALLY_GRPC_TLS
  value: "true"
- name: TALLY_GRPC_TLS_CA_FILE
  value: /etc/tally/tls/ca.crt
{{- if $tls.clientAuth }}
- name: TALLY_GRPC_TLS_CLIENT_CERT_FILE
  value: /etc/tally/tls/tls.crt
- name: TALLY_GRPC_TLS_CLIENT_KEY_FILE
  value: /etc/tally/tls/tls.key
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret holding the bootstrap admin key: auth.bootstrapAdminKey.existingSecret, else <prefix>-bootstrap-admin. */}}
{{- define "tally.bootstrapSecretName" -}}
{{- default (printf "%s-bootstrap-admin" (include "tally.prefix" .)) .Values.auth.bootstrapAdminKey.existingSecret }}
{{- end }}

{{/* Whether ingest and query verify JWTs: a JWKS URL or a public key Secret is given. */}}
{{- define "tally.jwtOn" -}}
{{- $jwt := .Values.auth.jwt }}
{{- if and .Values.auth.enabled (or $jwt.jwksUrl $jwt.publicKeySecret.name) }}true{{ end }}
{{- end }}

{{- define "tally.jwtKeyFile" -}}
/etc/tally/jwt/{{ .Values.auth.jwt.publicKeySecret.key }}
{{- end }}

{{/*
Access control of a role (dict "root" $ "role" …): TALLY_AUTH in every role, the metrics token in
every role (each serves /metrics); on ingest and query, which check credentials, the bootstrap
admin key and the JWT settings. Keys and tokens come from Secrets only, never as literals.
*/}}
{{- define "tally.authEnv" -}}
{{- $auth := .root.Values.auth }}
- name: TALLY_AUTH
  value: {{ ternary "on" "off" $auth.enabled | quote }}
{{- with $auth.metricsToken }}
{{- if .existingSecret }}
- name: TALLY_METRICS_TOKEN
  valueFrom:
    secretKeyRef: { name: {{ .existingSecret | quote }}, key: {{ .key | quote }} }
{{- end }}
{{- end }}
{{- if and $auth.enabled (has .role (include "tally.grpcRoles" .root | fromYamlArray)) }}
{{- if $auth.bootstrapAdminKey.enabled }}
- name: TALLY_BOOTSTRAP_ADMIN_KEY
  valueFrom:
    secretKeyRef: { name: {{ include "tally.bootstrapSecretName" .root | quote }}, key: {{ $auth.bootstrapAdminKey.key | quote }} }
{{- end }}
{{- if include "tally.jwtOn" .root }}
{{- with $auth.jwt }}
{{- if .jwksUrl }}
- name: TALLY_JWT_JWKS_URL
  value: {{ .jwksUrl | quote }}
{{- end }}
{{- if .publicKeySecret.name }}
- name: TALLY_JWT_PUBLIC_KEY_FILE
  value: {{ include "tally.jwtKeyFile" $.root | quote }}
{{- end }}
- name: TALLY_JWT_ISSUER
  value: {{ .issuer | quote }}
- name: TALLY_JWT_AUDIENCE
  value: {{ join "," .audience | quote }}
{{- with .algorithms }}
- name: TALLY_JWT_ALGORITHMS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .scopesClaim }}
- name: TALLY_JWT_SCOPES_CLAIM
  value: {{ . | quote }}
{{- end }}
{{- if not (kindIs "invalid" .clockToleranceSeconds) }}
- name: TALLY_JWT_CLOCK_TOLERANCE_S
  value: {{ .clockToleranceSeconds | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
