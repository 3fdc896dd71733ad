"""How fast the operator gives 100 QuantizedModels their first child, and its peak memory,
next to a do-nothing Kopf operator watching the same objects in the same run.

Runs on the local control plane (simulated GPU nodes; no Job ever runs: only the time until
each model's quantize Job exists is measured). Prints the figures and the memory ratio.

    uv run python benchmarks/operator_scale.py [--models 100]
"""

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path

from kubernetes import client, config

from quantfleet.api.crd import custom_resource_definitions
from quantfleet.kube.apply import apply, crd_established
from quantfleet.testbed.cluster import Cluster
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.wait import poll_until

HERE = Path(__file__).resolve().parent


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def live(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def model(index: int) -> dict[str, object]:
    return {
        "apiVersion": "quantfleet.io/v1alpha1",
        "kind": "QuantizedModel",
        "metadata": {"name": f"scale-{index:03d}"},
        "spec": {
            "source": {"uri": f"hf://org/model-{index}", "parametersBillions": 7},
            "quantization": {"scheme": ["FP8_DYNAMIC", "W8A8", "W4A16"][index % 3]},
            "output": {"uri": f"s3://models/scale-{index:03d}"},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=100)
    args = parser.parse_args()
    cluster = Cluster(load_fleet(), data_dir=Path(tempfile.mkdtemp(prefix="qf-scale-")))
    state = cluster.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        api = config.new_client_from_config(str(state.kubeconfig))
        for crd in custom_resource_definitions().values():
            apply(api, crd, namespace=None)
            name = crd["metadata"]["name"]
            poll_until(partial(crd_established, api, name), timeout=60, what=f"CRD {name}")
        apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scale"}}, None)
        env = {"KUBECONFIG": str(state.kubeconfig), "PATH": "/usr/bin:/bin"}
        logs = Path(state.data_dir)
        quantfleet = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quantfleet.cli.main",
                "operator",
                "--all-namespaces",
                "--metrics-port=0",
                "--liveness-port=18391",
            ],
            env=env,
            stdout=(logs / "quantfleet.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        idle = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "--standalone",
                "--all-namespaces",
                "--liveness=http://127.0.0.1:18392/healthz",
                str(HERE / "idle_operator.py"),
            ],
            env=env,
            stdout=(logs / "idle.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        processes = [quantfleet, idle]
        for port in (18391, 18392):  # both operators are up before the load starts
            poll_until(partial(live, port), timeout=60, what=f"operator on :{port}")
        custom = client.CustomObjectsApi(api)
        batch = client.BatchV1Api(api)
        started = time.monotonic()
        for index in range(args.models):
            custom.create_namespaced_custom_object(
                "quantfleet.io", "v1alpha1", "scale", "quantizedmodels", model(index)
            )
        created = time.monotonic() - started

        def all_have_a_job() -> bool:
            return len(batch.list_namespaced_job("scale").items) >= args.models

        poll_until(all_have_a_job, timeout=600, interval=0.5, what="a Job per model")
        elapsed = time.monotonic() - started
        quantfleet_mib, idle_mib = peak_rss_mib(quantfleet.pid), peak_rss_mib(idle.pid)
        print(f"models: {args.models} (created in {created:.1f}s)")
        print(
            f"time until every model had its first child (quantize Job): {elapsed:.1f}s "
            f"({elapsed / args.models * 1000:.0f} ms per model)"
        )
        print(
            f"peak RSS: quantfleet operator {quantfleet_mib:.0f} MiB, "
            f"do-nothing Kopf operator {idle_mib:.0f} MiB, ratio {quantfleet_mib / idle_mib:.2f}"
        )
        return 0
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
