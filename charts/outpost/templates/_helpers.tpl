{{/*
Names, labels, URLs and the pieces every component shares. Each template of this
chart includes "outpost.validate" first, so that a bad combination of values fails
lint, template and install with one message.
*/}}

{{- define "outpost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-outpost, or the release name when it already holds the chart's name. */}}
{{- define "outpost.fullname" -}}
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

{{/* A component's object name: (dict "root" $ "c" "broker"). Kept under 63 by
cutting the release part, never the component's. */}}
{{- define "outpost.cname" -}}
{{- $suffix := printf "-%s" .c -}}
{{- printf "%s%s" (include "outpost.fullname" .root | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "outpost.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; (dict "root" $ "c" COMPONENT). */}}
{{- define "outpost.labels" -}}
helm.sh/chart: {{ include "outpost.chart" .root }}
app.kubernetes.io/name: {{ include "outpost.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: outpost
{{- if .c }}
app.kubernetes.io/component: {{ .c }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component's pods; (dict "root" $ "c" COMPONENT). */}}
{{- define "outpost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outpost.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .c }}
{{- end -}}

{{- define "outpost.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* A service's DNS name: (dict "root" $ "c" COMPONENT). */}}
{{- define "outpost.host" -}}
{{- printf "%s.%s.svc.%s" (include "outpost.cname" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/* The broker's Service as a URL: https with broker.tls.secret; the port
left out where it is the scheme's own. */}}
{{- define "outpost.brokerBase" -}}
{{- $tls := not (empty .Values.broker.tls.secret) -}}
{{- $p := int .Values.broker.service.port -}}
{{- $port := "" -}}
{{- if ne $p (ternary 443 80 $tls) -}}{{- $port = printf ":%d" $p -}}{{- end -}}
{{- printf "%s://%s%s" (ternary "https" "http" $tls) (include "outpost.host" (dict "root" . "c" "broker")) $port -}}
{{- end -}}

{{/* The broker the detector and the posts publish to: the first declared. */}}
{{- define "outpost.brokerUrl" -}}
{{- $b := first .Values.eventing.brokers -}}
{{- printf "%s/%s/%s" (include "outpost.brokerBase" .) $b.namespace $b.name -}}
{{- end -}}

{{/*
With broker.tls.secret, what a container that calls the broker needs to
verify it: OUTPOST_CA_FILE (every HTTP client of Outpost's reads it), and the
CA certificate mounted there from broker.tls.caSecret (default: the TLS
Secret itself, whose ca.crt cert-manager writes), key broker.tls.caKey.
*/}}
{{- define "outpost.brokerCaEnv" -}}
{{- if .Values.broker.tls.secret -}}
- name: OUTPOST_CA_FILE
  value: /etc/outpost/broker-ca/ca.crt
{{- end -}}
{{- end -}}
{{- define "outpost.brokerCaMount" -}}
{{- if .Values.broker.tls.secret -}}
- {name: broker-ca, mountPath: /etc/outpost/broker-ca, readOnly: true}
{{- end -}}
{{- end -}}
{{- define "outpost.brokerCaVolume" -}}
{{- if .Values.broker.tls.secret -}}
- name: broker-ca
  secret:
    secretName: {{ .Values.broker.tls.caSecret | default .Values.broker.tls.secret }}
    items:
      - {key: {{ .Values.broker.tls.caKey }}, path: ca.crt}
{{- end -}}
{{- end -}}

{{/* The trigger admin API: the dispatcher, or the one broker with kafka.mock. */}}
{{- define "outpost.triggerApi" -}}
{{- if .Values.kafka.mock -}}
{{- include "outpost.brokerBase" . -}}
{{- else -}}
{{- printf "http://%s:%d" (include "outpost.host" (dict "root" . "c" "dispatcher")) (int .Values.dispatcher.service.port) -}}
{{- end -}}
{{- end -}}

{{- define "outpost.authSecret" -}}
{{- default (include "outpost.cname" (dict "root" . "c" "auth")) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "outpost.tenantsSecret" -}}
{{- default (include "outpost.cname" (dict "root" . "c" "tenants")) .Values.tenants.existingSecret -}}
{{- end -}}

{{/* The Kubernetes namespace of an Outpost lab namespace. */}}
{{- define "outpost.labNamespace" -}}
{{- printf "%s%s" .root.Values.labs.namespacePrefix .ns -}}
{{- end -}}

{{/*
The env entry of one token from the auth Secret: (dict "root" $ "var" NAME "key"
KEY). The outpost commands read a token flag they are not given from its
variable (--admin-token: OUTPOST_ADMIN_TOKEN, --broker-token:
OUTPOST_BROKER_TOKEN, --detector-token: OUTPOST_DETECTOR_TOKEN,
--internal-token: OUTPOST_INTERNAL_TOKEN), so no token is an argument: any
process of the pid namespace (the host's, for the node pod with hostPID) can
read a command line, only the same user a process's environment. Each container
gets the variables of the tokens it uses, and no other.
*/}}
{{- define "outpost.tokenEnv" -}}
- name: {{ .var }}
  valueFrom:
    secretKeyRef:
      name: {{ include "outpost.authSecret" .root }}
      key: {{ .key }}
{{- end -}}

{{/* --ingress-token of the detector and the posts, with broker.senders only. */}}
{{- define "outpost.ingressTokenEnv" -}}
{{- if .Values.broker.senders.enabled -}}
{{- include "outpost.tokenEnv" (dict "root" . "var" "OUTPOST_INGRESS_TOKEN" "key" .Values.auth.ingressTokenKey) }}
{{- end -}}
{{- end -}}

{{/*
The security context of every container but the detector's: no root, no
capability, no privilege escalation, a read-only root, the runtime's seccomp
profile. (dict "uid" N).
*/}}
{{- define "outpost.securityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Probes on a named port: /healthz (liveness) and /readyz (readiness). */}}
{{- define "outpost.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}{{ with .scheme }}, scheme: {{ . }}{{ end }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 6
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}{{ with .scheme }}, scheme: {{ . }}{{ end }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{/*
A helper of the kafka-kraft subchart, (dict "root" $ "t" "bootstrapServers"),
given the context it has in the subchart: its values, the release, its name.
Subchart templates are defined only when kafka.subchart.enabled.
*/}}
{{- define "outpost.kafkaSubchart" -}}
{{- $ctx := dict "Values" (index .root.Values "kafka-kraft") "Release" .root.Release "Chart" (dict "Name" "kafka-kraft") -}}
{{- include (printf "kafka-kraft.%s" .t) $ctx -}}
{{- end -}}

{{/*
The Kafka of the broker's two roles: kafka.bootstrapServers, else the
kafka-kraft subchart's client Service, else the mock ("outpost.validate" makes
sure that exactly one is chosen).
*/}}
{{- define "outpost.kafkaBootstrap" -}}
{{- $k := .Values.kafka -}}
{{- if $k.bootstrapServers -}}
{{- $k.bootstrapServers -}}
{{- else if $k.subchart.enabled -}}
{{- include "outpost.kafkaSubchart" (dict "root" . "t" "bootstrapServers") -}}
{{- else -}}
mock
{{- end -}}
{{- end -}}

{{/* Kafka: the flags, environment and volumes of the broker's two roles. */}}
{{- define "outpost.kafkaArgs" -}}
{{- $k := .Values.kafka -}}
{{- $p := $k.security.protocol -}}
- --kafka
- {{ include "outpost.kafkaBootstrap" . | quote }}
- --partitions
- {{ $k.topics.partitions | int | quote }}
- --delivery-timeout
- {{ $k.deliveryTimeoutMs | int | quote }}
{{- with $k.topics.retention }}
- --retention
- {{ . | quote }}
{{- end }}
{{- if ne (toString $k.topics.retentionBytes) "" }}
- --retention-bytes
- {{ $k.topics.retentionBytes | int64 | quote }}
{{- end }}
{{- range $name, $value := $k.topics.config }}
- --topic-config
- {{ printf "%s=%v" $name $value | quote }}
{{- end }}
{{- if not $k.mock }}
- --kafka-property
- {{ printf "security.protocol=%s" $p | quote }}
{{- if hasPrefix "SASL_" $p }}
- --kafka-property
- {{ printf "sasl.mechanisms=%s" $k.security.sasl.mechanism | quote }}
- --kafka-property
- sasl.username=$(KAFKA_SASL_USERNAME)
{{- end }}
{{- if $k.security.tls.caSecret }}
- --kafka-property
- ssl.ca.location=/etc/outpost/kafka-ca/{{ $k.security.tls.caKey }}
{{- end }}
{{- if $k.security.tls.clientCertSecret }}
- --kafka-property
- ssl.certificate.location=/etc/outpost/kafka-client/tls.crt
- --kafka-property
- ssl.key.location=/etc/outpost/kafka-client/tls.key
{{- end }}
{{- range $name, $value := $k.extraProperties }}
- --kafka-property
- {{ printf "%s=%v" $name $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "outpost.kafkaEnv" -}}
{{- $k := .Values.kafka -}}
{{- if and (not $k.mock) (hasPrefix "SASL_" $k.security.protocol) }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ $k.security.sasl.existingSecret }}, key: {{ $k.security.sasl.usernameKey }}}
- name: OUTPOST_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $k.security.sasl.existingSecret }}, key: {{ $k.security.sasl.passwordKey }}}
{{- end }}
{{- end -}}

{{- define "outpost.kafkaMounts" -}}
{{- $k := .Values.kafka -}}
{{- if and (not $k.mock) $k.security.tls.caSecret }}
- {name: kafka-ca, mountPath: /etc/outpost/kafka-ca, readOnly: true}
{{- end }}
{{- if and (not $k.mock) $k.security.tls.clientCertSecret }}
- {name: kafka-client, mountPath: /etc/outpost/kafka-client, readOnly: true}
{{- end }}
{{- end -}}

{{- define "outpost.kafkaVolumes" -}}
{{- $k := .Values.kafka -}}
{{- if and (not $k.mock) $k.security.tls.caSecret }}
- name: kafka-ca
  secret: {secretName: {{ $k.security.tls.caSecret }}, defaultMode: 0444}
{{- end }}
{{- if and (not $k.mock) $k.security.tls.clientCertSecret }}
- name: kafka-client
  secret: {secretName: {{ $k.security.tls.clientCertSecret }}, defaultMode: 0440}
{{- end }}
{{- end -}}

{{/*
The node post's rules in the lab namespaces (rbac.yaml): what posts/runtime_k8s.c
calls. Pods: an environment is a pod (create, get, list and watch by label, a
claim is a merge patch of a label, delete). pods/exec: the Labs API's exec
(cluster post -> node post -> runtime), a WebSocket upgrade of a GET, which
kube-apiserver 1.20 authorises as get and newer ones as create as well.
NetworkPolicies: the runtime makes outpost-no-network once per namespace, or
reads it when it may not make it.
*/}}
{{- define "outpost.nodePostRules" -}}
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [get, create]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create]
{{- with .Values.nodePost.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Checks the combinations the schema cannot express. Included at the top of every
template (the first failure stops the render, so the message comes once).
*/}}
{{- define "outpost.validate" -}}
{{- $k := .Values.kafka -}}
{{- $s := .Values.broker.senders -}}
{{- if and $s.enabled .Values.auth.existingSecret (not $s.existingSecret) -}}
{{- fail (printf "broker.senders.enabled with auth.existingSecret needs broker.senders.existingSecret: the chart cannot write the ingress token of your Secret (its key %s) into a senders file. Name a Secret whose key %s holds the file, with a line \"outpost <that token> dev.outpost.\" for Outpost's components, or set broker.senders.enabled=false (anyone who reaches the ingress may POST)" .Values.auth.ingressTokenKey $s.key) -}}
{{- end -}}
{{- if $k.subchart.enabled -}}
{{- if $k.mock -}}
{{- fail "kafka.subchart.enabled and kafka.mock=true exclude each other: the mock lives inside the broker pod and would leave the subchart's Kafka unused. Choose one" -}}
{{- end -}}
{{- if $k.bootstrapServers -}}
{{- fail (printf "kafka.subchart.enabled and kafka.bootstrapServers exclude each other: with the subchart the components use its Service (%s). Unset kafka.bootstrapServers, or disable the subchart to use your Kafka" (include "outpost.kafkaSubchart" (dict "root" . "t" "bootstrapServers"))) -}}
{{- end -}}
{{- if ne $k.security.protocol "PLAINTEXT" -}}
{{- fail (printf "kafka.security.protocol=%s: the subchart's Kafka (kafka.subchart.enabled) listens in PLAINTEXT only, inside the cluster. For SASL or TLS use a Kafka of your own in kafka.bootstrapServers" $k.security.protocol) -}}
{{- end -}}
{{- $sub := index .Values "kafka-kraft" -}}
{{- if ne $sub.clusterDomain .Values.clusterDomain -}}
{{- fail (printf "kafka-kraft.clusterDomain (%s) differs from clusterDomain (%s): the brokers would advertise names of another domain. Set both" $sub.clusterDomain .Values.clusterDomain) -}}
{{- end -}}
{{- end -}}
{{- if and (not $k.bootstrapServers) (not $k.mock) (not $k.subchart.enabled) -}}
{{- fail "kafka.bootstrapServers is required: Outpost on Kubernetes keeps its events in Kafka (set --set kafka.bootstrapServers=HOST:PORT for a Kafka of your own, kafka.subchart.enabled=true for one installed with the chart, or kafka.mock=true for a demo whose events live in memory)" -}}
{{- end -}}
{{- if and $k.bootstrapServers $k.mock -}}
{{- fail "kafka.bootstrapServers and kafka.mock=true exclude each other: choose one" -}}
{{- end -}}
{{- if and (hasPrefix "SASL_" $k.security.protocol) (not $k.security.sasl.existingSecret) (not $k.mock) -}}
{{- fail (printf "kafka.security.protocol=%s needs kafka.security.sasl.existingSecret (a Secret with the keys %s and %s)" $k.security.protocol $k.security.sasl.usernameKey $k.security.sasl.passwordKey) -}}
{{- end -}}
{{- if and (or $k.security.tls.caSecret $k.security.tls.clientCertSecret) (not (hasSuffix "SSL" $k.security.protocol)) -}}
{{- fail (printf "kafka.security.tls is set but kafka.security.protocol is %s: use SSL or SASL_SSL" $k.security.protocol) -}}
{{- end -}}
{{- range $name, $value := $k.extraProperties -}}
{{- if has $name (list "enable.idempotence" "acks" "request.required.acks" "group.id" "enable.auto.commit" "security.protocol" "sasl.mechanisms" "sasl.username" "sasl.password" "ssl.ca.location") -}}
{{- fail (printf "kafka.extraProperties.%s: not allowed here (Outpost refuses the delivery-guarantee properties; the security ones come from kafka.security)" $name) -}}
{{- end -}}
{{- end -}}
{{- range $name, $value := $k.topics.config -}}
{{- if or (and (eq $name "retention.ms") $k.topics.retention) (and (eq $name "retention.bytes") (ne (toString $k.topics.retentionBytes) "")) -}}
{{- fail (printf "kafka.topics.config.%s: set twice, also by kafka.topics.%s" $name (ternary "retention" "retentionBytes" (eq $name "retention.ms"))) -}}
{{- end -}}
{{- end -}}
{{- if not .Values.eventing.brokers -}}
{{- fail "eventing.brokers: declare at least one broker" -}}
{{- end -}}
{{- $seen := dict -}}
{{- $prefix := .Values.labs.namespacePrefix -}}
{{- range .Values.labs.namespaces -}}
{{- if hasKey $seen . -}}
{{- fail (printf "labs.namespaces: %s is listed twice" .) -}}
{{- end -}}
{{- if gt (len (printf "%s%s" $prefix .)) 63 -}}
{{- fail (printf "labs.namespacePrefix + %s is longer than a namespace name may be (63)" .) -}}
{{- end -}}
{{- $_ := set $seen . true -}}
{{- end -}}
{{- $tseen := dict -}}
{{- range .Values.labs.templates -}}
{{- if hasKey $tseen .name -}}
{{- fail (printf "labs.templates: %s is listed twice" .name) -}}
{{- end -}}
{{- $_ := set $tseen .name true -}}
{{- end -}}
{{- end -}}
