"""Nothing is left behind when a test dies: a process that started a real node is SIGKILLed, and
the node's processes, veth, cgroups and mounts go, the host's sysctls and nftables are as they
were. Then the harness refuses, in one line, a node that cannot become Ready."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from quantfleet.testbed.cluster import Cluster, RealNodeOptions
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.processes import ComponentError, ProcessRecord, stop
from quantfleet.testbed.realnode import KUBELET_SYSCTLS
from quantfleet.testbed.wait import poll_until

HOST_SYSCTLS = [*KUBELET_SYSCTLS, "net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"]

# Starts a cluster with a real node that dies with this child, prints its records, waits.
CHILD = """
import json, sys, time
from pathlib import Path
from quantfleet.testbed.cluster import Cluster, RealNodeOptions
from quantfleet.testbed.fleet import load_fleet
cluster = Cluster(
    load_fleet(), data_dir=Path(sys.argv[1]), real_node=RealNodeOptions(), die_with_parent=True
)
state = cluster.start(timeout=240)
node = cluster.real_node
print(json.dumps({
    "records": [record.to_json() for record in state.processes],
    "veth": node.address.veth_host,
    "cgroup": node.cgroup_root,
    "tree": descendants(node.records[-1].pid),
}), flush=True)
time.sleep(3600)
"""
DESCENDANTS = """
def descendants(pid):
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += [int(child), *descendants(int(child))]
    return found
"""


def host_state() -> dict[str, object]:
    sysctls = {}
    for key in HOST_SYSCTLS:
        path = Path("/proc/sys") / key
        sysctls[key] = path.read_text() if path.exists() else None
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True)
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in links.stdout.splitlines())
    return {"sysctls": sysctls, "nft": ruleset.stdout, "links": names}


def test_killed_test_process_leaves_nothing_behind(tmp_path: Path) -> None:
    before = host_state()
    data_dir = tmp_path / "cluster"
    data_dir.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", DESCENDANTS + CHILD, str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    started = json.loads(child.stdout.readline())
    records = [ProcessRecord.from_json(record) for record in started["records"]]
    assert len(started["tree"]) >= 4  # containerd, kubelet, kube-proxy, coredns, shims...

    child.send_signal(signal.SIGKILL)
    child.wait()

    def gone() -> bool:
        alive = [r.pid for r in records if r.is_running()]
        alive += [pid for pid in started["tree"] if Path(f"/proc/{pid}").exists()]
        return not alive

    try:
        poll_until(gone, timeout=60, what="every process, control plane and node, to end")
        # The kernel tears a network namespace (and its veth) down a moment after its last
        # process: poll for the host's state, then compare it once more for the message.
        poll_until(lambda: host_state() == before, timeout=30, what="the host's state as before")
        assert host_state() == before
        assert not list(Path("/sys/fs/cgroup").glob(f"*{started['cgroup']}"))
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(data_dir) not in mounts
    finally:
        stop(records)


def test_node_that_never_turns_ready_fails_with_the_kubelets_last_error(tmp_path: Path) -> None:
    # A kubelet that cannot run: its cgroup root does not exist.
    options = RealNodeOptions(kubelet_overrides={"cgroupRoot": "/quantfleet-missing"})
    cluster = Cluster(load_fleet(), data_dir=tmp_path, real_node=options, die_with_parent=True)

    try:
        with pytest.raises(ComponentError, match=r"last error of kubelet .*quantfleet-missing"):
            cluster.start(timeout=120)
    finally:
        cluster.stop()

    assert cluster.real_node is not None
    assert not list(Path("/sys/fs/cgroup").glob(f"*{cluster.real_node.cgroup_root}"))
    assert not any(record.is_running() for record in cluster.state.processes)
    assert os.path.exists(tmp_path / "node" / "logs" / "kubelet.log")
