"""Reading BenchmarkRuns by name and by namespace (children and QuantizedModels trigger them)."""

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from quantfleet.api.common import GROUP, VERSION
from quantfleet.builders.children import Json
from quantfleet.kube.errors import api_errors

PLURAL = "benchmarkruns"


def read_benchmark_run(api: client.ApiClient, namespace: str, name: str) -> Json | None:
    """The BenchmarkRun as a dict, or None when it is gone."""
    with api_errors(f"reading BenchmarkRun {namespace}/{name}"):
        try:
            body: Json = client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
    return body


def list_benchmark_runs(api: client.ApiClient, namespace: str) -> list[Json]:
    """Every BenchmarkRun in `namespace`."""
    with api_errors(f"listing BenchmarkRuns in {namespace}"):
        listed: Json = client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL
        )
    items: list[Json] = listed.get("items", [])
    return items
