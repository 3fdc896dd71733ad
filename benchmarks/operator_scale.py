"""Our operator against the least a Kopf operator can do, on one cluster in one run.

For each N, a minimal Kopf operator (benchmarks/minimal_operator.py: one child ConfigMap per
QuantizedModel) and then quantfleet's operator each get a namespace of their own, are started
alone, watch only it, and are handed N QuantizedModels. Measured for each:

- time from the first create until every model has its first child (the minimal one's
  ConfigMap; our quantize Job: the cluster's GPU nodes are simulated, so no Job runs);
- peak RSS (VmHWM) over the run and the idle minutes;
- API requests by verb, from the API server's audit log (user agents `kopf/…` and the Python
  client's), during convergence and during the idle minutes that follow (after a settle period);
- ours: reconcile latency p50/p99 from its `quantfleet_reconcile_duration_seconds` histogram.

It ends with `time ratio: X` and `memory ratio: Y` (ours ÷ minimal) for the largest N.

    uv run python benchmarks/operator_scale.py [--models 100 1000] [--idle-seconds 300]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from kubernetes import client, config
from minimal_operator import OWNER_LABEL
from prometheus_client.parser import text_string_to_metric_families

from quantfleet.api.common import GROUP, QUANTIZED_MODELS, VERSION
from quantfleet.api.contract import LABEL_COMPONENT, Component
from quantfleet.api.crd import custom_resource_definitions
from quantfleet.kube.apply import apply, crd_established
from quantfleet.testbed.cluster import AUDIT_LOG, Cluster
from quantfleet.testbed.fleet import Fleet, load_fleet
from quantfleet.testbed.pki import ADMIN_USER
from quantfleet.testbed.wait import poll_until

METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
HERE = Path(__file__).resolve().parent
BENCHMARK_AGENT = "operator-scale-benchmark"  # this script's own requests, left out of the counts
OPERATOR_AGENTS = ("kopf/", "OpenAPI-Generator/")  # Kopf's client and the kubernetes client
SETTLE_SECONDS = 30  # after the last first child, before the idle window opens
# After an operator's liveness probe first answers, before the models are created: Kopf answers
# it before its watches have listed and indexed what exists (our 238 Nodes), and until then it
# holds back every handler of an object that arrives (see docs/operator.md, "Startup").
STARTED_SECONDS = 5
METRICS_PORT, LIVENESS_PORT = 18390, 18391
GPU_HEADROOM = 1.2  # GPUs in the fleet per model


@dataclass(frozen=True)
class Operator:
    name: str
    command: Callable[[str], list[str]]  # the command line watching one namespace
    child: str  # the API path of the children counted, `{ns}` for the namespace
    selector: str
    liveness: str = f"http://127.0.0.1:{LIVENESS_PORT}/healthz"


OPERATORS = (
    Operator(
        "minimal",
        lambda namespace: [
            *(sys.executable, "-m", "kopf", "run", "--standalone", f"--namespace={namespace}"),
            f"--liveness=http://127.0.0.1:{LIVENESS_PORT}/healthz",
            str(HERE / "minimal_operator.py"),
        ],
        "/api/v1/namespaces/{ns}/configmaps",
        OWNER_LABEL,
    ),
    Operator(
        "quantfleet",
        lambda namespace: [
            *(sys.executable, "-m", "quantfleet.cli.main", "operator"),
            *(f"--namespace={namespace}", f"--metrics-port={METRICS_PORT}"),
            f"--liveness-port={LIVENESS_PORT}",
        ],
        "/apis/batch/v1/namespaces/{ns}/jobs",
        f"{LABEL_COMPONENT}={Component.QUANTIZE}",
    ),
)


@dataclass
class Run:
    """One operator's figures for one N."""

    operator: str
    models: int
    created_s: float
    converged_s: float
    peak_rss_mib: float
    convergence: Counter[str]
    idle: Counter[str]
    idle_seconds: float
    reconcile_p50: float | None = None
    reconcile_p99: float | None = None

    def idle_per_model_per_5min(self) -> float:
        return sum(self.idle.values()) / self.models * 300 / self.idle_seconds


