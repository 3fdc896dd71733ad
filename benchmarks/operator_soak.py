"""A soak: our operator with 1,000 QuantizedModels, idle but for one change per second at random,
for 30 minutes. Checks that its memory does not grow (RSS at the end against the start of the
window, 5% allowed), that it logs no error, and that every model's status is current at the end
(observedGeneration equals generation, and the quantize Job it names exists).

The changes, chosen at random each second: a spec change (serving replicas 1 <-> 2: a new
generation, planned again) or the deletion of a model's quantize pod (the Job controller makes
another; the model's pass runs on the pod events). The GPU nodes are SIMULATED (kwok), so no Job
runs: the models stay at their quantize step, which keeps every pass on the plan, the Job and the
status.

    uv run python benchmarks/operator_soak.py [--models 1000] [--minutes 30] [--seed 17]
"""

import argparse
import random
import sys
import time
from functools import partial
from pathlib import Path

from kubernetes import client
from operator_scale import (
    OPERATORS,
    alive,
    answers,
    benchmark_cluster,
    count_children,
    create_models,
    make_namespace,
    running,
)

from quantfleet.api.common import GROUP, QUANTIZED_MODELS, VERSION
from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MODEL, Component
from quantfleet.testbed.wait import poll_until

ALLOWED_GROWTH = 0.05
NAMESPACE = "soak"


def rss_mib(pid: int) -> float:
    """The process's resident memory now (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def stale(api: client.ApiClient) -> list[str]:
    """The models whose status is not current: an older observedGeneration, or a quantize Job
    named in status that does not exist."""
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    jobs = {
        job.metadata.name
        for job in batch.list_namespaced_job(
            NAMESPACE, label_selector=f"{LABEL_COMPONENT}={Component.QUANTIZE}"
        ).items
    }
    found = []
    for body in custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, QUANTIZED_MODELS)[
        "items"
    ]:
        status, meta = body.get("status") or {}, body["metadata"]
        job = (status.get("children") or {}).get("quantizeJob")
        if status.get("observedGeneration") != meta["generation"] or job not in jobs:
            found.append(meta["name"])
    return found


def change(api: client.ApiClient, chooser: random.Random, models: int) -> str:
    """One change to a model chosen at random; what it was."""
    name = f"scale-{chooser.randrange(models):04d}"
    if chooser.random() < 0.5:
        replicas = chooser.choice((1, 2))
        client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, QUANTIZED_MODELS, name,
            {"spec": {"serving": {"replicas": replicas}}},
        )  # fmt: skip
        return "spec"
    core = client.CoreV1Api(api)
    selector = f"{LABEL_MODEL}={name},{LABEL_COMPONENT}={Component.QUANTIZE}"
    for pod in core.list_namespaced_pod(NAMESPACE, label_selector=selector).items:
        core.delete_namespaced_pod(pod.metadata.name, NAMESPACE, grace_period_seconds=0)
    return "pod"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    ours = next(o for o in OPERATORS if o.name == "quantfleet")
    with benchmark_cluster(args.models, "qf-soak-") as setup:
        api, log = setup.api, setup.data_dir / "quantfleet.log"
        make_namespace(api, NAMESPACE)
        with running(ours.command(NAMESPACE), setup.env, log) as process:
            live = partial(answers, ours.liveness)
            poll_until(partial(alive, process, log, live), timeout=120, what="operator live")
            create_models(api, NAMESPACE, args.models)
            poll_until(
                lambda: count_children(api, ours, NAMESPACE) >= args.models and not stale(api),
                timeout=1800,
                interval=5,
                what="every model with its Job and a current status",
            )
            errors_before = log.read_text().count(" ERROR ")
            start = rss_mib(process.pid)
            samples, chooser, made = [start], random.Random(args.seed), {"spec": 0, "pod": 0}
            began = time.monotonic()
            while (elapsed := time.monotonic() - began) < args.minutes * 60:
                made[change(api, chooser, args.models)] += 1
                if int(elapsed) % 60 == 0:
                    samples.append(rss_mib(process.pid))
                time.sleep(max(0.0, 1 - (time.monotonic() - began - elapsed)))
            end = rss_mib(process.pid)
            poll_until(lambda: not stale(api), timeout=120, interval=5, what="status current")
            errors = log.read_text().count(" ERROR ") - errors_before
        growth = (end - start) / start
        print(
            f"soak: {args.models} models, {args.minutes:g} min, changes {made} (seed {args.seed})"
        )
        print(
            f"RSS: {start:.0f} MiB at the start, {max(samples):.0f} MiB at most, {end:.0f} MiB "
            f"at the end: growth {growth * 100:+.1f}% (allowed {ALLOWED_GROWTH * 100:.0f}%)"
        )
        print(f"error lines in the operator log during the soak: {errors}")
        print("every model's status current at the end (observedGeneration, its quantize Job)")
        print(f"logs: {setup.data_dir}")
    return 0 if growth <= ALLOWED_GROWTH and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
