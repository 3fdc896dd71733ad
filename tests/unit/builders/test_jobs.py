"""Quantize and evaluate Jobs: restricted pods, secrets by reference, names from their inputs."""

from typing import Any

import pytest

from factories import make_owner, make_plan, make_spec
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.children import child_name
from quantfleet.builders.jobs import (
    artifact_id,
    build_evaluate_job,
    build_gpu_job_placement,
    build_quantize_job,
    quantize_memory_floor_mib,
)
from quantfleet.builders.serving import build_deployment
from quantfleet.planning.capacity import size_cpu_replica
from quantfleet.planning.compat import BF16

SETTINGS = OperatorSettings(jobs_image="registry.example/quantfleet-jobs:1")


def quantize_job(parameters: int | None = None, **spec_overrides: Any) -> dict[str, Any]:
    spec = make_spec(**spec_overrides)
    placement = build_gpu_job_placement(0, [])
    return build_quantize_job(
        make_owner(), spec, spec.quantization.scheme, placement, SETTINGS, parameters
    )


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def test_quantize_job_passes_pod_security_restricted() -> None:
    pod = pod_spec(quantize_job())
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["automountServiceAccountToken"] is False


def test_hub_token_only_by_secret_reference() -> None:
    job = quantize_job(
        source={
            "uri": "hf://Qwen/Qwen2.5-VL-7B-Instruct",
            "tokenSecretRef": {"name": "hf", "key": "token"},
        }
    )
    env = pod_spec(job)["containers"][0]["env"]
    token = next(e for e in env if e["name"] == "HF_TOKEN")
    assert token == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    }
    assert all("value" not in e or e["value"] != "hf" for e in env)


def test_quantize_job_is_bounded_and_owned() -> None:
    job = quantize_job()
    assert job["spec"]["backoffLimit"] == SETTINGS.job_backoff_limit
    assert job["spec"]["activeDeadlineSeconds"] == SETTINGS.quantize_deadline_seconds
    assert job["metadata"]["ownerReferences"][0]["controller"] is True
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert pod_spec(job)["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize(
    ("change", "want_new_name"),
    [
        pytest.param({"quantization": {"scheme": "W8A8"}}, True, id="a-new-scheme-is-a-new-job"),
        pytest.param({"output": {"uri": "pvc://models/other"}}, True, id="a-new-output-too"),
        pytest.param(
            {"quantization": {"scheme": "FP8_DYNAMIC", "calibration": {"samples": 64}}},
            True,
            id="calibration-changes-the-checkpoint",
        ),
        pytest.param({"serving": {"replicas": 3}}, False, id="serving-changes-keep-the-job"),
        pytest.param({"evaluation": {"limit": 10}}, False, id="evaluation-changes-keep-it-too"),
    ],
)
def test_quantize_job_name_follows_its_inputs(change: dict[str, Any], want_new_name: bool) -> None:
    assert (quantize_job(**change)["metadata"]["name"] != quantize_job()["metadata"]["name"]) is (
        want_new_name
    )


def argument(job: dict[str, Any], flag: str) -> str:
    (value,) = [
        a.split("=", 1)[1] for a in pod_spec(job)["containers"][0]["args"] if a.startswith(flag)
    ]
    return value


@pytest.mark.parametrize("output", ["pvc://models/qwen", "pvc://models/qwen/"])
def test_each_checkpoint_has_its_own_folder_quantized_evaluated_and_served(output: str) -> None:
    spec = make_spec(output={"uri": output})
    changed = make_spec(output={"uri": output}, quantization={"scheme": "W8A8"})
    first, second = (artifact_id(s, s.quantization.scheme) for s in (spec, changed))
    plan = make_plan(spec)

    quantize = quantize_job(output={"uri": output})
    evaluate = build_evaluate_job(make_owner(), spec, first, ModelKind.TEXT, {}, 1, {}, SETTINGS)
    served = build_deployment(make_owner(), spec, spec.output.artifact_uri(first), plan, SETTINGS)

    assert argument(quantize, "--output") == f"pvc://models/qwen/{first}"
    assert argument(evaluate, "--quantized") == f"pvc://models/qwen/{first}"
    assert served["spec"]["template"]["spec"]["containers"][0]["args"][0] == (
        f"/mnt/quantfleet/models/qwen/{first}"
    )
    assert first != second  # a re-quantization with changed inputs writes elsewhere


