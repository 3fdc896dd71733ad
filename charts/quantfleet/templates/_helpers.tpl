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

{{/* One install method per cluster (issue 31): Helm will not take over objects it did not
create, and says so in a long ownership error. Where the operator's ServiceAccount or
ClusterRole exists without this release's mark (installed with `kubectl apply` of manifests/, or
by another release), stop in one line that says what to remove. `lookup` finds nothing under
`helm template` and `helm lint`, so rendering is unchanged. */}}
{{- define "quantfleet.refuseOtherInstall" -}}
{{- $found := list (lookup "v1" "ServiceAccount" .Release.Namespace "quantfleet-operator") (lookup "rbac.authorization.k8s.io/v1" "ClusterRole" "" "quantfleet-operator") -}}
{{- range $object := $found -}}
{{- if $object -}}
{{- $release := dig "metadata" "annotations" "meta.helm.sh/release-name" "" $object -}}
{{- $where := dig "metadata" "annotations" "meta.helm.sh/release-namespace" "" $object -}}
{{- if not $release -}}
{{- fail (printf "%s %s was installed with kubectl (manifests/), not Helm: remove that install first with `kubectl delete --ignore-not-found -f manifests/operator.yaml -f manifests/monitoring/service.yaml -f manifests/rbac.yaml -f manifests/serviceaccount.yaml` (the CRDs and the models stay), or keep using kubectl" $object.kind $object.metadata.name) -}}
{{- else if or (ne $release $.Release.Name) (ne $where $.Release.Namespace) -}}
{{- fail (printf "%s %s belongs to Helm release %s in %s: upgrade that release, or remove it first with `helm uninstall %s --namespace %s`" $object.kind $object.metadata.name $release $where $release $where) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
