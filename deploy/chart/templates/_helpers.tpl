{{/* Labels every object's metadata carries (kustomize's part-of, plus Helm's own). */}}
{{- define "podgate.labels" -}}
app.kubernetes.io/part-of: podgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* podgate's own pods; "component: ingress" keeps them apart from user pods. */}}
{{- define "podgate.selector" -}}
app.kubernetes.io/name: podgate
app.kubernetes.io/component: ingress
{{- end -}}

{{- define "podgate.userPodSelector" -}}
app.kubernetes.io/name: podgate
app.kubernetes.io/component: singleuser-server
{{- end -}}

{{- define "podgate.secretName" -}}
{{- .Values.secrets.existingSecret | default "podgate-secrets" -}}
{{- end -}}

{{/* The port user servers listen on: the NetworkPolicies open it. */}}
{{- define "podgate.userPort" -}}
{{- dig "spawner" "port" 8888 .Values.podgate.config | int -}}
{{- end -}}

{{/*
The cookie secret: the value given, else the one the release's Secret holds
already (kept across upgrades, like z2jh's proxy.secretToken), else new.
*/}}
{{- define "podgate.cookieSecret" -}}
{{- if .Values.secrets.cookieSecret -}}
{{- .Values.secrets.cookieSecret -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace "podgate-secrets" -}}
{{- $data := dig "data" (dict) $existing -}}
{{- if hasKey $data "cookie-secret" -}}
{{- index $data "cookie-secret" | b64dec -}}
{{- else -}}
{{- randAlphaNum 64 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Resources in podgate's names from z2jh's cpu/memory guarantee and limit. */}}
{{- define "podgate.resources" -}}
{{- $out := dict -}}
{{- range $pair := list (list "cpu_request" .cpuGuarantee) (list "cpu_limit" .cpuLimit) (list "memory_request" .memGuarantee) (list "memory_limit" .memLimit) -}}
{{- if not (kindIs "invalid" (index $pair 1)) -}}
{{- $_ := set $out (index $pair 0) (toString (index $pair 1)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* A list from z2jh's cmd, which may be one string or a list. */}}
{{- define "podgate.cmd" -}}
{{- if kindIs "string" . -}}
{{- toYaml (list .) -}}
{{- else -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}

{{/* One z2jh profileList entry as a podgate profile. */}}
{{- define "podgate.profile" -}}
{{- $o := .kubespawner_override | default dict -}}
{{- $slug := .slug | default (.display_name | lower | regexReplaceAll "[^a-z0-9]+" "-" | trimAll "-") -}}
{{- $p := dict "slug" $slug "display_name" .display_name -}}
{{- if .description }}{{ $_ := set $p "description" .description }}{{ end -}}
{{- if .default }}{{ $_ := set $p "default" true }}{{ end -}}
{{- if $o.image }}{{ $_ := set $p "image" $o.image }}{{ end -}}
{{- if hasKey $o "cmd" }}{{ $_ := set $p "cmd" (include "podgate.cmd" $o.cmd | fromYamlArray) }}{{ end -}}
{{- $res := include "podgate.resources" (dict "cpuGuarantee" $o.cpu_guarantee "cpuLimit" $o.cpu_limit "memGuarantee" $o.mem_guarantee "memLimit" $o.mem_limit) | fromYaml -}}
{{- if $res }}{{ $_ := set $p "resources" $res }}{{ end -}}
{{- if $o.node_selector }}{{ $_ := set $p "node_selector" $o.node_selector }}{{ end -}}
{{- if hasKey $o "tolerations" }}{{ $_ := set $p "tolerations" $o.tolerations }}{{ end -}}
{{- if $o.environment }}{{ $_ := set $p "env" $o.environment }}{{ end -}}
{{- if $o.extra_labels }}{{ $_ := set $p "extra_labels" $o.extra_labels }}{{ end -}}
{{- if hasKey $o "uid" }}{{ $_ := set $p "run_as_user" ($o.uid | int) }}{{ end -}}
{{- toYaml $p -}}
{{- end -}}

{{/* podgate's config.yaml, built from the values; podgate.config merged over it. */}}
{{- define "podgate.config" -}}
{{- $v := .Values -}}
{{- $su := $v.singleuser -}}
{{- $secrets := "/etc/podgate/secrets" -}}
{{- $auth := dict "kind" $v.auth.kind "admins" $v.auth.admins -}}
{{- if $v.auth.allowedUsers }}{{ $_ := set $auth "allowed_users" $v.auth.allowedUsers }}{{ end -}}
{{- if eq $v.auth.kind "password" }}{{ $_ := set $auth "users_file" (printf "%s/users.yaml" $secrets) }}{{ end -}}
{{- if and (eq $v.auth.kind "dummy") $v.auth.dummyPassword }}{{ $_ := set $auth "password" $v.auth.dummyPassword }}{{ end -}}
{{- if eq $v.auth.kind "oidc" }}{{ $_ := set $auth "oidc" $v.auth.oidc }}{{ end -}}
{{- $resources := include "podgate.resources" (dict "cpuGuarantee" $su.cpu.guarantee "cpuLimit" $su.cpu.limit "memGuarantee" $su.memory.guarantee "memLimit" $su.memory.limit) | fromYaml -}}
{{- $spawner := dict "namespace" .Release.Namespace "image" (printf "%s:%s" $su.image.name (toString $su.image.tag)) "port" 8888 "resources" $resources -}}
{{- if ne $su.image.pullPolicy "IfNotPresent" }}{{ $_ := set $spawner "image_pull_policy" $su.image.pullPolicy }}{{ end -}}
{{- if $su.cmd }}{{ $_ := set $spawner "cmd" (include "podgate.cmd" $su.cmd | fromYamlArray) }}{{ end -}}
{{- if $su.defaultUrl }}{{ $_ := set $spawner "args" (list (printf "--ServerApp.default_url=%s" $su.defaultUrl)) }}{{ end -}}
{{- if ne (int $su.startTimeout) 300 }}{{ $_ := set $spawner "start_timeout" $su.startTimeout }}{{ end -}}
{{- if ne (int $su.uid) 1000 }}{{ $_ := set $spawner "run_as_user" (int $su.uid) }}{{ end -}}
{{- if ne (int $su.fsGid) 100 }}{{ $_ := set $spawner "fs_group" (int $su.fsGid) }}{{ end -}}
{{- if $su.extraEnv }}{{ $_ := set $spawner "env" $su.extraEnv }}{{ end -}}
{{- $nodeSelector := deepCopy $su.nodeSelector -}}
{{- if eq $v.scheduling.userPods.nodeAffinity.matchNodePurpose "require" -}}
{{- $_ := set $nodeSelector "hub.jupyter.org/node-purpose" "user" -}}
{{- end -}}
{{- if $nodeSelector }}{{ $_ := set $spawner "node_selector" $nodeSelector }}{{ end -}}
{{- if $v.scheduling.userPods.tolerations }}{{ $_ := set $spawner "tolerations" $v.scheduling.userPods.tolerations }}{{ end -}}
{{- if $su.extraLabels }}{{ $_ := set $spawner "extra_labels" $su.extraLabels }}{{ end -}}
{{- if ne (int $v.hub.concurrentSpawnLimit) 100 }}{{ $_ := set $spawner "concurrent_spawn_limit" (int $v.hub.concurrentSpawnLimit) }}{{ end -}}
{{- if eq $su.storage.type "dynamic" -}}
{{- $_ := set $spawner "storage" (dict "size" $su.storage.capacity "storage_class" $su.storage.dynamic.storageClass "mount_path" $su.storage.homeMountPath) -}}
{{- end -}}
{{- if $su.profileList -}}
{{- $profiles := list -}}
{{- range $su.profileList }}{{ $profiles = append $profiles (include "podgate.profile" . | fromYaml) }}{{ end -}}
{{- $_ := set $spawner "profiles" $profiles -}}
{{- end -}}
{{- $c := $v.cull -}}
{{- $culler := dict "enabled" $c.enabled "timeout" $c.timeout -}}
{{- if ne (int $c.every) 60 }}{{ $_ := set $culler "every" $c.every }}{{ end -}}
{{- if $c.maxAge }}{{ $_ := set $culler "max_age" $c.maxAge }}{{ end -}}
{{- if ne (int $c.concurrency) 10 }}{{ $_ := set $culler "concurrency" (int $c.concurrency) }}{{ end -}}
{{- if not $c.adminUsers }}{{ $_ := set $culler "cull_admin_users" false }}{{ end -}}
{{- $config := dict
  "listen" "0.0.0.0:8000"
  "ops_listen" "0.0.0.0:8081"
  "log_format" $v.podgate.logFormat
  "shutdown_grace_seconds" 25
  "control" (dict "enabled" true)
  "cluster" (dict "kind" "kube")
  "auth" $auth
  "edge" (dict "trusted_proxies" $v.podgate.trustedProxies)
  "api_tokens_file" (printf "%s/api-tokens.yaml" $secrets)
  "spawner" $spawner
  "culler" $culler
-}}
{{- toYaml (mustMergeOverwrite $config (deepCopy $v.podgate.config)) -}}
{{- end -}}
