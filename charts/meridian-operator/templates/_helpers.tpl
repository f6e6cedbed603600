{{/* Name of the release's objects. */}}
{{- define "meridian-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "meridian-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "meridian-operator.labels" -}}
{{ include "meridian-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "meridian-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "meridian-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "meridian-operator.leaseName" -}}
{{- default (include "meridian-operator.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/* The rules the operator needs in a namespace it manages (used by the ClusterRole or by each Role). */}}
{{- define "meridian-operator.managedRules" -}}
- apiGroups: ["meridian.dev"]
  resources: ["regionalclusters", "clusterlinks"]
  verbs: ["get", "list", "watch", "update", "patch"]
- apiGroups: ["meridian.dev"]
  resources: ["regionalclusters/status", "clusterlinks/status"]
  verbs: ["get", "update", "patch"]
- apiGroups: ["meridian.dev"]
  # Setting blockOwnerDeletion on owned objects needs update on the owner's finalizers subresource.
  resources: ["regionalclusters/finalizers", "clusterlinks/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps", "secrets", "services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["statefulsets", "deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
