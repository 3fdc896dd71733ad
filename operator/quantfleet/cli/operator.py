"""`quantfleet operator`: the reconcilers (Kopf) with Prometheus metrics and a liveness probe."""

import argparse
import logging
import os

import kopf
from prometheus_client import start_http_server

from quantfleet.api.settings import OperatorSettings
from quantfleet.handlers import runtime


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    runtime.configure(OperatorSettings(jobs_image=args.jobs_image))
    import quantfleet.handlers  # noqa: F401  registers the handlers with Kopf

    start_http_server(args.metrics_port)
    kopf.run(
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or (),
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz",
    )
    return 0


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser("operator", help="run the operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    scope.add_argument(
        "--namespace", action="append", help="watch this namespace (repeatable; globs allowed)"
    )
    parser.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics")
    parser.add_argument("--liveness-port", type=int, default=8081, help="Kopf /healthz")
    parser.add_argument(
        "--jobs-image",
        default=os.environ.get("QUANTFLEET_JOBS_IMAGE", OperatorSettings().jobs_image),
        help="image of the quantize/evaluate/benchmark Jobs (env QUANTFLEET_JOBS_IMAGE)",
    )
    parser.set_defaults(run=run)