def test_pvc_locations_are_mounted_where_the_programs_look() -> None:
    job = quantize_job(source={"uri": "pvc://weights/qwen"}, output={"uri": "pvc://models/q"})
    mounts = {
        m["mountPath"]: m["readOnly"]
        for m in pod_spec(job)["containers"][0]["volumeMounts"]
        if m["mountPath"].startswith("/mnt")
    }
    assert mounts == {"/mnt/quantfleet/weights": True, "/mnt/quantfleet/models": False}


def test_recipe_from_a_configmap_is_mounted_and_passed_as_a_file() -> None:
    job = quantize_job(
        quantization={
            "scheme": "W8A8",
            "recipe": {"configMapRef": {"name": "recipes", "key": "int8.yaml"}},
        }
    )
    container = pod_spec(job)["containers"][0]
    assert "--recipe=/etc/quantfleet/recipe/recipe.yaml" in container["args"]
    assert any(v.get("configMap", {}).get("name") == "recipes" for v in pod_spec(job)["volumes"])


@pytest.mark.parametrize(
    ("parameters", "want_floor_mib"),
    [
        pytest.param(None, 0, id="unknown-size-takes-any-gpu"),
        pytest.param(7 * 10**9, int(7e9 * 2 * 1.2 / 2**20), id="7b-needs-its-bf16-weights"),
        pytest.param(72 * 10**9, 80 * 1024, id="72b-is-capped-at-an-80gb-card"),
    ],
)
def test_quantize_memory_floor(parameters: int | None, want_floor_mib: int) -> None:
    assert quantize_memory_floor_mib(parameters) == want_floor_mib


@pytest.mark.parametrize(
    ("parameters", "spec", "want"),
    [
        pytest.param(None, {}, {}, id="unknown-size-asks-for-the-gpu-only"),
        pytest.param(
            72 * 10**9,
            {},
            {"memory": "150Gi", "ephemeral-storage": "148Gi"},
            id="72b-from-the-hub-needs-its-bf16-weights-in-memory-and-on-disk",
        ),
        pytest.param(
            72 * 10**9,
            {"source": {"uri": "pvc://models/qwen-72b", "kind": "vision-language"}},
            {"memory": "150Gi"},
            id="a-mounted-source-is-not-downloaded",
        ),
        pytest.param(
            72 * 10**9,
            {"quantization": {"scheme": "W8A8", "resources": {"requests": {"memory": "400Gi"}}}},
            {"memory": "400Gi", "ephemeral-storage": "148Gi"},
            id="the-spec-wins-key-by-key",
        ),
    ],
)
def test_quantize_job_requests_host_memory_and_disk_from_the_size(
    parameters: int | None, spec: dict[str, Any], want: dict[str, str]
) -> None:
    [container] = pod_spec(quantize_job(parameters, **spec))["containers"]

    assert container["resources"]["requests"] == {**want, "nvidia.com/gpu": "1"}


def test_evaluate_job_passes_the_cached_baseline_scores() -> None:
    spec = make_spec(evaluation={"tasks": ["chartqa", "mmmu"], "limit": 50})
    job = build_evaluate_job(
        make_owner(),
        spec,
        artifact_id(spec, Scheme.FP8_DYNAMIC),
        ModelKind.VISION_LANGUAGE,
        build_gpu_job_placement(0, []),
        2,
        {"chartqa": {"metric": "relaxed", "score": 0.8}},
        SETTINGS,
    )
    args = pod_spec(job)["containers"][0]["args"]
    assert "--tasks=chartqa,mmmu" in args
    assert '--baseline-scores={"chartqa": {"metric": "relaxed", "score": 0.8}}' in args
    assert pod_spec(job)["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"


@pytest.mark.parametrize("gpus", [1, 4])
def test_evaluate_job_runs_the_engine_across_the_gpus_it_requests(gpus: int) -> None:
    spec = make_spec()
    job = build_evaluate_job(
        make_owner(), spec, artifact_id(spec, Scheme.W8A8), ModelKind.TEXT,
        build_gpu_job_placement(0, []), gpus, {}, SETTINGS,
    )  # fmt: skip
    container = pod_spec(job)["containers"][0]
    assert f"--tensor-parallel-size={gpus}" in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)


