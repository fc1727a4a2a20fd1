{{/*
Named templates of the minerguard chart: names, labels, the image reference, the
operator's RBAC rules (the single place the ClusterRole is generated from) and the
annotations of objects whose CRD the same release installs.
*/}}

{{- define "minerguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "minerguard.fullname" -}}
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

{{- define "minerguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "minerguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "minerguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "minerguard.labels" -}}
helm.sh/chart: {{ include "minerguard.chart" . }}
{{ include "minerguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: minerguard
{{- end }}

{{- define "minerguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "minerguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "minerguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "minerguard.peeringName" -}}
{{- default .Release.Name .Values.peering.name }}
{{- end }}

{{/*
The operator's ClusterRole rules: exactly minerguard.rbac.required_rules() (the operator's
own watches and records plus each action's declared rules). tests/e2e/test_chart.py
renders the chart and compares, so a new API call in the operator fails that test until
the same rule is added here. No wildcard, no secrets.
*/}}
{{- define "minerguard.clusterRules" -}}
# Watched by kopf (pods, namespaces, nodes); pods are also labelled by quarantine.
- apiGroups: [""]
  resources: [pods, namespaces, nodes]
  verbs: [get, list, watch]
# ConfigMaps pods reference (envFrom, configMapKeyRef, volumes), read for detection; never Secrets.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
# quarantine labels the pod (and, with the networkPolicy backend, marks its namespace); cordon and taint
# patch the node; the node guard's lock is an annotation on the operator's namespace.
- apiGroups: [""]
  resources: [pods, nodes, namespaces]
  verbs: [patch]
# evict (hostNetwork miners by default, or when a policy lists it): delete the matched pod, that UID only.
- apiGroups: [""]
  resources: [pods]
  verbs: [delete]
# Watched: NetworkPolicies (a change re-checks the quarantined pods it could reopen).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
{{- $backends := include "minerguard.enforcementBackends" . | splitList "," }}
{{- if has "networkPolicy" $backends }}
# Enforcement backend networkPolicy: the deny-all NetworkPolicy per namespace and the exclusions in
# tenants' policies (JSON patches).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [create, patch, delete]
{{- end }}
{{- if has "adminNetworkPolicy" $backends }}
# Enforcement backend adminNetworkPolicy: minerguard's one AdminNetworkPolicy or ClusterNetworkPolicy.
- apiGroups: [policy.networking.k8s.io]
  resources: [adminnetworkpolicies, clusternetworkpolicies]
  verbs: [get, list, create, patch, delete]
{{- end }}
{{- if has "cilium" $backends }}
# Enforcement backend cilium: minerguard's one CiliumClusterwideNetworkPolicy.
- apiGroups: [cilium.io]
  resources: [ciliumclusterwidenetworkpolicies]
  verbs: [get, list, create, patch, delete]
{{- end }}
{{- if has "calico" $backends }}
# Enforcement backend calico: minerguard's one GlobalNetworkPolicy (Calico's API server, or its CRD).
- apiGroups: [projectcalico.org]
  resources: [globalnetworkpolicies]
  verbs: [get, list, create, patch, delete]
- apiGroups: [crd.projectcalico.org]
  resources: [globalnetworkpolicies]
  verbs: [get, list, create, patch, delete]
{{- end }}
{{- if and (eq .Values.enforcement.backend "networkPolicy") .Values.enforcement.migrateFromAdminTier }}
# Back to networkPolicy from a cluster-wide backend: minerguard's old policy is read and deleted once every
# quarantined pod verifies under networkPolicy (enforcement.migrateFromAdminTier).
- apiGroups: [policy.networking.k8s.io]
  resources: [adminnetworkpolicies, clusternetworkpolicies]
  verbs: [get, delete]
- apiGroups: [cilium.io]
  resources: [ciliumclusterwidenetworkpolicies]
  verbs: [get, delete]
- apiGroups: [projectcalico.org]
  resources: [globalnetworkpolicies]
  verbs: [get, delete]
- apiGroups: [crd.projectcalico.org]
  resources: [globalnetworkpolicies]
  verbs: [get, delete]
{{- end }}
# Owner resolution of a matched pod: ReplicaSet -> Deployment, Job -> CronJob.
- apiGroups: [apps]
  resources: [replicasets, deployments, statefulsets, daemonsets]
  verbs: [get]
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: [get]
{{- if .Values.scaleOwner.enabled }}
# scaleOwner (scaleOwner.enabled): scale to zero or suspend the owner, recording it on the owner.
- apiGroups: [apps]
  resources: [deployments/scale, statefulsets/scale, replicasets/scale, deployments, statefulsets, replicasets]
  verbs: [patch]
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: [patch]
{{- end }}
# Its own custom resources.
- apiGroups: [minerguard.io]
  resources: [minerpolicies]
  verbs: [get, list, watch]
- apiGroups: [minerguard.io]
  resources: [minerpolicies/status]
  verbs: [patch]
- apiGroups: [minerguard.io]
  resources: [minerincidents]
  verbs: [get, list, watch, create, patch]
- apiGroups: [minerguard.io]
  resources: [minerincidents/status]
  verbs: [update]
# Foothold evidence: what a miner's ServiceAccount can do (one review per dangerous verb; stores nothing).
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
# Events about pods, nodes, policies and incidents.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
# kopf: resource discovery, and peering between the replicas.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}

{{/*
The enforcement backends whose RBAC the operator needs, comma-separated: all of them for auto; a named
admin-tier backend plus networkPolicy while enforcement.migrateFromNetworkPolicy (to move quarantines made
with it). minerguard.actions.enforcement.backends_for says the same; tests/e2e/test_chart.py compares.
*/}}
{{- define "minerguard.enforcementBackends" -}}
{{- $b := .Values.enforcement.backend }}
{{- if eq $b "auto" }}adminNetworkPolicy,cilium,calico,networkPolicy
{{- else if and (ne $b "networkPolicy") .Values.enforcement.migrateFromNetworkPolicy }}{{ $b }},networkPolicy
{{- else }}{{ $b }}
{{- end }}
{{- end }}

{{/*
True (non-empty) when the admission policy is wanted and the cluster serves
admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (GA in Kubernetes 1.30). A cluster's
discovery lists group/version/Kind; `helm template` needs
--api-versions admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy.
*/}}
{{- define "minerguard.admissionPolicyServed" -}}
{{- if and .Values.admissionPolicy.enabled (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy") }}true{{ end }}
{{- end }}

{{/*
True (non-empty) when the creator stamp is wanted and the cluster serves admissionregistration.k8s.io/v1
MutatingAdmissionPolicy (`helm template` needs --api-versions admissionregistration.k8s.io/v1/MutatingAdmissionPolicy).
*/}}
{{- define "minerguard.creatorStampServed" -}}
{{- if and .Values.creatorStamp.enabled (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy") }}true{{ end }}
{{- end }}

{{/* Labels of the `helm test` objects: not the operator's selector labels, so the check never counts itself. */}}
{{- define "minerguard.testLabels" -}}
helm.sh/chart: {{ include "minerguard.chart" . }}
app.kubernetes.io/name: {{ include "minerguard.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: minerguard
app.kubernetes.io/component: test
{{- end }}

{{/* Arguments of files/helm-test/check_install.py: what "installed and up" means for this release. */}}
{{- define "minerguard.testArgs" -}}
- --namespace
- {{ .Release.Namespace }}
- --selector
- {{ printf "app.kubernetes.io/name=%s,app.kubernetes.io/instance=%s" (include "minerguard.name" .) .Release.Name }}
- --replicas
- {{ .Values.replicaCount | toString | quote }}
- --crd
- minerpolicies.minerguard.io
- --crd
- minerincidents.minerguard.io
{{- if .Values.peering.enabled }}
- --crd
- clusterkopfpeerings.kopf.dev
{{- end }}
- --timeout
- {{ .Values.tests.timeoutSeconds | toString | quote }}
{{- end }}

{{/* The Secret holding the Falco endpoint's token. */}}
{{- define "minerguard.falcoTokenSecret" -}}
{{- .Values.falco.token.existingSecret | default (printf "%s-falco-token" (include "minerguard.fullname" .)) -}}
{{- end }}

{{/* The kubernetes.io/tls Secret the Falco endpoint serves. */}}
{{- define "minerguard.falcoTlsSecret" -}}
{{- if eq .Values.falco.tls.source "existingSecret" -}}
{{- .Values.falco.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-falco-tls" (include "minerguard.fullname" .) -}}
{{- end -}}
{{- end }}
