"""What `kubectl apply -k manifests/` installs: it parses, the operator pod meets Pod Security
"restricted", and the RBAC grants no Secrets, no wildcards and nothing cluster-wide but reads."""

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OPERATOR_NAMESPACE = "quantfleet-system"
SERVICE_ACCOUNT = "quantfleet-operator"
READ_VERBS = {"get", "list", "watch"}
# Volume types the restricted profile allows (Pod Security Standards, "Volume Types").
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
Json = dict[str, Any]


def documents(path: Path) -> list[Json]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def installed() -> list[Json]:
    """Every object the kustomization lists (CRDs aside), in its order."""
    objects: list[Json] = []
    for folder in (MANIFESTS, MANIFESTS / "monitoring"):
        kustomization = documents(folder / "kustomization.yaml")[0]
        for resource in kustomization["resources"]:
            path = folder / resource
            if path.is_file():
                objects.extend(documents(path))
    return objects


def of_kind(kind: str) -> list[Json]:
    return [doc for doc in installed() if doc["kind"] == kind]


def deployment() -> Json:
    (found,) = of_kind("Deployment")
    return found


def restricted_violations(pod: Json) -> list[str]:
    """Where a pod spec breaks the Pod Security "restricted" profile (baseline rules included)."""
    problems = []
    pod_security = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is set")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} is {sorted(kinds)}")
    for container in pod.get("initContainers", []) + pod.get("containers", []):
        name = container["name"]
        security = container.get("securityContext", {})

        def setting(key: str, security: Json = security) -> Any:
            return security.get(key, pod_security.get(key))

        if security.get("privileged"):
            problems.append(f"{name}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if setting("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if setting("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        capabilities = security.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {capabilities['add']}")
        seccomp = (setting("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


def test_every_manifest_parses_into_named_objects() -> None:
    files = sorted(p for p in MANIFESTS.rglob("*.yaml") if "samples" not in p.parts)
    assert len(files) >= 6
    for path in files:
        for doc in documents(path):
            assert {"apiVersion", "kind"} <= set(doc), path
            if not doc["apiVersion"].startswith("kustomize.config.k8s.io/"):
                assert doc["metadata"]["name"], path


def test_kustomization_installs_crds_namespace_rbac_and_the_operator() -> None:
    kustomization = documents(MANIFESTS / "kustomization.yaml")[0]
    for resource in kustomization["resources"]:
        assert (MANIFESTS / resource).exists(), resource
    assert "../crds" in kustomization["resources"]
    crds = documents(ROOT / "crds" / "Kustomization")[0]["resources"]
    assert sorted(crds) == sorted(p.name for p in (ROOT / "crds").glob("quantfleet.io_*.yaml"))
    kinds = {doc["kind"] for doc in installed()}
    want = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"}
    assert want <= kinds


def test_operator_namespace_enforces_the_restricted_profile() -> None:
    (namespace,) = of_kind("Namespace")
    assert namespace["metadata"]["name"] == OPERATOR_NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_operator_pod_passes_the_restricted_profile() -> None:
    assert restricted_violations(deployment()["spec"]["template"]["spec"]) == []


@pytest.mark.parametrize(
    ("breakage", "want_problem"),
    [
        pytest.param(
            lambda pod: pod["containers"][0]["securityContext"].update(
                allowPrivilegeEscalation=True
            ),
            "operator: allowPrivilegeEscalation is not false",
            id="escalation allowed",
        ),
        pytest.param(
            lambda pod: pod["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
            "operator: capabilities do not drop ALL",
            id="capabilities kept",
        ),
        pytest.param(
            lambda pod: (
                pod["containers"][0]["securityContext"].pop("seccompProfile")
                and pod["securityContext"].pop("seccompProfile")
            ),
            "operator: seccompProfile is None",
            id="no seccomp profile",
        ),
        pytest.param(
            lambda pod: pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
            "volume host is ['hostPath']",
            id="hostPath volume",
        ),
        pytest.param(
            lambda pod: pod["containers"][0]["securityContext"].update(runAsUser=0),
            "operator: runAsUser is 0",
            id="root user",
        ),
    ],
)
def test_restricted_check_catches_a_broken_pod(breakage: Any, want_problem: str) -> None:
    pod = copy.deepcopy(deployment()["spec"]["template"]["spec"])
    breakage(pod)
    assert want_problem in restricted_violations(pod)


def test_operator_deployment_is_one_recreated_hardened_replica() -> None:
    spec = deployment()["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert (spec["replicas"], spec["strategy"]["type"]) == (1, "Recreate")
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT
    assert deployment()["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert (security["runAsUser"], security["readOnlyRootFilesystem"]) == (65532, True)
    assert container["command"] + container["args"][:2] == [
        "quantfleet",
        "operator",
        "--all-namespaces",
    ]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "limits" in container["resources"]
    assert "requests" in container["resources"]


def test_operator_deployment_probes_and_metrics_use_the_operator_ports() -> None:
    template = deployment()["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 8080, "healthz": 8081}
    assert "--metrics-port=8080" in container["args"]
    assert "--liveness-port=8081" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"


def rules() -> list[tuple[str, Json]]:
    return [
        (role["metadata"]["name"], rule)
        for role in of_kind("ClusterRole") + of_kind("Role")
        for rule in role["rules"]
    ]


def test_rbac_grants_no_secrets_and_no_wildcards() -> None:
    assert rules()
    for role, rule in rules():
        assert not any(r.split("/")[0] == "secrets" for r in rule["resources"]), role
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], f"{role}: wildcard in {key}"
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
        assert "nonResourceURLs" not in rule
        assert "resourceNames" not in rule


def test_rbac_cluster_scoped_grants_are_read_only_nodes_and_crds() -> None:
    cluster_scoped = {"nodes", "namespaces", "persistentvolumes", "customresourcedefinitions"}
    for role, rule in rules():
        touched = cluster_scoped & set(rule["resources"])
        if touched:
            assert touched <= {"nodes", "customresourcedefinitions"}, role
            assert set(rule["verbs"]) <= READ_VERBS, role


def test_rbac_bindings_bind_the_operator_service_account_to_defined_roles() -> None:
    roles = {role["metadata"]["name"] for role in of_kind("ClusterRole")}
    bindings = of_kind("ClusterRoleBinding") + of_kind("RoleBinding")
    assert {binding["roleRef"]["name"] for binding in bindings} == roles
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
        ]


def argocd_health() -> dict[str, str]:
    patch = documents(MANIFESTS / "argocd" / "argocd-cm-patch.yaml")[0]
    prefix = "resource.customizations.health.quantfleet.io_"
    return {key.removeprefix(prefix): lua for key, lua in patch["data"].items()}


def test_argocd_health_checks_cover_both_kinds() -> None:
    assert set(argocd_health()) == {"QuantizedModel", "BenchmarkRun"}


def test_argocd_health_checks_name_only_real_condition_types_and_reasons() -> None:
    from quantfleet.api.conditions import (
        BenchmarkRunCondition,
        QuantizedModelCondition,
        Reason,
    )

    lua = argocd_health()
    degraded = re.search(r"local degraded = \{(.*?)\}", lua["QuantizedModel"], re.S)
    assert degraded is not None
    reasons = set(re.findall(r"(\w+) = true", degraded.group(1)))
    assert reasons
    assert reasons <= {reason.value for reason in Reason}
    for literal in re.findall(r'reason == "(\w+)"', lua["QuantizedModel"]):
        assert literal in {reason.value for reason in Reason}
    for literal in re.findall(r'type == "(\w+)"', lua["QuantizedModel"]):
        assert literal in {condition.value for condition in QuantizedModelCondition}
    for literal in re.findall(r'type == "(\w+)"', lua["BenchmarkRun"]):
        assert literal in {condition.value for condition in BenchmarkRunCondition}


def test_prometheus_alerts_use_metrics_the_operator_exports() -> None:
    (rule,) = documents(MANIFESTS / "monitoring" / "prometheusrule.yaml")
    metrics_source = (ROOT / "operator" / "quantfleet" / "handlers" / "metrics.py").read_text()
    expressions = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert expressions
    for expression in expressions:
        names = set(re.findall(r"quantfleet_\w+", expression))
        assert names, expression
        for name in names:
            declared = re.sub(r"_(bucket|sum|count)$", "", name)
            assert f'"{declared}"' in metrics_source, name
