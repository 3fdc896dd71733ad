"""The chaos suite's API-server outage (Cluster.outage) on a cluster of its own: longer than the
leader lease's renew deadline, it ends kube-controller-manager and kube-scheduler as on a kubeadm
control plane, and the testbed starts them again as the kubelet would. Afterwards the control
plane works: a Job created then is scheduled and completes on the simulated fleet."""

from pathlib import Path

import pytest
from kubernetes import client, config

from quantfleet.testbed.cluster import LEADER_ELECTED, LEADER_RENEW_SECONDS, Cluster
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.wait import poll_until

from .helpers import pod
from .test_gpu_scheduling import job_condition

pytestmark = pytest.mark.integration

# The new leaders wait out the old lease (testbed.cluster.LEADER_LEASE_SECONDS) first.
TIMEOUT = 120.0


def test_after_an_outage_longer_than_the_lease_the_control_plane_works_again(
    tmp_path: Path,
) -> None:
    cluster = Cluster(load_fleet(), data_dir=tmp_path, die_with_parent=True)
    state = cluster.start()
    try:
        before = {c.name: c.process.pid for c in cluster.components}

        cluster.outage(LEADER_RENEW_SECONDS + 5)

        after = {c.name: c.process for c in cluster.components}
        for name in LEADER_ELECTED:
            assert after[name].pid != before[name], f"{name} did not exit without its lease"
            assert after[name].poll() is None, f"{name} was not started again"
        lost = (tmp_path / "logs" / "kube-controller-manager.log").read_text()
        assert "leaderelection lost" in lost
        api = config.new_client_from_config(config_file=str(state.kubeconfig))
        batch = client.BatchV1Api(api)
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "after-the-outage"},
            "spec": {"backoffLimit": 0, "template": {"spec": pod("unused")["spec"]}},
        }
        batch.create_namespaced_job("default", job)
        poll_until(
            lambda: job_condition(batch, "after-the-outage", "default", "Complete"),
            timeout=TIMEOUT,
            what="the Job created after the outage to be Complete",
        )
        api.close()
    finally:
        cluster.stop()
