#!/usr/bin/env bash
# Builds the local control plane into bin/ at the repository root: bin/kubebin (kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd, kubectl and the node agents kubelet and
# kube-proxy in one multi-call binary), bin/kwok, and the real Kueue (bin/kueue, its CRDs in
# bin/kueue-crds/) and Helm (bin/helm). The rest of a real node: tools/nodebin/.
# Cold: downloads modules and compiles Kubernetes (minutes). Warm: Go's build cache finds the
# binaries up to date (their build IDs match) and nothing is compiled or linked again.
set -euo pipefail

KUBERNETES_VERSION=v1.36.3   # keep in step with go.mod
# Release date of k8s.io/kubernetes v1.36.3 on the module proxy. A fixed date, not `date`,
# keeps the link flags — and so Go's build ID — the same from run to run.
BUILD_DATE=2026-07-22T18:07:38Z

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${KUBEBIN_DIR:-$root/bin}"
mkdir -p "$bin"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

major="${KUBERNETES_VERSION#v}"; major="${major%%.*}"
minor="${KUBERNETES_VERSION#v*.}"; minor="${minor%%.*}"
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
done

echo "Building kubebin (Kubernetes $KUBERNETES_VERSION) into $bin" >&2
(cd "$here" && go build -trimpath -ldflags "-s -w$stamp" -o "$bin/kubebin" .)
for name in kube-apiserver kube-controller-manager kube-scheduler etcd kubectl kubelet kube-proxy; do
  ln -sf kubebin "$bin/$name"
done

# kwok, Kueue and Helm: the `tool` lines of go.mod, at the versions it pins. Built in this module
# so that they compile against the same k8s.io, controller-runtime and golang.org/x packages as
# kubebin (one build cache; in a module of its own Kueue compiled them again: ~15 min cold).
version() { (cd "$here" && go list -m -f '{{.Version}}' "$1"); }
KUEUE_VERSION=$(version sigs.k8s.io/kueue)
HELM_VERSION=$(version helm.sh/helm/v4)
echo "Building kwok $(version sigs.k8s.io/kwok), Kueue $KUEUE_VERSION and Helm $HELM_VERSION into $bin" >&2
tools="-X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION"
tools+=" -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
(cd "$here" && go build -trimpath -ldflags "-s -w $tools" -o "$bin/" \
  sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kueue/cmd/kueue helm.sh/helm/v4/cmd/helm)
# promtool, for `promtool test rules`: Prometheus' service discovery plugins left out (its
# remove_all_sd tag; the cloud SDKs they pull in would double this build), as the rules need none.
PROMETHEUS_VERSION=$(version github.com/prometheus/prometheus)
echo "Building promtool (Prometheus module $PROMETHEUS_VERSION) into $bin" >&2
(cd "$here" && go build -trimpath -tags remove_all_sd -o "$bin/" \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
  github.com/prometheus/prometheus/cmd/promtool)
# Kueue's CRDs, as its module ships them (quantfleet.testbed.kueue applies them).
rm -rf "$bin/kueue-crds" && mkdir -p "$bin/kueue-crds"
cp "$(cd "$here" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"/config/components/crd/bases/*.yaml \
  "$bin/kueue-crds/"

# The Prometheus Operator's CRDs of the kinds the chart renders (tests/monitoring applies them to
# check those objects): files of its module, which nothing here compiles.
PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.93.0
operator_dir=$(cd / && go mod download -json "$PROMETHEUS_OPERATOR" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
rm -rf "$bin/prometheus-operator-crds" && mkdir -p "$bin/prometheus-operator-crds"
for kind in servicemonitors podmonitors prometheusrules; do
  cp "$operator_dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" \
    "$bin/prometheus-operator-crds/"
done

"$bin/kube-apiserver" --version >&2
"$bin/kubelet" --version >&2
"$bin/kube-proxy" --version >&2
"$bin/kwok" --version >&2 || true
"$bin/helm" version --short >&2
"$bin/promtool" --version >&2
