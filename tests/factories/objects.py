"""QuantizedModels and BenchmarkRuns on a real API server, one namespace at a time: create, read,
change, wait for a condition (polling with a timeout), and look at their children by label."""

from typing import Any

from kubernetes import client

from quantfleet.api.common import GROUP, VERSION
from quantfleet.api.contract import LABEL_BENCHMARK_RUN, LABEL_COMPONENT, LABEL_MODEL, Component
from quantfleet.testbed.wait import poll_until

Json = dict[str, Any]


class CustomObjects:
    """One kind's objects in one namespace; children are found by `label`=<object name>."""

    plural = ""
    label = ""
    timeout = 90.0

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.custom = client.CustomObjectsApi(api)

    def create(self, body: Json) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, self.plural, body
        )

    def get(self, name: str) -> Json:
        body: Json = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, self.plural, name
        )
        return body

    def patch_spec(self, name: str, spec: Json) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, self.plural, name, {"spec": spec}
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, self.plural, name, propagation_policy="Foreground"
        )

    def condition(self, name: str, kind: str) -> Json:
        conditions = (self.get(name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})

    def wait_condition(
        self,
        name: str,
        kind: str,
        status: str = "True",
        reason: str | None = None,
        timeout: float | None = None,
    ) -> Json:
        def reached() -> Json | None:
            found = self.condition(name, kind)
            matches = found.get("status") == status and reason in (None, found.get("reason"))
            return found if matches else None

        return poll_until(
            reached,
            timeout=timeout or self.timeout,
            what=f"{name} {kind}={status}{f' ({reason})' if reason else ''}",
        )

    def _selector(self, name: str, component: Component | None = None) -> str:
        selector = f"{self.label}={name}"
        return f"{selector},{LABEL_COMPONENT}={component}" if component else selector

    def jobs(self, name: str) -> list[Any]:
        """The object's Jobs, oldest first."""
        items = (
            client.BatchV1Api(self.api)
            .list_namespaced_job(self.namespace, label_selector=self._selector(name))
            .items
        )
        return sorted(items, key=lambda j: (j.metadata.creation_timestamp, j.metadata.name))

    def job_names(self, name: str) -> list[str]:
        return [job.metadata.name for job in self.jobs(name)]

    def deployments(self, name: str) -> list[Any]:
        return list(
            client.AppsV1Api(self.api)
            .list_namespaced_deployment(self.namespace, label_selector=self._selector(name))
            .items
        )

    def pods(self, name: str, component: Component | None = None) -> list[Any]:
        return list(
            client.CoreV1Api(self.api)
            .list_namespaced_pod(self.namespace, label_selector=self._selector(name, component))
            .items
        )

    def config_maps(self, name: str) -> list[Any]:
        return list(
            client.CoreV1Api(self.api)
            .list_namespaced_config_map(self.namespace, label_selector=self._selector(name))
            .items
        )

    def events(self, name: str) -> list[str]:
        """Reasons of the events about the object."""
        events = client.CoreV1Api(self.api).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return [e.reason for e in events.items]


class Models(CustomObjects):
    """QuantizedModels and their Jobs, vLLM Deployments and pods."""

    plural = "quantizedmodels"
    label = LABEL_MODEL

    def serving_pods(self, name: str) -> list[Any]:
        """The model's vLLM pods that the scheduler has placed."""
        return [p for p in self.pods(name, Component.SERVE) if p.spec.node_name]


class Runs(CustomObjects):
    """BenchmarkRuns and their benchmark Jobs, baseline Deployment and report ConfigMap."""

    plural = "benchmarkruns"
    label = LABEL_BENCHMARK_RUN
    timeout = 120.0
