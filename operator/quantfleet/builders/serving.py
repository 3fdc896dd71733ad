"""The vLLM Deployment and Service for a promoted checkpoint, placed on GPUs that run its
scheme natively (the plan's node affinity) and restricted like every other pod."""

import json

from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MODEL, Component
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.children import (
    CACHE_ENV,
    Json,
    child_name,
    labels,
    owned,
    restricted_container_security,
    restricted_pod_security,
    scratch_volumes,
)
from quantfleet.builders.placement import build_gpu_resources, build_pod_placement
from quantfleet.builders.storage import claim_volumes, local_path
from quantfleet.planning.planner import Plan

PORT = 8000  # vLLM's OpenAI server: /health, /v1/..., /metrics (quantization.md §3)


def serving_name(owner_name: str) -> str:
    """The Deployment's and the Service's name."""
    return child_name(owner_name, "vllm")


def endpoint(owner_name: str, namespace: str) -> str:
    """The in-cluster OpenAI-compatible base URL."""
    return f"http://{serving_name(owner_name)}.{namespace}.svc:{PORT}/v1"


def vllm_args(
    spec: QuantizedModelSpec, plan: Plan, served_name: str, settings: OperatorSettings
) -> list[str]:
    """`vllm serve` arguments derived from the plan and the serving spec."""
    serving = spec.serving
    args = [
        local_path(spec.output.uri),
        f"--served-model-name={served_name}",
        f"--port={PORT}",
        f"--tensor-parallel-size={plan.tensor_parallel_size}",
        f"--gpu-memory-utilization={settings.gpu_memory_utilization}",
    ]
    if spec.output.uri.startswith("s3://"):
        args.append("--load-format=runai_streamer")
    if serving.max_model_length:
        args.append(f"--max-model-len={serving.max_model_length}")
    if serving.images_per_prompt is not None:
        # Current vLLM takes JSON here; `image=N` is rejected (quantization.md §3).
        args.append(f"--limit-mm-per-prompt={json.dumps({'image': serving.images_per_prompt})}")
    return args + list(serving.extra_args)


def build_deployment(
    owner: Json, spec: QuantizedModelSpec, plan: Plan, settings: OperatorSettings
) -> Json:
    """A Deployment of `spec.serving.replicas` vLLM pods on the plan's GPUs."""
    name = owner["metadata"]["name"]
    pod_labels = labels(LABEL_MODEL, name, Component.SERVE)
    scratch, scratch_mounts = scratch_volumes(shm=plan.tensor_parallel_size > 1)
    volumes, mounts = claim_volumes(writable=[], read_only=[spec.output.uri])
    probe = {"httpGet": {"path": "/health", "port": PORT}}
    container = {
        "name": "vllm",
        "image": spec.serving.image,
        "command": ["vllm", "serve"],
        "args": vllm_args(spec, plan, name, settings),
        "env": list(CACHE_ENV),
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": build_gpu_resources(plan),
        "securityContext": restricted_container_security(),
        # Loading weights can take many minutes: the startup probe holds the others off.
        "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": 180},
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 15, "failureThreshold": 4},
        "volumeMounts": scratch_mounts + mounts,
    }
    template = {
        "metadata": {
            "labels": pod_labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(PORT),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": restricted_pod_security(),
            **build_pod_placement(plan),
            "containers": [container],
            "volumes": scratch + volumes,
        },
    }
    deployment_spec = {
        "replicas": spec.serving.replicas,
        "selector": {"matchLabels": {LABEL_MODEL: name, LABEL_COMPONENT: Component.SERVE}},
        "template": template,
    }
    return owned(
        owner, "apps/v1", "Deployment", serving_name(name), pod_labels, spec=deployment_spec
    )


def build_service(owner: Json) -> Json:
    """A ClusterIP Service in front of the vLLM pods."""
    name = owner["metadata"]["name"]
    service_spec = {
        "selector": {LABEL_MODEL: name, LABEL_COMPONENT: Component.SERVE},
        "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
    }
    return owned(
        owner, "v1", "Service", serving_name(name), labels(LABEL_MODEL, name, Component.SERVE),
        spec=service_spec,
    )  # fmt: skip
