"""`quantfleet operator --metrics-secure` on the real API server: /metrics over HTTPS, a scrape
allowed only with a token the API server authenticates (TokenReview) and authorises for GET
/metrics (SubjectAccessReview), as manifests/monitoring/metrics-auth.yaml grants."""

import http.client
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from quantfleet.cli.localrun import (
    MANIFESTS,
    OperatorProcess,
    load_documents,
    quantfleet_operator_argv,
)
from quantfleet.kube.apply import apply
from quantfleet.testbed.wait import poll_until

pytestmark = pytest.mark.integration

# The operator's own certificate is self-signed: the client trusts it for this test only.
UNVERIFIED = ssl._create_unverified_context()


@pytest.fixture
def secure_operator(
    api_client: client.ApiClient, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """A second operator, serving only the test's (empty) namespace, with --metrics-secure and
    the RBAC of manifests/monitoring/metrics-auth.yaml."""
    for document in load_documents(MANIFESTS / "monitoring" / "metrics-auth.yaml"):
        apply(api_client, document, None)
    everywhere = quantfleet_operator_argv("--metrics-secure")

    def argv(metrics_port: int, liveness_port: int) -> list[str]:
        scope = {"--all-namespaces": f"--namespace={namespace}"}
        return [scope.get(arg, arg) for arg in everywhere(metrics_port, liveness_port)]

    process = OperatorProcess(operator_kubeconfig, tmp_path / "operator.log", argv=argv)
    yield process.start()
    process.stop()


def token_of(api_client: client.ApiClient, namespace: str, name: str) -> str:
    """A fresh ServiceAccount `name` and a token for it (TokenRequest)."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    request = {"spec": {"audiences": [], "expirationSeconds": 600}}
    return str(core.create_namespaced_service_account_token(name, namespace, request).status.token)


def scrape(port: int, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"https://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=UNVERIFIED) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_only_a_token_allowed_to_get_metrics_scrapes_them(
    secure_operator: OperatorProcess, api_client: client.ApiClient, namespace: str
) -> None:
    reader = token_of(api_client, namespace, "prometheus")
    other = token_of(api_client, namespace, "somebody")
    binding = f"{namespace}-metrics-reader"
    client.RbacAuthorizationV1Api(api_client).create_cluster_role_binding(
        {
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "quantfleet-metrics-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}],
        }
    )  # fmt: skip
    try:
        port = secure_operator.metrics_port
        # RBAC takes effect within moments of the binding.
        _, body = poll_until(
            lambda: (found := scrape(port, reader))[0] == 200 and found,
            timeout=30,
            what="the reader's scrape to be allowed",
        )
        assert "quantfleet_reconciles_total" in body
        assert scrape(port, None)[0] == 401
        assert scrape(port, "not-a-token")[0] == 401
        assert scrape(port, other)[0] == 403
        # No plain HTTP: the TLS server drops the request (reset, or a reply that is not HTTP).
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        client.RbacAuthorizationV1Api(api_client).delete_cluster_role_binding(binding)
