"""Quantization and evaluation Jobs: the Job programs on a GPU, restricted, bounded, named by
the hash of their inputs so that changed inputs make a new Job instead of mutating one."""

import json
import math
from collections.abc import Iterable
from typing import Any

from quantfleet.api.common import SecretKeyRef
from quantfleet.api.contract import (
    JOB_CONTAINER,
    LABEL_INPUTS,
    LABEL_KUEUE_QUEUE,
    LABEL_MODEL,
    MOUNT_ROOT,
    TERMINATION_LOG,
    env_name,
)
from quantfleet.api.enums import EvalTask, ModelKind, Scheme
from quantfleet.api.quantizedmodel import DEFAULT_TASKS, QuantizedModelSpec
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.children import (
    CACHE_ENV,
    Json,
    child_name,
    digest,
    labels,
    owner_reference,
    restricted_container_security,
    restricted_pod_security,
    scratch_volumes,
    token_env,
)
from quantfleet.builders.placement import build_any_gpu_placement, build_cpu_resources
from quantfleet.builders.storage import claim_volumes, local_path
from quantfleet.planning.capacity import MIB, CpuSizing, weight_bytes
from quantfleet.planning.compat import BF16
from quantfleet.planning.inventory import GPU_RESOURCE, Taint

RECIPE_DIR = "/etc/quantfleet/recipe"
# LLM Compressor onloads one decoder layer at a time (sequential pipeline), so calibration needs
# the BF16 weights on the GPU only up to a point: cap the memory floor at an 80 GB card.
QUANTIZE_MEMORY_CAP_MIB = 80 * 1024
QUANTIZE_HEADROOM = 1.2
# Host memory and disk over the BF16 weights: tokenizer, calibration data, the Python process.
HOST_HEADROOM = 1.1
# Host memory of the program itself whatever the model (torch, transformers, LLM Compressor,
# datasets): their imports alone hold 548 MiB anonymous and 373 MiB of mapped libraries, and
# quantizing the 10M-parameter test VLM peaked at 1.18 GB RSS.
PROGRAM_MEMORY_GIB = 2
GIB = 2**30


def artifact_id(spec: QuantizedModelSpec, scheme: Scheme) -> str:
    """Hash of everything that decides the checkpoint; names the quantize Job and the artifact."""
    quantization = spec.quantization.model_dump(
        mode="json", by_alias=True, exclude={"objective", "allow_fallback", "resources"}
    )
    quantization["scheme"] = scheme
    return digest(
        spec.source.uri, spec.source.revision, spec.source.kind, quantization, spec.output.uri
    )


def evaluation_tasks(spec: QuantizedModelSpec, kind: ModelKind) -> list[EvalTask]:
    """The spec's tasks, or the study's defaults for the model kind."""
    return spec.evaluation.tasks or DEFAULT_TASKS[kind]


def evaluation_id(spec: QuantizedModelSpec, artifact: str, kind: ModelKind) -> str:
    """Hash of what decides the scores: the artifact, the tasks and the sample limit."""
    return digest(artifact, evaluation_tasks(spec, kind), spec.evaluation.limit)


def quantize_memory_floor_mib(parameters: int | None) -> int:
    """Per-GPU memory the quantization Job asks for: the BF16 weights plus headroom, capped."""
    if parameters is None:
        return 0
    need = weight_bytes(parameters, BF16) * QUANTIZE_HEADROOM / MIB
    return int(min(need, QUANTIZE_MEMORY_CAP_MIB))


def model_cache(settings: OperatorSettings) -> tuple[list[str], list[str]]:
    """(claim URIs to mount writable, program arguments) for the shared model cache, if any."""
    if not settings.model_cache_claim:
        return [], []
    uri = f"pvc://{settings.model_cache_claim}/"
    return [uri], [f"--model-cache={local_path(uri)}"]


def quantize_host_resources(spec: QuantizedModelSpec, parameters: int | None) -> dict[str, str]:
    """Host memory and local disk the quantize Job requests, from the source's size: LLM
    Compressor holds the BF16 model in host memory while it onloads layers to the GPU, and a hub
    or S3 source is downloaded to the pod's /tmp first (a pvc:// source is mounted instead).
    72B: 150Gi of memory (the program's own 2Gi added) and 148Gi of disk. Nothing when the size
    is not known yet."""
    if parameters is None:
        return {}
    weights = math.ceil(weight_bytes(parameters, BF16) * HOST_HEADROOM / GIB)
    memory = {"memory": f"{weights + PROGRAM_MEMORY_GIB}Gi"}
    if spec.source.uri.startswith("pvc://"):
        return memory
    return {**memory, "ephemeral-storage": f"{weights}Gi"}