def fleet_for(models: int) -> Fleet:
    """The default simulated fleet with each GPU pool's nodes multiplied until every model's
    quantize pod, and then its replica, has a GPU (a model planned once the GPUs are taken
    waits with InsufficientFreeGpus and never gets its first child)."""
    default = load_fleet()
    gpus = sum(pool.nodes * pool.gpu.count for pool in default.pools if pool.gpu)
    factor = math.ceil(GPU_HEADROOM * models / gpus)
    pools = [
        pool.model_copy(update={"nodes": pool.nodes * factor}) if pool.gpu else pool
        for pool in default.pools
    ]
    return default.model_copy(update={"pools": pools})


def model(index: int) -> dict[str, object]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "QuantizedModel",
        "metadata": {"name": f"scale-{index:04d}"},
        "spec": {
            "source": {"uri": f"hf://org/model-{index}", "parametersBillions": 7},
            "quantization": {"scheme": ["FP8_DYNAMIC", "W8A8", "W4A16"][index % 3]},
            "output": {"uri": f"s3://models/scale-{index:04d}"},
        },
    }


def create_models(api: client.ApiClient, namespace: str, models: int) -> None:
    """Create the models from 4 threads (both operators alike)."""
    custom = client.CustomObjectsApi(api)

    def create(index: int) -> None:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, QUANTIZED_MODELS, model(index)
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(models)))


@dataclass(frozen=True)
class Setup:
    """A started cluster: its data folder, this script's client, the operators' environment."""

    data_dir: Path
    api: client.ApiClient
    env: dict[str, str]


@contextmanager
def benchmark_cluster(models: int, prefix: str, audit_admin_reads: bool = False) -> Iterator[Setup]:
    """A control plane with the SIMULATED fleet sized for `models` (said on stdout) and our
    CRDs; stopped on the way out."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    fleet = fleet_for(models)
    gpus = sum(pool.nodes * pool.gpu.count for pool in fleet.pools if pool.gpu)
    nodes = sum(pool.nodes for pool in fleet.pools)
    print(f"SIMULATED fleet (kwok): {nodes} nodes, {gpus} GPUs")
    cluster = Cluster(fleet, data_dir=data_dir, audit_admin_reads=audit_admin_reads)
    state = cluster.start()
    try:
        api = config.new_client_from_config(str(state.kubeconfig))
        api.user_agent = BENCHMARK_AGENT
        for crd in custom_resource_definitions().values():
            apply(api, crd, namespace=None)
            name = crd["metadata"]["name"]
            poll_until(partial(crd_established, api, name), timeout=60, what=f"CRD {name}")
        yield Setup(data_dir, api, {**os.environ, "KUBECONFIG": str(state.kubeconfig)})
    finally:
        cluster.stop()


def make_namespace(api: client.ApiClient, name: str) -> None:
    apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, None)


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def count_children(api: client.ApiClient, operator: Operator, namespace: str) -> int:
    """How many children exist, listed as metadata only (cheap for the API server)."""
    listed = api.call_api(
        operator.child.format(ns=namespace),
        "GET",
        query_params=[("labelSelector", operator.selector)],
        header_params={"Accept": METADATA_ONLY},
        auth_settings=["BearerToken"],
        response_type="object",
        _return_http_data_only=True,
    )
    return len(listed.get("items") or [])


def requests_by_verb(audit: Path, since: datetime, until: datetime) -> Counter[str]:
    """The operators' requests received in [since, until), by verb (a watch once)."""
    seen: dict[str, str] = {}
    for line in audit.read_text().splitlines():
        entry = json.loads(line)
        agent = entry.get("userAgent", "")
        if entry["user"].get("username") != ADMIN_USER or not agent.startswith(OPERATOR_AGENTS):
            continue
        received = datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if since <= received < until:
            seen[entry["auditID"]] = entry["verb"]
    return Counter(seen.values())


