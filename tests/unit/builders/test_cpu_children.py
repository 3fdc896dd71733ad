"""The children of a model served on CPUs: a vLLM CPU Deployment on the NFD labels its scheme
needs, with cores and memory instead of GPUs, and quantize/evaluate Jobs with `--device cpu`."""

from typing import Any

from factories import ARTIFACT_ID, make_owner, make_plan, make_spec
from quantfleet.api.enums import Scheme
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.jobs import build_evaluate_job, build_quantize_job
from quantfleet.builders.placement import build_any_cpu_placement
from quantfleet.builders.serving import build_deployment

SETTINGS = OperatorSettings(cpu_vllm_image="registry.local/vllm-cpu:1", cpu_kv_cache_gib=2)
CPU_SPEC = make_spec(
    source={"uri": "hf://Qwen/Qwen2.5-VL-3B-Instruct", "parametersBillions": 3.8},
    quantization={"scheme": "W8A8"},
    placement={"hardware": "cpu"},
)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = manifest["spec"]["template"]["spec"]["containers"]
    return containers[0]


def required_terms(manifest: dict[str, Any]) -> list[dict[str, list[dict[str, Any]]]]:
    affinity = manifest["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms: list[dict[str, list[dict[str, Any]]]] = affinity[
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    return terms


def test_a_cpu_deployment_requests_cores_and_memory_on_the_schemes_cpus() -> None:
    plan = make_plan(CPU_SPEC)
    assert plan.cpu is not None
    deployment = build_deployment(
        make_owner(), CPU_SPEC, CPU_SPEC.output.artifact_uri(ARTIFACT_ID), plan, SETTINGS
    )
    vllm = container(deployment)

    assert vllm["image"] == "registry.local/vllm-cpu:1"
    assert "--gpu-memory-utilization" not in " ".join(vllm["args"])  # a share of host RAM on CPU
    assert "--tensor-parallel-size=1" in vllm["args"]
    env = {e["name"]: e.get("value") for e in vllm["env"]}
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4"  # the plan's (PlanRequest default), not settings
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "auto"
    assert vllm["resources"]["requests"] == vllm["resources"]["limits"]  # Guaranteed
    assert vllm["resources"]["requests"]["cpu"] == "16"
    assert "nvidia.com/gpu" not in vllm["resources"]["requests"]
    (term,) = required_terms(deployment)
    keys = {e["key"]: e["operator"] for e in term["matchExpressions"]}
    assert keys["feature.node.kubernetes.io/cpu-cpuid.AMXINT8"] == "In"
    assert keys["nvidia.com/gpu.present"] == "DoesNotExist"
    assert keys["quantfleet.io/cpu-serving"] == "In"


def test_the_spec_image_wins_on_cpus_too() -> None:
    spec = CPU_SPEC.model_copy(
        update={"serving": CPU_SPEC.serving.model_copy(update={"image": "mine/vllm:2"})}
    )
    deployment = build_deployment(
        make_owner(), spec, spec.output.artifact_uri(ARTIFACT_ID), make_plan(spec), SETTINGS
    )

    assert container(deployment)["image"] == "mine/vllm:2"


def test_the_quantize_and_evaluate_jobs_of_a_cpu_model_run_on_cpu() -> None:
    placement = build_any_cpu_placement(labelled=False)
    quantize = build_quantize_job(
        make_owner(), CPU_SPEC, Scheme.W8A8, placement, SETTINGS, 3_800_000_000, cpu_cores=8
    )
    plan = make_plan(CPU_SPEC)
    evaluate = build_evaluate_job(
        make_owner(), CPU_SPEC, "abc", CPU_SPEC.source.kind or "text", placement, 0, {},
        SETTINGS, plan.cpu,
    )  # fmt: skip

    for job in (quantize, evaluate):
        program = container(job)
        assert "--device=cpu" in program["args"]
        assert "nvidia.com/gpu" not in program["resources"]["requests"]
        (term,) = required_terms(job)
        opted = next(e for e in term["matchExpressions"] if e["key"] == "quantfleet.io/cpu-serving")
        assert opted == {
            "key": "quantfleet.io/cpu-serving",
            "operator": "NotIn",
            "values": ["false"],
        }
    assert container(quantize)["resources"]["requests"]["cpu"] == "8"
