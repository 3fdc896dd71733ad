#!/usr/bin/env bash
# Builds the local control plane into bin/ at the repository root: bin/kubebin (kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd, kubectl and the node agents kubelet and
# kube-proxy in one multi-call binary) and bin/kwok. The rest of a real node: tools/nodebin/.
# Cold: downloads modules and compiles Kubernetes (minutes). Warm: Go's build cache finds the
# binaries up to date (their build IDs match) and nothing is compiled or linked again.
set -euo pipefail

KUBERNETES_VERSION=v1.36.3   # keep in step with go.mod
KWOK_VERSION=v0.8.0
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

echo "Building kwok $KWOK_VERSION into $bin" >&2
GOBIN="$bin" go install -trimpath "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"

"$bin/kube-apiserver" --version >&2
"$bin/kubelet" --version >&2
"$bin/kube-proxy" --version >&2
"$bin/kwok" --version >&2 || true