def build_gpu_job_placement(min_memory_mib: int, gpu_taints: Iterable[Taint]) -> Json:
    """One GPU of any kind with at least `min_memory_mib`; GPU taints tolerated."""
    return build_any_gpu_placement(min_memory_mib, gpu_taints)


def kueue_queue(spec_queue: str | None, settings: OperatorSettings) -> str | None:
    """The Kueue LocalQueue a Job is submitted to: the spec's, else the operator's, else none."""
    return spec_queue or settings.kueue_queue_name


def build_quantize_job(
    owner: Json,
    spec: QuantizedModelSpec,
    scheme: Scheme,
    placement: Json,
    settings: OperatorSettings,
    parameters: int | None = None,
    cpu_cores: int | None = None,
) -> Json:
    """The Job running `quantfleet_jobs.quantize` for `spec` at the resolved `scheme`; its host
    memory and disk sized from `parameters` unless `spec.quantization.resources` says. On one
    GPU, or with `cpu_cores` on that many cores of a CPU node (`--device cpu`)."""
    name = owner["metadata"]["name"]
    inputs = artifact_id(spec, scheme)
    quantization = spec.quantization
    calibration = quantization.calibration
    args = [
        f"--source={_source(spec)}",
        # Its own folder: a re-quantization never writes over a checkpoint served or approved.
        f"--output={spec.output.artifact_uri(inputs)}",
        f"--scheme={scheme}",
        f"--model-kind={spec.source.kind or 'auto'}",
        f"--num-samples={calibration.samples}",
        f"--max-seq-length={calibration.max_sequence_length}",
        f"--seed={calibration.seed}",
        f"--device={'cpu' if cpu_cores else 'cuda'}",
    ]
    if calibration.dataset:
        args.append(f"--dataset={calibration.dataset}")
    env: list[Json] = []
    cache_claims, cache_args = model_cache(settings)
    args.extend(cache_args)
    volumes, mounts = claim_volumes(
        writable=[spec.output.uri, *cache_claims], read_only=[spec.source.uri]
    )
    recipe = quantization.recipe
    if recipe and recipe.inline is not None:
        env.append({"name": env_name("recipe"), "value": recipe.inline})
    elif recipe and recipe.config_map_ref is not None:
        ref = recipe.config_map_ref
        volumes.append(
            {
                "name": "recipe",
                "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": "recipe.yaml"}]},
            }
        )
        mounts.append({"name": "recipe", "mountPath": RECIPE_DIR, "readOnly": True})
        args.append(f"--recipe={RECIPE_DIR}/recipe.yaml")
    if quantization.ignore is not None:
        args.extend(f"--ignore={pattern}" for pattern in quantization.ignore)
    resources = quantization.resources
    device = {"cpu": str(cpu_cores)} if cpu_cores else {GPU_RESOURCE: "1"}
    return build_job(
        owner,
        child_name(name, "quantize", inputs),
        "quantize",
        inputs,
        module="quantfleet_jobs.quantize",
        args=args,
        env=env,
        token_secret_ref=spec.source.token_secret_ref,
        volumes=volumes,
        mounts=mounts,
        placement=placement,
        resources={
            "requests": {
                **quantize_host_resources(spec, parameters),
                **(resources.requests if resources else {}),
                **device,
            },
            "limits": {**(resources.limits if resources else {}), **device},
        },
        deadline=settings.quantize_deadline_seconds,
        settings=settings,
        queue=kueue_queue(spec.placement.queue_name, settings),
    )


def _source(spec: QuantizedModelSpec) -> str:
    """The source URI as the programs take it: a hub revision rides along as @revision."""
    if spec.source.revision and spec.source.uri.startswith("hf://"):
        return f"{spec.source.uri}@{spec.source.revision}"
    return spec.source.uri