@pytest.mark.parametrize("on_cpu", [False, True], ids=["gpus", "cpu node"])
def test_evaluate_job_scores_over_a_vllm_server_in_an_image_with_vllm_and_the_harnesses(
    on_cpu: bool,
) -> None:
    settings = SETTINGS.model_copy(
        update={
            "evaluate_image": "registry.example/quantfleet-evaluate:1",
            "cpu_vllm_image": "registry.example/quantfleet-vllm-cpu:1",
        }
    )
    spec = make_spec()
    cpu = size_cpu_replica(3 * 10**9, BF16, cores=4, kv_cache_gib=1) if on_cpu else None
    job = build_evaluate_job(
        make_owner(), spec, artifact_id(spec, Scheme.W8A8), ModelKind.VISION_LANGUAGE,
        build_gpu_job_placement(0, []), 1, {}, settings, cpu,
    )  # fmt: skip
    [container] = pod_spec(job)["containers"]

    # A server per checkpoint in the pod: the only engine that runs lmms-eval's tasks too.
    assert "--engine=server" in container["args"]
    want = settings.cpu_vllm_image if on_cpu else settings.evaluate_image
    assert container["image"] == want
    # vLLM's engine and its server share memory through /dev/shm, beyond a runtime's 64 MiB.
    assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {"name": "shm", "emptyDir": {"medium": "Memory"}} in pod_spec(job)["volumes"]


def test_evaluate_job_scores_the_clusters_local_tasks_when_configured() -> None:
    settings = SETTINGS.model_copy(update={"evaluation_tasks": "pvc://eval-tasks/study"})
    spec = make_spec()
    job = build_evaluate_job(
        make_owner(), spec, artifact_id(spec, Scheme.W8A8), ModelKind.TEXT,
        build_gpu_job_placement(0, []), 1, {}, settings,
    )  # fmt: skip
    container = pod_spec(job)["containers"][0]
    assert "--include-path=/mnt/quantfleet/eval-tasks/study" in container["args"]
    assert "--no-builtin-tasks" in container["args"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "pvc-eval-tasks"]
    assert mount["readOnly"] is True


@pytest.mark.parametrize("owner", ["q", "a" * 63, "b" * 200])
def test_child_names_fit_a_dns_label(owner: str) -> None:
    name = child_name(owner, "quantize", "0123abcd")
    assert len(name) <= 63
    assert name.endswith("-quantize-0123abcd")
    assert child_name(owner, "quantize", "0123abcd") == name


def test_long_owner_names_do_not_collide() -> None:
    assert child_name("x" * 80 + "a", "vllm") != child_name("x" * 80 + "b", "vllm")


@pytest.mark.parametrize("program", ["quantize", "evaluate"])
def test_with_a_model_cache_both_jobs_mount_it_and_pass_it(program: str) -> None:
    settings = SETTINGS.model_copy(update={"model_cache_claim": "model-cache"})
    spec = make_spec()
    placement = build_gpu_job_placement(0, [])
    job = (
        build_quantize_job(make_owner(), spec, spec.quantization.scheme, placement, settings)
        if program == "quantize"
        else build_evaluate_job(
            make_owner(), spec, "abc", ModelKind.VISION_LANGUAGE, placement, 1, {}, settings
        )
    )
    [container] = pod_spec(job)["containers"]

    assert "--model-cache=/mnt/quantfleet/model-cache" in container["args"]
    assert {
        "name": "pvc-model-cache", "mountPath": "/mnt/quantfleet/model-cache", "readOnly": False
    } in container["volumeMounts"]  # fmt: skip
    assert {"name": "pvc-model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}} in (
        pod_spec(job)["volumes"]
    )


def test_without_a_model_cache_no_job_mentions_one() -> None:
    [container] = pod_spec(quantize_job())["containers"]

    assert not [arg for arg in container["args"] if arg.startswith("--model-cache")]


KUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def test_jobs_start_at_once_without_kueue() -> None:
    job = quantize_job()
    assert "suspend" not in job["spec"]
    assert KUEUE_LABEL not in job["metadata"]["labels"]


@pytest.mark.parametrize(
    ("setting", "spec_queue", "expected"),
    [
        ("gpu-team", None, "gpu-team"),
        (None, "research", "research"),
        ("gpu-team", "research", "research"),
    ],
)
def test_kueue_jobs_are_created_suspended_with_their_local_queue(
    setting: str | None, spec_queue: str | None, expected: str
) -> None:
    settings = SETTINGS.model_copy(update={"kueue_queue_name": setting})
    spec = make_spec(placement={"queueName": spec_queue} if spec_queue else {})
    placement = build_gpu_job_placement(0, [])
    quantize = build_quantize_job(make_owner(), spec, spec.quantization.scheme, placement, settings)
    evaluate = build_evaluate_job(
        make_owner(), spec, "a1", ModelKind.TEXT, placement, 1, {}, settings
    )
    for job in (quantize, evaluate):
        assert job["spec"]["suspend"] is True
        assert job["metadata"]["labels"][KUEUE_LABEL] == expected
        # Kueue reads the Job's label; the pod needs none.
        assert KUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]
