"""Monitoring as the Prometheus Operator and Grafana meet it: the PrometheusRule's alerts under
the real `promtool test rules`, the chart's ServiceMonitor, PodMonitor and PrometheusRule
admitted by the Prometheus Operator's own CRDs (from its Go module, tools/kubebin) on the real
API server, and the dashboard's fleet queries held to the metrics a real operator exports (its
serving queries: tests/serving/test_vllm_serving.py, against a real vLLM server)."""

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from factories import Models, make_quantized_model
from factories.commands import BIN, run
from factories.monitoring import dashboard_metrics, dashboard_queries, metric_names
from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MANAGED_BY
from quantfleet.cli.localrun import CHART, MANIFESTS, OperatorProcess, install_crds
from quantfleet.kube.apply import apply

FILES = CHART / "files"
MONITORING = MANIFESTS / "monitoring"
# What the README has Prometheus Operator users apply (links to FILES).
MONITORS = ("servicemonitor", "podmonitor", "prometheusrule")
HERE = Path(__file__).parent
Json = dict[str, Any]


def file_object(name: str) -> Json:
    document: Json = yaml.safe_load((FILES / f"{name}.yaml").read_text())
    return document


def test_the_alerts_fire_when_and_only_when_promtool_says(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": file_object("prometheusrule")["spec"]["groups"]}))
    shutil.copy(HERE / "alerts_test.yaml", tmp_path)

    checked = run(str(BIN / "promtool"), "check", "rules", str(rules))
    tested = run(str(BIN / "promtool"), "test", "rules", str(tmp_path / "alerts_test.yaml"))

    assert "SUCCESS: 3 rules found" in checked
    assert "SUCCESS" in tested


def test_the_dashboard_reads_only_metrics_the_tests_check() -> None:
    names = {n for query in dashboard_queries() for n in metric_names(query)}

    assert names == dashboard_metrics("quantfleet_") | dashboard_metrics("vllm:")
    assert dashboard_metrics("quantfleet_")
    assert dashboard_metrics("vllm:")


def test_the_podmonitor_selects_the_vllm_pods_the_operator_labels() -> None:
    selector = file_object("podmonitor")["spec"]["selector"]["matchExpressions"]

    wanted = {e["key"]: set(e["values"]) for e in selector}
    assert wanted == {LABEL_MANAGED_BY: {"quantfleet"}, LABEL_COMPONENT: {"serve"}}


@pytest.fixture
def prometheus_operator_crds(api_client: client.ApiClient) -> list[str]:
    """The Prometheus Operator's CRDs of the kinds the chart renders, Established."""
    return install_crds(api_client, BIN / "prometheus-operator-crds")


@pytest.mark.integration
def test_the_chart_monitoring_objects_are_valid_prometheus_operator_objects(
    api_client: client.ApiClient, namespace: str, prometheus_operator_crds: list[str]
) -> None:
    assert len(prometheus_operator_crds) == 3
    rendered = run(str(BIN / "helm"), "template", "quantfleet", str(CHART), "--namespace",
                   namespace, "--api-versions", "monitoring.coreos.com/v1",
                   "--set", "monitoring.labels.release=prometheus")  # fmt: skip
    monitors = [d for d in yaml.safe_load_all(rendered) if d and "monitoring" in d["apiVersion"]]
    assert {d["kind"] for d in monitors} == {"ServiceMonitor", "PodMonitor", "PrometheusRule"}

    custom = client.CustomObjectsApi(api_client)
    for document in monitors:
        apply(api_client, document, namespace)  # strict field validation: no unknown field
        plural = f"{document['kind'].lower()}s"
        live = custom.get_namespaced_custom_object(
            "monitoring.coreos.com", "v1", namespace, plural, document["metadata"]["name"]
        )
        assert live["spec"] == document["spec"]
        assert live["metadata"]["labels"]["release"] == "prometheus"


@pytest.mark.integration
def test_the_dashboards_fleet_queries_read_metrics_the_operator_exports(
    models: Models, operator: OperatorProcess
) -> None:
    # One model to Ready through every step, so each of the operator's series has samples.
    models.create(make_quantized_model("watched", "W4A16"))
    models.wait_condition("watched", "Ready", "True")

    exported = set()
    for family in text_string_to_metric_families(operator.metrics()):
        exported.add(family.name)
        exported |= {sample.name for sample in family.samples}
        if family.type == "counter":  # a counter without samples yet still has its _total
            exported.add(f"{family.name}_total")
    assert dashboard_metrics("quantfleet_") - exported == set()


@pytest.mark.integration
def test_the_readmes_monitoring_command_applies(
    kubeconfig: Path, operator_rbac: list[str], prometheus_operator_crds: list[str]
) -> None:
    files = [f"--filename={MONITORING / f'{name}.yaml'}" for name in MONITORS]
    out = run(str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}", "apply", "--dry-run=server",
              *files)  # fmt: skip

    assert len(out.splitlines()) == len(MONITORS)