def build_job(
    owner: Json,
    name: str,
    component: str,
    inputs: str,
    *,
    module: str,
    args: list[str],
    env: list[Json],
    token_secret_ref: SecretKeyRef | None,
    volumes: list[Json],
    mounts: list[Json],
    placement: Json,
    resources: Json,
    deadline: int,
    settings: OperatorSettings,
    owner_label: str = LABEL_MODEL,
    queue: str | None = None,
    image: str | None = None,
    shm: bool = False,
) -> Json:
    """A restricted Job owned by `owner` running `python -m module args`; its pod leaves the
    program's result in the termination message. Shared by every kind's Jobs: each gets the
    cache variables, `env`, the hub token by reference (children.token_env) and the mount root.
    With a Kueue `queue` the Job is created suspended and labelled for it: Kueue unsuspends it
    on admission; the operator never does. `image`: other than the jobs image; `shm`: a
    memory-backed /dev/shm, for a vLLM engine in the pod."""
    owner_name = owner["metadata"]["name"]
    pod_labels = {**labels(owner_label, owner_name, component), LABEL_INPUTS: inputs}
    scratch, scratch_mounts = scratch_volumes(shm=shm)
    kueue = {"suspend": True} if queue else {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**pod_labels, **({LABEL_KUEUE_QUEUE: queue} if queue else {})},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "backoffLimit": settings.job_backoff_limit,
            "activeDeadlineSeconds": deadline,
            **kueue,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": restricted_pod_security(),
                    **placement,
                    "containers": [
                        {
                            "name": JOB_CONTAINER,
                            "image": image or settings.jobs_image,
                            "command": ["python", "-m", module],
                            "args": args,
                            "env": [
                                *CACHE_ENV,
                                *env,
                                *token_env(token_secret_ref),
                                {"name": env_name("mount-root"), "value": MOUNT_ROOT},
                            ],
                            "resources": resources,
                            "securityContext": restricted_container_security(),
                            "terminationMessagePath": TERMINATION_LOG,
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "volumeMounts": scratch_mounts + mounts,
                        }
                    ],
                    "volumes": scratch + volumes,
                },
            },
        },
    }


def build_evaluate_job(
    owner: Json,
    spec: QuantizedModelSpec,
    artifact: str,
    kind: ModelKind,
    placement: Json,
    gpus: int,
    cached_baseline: dict[str, dict[str, Any]],
    settings: OperatorSettings,
    cpu: CpuSizing | None = None,
) -> Json:
    """The Job running `quantfleet_jobs.evaluate`: baseline and checkpoint on the same tasks,
    each scored over a vLLM server the program starts in the pod, as the study scored them, on
    `gpus` GPUs (the operator's evaluate image) or with `cpu` on a CPU node (its vLLM CPU image,
    which holds the program and both harnesses too).

    Baseline scores already cached for this model revision, task and limit are passed in, so
    a second scheme of the same model does not score BF16 again.
    """
    name = owner["metadata"]["name"]
    tasks = [str(task) for task in evaluation_tasks(spec, kind)]
    args = [
        f"--baseline={_source(spec)}",
        f"--quantized={spec.output.artifact_uri(artifact)}",
        f"--tasks={','.join(tasks)}",
        # A vLLM server per checkpoint: the only engine that runs every task (lmms-eval's too).
        "--engine=server",
        f"--device={'cpu' if cpu else 'cuda'}",
        # The engine runs across every GPU the Job asks for. (The program prompts a VLM through
        # its chat template by itself: no --apply-chat-template here.)
        f"--tensor-parallel-size={max(gpus, 1)}",
    ]
    if spec.evaluation.limit is not None:
        args.append(f"--limit={spec.evaluation.limit}")
    if cached_baseline:
        # The whole cache for this source, revision and limit, keyed by the spec's task names
        # as the program's results are; it takes what it needs.
        args.append(f"--baseline-scores={json.dumps(cached_baseline, sort_keys=True)}")
    cache_claims, cache_args = model_cache(settings)
    args.extend(cache_args)
    read_only = [spec.source.uri, spec.output.uri]
    if settings.evaluation_tasks:
        # The cluster's own copies of the tasks (offline): only those are indexed and run.
        args += [f"--include-path={local_path(settings.evaluation_tasks)}", "--no-builtin-tasks"]
        read_only.append(settings.evaluation_tasks)
    volumes, mounts = claim_volumes(writable=cache_claims, read_only=read_only)
    inputs = evaluation_id(spec, artifact, kind)
    return build_job(
        owner,
        child_name(name, "evaluate", inputs),
        "evaluate",
        inputs,
        module="quantfleet_jobs.evaluate",
        args=args,
        env=[],
        token_secret_ref=spec.source.token_secret_ref,
        volumes=volumes,
        mounts=mounts,
        placement=placement,
        resources=(
            build_cpu_resources(cpu)
            if cpu
            else {"requests": {GPU_RESOURCE: str(gpus)}, "limits": {GPU_RESOURCE: str(gpus)}}
        ),
        deadline=settings.evaluate_deadline_seconds,
        settings=settings,
        queue=kueue_queue(spec.placement.queue_name, settings),
        image=settings.cpu_vllm_image if cpu else settings.evaluate_image,
        shm=True,
    )