def reconcile_quantiles(text: str) -> tuple[float | None, float | None]:
    """p50 and p99 of quantfleet_reconcile_duration_seconds for QuantizedModels, as the upper
    bounds of the histogram's buckets they fall in."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "quantfleet_reconcile_duration_seconds_bucket" and (
                sample.labels.get("kind") == "QuantizedModel"
            ):
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    if not buckets or not buckets[-1][1]:
        return None, None
    total = buckets[-1][1]

    def quantile(q: float) -> float:
        return next(bound for bound, count in buckets if count >= q * total)

    return quantile(0.5), quantile(0.99)


@contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=60)


def alive(process: subprocess.Popen[bytes], log: Path, check: Callable[[], bool]) -> bool:
    """`check`, failing at once if the operator has exited (a port taken, a crash)."""
    if process.poll() is not None:
        raise RuntimeError(f"the operator exited with {process.returncode}: see {log}")
    return check()


def measure(
    api: client.ApiClient, env: dict[str, str], audit: Path, logs: Path, operator: Operator,
    models: int, idle_seconds: float,
) -> Run:  # fmt: skip
    namespace = f"{operator.name}-{models}"
    make_namespace(api, namespace)
    log = logs / f"{namespace}.log"
    with running(operator.command(namespace), env, log) as process:
        live = partial(answers, operator.liveness)
        poll_until(partial(alive, process, log, live), timeout=120, what=f"{operator.name} live")
        time.sleep(STARTED_SECONDS)
        began, started = datetime.now(UTC), time.monotonic()
        create_models(api, namespace, models)
        created = time.monotonic() - started
        poll_until(
            partial(
                alive, process, log, lambda: count_children(api, operator, namespace) >= models
            ),
            timeout=3600,
            interval=0.5,
            what=f"a child per model ({operator.name})",
        )
        converged, converged_at = time.monotonic() - started, datetime.now(UTC)
        time.sleep(SETTLE_SECONDS)
        idle_from = datetime.now(UTC)
        time.sleep(idle_seconds)
        idle_until = datetime.now(UTC)
        rss = peak_rss_mib(process.pid)
        quantiles: tuple[float | None, float | None] = (None, None)
        if operator.name == "quantfleet":
            url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                quantiles = reconcile_quantiles(response.read().decode())
    errors = [line for line in log.read_text().splitlines() if " ERROR " in line]
    if errors:
        print(f"{operator.name}: {len(errors)} error lines in {log}, first: {errors[0]}")
    return Run(
        operator.name,
        models,
        created,
        converged,
        rss,
        requests_by_verb(audit, began, converged_at),
        requests_by_verb(audit, idle_from, idle_until),
        idle_seconds,
        *quantiles,
    )


def report(run: Run) -> None:
    verbs = lambda counts: ", ".join(f"{v} {n}" for v, n in sorted(counts.items())) or "none"  # noqa: E731
    print(
        f"{run.operator:>10} N={run.models}: created in {run.created_s:.1f} s, first child of "
        f"every model at {run.converged_s:.1f} s ({run.converged_s / run.models * 1000:.0f} ms "
        f"per model), peak RSS {run.peak_rss_mib:.0f} MiB"
    )
    converging = sum(run.convergence.values())
    print(f"{'':>10} requests during convergence: {converging} ({verbs(run.convergence)})")
    print(
        f"{'':>10} requests in {run.idle_seconds:.0f} idle s: {sum(run.idle.values())} "
        f"({verbs(run.idle)}); {run.idle_per_model_per_5min():.3f} per model per 5 min"
    )
    if run.reconcile_p99 is not None:
        print(f"{'':>10} reconcile p50 ≤ {run.reconcile_p50} s, p99 ≤ {run.reconcile_p99} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--idle-seconds", type=float, default=300)
    parser.add_argument(
        "--operators",
        nargs="+",
        choices=[o.name for o in OPERATORS],
        default=[o.name for o in OPERATORS],
        help="measure only these (no ratios without both)",
    )
    args = parser.parse_args()
    largest = max(args.models)
    runs: dict[tuple[str, int], Run] = {}
    with benchmark_cluster(largest, "qf-scale-", audit_admin_reads=True) as setup:
        for models in args.models:
            for operator in (o for o in OPERATORS if o.name in args.operators):
                run = measure(
                    setup.api, setup.env, setup.data_dir / AUDIT_LOG, setup.data_dir, operator,
                    models, args.idle_seconds,
                )  # fmt: skip
                report(run)
                runs[operator.name, models] = run
        print(f"logs and audit log: {setup.data_dir}")
    if len(args.operators) < len(OPERATORS):
        return 0
    ours, minimal = runs["quantfleet", largest], runs["minimal", largest]
    print(f"time ratio: {ours.converged_s / minimal.converged_s:.2f}")
    print(f"memory ratio: {ours.peak_rss_mib / minimal.peak_rss_mib:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
