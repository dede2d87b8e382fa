{{/*
Names, labels, the quorum and the broker properties of the kafka-kraft chart. The
outpost chart calls "kafka-kraft.bootstrapServers" with a context of its own
making (Values, Release, Chart.Name), so the helpers below read nothing else.
*/}}

{{- define "kafka-kraft.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-kafka-kraft, at most 52 characters: the StatefulSet's pods carry
the label controller-revision-hash=<name>-<10 characters>, itself at most 63. */}}
{{- define "kafka-kraft.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The StatefulSet's governing Service: the pods' stable DNS names. */}}
{{- define "kafka-kraft.headless" -}}
{{- printf "%s-headless" (include "kafka-kraft.fullname" .) -}}
{{- end -}}

{{- define "kafka-kraft.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kafka-kraft.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kafka-kraft.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kafka-kraft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: kafka
{{- end -}}

{{/* host:port of the client Service: what clients bootstrap from. */}}
{{- define "kafka-kraft.bootstrapServers" -}}
{{- printf "%s.%s.svc.%s:%d" (include "kafka-kraft.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.service.port) -}}
{{- end -}}

{{/* A pod's stable DNS name, without the pod's own name: <pod>.<this>. */}}
{{- define "kafka-kraft.podDomain" -}}
{{- printf "%s.%s.svc.%s" (include "kafka-kraft.headless" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* controller.quorum.voters: node i is pod i, at its stable name, on the
controller port. Static (Kafka 3.7), hence replicas fixed once installed. */}}
{{- define "kafka-kraft.quorumVoters" -}}
{{- $full := include "kafka-kraft.fullname" . -}}
{{- $domain := include "kafka-kraft.podDomain" . -}}
{{- $port := int .Values.service.controllerPort -}}
{{- $voters := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $voters = append $voters (printf "%d@%s-%d.%s:%d" $i $full $i $domain $port) -}}
{{- end -}}
{{- join "," $voters -}}
{{- end -}}

{{/* Properties nobody but this chart sets: roles, identity, listeners, quorum,
storage. */}}
{{- define "kafka-kraft.ownedProperties" -}}
{{- list "process.roles" "node.id" "broker.id" "controller.quorum.voters" "controller.quorum.bootstrap.servers" "controller.listener.names" "listeners" "advertised.listeners" "listener.security.protocol.map" "inter.broker.listener.name" "log.dirs" "log.dir" "metadata.log.dir" "zookeeper.connect" | toJson -}}
{{- end -}}

{{/* The tunable broker properties as JSON: the defaults, which follow replicas,
under .Values.config. */}}
{{- define "kafka-kraft.properties" -}}
{{- $n := int .Values.replicas -}}
{{- $rf := min 3 $n -}}
{{- $isr := max 1 (sub $rf 1) -}}
{{- $p := dict "default.replication.factor" (toString $rf) "min.insync.replicas" (toString $isr) "offsets.topic.replication.factor" (toString $rf) "transaction.state.log.replication.factor" (toString $rf) "transaction.state.log.min.isr" (toString $isr) "auto.create.topics.enable" "false" -}}
{{- range $k, $v := .Values.config -}}
{{- $_ := set $p $k (toString $v) -}}
{{- end -}}
{{- toJson $p -}}
{{- end -}}

{{/* A property's variable in the apache/kafka image: KAFKA_ and the name upper
case, "." as "_", "_" as "__", "-" as "___" (its KafkaDockerWrapper reverses it). */}}
{{- define "kafka-kraft.envName" -}}
{{- printf "KAFKA_%s" (. | replace "_" "__" | replace "-" "___" | replace "." "_" | upper) -}}
{{- end -}}

{{- define "kafka-kraft.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/*
Checks the values the schema cannot. Included at the top of every template.
lookup sees nothing under helm template and lint; on install and upgrade it
reads what the release made before.
*/}}
{{- define "kafka-kraft.validate" -}}
{{- $owned := include "kafka-kraft.ownedProperties" . | fromJsonArray -}}
{{- range $k, $v := .Values.config -}}
{{- if has $k $owned -}}
{{- fail (printf "kafka-kraft.config.%s: set by the chart (listeners, quorum, node id and storage follow replicas and the pod names), not a value" $k) -}}
{{- end -}}
{{- end -}}
{{- $sts := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "kafka-kraft.fullname" .) -}}
{{- if $sts -}}{{- if $sts.spec -}}
{{- if ne (int $sts.spec.replicas) (int .Values.replicas) -}}
{{- fail (printf "kafka-kraft.replicas: %d installed, %d asked. The KRaft quorum (controller.quorum.voters) of Kafka 3.7 is static: a different count needs a new release on new volumes" (int $sts.spec.replicas) (int .Values.replicas)) -}}
{{- end -}}
{{- end -}}{{- end -}}
{{- end -}}
