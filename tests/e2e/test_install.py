"""The install commands of the README, as a platform team types them, with the real kubectl and
the real Helm (bin/, tools/kubebin) against the real API server; and the Helm chart held to
manifests/."""

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from factories.commands import BIN, run
from quantfleet.cli.incluster import operator_values
from quantfleet.cli.localrun import (
    CHART,
    CRD_DIR,
    HELM_RELEASE_NAME,
    HELM_RELEASE_NAMESPACE,
    MANIFESTS,
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
    InstallError,
    install_rbac,
)
from quantfleet.testbed.realnode import REAL_NODE_LABEL

pytestmark = pytest.mark.integration

CRDS = ("quantizedmodels.quantfleet.io", "benchmarkruns.quantfleet.io")
Json = dict[str, Any]


def objects(text: str) -> dict[tuple[str, str, str], Json]:
    """The rendered objects by kind, namespace and name."""
    found = {}
    for document in yaml.safe_load_all(text):
        if document:
            metadata = document["metadata"]
            key = (document["kind"], metadata.get("namespace", ""), metadata["name"])
            found[key] = document
    return found


def helm_template(*flags: str) -> dict[tuple[str, str, str], Json]:
    return objects(
        run(str(BIN / "helm"), "template", "quantfleet", str(CHART), "--namespace",
            OPERATOR_NAMESPACE, "--include-crds", *flags)
    )  # fmt: skip


@pytest.mark.parametrize("how", ["-f", "-k"])
def test_the_crds_apply_as_a_folder_and_as_a_kustomization(
    how: str, kubeconfig: Path, installed_crds: list[str]
) -> None:
    out = run(str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}", "apply", how, str(CRD_DIR))

    applied = {line.split()[0] for line in out.splitlines()}
    assert applied == {f"customresourcedefinition.apiextensions.k8s.io/{crd}" for crd in CRDS}


def test_the_chart_lints() -> None:
    out = run(str(BIN / "helm"), "lint", "--strict", str(CHART))

    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_the_charts_defaults_render_what_the_kustomization_installs() -> None:
    kustomized = objects(run(str(BIN / "kubectl"), "kustomize", str(MANIFESTS)))
    # Helm leaves the release's Namespace to the installer (manifests/namespace.yaml).
    del kustomized[("Namespace", "", OPERATOR_NAMESPACE)]

    assert helm_template() == kustomized


def test_the_real_nodes_values_run_our_image_there_without_a_cpu_request(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    settings = {"jobsImage": "localhost/jobs:1", "cpuCoresPerReplica": "1"}
    values.write_text(yaml.safe_dump(operator_values("localhost/quantfleet/op:1", settings)))

    rendered = helm_template("--values", str(values))

    deployment = rendered[("Deployment", OPERATOR_NAMESPACE, "quantfleet-operator")]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", REAL_NODE_LABEL: "true"}
    assert (container["image"], container["imagePullPolicy"]) == (
        "localhost/quantfleet/op:1",
        "Never",
    )
    assert container["resources"]["requests"] == {"memory": "256Mi"}  # the 2 cores are the models'
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["QUANTFLEET_JOBS_IMAGE"] == "localhost/jobs:1"
    assert env["QUANTFLEET_CPU_CORES_PER_REPLICA"] == "1"
    assert "QUANTFLEET_KUEUE_QUEUE_NAME" not in env  # an empty setting keeps the default


def test_watched_namespaces_get_a_flag_and_a_rolebinding_each() -> None:
    rendered = helm_template("--set", "watchNamespaces={team-a,team-b}")

    [container] = rendered[("Deployment", OPERATOR_NAMESPACE, "quantfleet-operator")]["spec"][
        "template"]["spec"]["containers"]  # fmt: skip
    assert [a for a in container["args"] if "namespace" in a] == [
        "--namespace=team-a", "--namespace=team-b"
    ]  # fmt: skip
    bindings = {key for key in rendered if key[0].endswith("RoleBinding")}
    assert ("ClusterRoleBinding", "", "quantfleet-operator") not in bindings
    assert {("RoleBinding", ns, "quantfleet-operator") for ns in ("team-a", "team-b")} <= bindings


def test_secure_metrics_add_the_flag_and_the_rbac_of_manifests_monitoring() -> None:
    plain, secure = helm_template(), helm_template("--set", "metrics.secure=true")

    added = {key: value for key, value in secure.items() if key not in plain}
    assert added == objects((MANIFESTS / "monitoring" / "metrics-auth.yaml").read_text())
    deployment = ("Deployment", OPERATOR_NAMESPACE, "quantfleet-operator")
    [container] = secure[deployment]["spec"]["template"]["spec"]["containers"]
    assert "--metrics-secure" in container["args"]


def test_the_kustomization_applies_as_the_readme_says(
    kubeconfig: Path, operator_rbac: list[str]
) -> None:
    # Server-side dry run: admission, Pod Security and the schemas check every object, nothing
    # is created (a kwok-"run" operator pod would do nothing here). A dry run creates no
    # namespace either: operator_rbac has made quantfleet-system.
    out = run(str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}", "apply", "--dry-run=server",
              "-k", str(MANIFESTS))  # fmt: skip

    assert "deployment.apps/quantfleet-operator" in out
    assert len(out.splitlines()) == len(objects(run(str(BIN / "kubectl"), "kustomize",
                                                      str(MANIFESTS))))  # fmt: skip


