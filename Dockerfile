# Three images: two from the project's locked environment (uv.lock), one from the serving one
# (serving/uv.lock, the vLLM CPU build the tests serve checkpoints with):
#   docker build --target operator -t quantfleet-operator .   # `quantfleet operator`
#   docker build --target jobs -t quantfleet-jobs .           # `python -m quantfleet_jobs.<program>`
#   docker build --target vllm-cpu -t quantfleet-vllm-cpu .   # `vllm serve` on CPU nodes; and
#                                                             # the evaluate Jobs there
# and a fourth for the evaluate Jobs on GPUs, from vLLM's CUDA image (see its stage, at the end):
#   docker build --target evaluate -t quantfleet-evaluate .
# Without Docker or a registry, `make images` (tools/images/build.sh) builds the same targets with
# buildah FROM base images it makes from Debian packages (the *_IMAGE arguments below) and writes
# OCI archives for `ctr -n k8s.io images import` (docs/images.md).
# Each image is the base userland, then pyproject.toml and the locks (kept in /app, beside the
# environment they made), the locked dependencies in /app/.venv (gigabytes; they change only with
# those files), and last the project itself: a source edit rebuilds and ships only that layer.
# All run as uid/gid 65532 (no root, no shell user) and fit Pod Security "restricted" with a
# read-only root filesystem: nothing is written outside the mounted /tmp at run time.

ARG PYTHON_IMAGE=python:3.11-slim
# vLLM's CPU backend compiles its torch.compile graphs with g++ when the server starts
# ("InvalidCxxCompiler" without one): the vllm-cpu image starts from a Python with a C++ toolchain.
ARG VLLM_CPU_PYTHON_IMAGE=python:3.11-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8
# The operator's default GPU serving image (quantizedmodel.DEFAULT_VLLM_IMAGE).
ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0

FROM ${UV_IMAGE} AS uv

# What every image runs with. python3.11 is /usr/local/bin's in python:3.11-slim and /usr/bin's in
# the Debian-package base; the venvs are made from it and run with it.
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /app

FROM ${VLLM_CPU_PYTHON_IMAGE} AS vllm-cpu-runtime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /app

# The dependencies without the project, one layer per image. uv is mounted, not installed, and
# its settings are flags and build arguments, not ENV: no image keeps them (nor uv's lock files). tools/images/build.sh
# sets UV_CACHE_DIR and SSL_CERT_FILE to the machine's uv cache and trust store, which it mounts
# for the build; `docker build` uses the cache mount.
FROM runtime AS operator-deps
ARG UV_IMAGE
ARG UV_CACHE_DIR=/root/.cache/uv
ARG SSL_CERT_FILE
COPY pyproject.toml uv.lock ./
RUN --mount=type=bind,from=uv,source=/uv,target=/usr/local/bin/uv \
    --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project \
      --python=python3.11 --no-python-downloads --compile-bytecode --link-mode=copy \
 && rm -f /app/.venv/.lock /tmp/uv-*.lock

FROM runtime AS jobs-deps
ARG UV_IMAGE
ARG UV_CACHE_DIR=/root/.cache/uv
ARG SSL_CERT_FILE
COPY pyproject.toml uv.lock ./
RUN --mount=type=bind,from=uv,source=/uv,target=/usr/local/bin/uv \
    --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra jobs --no-install-project \
      --python=python3.11 --no-python-downloads --compile-bytecode --link-mode=copy \
 && rm -f /app/.venv/.lock /tmp/uv-*.lock

# The serving environment as the tests install it (`make setup`), the project left out here.
FROM vllm-cpu-runtime AS vllm-cpu-deps
ARG UV_IMAGE
ARG UV_CACHE_DIR=/root/.cache/uv
ARG SSL_CERT_FILE
COPY pyproject.toml uv.lock ./
COPY serving/ serving/
RUN --mount=type=bind,from=uv,source=/uv,target=/usr/local/bin/uv \
    --mount=type=cache,target=/root/.cache/uv \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    uv sync --frozen --no-dev --project serving --no-install-project --no-install-package quantfleet \
      --python=python3.11 --no-python-downloads --compile-bytecode --link-mode=copy \
 && rm -f /app/.venv/.lock /tmp/uv-*.lock

# The project alone (operator/ and jobs/, one wheel), installed under a prefix laid out like
# /app/.venv, which the images lay over their environment as one small layer. The empty venv gives
# the console scripts their `#!/app/.venv/bin/python`. This stage is not shipped.
FROM ${PYTHON_IMAGE} AS project
ARG UV_IMAGE
ARG UV_CACHE_DIR=/root/.cache/uv
ARG SSL_CERT_FILE
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY jobs/ jobs/
RUN --mount=type=bind,from=uv,source=/uv,target=/usr/local/bin/uv \
    --mount=type=cache,target=/root/.cache/uv \
    uv venv --quiet --python=python3.11 --no-python-downloads /app/.venv \
 && uv pip install --no-deps --prefix /app/project --python /app/.venv/bin/python \
      --compile-bytecode . \
 && rm -f /app/project/.lock

FROM operator-deps AS operator
COPY --from=project /app/project/ /app/.venv/
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["quantfleet", "operator"]
CMD ["--all-namespaces"]

FROM jobs-deps AS jobs
COPY --from=project /app/project/ /app/.venv/
USER 65532:65532
ENTRYPOINT ["python", "-m"]
CMD ["quantfleet_jobs.quantize", "--help"]

# vLLM's CPU build. The operator's Deployments run `vllm serve` with the CPU environment it sets
# (VLLM_CPU_KVCACHE_SPACE, VLLM_CPU_OMP_THREADS_BIND) and caches under /tmp (builders.children).
FROM vllm-cpu-deps AS vllm-cpu
COPY --from=project /app/project/ /app/.venv/
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["vllm", "serve"]
CMD ["--help"]

# The evaluate Jobs' image on GPUs (the operator's --evaluate-image): vLLM's CUDA image, with the
# evaluate program and both harnesses at the serving environment's pins (serving/pyproject.toml;
# tests/unit/test_dockerfile.py holds them equal). vLLM's image has its own Python and no lock of
# ours: uv keeps the torch and CUDA libraries vLLM came with where they satisfy the harnesses.
# Not built on the development machines, which no registry serves vLLM's image to (docs/images.md).
FROM ${VLLM_IMAGE} AS evaluate
ARG UV_IMAGE
ARG UV_CACHE_DIR=/root/.cache/uv
ARG SSL_CERT_FILE
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY jobs/ jobs/
RUN --mount=type=bind,from=uv,source=/uv,target=/usr/local/bin/uv \
    --mount=type=cache,target=/root/.cache/uv \
    uv pip install --system --python python3 --compile-bytecode \
      "lm-eval[api]==0.4.13" "lmms-eval==0.7.3" "filelock<4" "levenshtein" . \
 && ln -sf "$(command -v python3)" /usr/local/bin/python \
 && rm -rf /src
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /tmp
USER 65532:65532
ENTRYPOINT ["python", "-m"]
CMD ["quantfleet_jobs.evaluate", "--help"]
