"""The real garbage collector in kube-controller-manager removes owned children once their
owner is deleted."""

from collections.abc import Callable

import pytest
from kubernetes import client

from quantfleet.testbed.wait import poll_until

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


def gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except client.ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def test_deleting_owner_garbage_collects_children(
    api_client: client.ApiClient, namespace: str
) -> None:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    owned_by = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": owner.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "child-config", "ownerReferences": owned_by}}
    )
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "child-job", "ownerReferences": owned_by},
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "registry.invalid/noop:1"}],
                    }
                },
            },
        },
    )

    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    poll_until(
        lambda: (
            gone(lambda: core.read_namespaced_config_map("child-config", namespace))
            and gone(lambda: batch.read_namespaced_job("child-job", namespace))
        ),
        timeout=TIMEOUT,
        what="the owner's ConfigMap and Job children to be garbage-collected",
    )
    # The test would pass vacuously if the children had never existed; they did, and now:
    assert gone(lambda: core.read_namespaced_config_map("owner", namespace))
