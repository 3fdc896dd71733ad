"""The vLLM pods, written in one place: a promoted checkpoint's Deployment and Service, and the
pod template a BenchmarkRun's BF16 baseline reuses. Placed on GPUs (or serving CPU nodes) that run
the scheme natively (the plan's node affinity) and restricted like every other pod."""

import json
from dataclasses import dataclass

from quantfleet.api.common import SecretKeyRef
from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MODEL, Component
from quantfleet.api.quantizedmodel import DEFAULT_VLLM_IMAGE, QuantizedModelSpec, Serving
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
    token_env,
)
from quantfleet.builders.placement import build_pod_placement, build_resources
from quantfleet.builders.storage import claim_volumes, local_path
from quantfleet.planning.baseline import BaselinePlan
from quantfleet.planning.planner import Plan

PORT = 8000  # vLLM's OpenAI server: /health, /v1/..., /metrics (quantization.md §3)


@dataclass(frozen=True)
class VllmModel:
    """What one vLLM server loads and how it answers; the GPUs come from the plan."""

    uri: str  # hf://, s3:// or pvc:// location of the weights
    served_name: str  # the model name the OpenAI API answers to
    serving: Serving  # image, context length, images per prompt
    dtype: str | None = None  # vLLM's --dtype; its own choice when None
    revision: str | None = None  # hub revision (hf:// only)
    token_secret_ref: SecretKeyRef | None = None  # hub token, by reference
    extra_args: tuple[str, ...] = ()  # appended last, so they win


def serving_name(owner_name: str) -> str:
    """The Deployment's and the Service's name."""
    return child_name(owner_name, "vllm")


def endpoint(owner_name: str, namespace: str) -> str:
    """The in-cluster OpenAI-compatible base URL."""
    return f"http://{serving_name(owner_name)}.{namespace}.svc:{PORT}/v1"


def checkpoint_model(owner_name: str, spec: QuantizedModelSpec, artifact_uri: str) -> VllmModel:
    """The promoted checkpoint (the folder of the promoted artifact, never another's), served
    under the QuantizedModel's name with the spec's extra arguments."""
    return VllmModel(
        uri=artifact_uri,
        served_name=owner_name,
        serving=spec.serving,
        extra_args=tuple(spec.serving.extra_args),
    )


def vllm_args(
    model: VllmModel, tensor_parallel_size: int, settings: OperatorSettings, cpu: bool = False
) -> list[str]:
    """`vllm serve` arguments for `model` on `tensor_parallel_size` GPUs, or on CPUs (where
    --gpu-memory-utilization would be a share of host RAM: the KV cache is sized by
    VLLM_CPU_KVCACHE_SPACE instead, vllm-cpu.md)."""
    serving = model.serving
    args = [
        local_path(model.uri.removeprefix("hf://")),  # vLLM takes a hub name as is
        f"--served-model-name={model.served_name}",
        f"--port={PORT}",
        *([f"--dtype={model.dtype}"] if model.dtype else []),
        f"--tensor-parallel-size={tensor_parallel_size}",
    ]
    if not cpu:
        args.append(f"--gpu-memory-utilization={settings.gpu_memory_utilization}")
    if model.uri.startswith("s3://"):
        # vLLM streams the weights from S3 (the vllm/vllm-openai image carries its runai extra;
        # a custom spec.serving.image must too) and pulls config and tokenizer into
        # VLLM_CACHE_ROOT, a writable emptyDir here (docs/serving.md).
        args.append("--load-format=runai_streamer")
    if model.revision:
        args.append(f"--revision={model.revision}")
    if serving.max_model_length:
        args.append(f"--max-model-len={serving.max_model_length}")
    if serving.images_per_prompt is not None:
        # Current vLLM takes JSON here; `image=N` is rejected (quantization.md §3).
        args.append(f"--limit-mm-per-prompt={json.dumps({'image': serving.images_per_prompt})}")
    return args + list(model.extra_args)


