#!/usr/bin/env bash
# The base images the Dockerfile builds FROM, made without a registry, into the project's buildah
# storage (tools/images/buildah):
#   localhost/quantfleet/python:3.11-bookworm  Debian bookworm's Essential set plus
#       base-packages.txt (python3.11 and the run-time libraries torch and vLLM link), made by
#       mmdebstrap from the machine's apt sources; user 65532 ("nonroot") in /etc/passwd
#   localhost/quantfleet/python-cxx:3.11-bookworm  the same plus base-cxx-packages.txt (g++),
#       for the vllm-cpu image: vLLM compiles its CPU kernels at start
#   localhost/quantfleet/uv:<version>         /uv alone, from PyPI's uv wheel, the version the
#       Dockerfile's UV_IMAGE names (checked by running it)
# Each is labelled with the hash of this recipe and made again only when that changes.
# Prints the Dockerfile's build arguments (PYTHON_IMAGE, VLLM_CPU_PYTHON_IMAGE, UV_IMAGE), one
# NAME=<ref> a line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bh() { "$here/buildah" "$@"; }

suite=bookworm
python_image="localhost/quantfleet/python:3.11-$suite"
python_cxx_image="localhost/quantfleet/python-cxx:3.11-$suite"
uv_version="$(sed -n 's|^ARG UV_IMAGE=.*:\([0-9.]*\)$|\1|p' "$root/Dockerfile")"
[[ -n $uv_version ]] || { echo "no uv version in the Dockerfile's ARG UV_IMAGE" >&2; exit 1; }
uv_image="localhost/quantfleet/uv:$uv_version"
label=io.quantfleet.base-recipe
recipe_of() { cat "$here/base.sh" "$@" | sha256sum | cut -c1-64; }  # this script + package lists
# The machine's own Debian sources (deb.debian.org or its mirror), not a guessed URL.
apt_sources="${QUANTFLEET_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}"
[[ -f $apt_sources ]] || apt_sources=/etc/apt/sources.list

current() {  # true when image $1 exists and is labelled with recipe $2
  [[ "$(bh inspect --type image --format "{{index .OCIv1.Config.Labels \"$label\"}}" "$1" \
        2>/dev/null)" == "$2" ]]
}

work="$(mktemp -d "${TMPDIR:-/tmp}/quantfleet-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT

make_python_image() {  # $1: image ref; $2...: package lists
  local image=$1 recipe packages container
  shift
  recipe="$(recipe_of "$@")"
  current "$image" "$recipe" && return
  command -v mmdebstrap >/dev/null ||
    { echo "mmdebstrap not found: apt-get install -y --no-install-recommends mmdebstrap" >&2; exit 127; }
  packages="$(sed 's/#.*//' "$@" | xargs | tr ' ' ,)"
  echo "Making $image from Debian $suite ($packages) with $apt_sources" >&2
  # Essential only (no apt: the images install nothing at run time); merged /usr without the
  # usrmerge package (which pulls in perl); no docs, man pages or translations; no device nodes
  # (the runtime mounts /dev).
  mmdebstrap --variant=essential --mode=root --format=tar --skip=output/dev \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='echo "nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin" >> "$1/etc/passwd"' \
    --customize-hook='echo "nonroot:x:65532:" >> "$1/etc/group"' \
    --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/log/* "$1"/etc/apt/sources.list.d/*' \
    "$suite" "$work/rootfs.tar" "$apt_sources" >&2
  container="$(bh from scratch)"
  bh add --quiet "$container" "$work/rootfs.tar" / >&2
  rm -f "$work/rootfs.tar"
  bh config --os linux --arch amd64 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd /usr/bin/python3.11 --label "$label=$recipe" "$container"
  bh commit --quiet --rm "$container" "$image" >&2
}

make_python_image "$python_image" "$here/base-packages.txt"
make_python_image "$python_cxx_image" "$here/base-packages.txt" "$here/base-cxx-packages.txt"

if ! current "$uv_image" "$(recipe_of)"; then
  echo "Making $uv_image from PyPI's uv $uv_version wheel" >&2
  uv pip install --quiet --no-deps --target "$work/uv" --python "$(command -v python3)" \
    "uv==$uv_version" >&2
  got="$("$work/uv/bin/uv" --version)"
  [[ $got == "uv $uv_version" || $got == "uv $uv_version "* ]] ||
    { echo "the uv wheel runs as '$got', not uv $uv_version" >&2; exit 1; }
  container="$(bh from scratch)"
  bh copy --quiet "$container" "$work/uv/bin/uv" /uv >&2
  bh config --os linux --arch amd64 --entrypoint '["/uv"]' --label "$label=$(recipe_of)" \
    "$container"
  bh commit --quiet --rm "$container" "$uv_image" >&2
fi

echo "PYTHON_IMAGE=$python_image"
echo "VLLM_CPU_PYTHON_IMAGE=$python_cxx_image"
echo "UV_IMAGE=$uv_image"
