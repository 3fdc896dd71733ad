# Three images: two from the project's locked environment (uv.lock), one from the serving one
# (serving/uv.lock, the vLLM CPU build the tests serve checkpoints with):
#   docker build --target operator -t quantfleet-operator .   # `quantfleet operator`
#   docker build --target jobs -t quantfleet-jobs .           # `python -m quantfleet_jobs.<program>`
#   docker build --target vllm-cpu -t quantfleet-vllm-cpu .   # `vllm serve` on CPU nodes
# All run as uid/gid 65532 (no root, no shell user) and fit Pod Security "restricted" with a
# read-only root filesystem: nothing is written outside the mounted /tmp at run time.

ARG PYTHON_IMAGE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# Resolves and installs into /app/.venv; the runtime stages copy only that folder.
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

FROM build AS operator-build
# Dependencies first, in their own layer: source edits do not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY operator/ operator/
COPY jobs/ jobs/
RUN uv sync --frozen --no-dev --no-editable

FROM build AS jobs-build
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra jobs --no-install-project
COPY operator/ operator/
COPY jobs/ jobs/
RUN uv sync --frozen --no-dev --extra jobs --no-editable

# The serving environment as the tests install it (`make setup`), the project non-editable.
FROM build AS vllm-cpu-build
COPY pyproject.toml uv.lock README.md ./
COPY serving/ serving/
RUN uv sync --frozen --no-dev --project serving --no-install-project --no-install-package quantfleet
COPY operator/ operator/
COPY jobs/ jobs/
RUN uv sync --frozen --no-dev --project serving --no-editable

FROM ${PYTHON_IMAGE} AS operator
COPY --from=operator-build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["quantfleet", "operator"]
CMD ["--all-namespaces"]

FROM ${PYTHON_IMAGE} AS jobs
COPY --from=jobs-build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 65532:65532
ENTRYPOINT ["python", "-m"]
CMD ["quantfleet_jobs.quantize", "--help"]

# vLLM's CPU build. The operator's Deployments run `vllm serve` with the CPU environment it sets
# (VLLM_CPU_KVCACHE_SPACE, VLLM_CPU_OMP_THREADS_BIND) and caches under /tmp (builders.children).
FROM ${PYTHON_IMAGE} AS vllm-cpu
COPY --from=vllm-cpu-build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["vllm", "serve"]
CMD ["--help"]
