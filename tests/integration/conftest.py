"""Fixtures for the integration suite: the project's CRDs installed on the session's cluster."""

from functools import partial
from typing import Any

import pytest
from kubernetes import client

from quantfleet.testbed.wait import poll_until

from .helpers import crd_files, is_established, load_documents

ESTABLISHED_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def installed_crds(api_client: client.ApiClient) -> dict[str, dict[str, Any]]:
    """Apply every CRD in crds/ and wait until each is Established; maps kind -> CRD."""
    extensions = client.ApiextensionsV1Api(api_client)
    by_kind: dict[str, dict[str, Any]] = {}
    for path in crd_files():
        for crd in load_documents(path):
            name = crd["metadata"]["name"]
            try:
                extensions.create_custom_resource_definition(crd)
            except client.ApiException as error:
                if error.status != 409:
                    raise
                current = extensions.read_custom_resource_definition(name)
                crd["metadata"]["resourceVersion"] = current.metadata.resource_version
                extensions.replace_custom_resource_definition(name, crd)
            by_kind[crd["spec"]["names"]["kind"]] = crd

    def established(name: str) -> bool:
        return is_established(extensions.read_custom_resource_definition(name))

    for crd in by_kind.values():
        name = crd["metadata"]["name"]
        poll_until(
            partial(established, name),
            timeout=ESTABLISHED_TIMEOUT,
            what=f"CRD {name} to become Established",
        )
    return by_kind
