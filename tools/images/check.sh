#!/usr/bin/env bash
# Runs each image's own program as the images run it (uid 65532, the image's environment and
# working directory) without a container engine: `buildah run` in chroot isolation.
#   tools/images/check.sh [operator|jobs|vllm-cpu ...]      (default: all three; builds if needed)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bh() { "$here/buildah" "$@"; }

declare -A check=(
  [operator]='quantfleet operator --help'
  [jobs]='python -c "import quantfleet_jobs.quantize, quantfleet_jobs.evaluate, quantfleet_jobs.benchmark, torch, llmcompressor, lm_eval, guidellm; print(\"torch\", torch.__version__, \"llmcompressor\", llmcompressor.__version__)"'
  [vllm-cpu]='vllm --version && python -c "import importlib.metadata as m, quantfleet_jobs.evaluate; from vllm.platforms import current_platform as p; print(\"vllm\", m.version(\"vllm\"), type(p).__name__)"'
)

"$here/build.sh" "$@" | while read -r target ref _archive; do
  echo "Checking $target ($ref): ${check[$target]}" >&2
  container="$(bh from --pull-never --quiet "$ref")"
  status=0
  bh run --isolation chroot --user 65532:65532 "$container" -- sh -c "${check[$target]}" ||
    status=$?
  bh rm "$container" >/dev/null
  ((status == 0)) || { echo "$target: check failed ($status)" >&2; exit "$status"; }
done