def build_vllm_pod_template(
    model: VllmModel,
    plan: Plan | BaselinePlan,
    pod_labels: dict[str, str],
    settings: OperatorSettings,
) -> Json:
    """One vLLM pod on the plan's GPUs (or CPUs): probes, scratch volumes with a memory-backed
    /dev/shm, the weights' claim read-only, restricted security and placement."""
    # Always: vLLM's engine talks to its executor through shared memory even on one GPU or CPU
    # (160 MiB on vLLM 0.32), more than a container runtime's 64 MiB /dev/shm; NCCL needs it
    # for tensor parallelism. Found on the real node: "Insufficient space in /dev/shm".
    scratch, scratch_mounts = scratch_volumes(shm=True)
    volumes, mounts = claim_volumes(writable=[], read_only=[model.uri])
    probe = {"httpGet": {"path": "/health", "port": PORT}}
    cpu = plan.cpu
    default_image = settings.cpu_vllm_image if cpu else DEFAULT_VLLM_IMAGE
    cpu_env = (
        [
            # The KV cache in host RAM (GiB), counted into the pod's memory by the plan; vLLM
            # binds one OpenMP thread to each core the pod gets.
            {"name": "VLLM_CPU_KVCACHE_SPACE", "value": str(cpu.kv_cache_gib)},
            {"name": "VLLM_CPU_OMP_THREADS_BIND", "value": "auto"},
        ]
        if cpu
        else []
    )
    container = {
        "name": "vllm",
        "image": model.serving.image or default_image,
        "command": ["vllm", "serve"],
        "args": vllm_args(model, plan.tensor_parallel_size, settings, cpu=cpu is not None),
        "env": list(CACHE_ENV) + cpu_env + token_env(model.token_secret_ref),
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": build_resources(plan),
        "securityContext": restricted_container_security(),
        # Loading weights can take many minutes: the startup probe holds the others off.
        "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": 180},
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 15, "failureThreshold": 4},
        "volumeMounts": scratch_mounts + mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",  # a crash's reason (serving_status)
    }
    return {
        "metadata": {"labels": pod_labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": restricted_pod_security(),
            **build_pod_placement(plan),
            "containers": [container],
            "volumes": scratch + volumes,
        },
    }


def build_deployment(
    owner: Json, spec: QuantizedModelSpec, artifact_uri: str, plan: Plan, settings: OperatorSettings
) -> Json:
    """A Deployment of `spec.serving.replicas` vLLM pods of the promoted checkpoint at
    `artifact_uri` (status.promotedArtifact.uri, which an earlier spec's output may hold) on the
    plan's GPUs, scraped by Prometheus. A change rolls in as new replicas turn ready."""
    name = owner["metadata"]["name"]
    pod_labels = labels(LABEL_MODEL, name, Component.SERVE)
    model = checkpoint_model(name, spec, artifact_uri)
    template = build_vllm_pod_template(model, plan, pod_labels, settings)
    template["metadata"]["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": "/metrics",
    }
    deployment_spec = {
        "replicas": spec.serving.replicas,
        "selector": {"matchLabels": {LABEL_MODEL: name, LABEL_COMPONENT: Component.SERVE}},
        # Never fewer ready replicas than asked during a roll (the default allows 25% fewer):
        # what serves keeps serving until its replacement is ready; a roll with no room for
        # an extra replica waits, the old replicas serving meanwhile (issue 32).
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": template,
    }
    return owned(
        owner, "apps/v1", "Deployment", serving_name(name), pod_labels, spec=deployment_spec
    )


def deployment_reference(owner: Json) -> Json:
    """The Deployment's kind, name and namespace: enough to read or delete it without a plan."""
    meta = owner["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": serving_name(meta["name"]), "namespace": meta["namespace"]},
    }


def build_service(owner: Json) -> Json:
    """A ClusterIP Service in front of the vLLM pods."""
    name = owner["metadata"]["name"]
    return build_vllm_service(
        owner,
        serving_name(name),
        {LABEL_MODEL: name, LABEL_COMPONENT: Component.SERVE},
        labels(LABEL_MODEL, name, Component.SERVE),
    )


def build_vllm_service(
    owner: Json, name: str, selector: dict[str, str], service_labels: dict[str, str]
) -> Json:
    """A ClusterIP Service named `name` sending the vLLM port to the pods `selector` picks."""
    service_spec = {
        "selector": selector,
        "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
    }
    return owned(owner, "v1", "Service", name, service_labels, spec=service_spec)
