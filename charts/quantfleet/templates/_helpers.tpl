{{/* The labels every object of the operator carries (as in manifests/). */}}
{{- define "quantfleet.labels" -}}
app.kubernetes.io/name: quantfleet
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: quantfleet
{{- end }}

{{/* The operator pod's selector. */}}
{{- define "quantfleet.selector" -}}
app.kubernetes.io/name: quantfleet
app.kubernetes.io/component: operator
{{- end }}

{{/* Whether the Prometheus Operator's objects are rendered. */}}
{{- define "quantfleet.monitoring" -}}
{{- if and .Values.monitoring.enabled (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") }}true{{ end }}
{{- end }}