def test_the_argocd_health_checks_patch_as_the_readme_says(
    kubeconfig: Path, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    if not any(ns.metadata.name == "argocd" for ns in core.list_namespace().items):
        core.create_namespace({"metadata": {"name": "argocd"}})
    core.create_namespaced_config_map(
        "argocd", {"metadata": {"name": "argocd-cm"}, "data": {"url": "https://argo.example"}}
    )
    try:
        run(str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}", "-n", "argocd", "patch",
            "configmap", "argocd-cm", "--type", "merge", "--patch-file",
            str(MANIFESTS / "argocd" / "argocd-cm-patch.yaml"))  # fmt: skip

        data = core.read_namespaced_config_map("argocd-cm", "argocd").data
        assert data["url"] == "https://argo.example"
        health = "resource.customizations.health.quantfleet.io_"
        assert {f"{health}QuantizedModel", f"{health}BenchmarkRun"} <= data.keys()
    finally:
        core.delete_namespaced_config_map("argocd-cm", "argocd")


def test_helm_over_a_kubectl_install_says_in_one_line_what_to_remove(
    kubeconfig: Path, operator_rbac: list[str]
) -> None:
    # operator_rbac applied manifests/' ServiceAccount and RBAC: the kubectl (kustomize) install.
    done = subprocess.run(
        [str(BIN / "helm"), f"--kubeconfig={kubeconfig}", "upgrade", "--install", "quantfleet",
         str(CHART), "--namespace", OPERATOR_NAMESPACE],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert "was installed with kubectl (manifests/), not Helm" in line, line
    assert "kubectl delete --ignore-not-found -f manifests/operator.yaml" in line, line
    assert "invalid ownership metadata" not in line
    every = ("--deployed", "--failed", "--pending")
    releases = run(str(BIN / "helm"), f"--kubeconfig={kubeconfig}", "list", *every,
                   "--namespace", OPERATOR_NAMESPACE, "--short")  # fmt: skip
    assert releases.strip() == ""


def test_kubectl_over_a_helm_install_says_in_one_line_what_to_remove(
    api_client: client.ApiClient, operator_rbac: list[str]
) -> None:
    # Helm's mark on the operator's ServiceAccount, as `helm install` writes it on every object
    # of a release (put on the kubectl-installed one here, and taken off after: a second
    # operator install would fight the other tests' operator for the same names).
    core = client.CoreV1Api(api_client)
    mark = {HELM_RELEASE_NAME: "quantfleet", HELM_RELEASE_NAMESPACE: OPERATOR_NAMESPACE}
    patch = {"metadata": {"annotations": mark}}
    core.patch_namespaced_service_account(OPERATOR_SERVICE_ACCOUNT, OPERATOR_NAMESPACE, patch)
    try:
        with pytest.raises(InstallError) as refused:
            install_rbac(api_client)
    finally:
        unmark = {"metadata": {"annotations": dict.fromkeys(mark)}}
        core.patch_namespaced_service_account(OPERATOR_SERVICE_ACCOUNT, OPERATOR_NAMESPACE, unmark)

    said = str(refused.value)
    assert "\n" not in said
    assert "`helm uninstall quantfleet --namespace quantfleet-system`" in said, said
