#!/usr/bin/env bash
# Builds what a real Kubernetes node needs besides kubelet and kube-proxy (those are in
# bin/kubebin, tools/kubebin/build.sh) into bin/ at the repository root (issue 13): runc,
# containerd with its runc shim and ctr, the CNI plugins in bin/cni/, CoreDNS and pause.
# Every version is pinned here; the Debian packages the builds need come from apt.sh.
# Cold: downloads modules and compiles (minutes). Warm: the link flags never change, so Go's build
# cache finds every binary up to date (its build ID matches) and nothing is compiled or linked.
set -euo pipefail

RUNC_VERSION=v1.5.3
CONTAINERD_VERSION=v2.4.2
CNI_PLUGINS_VERSION=v1.10.0
# The pause image's own version (TAG in build/pause/Makefile of the Kubernetes release);
# pause.c is taken from the k8s.io/kubernetes module that tools/kubebin/go.mod requires.
PAUSE_VERSION=3.10.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${KUBEBIN_DIR:-$root/bin}"
mkdir -p "$bin/cni"

export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
# Strip symbols as kubebin does; every -X below is a constant, so the flags are the same each run.
strip_flags="-s -w"

# Runs "$@" and says how long the piece took (a warm run shows 0-2 s per piece).
timed() {
  local piece="$1" start=$SECONDS
  shift
  echo "Building $piece into $bin" >&2
  "$@"
  echo "  $piece: $((SECONDS - start)) s" >&2
}

# runc: cgo for libseccomp (Debian libseccomp-dev), so seccomp profiles are really applied.
# Upstream's default tags add libpathrs, a Rust library we cannot build here.
build_runc() {
  if ! pkg-config --exists libseccomp 2>/dev/null; then
    echo "error: libseccomp-dev is missing; run tools/nodebin/apt.sh as root (or make nodebin)" >&2
    return 1
  fi
  CGO_ENABLED=1 GOBIN="$bin" go install -trimpath -tags "seccomp urfave_cli_no_docs" \
    -ldflags "$strip_flags" "github.com/opencontainers/runc@$RUNC_VERSION"
}

# containerd, ctr and the shim as upstream's Makefile builds them: CGO off, the snapshotters we
# cannot use left out, and the shim without gRPC (SHIM_GO_BUILDTAGS).
build_containerd() {
  local module=github.com/containerd/containerd/v2 tags="no_btrfs no_devmapper no_zfs urfave_cli_no_docs"
  local stamp="$strip_flags -X $module/version.Version=$CONTAINERD_VERSION -X $module/version.Package=$module"
  CGO_ENABLED=0 GOBIN="$bin" go install -trimpath -tags "$tags" -ldflags "$stamp" \
    "$module/cmd/containerd@$CONTAINERD_VERSION" "$module/cmd/ctr@$CONTAINERD_VERSION"
  CGO_ENABLED=0 GOBIN="$bin" go install -trimpath -tags "$tags no_grpc" -ldflags "$stamp" \
    "$module/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
}

build_cni_plugins() {
  local module=github.com/containernetworking/plugins
  CGO_ENABLED=0 GOBIN="$bin/cni" go install -trimpath \
    -ldflags "$strip_flags -X $module/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
    "$module/plugins/main/bridge@$CNI_PLUGINS_VERSION" \
    "$module/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
    "$module/plugins/ipam/host-local@$CNI_PLUGINS_VERSION" \
    "$module/plugins/meta/portmap@$CNI_PLUGINS_VERSION"
}

# The cluster DNS, run as a plain process whose kubernetes plugin reads the API server: built
# with only the plugins the node's Corefile uses (coredns/main.go; its version in coredns/go.mod).
build_coredns() {
  (cd "$here/coredns" && CGO_ENABLED=0 go build -trimpath -ldflags "$strip_flags" -o "$bin/coredns" .)
}

# The sandbox's pause process, with upstream's CFLAGS and VERSION=v$(TAG)-$(REV) (REV being
# the Kubernetes release here). The binary is replaced only when its bytes change.
build_pause() {
  local kubernetes_version source tag
  kubernetes_version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$root/tools/kubebin/go.mod")"
  source="$(go mod download -json "k8s.io/kubernetes@$kubernetes_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/build/pause"
  tag="$(sed -n 's/^TAG ?= //p' "$source/Makefile")"
  if [ "$tag" != "$PAUSE_VERSION" ]; then
    echo "error: k8s.io/kubernetes@$kubernetes_version has pause $tag, this script pins $PAUSE_VERSION" >&2
    return 1
  fi
  gcc -Os -Wall -Werror -static "-DVERSION=v$PAUSE_VERSION-$kubernetes_version" \
    -o "$bin/.pause.new" "$source/linux/pause.c"
  if cmp -s "$bin/.pause.new" "$bin/pause"; then rm "$bin/.pause.new"; else mv "$bin/.pause.new" "$bin/pause"; fi
}

timed "runc $RUNC_VERSION" build_runc
timed "containerd $CONTAINERD_VERSION (containerd, ctr, containerd-shim-runc-v2)" build_containerd
timed "CNI plugins $CNI_PLUGINS_VERSION (bridge, loopback, host-local, portmap)" build_cni_plugins
timed "CoreDNS $(awk '$1 == "require" && $2 == "github.com/coredns/coredns" { print $3 }' "$here/coredns/go.mod")" build_coredns
timed "pause $PAUSE_VERSION" build_pause

"$bin/runc" --version >&2
"$bin/containerd" --version >&2
"$bin/ctr" --version >&2
"$bin/containerd-shim-runc-v2" -v >&2
# Without CNI_COMMAND a plugin prints its own version; CNI_COMMAND=VERSION gives only the spec's.
"$bin/cni/bridge" </dev/null
"$bin/coredns" -version >&2
"$bin/pause" -v >&2
