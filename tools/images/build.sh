#!/usr/bin/env bash
# Builds the project's images from its Dockerfile without a container engine or a registry:
#   tools/images/build.sh [operator|jobs|vllm-cpu ...]      (default: all three)
# buildah (Debian's; `buildah build` is what `podman build` runs) builds each target FROM the base
# images base.sh makes from Debian packages, in chroot isolation (no runtime needed), with the
# host's uv cache mounted so the locked wheels are not downloaded again, and --layers so unchanged
# dependency layers are reused. Each image is written as an OCI archive named by a content key
# (operator/quantfleet/testbed/images.py: the Dockerfile, pyproject.toml, the locks, serving/,
# tools/images and the tracked files of operator/ and jobs/):
#   $QUANTFLEET_IMAGE_CACHE/<target>-<key12>.tar  holding  localhost/quantfleet-<target>:<key12>
# An archive already there is a cache hit: nothing is built. Load one into a node's containerd:
#   ctr -n k8s.io images import <archive>
# stdout: `<target> <image-ref> <archive-path>`, one line per target; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
images() { PYTHONPATH="$root/operator" "$python" -m quantfleet.testbed.images "$@"; }
bh() { "$here/buildah" "$@"; }

(($#)) || set -- operator jobs vllm-cpu
plan="$(images plan "$@")"
cache="$(dirname "$(head -n1 <<<"$plan" | cut -d' ' -f3)")"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # one build at a time per cache; a second run waits, then finds the archives

work=""
trap '[[ -z $work ]] || rm -rf "$work"; rm -f "$cache"/*.tar.tmp.$$' EXIT

while read -r -u 3 target ref archive; do
  if [[ -f $archive ]]; then
    echo "Found $target: $ref in $archive" >&2
    continue
  fi
  if [[ -z $work ]]; then
    work="$(mktemp -d "${TMPDIR:-/tmp}/quantfleet-images.XXXXXX")"
    mapfile -t base_args < <("$here/base.sh")
    # The build context: only the tracked files (an untracked file neither enters an image nor
    # counts in its key), with one fixed mtime.
    images context "$work/context"
    uv_cache="$(uv cache dir 2>/dev/null || true)"
    # The machine's trust store for uv's downloads in RUN steps (here it holds the CA of a
    # TLS-inspecting egress proxy, which uv's bundled roots lack); mounted, so no image keeps it.
    ca_bundle="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
  fi
  echo "Building $target as $ref" >&2
  started=$SECONDS
  build=(build --layers --force-rm --isolation chroot --network host --pull=never
         --target "$target" --tag "$ref" --file "$work/context/Dockerfile")
  for arg in "${base_args[@]}"; do build+=(--build-arg "$arg"); done
  # The host's uv cache where the Dockerfile's cache mount is: buildah mounts volumes over RUN
  # mounts, so uv finds the wheels `make setup` downloaded.
  [[ -z $uv_cache ]] || build+=(--volume "$uv_cache:/root/.cache/uv")
  [[ ! -f $ca_bundle ]] || build+=(--volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro"
                                   --build-arg SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
  bh "${build[@]}" "$work/context" >&2
  bh rm --all >/dev/null   # working containers buildah 1.28 leaves for `COPY --from` stages
  built=$SECONDS
  # Layers gzip-compressed (buildah 1.28 ignores --disable-compression for an OCI archive; a
  # docker-archive, uncompressed, is twice the size and saves a third of the time). The index names
  # the image by its full reference, which `ctr images import` registers as it is.
  tmp="$archive.tmp.$$"
  bh push --quiet "$ref" "oci-archive:$tmp:$ref" >&2
  named="$(tar -xOf "$tmp" index.json |
    "$python" -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])')"
  [[ $named == "$ref" ]] || { echo "$tmp names $named, not $ref" >&2; exit 1; }
  mv -f "$tmp" "$archive"
  for old in "$cache/$target"-*.tar; do
    [[ $old == "$archive" ]] || rm -f "$old"
  done
  # Older tags of this target in the store; their layers stay while the build cache uses them.
  bh images --format '{{.Name}}:{{.Tag}}' | grep -F "localhost/quantfleet-$target:" |
    grep -vxF "$ref" | xargs -r "$here/buildah" rmi >/dev/null 2>&1 || true
  echo "Built $target in $((SECONDS - started)) s (build $((built - started)) s, archive" \
       "$((SECONDS - built)) s): $archive ($(du -h "$archive" | cut -f1))" >&2
done 3<<<"$plan"

echo "$plan"
