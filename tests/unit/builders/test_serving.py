"""The vLLM Deployment and Service: args from the plan, scheme-matched placement, restricted."""

import json

from factories import make_owner, make_plan, make_spec

from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.serving import build_deployment, build_service, endpoint


def test_vllm_args_come_from_the_plan_and_the_spec() -> None:
    spec = make_spec(
        serving={"imagesPerPrompt": 2, "maxModelLength": 8192, "extraArgs": ["--max-num-seqs=8"]}
    )
    plan = make_plan(spec)
    container = build_deployment(make_owner(), spec, plan, OperatorSettings())["spec"]["template"][
        "spec"
    ]["containers"][0]
    args = container["args"]
    assert args[0] == "/mnt/quantfleet/models/qwen-fp8"
    assert f"--tensor-parallel-size={plan.tensor_parallel_size}" in args
    assert "--max-model-len=8192" in args
    assert f"--limit-mm-per-prompt={json.dumps({'image': 2})}" in args
    assert args[-1] == "--max-num-seqs=8"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(plan.gpus_per_replica)


def test_fp8_is_only_scheduled_where_fp8_is_native() -> None:
    spec = make_spec()
    pod = build_deployment(make_owner(), spec, make_plan(spec), OperatorSettings())["spec"][
        "template"
    ]["spec"]
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
    deployment = build_deployment(make_owner(), spec, make_plan(spec), OperatorSettings())
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


def test_spec_hash_changes_with_the_pod_and_not_otherwise() -> None:
    spec = make_spec()
    plan = make_plan(spec)

    def spec_hash(s: object) -> str:
        deployment = build_deployment(make_owner(), s, plan, OperatorSettings())  # type: ignore[arg-type]
        value: str = deployment["metadata"]["annotations"]["quantfleet.io/spec-hash"]
        return value

    assert spec_hash(spec) == spec_hash(make_spec())
    assert spec_hash(spec) != spec_hash(make_spec(serving={"replicas": 2}))


def test_service_selects_the_deployment_pods_and_names_the_endpoint() -> None:
    spec = make_spec()
    deployment = build_deployment(make_owner(), spec, make_plan(spec), OperatorSettings())
    service = build_service(make_owner())
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert endpoint("qwen", "ml") == f"http://{service['metadata']['name']}.ml.svc:8000/v1"
