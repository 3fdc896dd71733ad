"""Fixtures for the integration suite: the project's CRDs installed on the session's cluster."""

from typing import Any

import pytest
from kubernetes import client

from quantfleet.cli.localrun import install_crds, load_documents

from .helpers import crd_files


@pytest.fixture(scope="session")
def installed_crds(api_client: client.ApiClient) -> dict[str, dict[str, Any]]:
    """Apply every CRD in crds/ and wait until each is Established; maps kind -> CRD."""
    install_crds(api_client)
    return {
        crd["spec"]["names"]["kind"]: crd for path in crd_files() for crd in load_documents(path)
    }
