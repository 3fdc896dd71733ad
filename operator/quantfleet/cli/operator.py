"""`quantfleet operator`: the reconcilers (Kopf) with Prometheus metrics and a liveness probe."""

import argparse
import logging
import os
from pathlib import Path

import kopf

from quantfleet.api.enums import PlacementPolicy
from quantfleet.api.settings import OperatorSettings, read_gpu_costs
from quantfleet.handlers import runtime
from quantfleet.kube.metrics_server import MetricsAuth, serve_metrics


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Kopf logs every handler call that succeeded: a line per watch event of every child, which
    # at a thousand models is most of the operator's work. Failures are still logged; progress
    # is in each object's conditions and events.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    runtime.configure(settings_from(args))
    import quantfleet.handlers  # noqa: F401  registers the handlers with Kopf

    auth = MetricsAuth(runtime.connect()) if args.metrics_secure else None
    serve_metrics(args.metrics_port, auth, args.metrics_cert_dir)
    kopf.run(
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or (),
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz",
    )
    return 0


def settings_from(args: argparse.Namespace) -> OperatorSettings:
    """The operator's settings from its flags; a GPU cost file that does not exist (its optional
    ConfigMap is absent) means no costs, one that exists but does not parse stops the start."""
    costs = read_gpu_costs(args.gpu_costs) if args.gpu_costs and args.gpu_costs.exists() else {}
    return OperatorSettings(
        jobs_image=args.jobs_image,
        evaluate_image=args.evaluate_image,
        placement_policy=args.placement_policy,
        gpu_costs=costs,
        model_cache_claim=args.model_cache_claim or None,
        evaluation_tasks=args.evaluation_tasks or None,
        cpu_nodes=args.cpu_nodes,
        cpu_cores_per_replica=args.cpu_cores_per_replica,
        cpu_kv_cache_gib=args.cpu_kv_cache_gib,
        cpu_vllm_image=args.cpu_vllm_image,
        kueue_queue_name=args.kueue_queue_name or None,
    )


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser("operator", help="run the operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    scope.add_argument(
        "--namespace", action="append", help="watch this namespace (repeatable; globs allowed)"
    )
    parser.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics")
    parser.add_argument(
        "--metrics-secure",
        action="store_true",
        help="serve /metrics over HTTPS to bearer tokens the API server authenticates and "
        "authorises for GET /metrics (TokenReview, SubjectAccessReview)",
    )
    parser.add_argument(
        "--metrics-cert-dir",
        type=Path,
        help="tls.crt and tls.key for --metrics-secure (default: a self-signed certificate)",
    )
    parser.add_argument("--liveness-port", type=int, default=8081, help="Kopf /healthz")
    parser.add_argument(
        "--jobs-image",
        default=os.environ.get("QUANTFLEET_JOBS_IMAGE", OperatorSettings().jobs_image),
        help="image of the quantize and benchmark Jobs (env QUANTFLEET_JOBS_IMAGE)",
    )
    parser.add_argument(
        "--evaluate-image",
        default=os.environ.get("QUANTFLEET_EVALUATE_IMAGE", OperatorSettings().evaluate_image),
        help="image of the evaluate Jobs on GPUs: vLLM with quantfleet_jobs and the harnesses "
        "(env QUANTFLEET_EVALUATE_IMAGE; on CPU nodes they run --cpu-vllm-image)",
    )
    parser.add_argument(
        "--placement-policy",
        type=PlacementPolicy,
        choices=list(PlacementPolicy),
        default=os.environ.get("QUANTFLEET_PLACEMENT_POLICY", PlacementPolicy.BEST_FIT),
        help="policy of models whose spec names none (env QUANTFLEET_PLACEMENT_POLICY)",
    )
    parser.add_argument(
        "--model-cache-claim",
        default=os.environ.get("QUANTFLEET_MODEL_CACHE_CLAIM"),
        help="PersistentVolumeClaim the quantize and evaluate Jobs share as a model cache "
        "(env QUANTFLEET_MODEL_CACHE_CLAIM)",
    )
    parser.add_argument(
        "--evaluation-tasks",
        default=os.environ.get("QUANTFLEET_EVALUATION_TASKS"),
        help="pvc://claim/path of local lm-eval task definitions the evaluate Jobs score "
        "instead of lm-eval's own (offline clusters; env QUANTFLEET_EVALUATION_TASKS)",
    )
    parser.add_argument(
        "--kueue-queue-name",
        default=os.environ.get("QUANTFLEET_KUEUE_QUEUE_NAME"),
        help="Kueue LocalQueue the quantize, evaluate and benchmark Jobs are submitted to "
        "(created suspended; a spec's queueName wins; env QUANTFLEET_KUEUE_QUEUE_NAME)",
    )
    parser.add_argument(
        "--gpu-costs",
        type=Path,
        help="YAML map of GPU product or family to the cost of one GPU (key cpu: one CPU "
        "core), for the Cheapest policy; read at start, ignored when the file does not exist "
        "(an optional ConfigMap)",
    )
    defaults = OperatorSettings()
    parser.add_argument(
        "--cpu-nodes",
        action="store_true",
        default=os.environ.get("QUANTFLEET_CPU_NODES") == "true",
        help="serve on every NFD-labelled node without GPUs, not only those labelled "
        "quantfleet.io/cpu-serving=true (env QUANTFLEET_CPU_NODES=true)",
    )
    parser.add_argument(
        "--cpu-cores-per-replica",
        type=int,
        default=int(
            os.environ.get("QUANTFLEET_CPU_CORES_PER_REPLICA", defaults.cpu_cores_per_replica)
        ),
        help="CPUs of each CPU replica (env QUANTFLEET_CPU_CORES_PER_REPLICA)",
    )
    parser.add_argument(
        "--cpu-kv-cache-gib",
        type=int,
        default=int(os.environ.get("QUANTFLEET_CPU_KV_CACHE_GIB", defaults.cpu_kv_cache_gib)),
        help="VLLM_CPU_KVCACHE_SPACE of each CPU replica (env QUANTFLEET_CPU_KV_CACHE_GIB)",
    )
    parser.add_argument(
        "--cpu-vllm-image",
        default=os.environ.get("QUANTFLEET_CPU_VLLM_IMAGE", defaults.cpu_vllm_image),
        help="vLLM image of CPU replicas (env QUANTFLEET_CPU_VLLM_IMAGE)",
    )
    parser.set_defaults(run=run)
