"""Shared fixtures.

Cluster fixtures: `cluster` starts one real control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok with the simulated GPU fleet) for the whole session,
lazily, the first time a test asks for it, so unit tests never start it. `namespace` gives each
test a fresh namespace; `api_client` talks to the cluster as admin; `kubeconfig` is the file's
path (for Kopf's KopfRunner or a subprocess). When the binaries are missing or the cluster does
not come up the requesting tests fail; they are never skipped. Set QUANTFLEET_TEST_KUBECONFIG to
run against a cluster that is already up (`quantfleet dev up`) instead of starting one.

`mock_server` (module): the base URL of GuideLLM's own OpenAI-compatible MOCK server on loopback
(factories.mock_server: fixed TTFT and ITL, model `tiny`).

Model fixtures (session): `tiny_llama` and `tiny_vlm` build the tiny random models
(factories.models); `checkpoint(source, scheme)` quantizes one with the real quantize program,
once per session. `local_tasks` and `image_task` (session): lm-eval task definitions and data on
disk for `--include-path` (factories.tasks). `vllm_servers` (session) runs real vLLM from
serving/.venv, one server at a time, shared by every test that asks for the same model and
arguments (factories.vllm); tests that need it fail, never skip, when the serving environment is
missing (`make setup`).
"""

import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from factories import guidellm_mock_server
from factories.models import build_tiny_llama, build_tiny_qwen2_vl, quantize
from factories.tasks import write_choice_tasks, write_image_task
from factories.vllm import VllmServers, serving_env_ready
from quantfleet.api.enums import Scheme
from quantfleet.testbed.cluster import Cluster, ClusterState
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.wait import poll_until

# The operator end to end (operator process, worker, models, runs), shared by tests/e2e and
# tests/serving.
pytest_plugins = ["factories.e2e_fixtures"]

CLUSTER_START_TIMEOUT = 180.0
NAMESPACE_READY_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    """One running cluster for the session: started here, or the one named by the variable."""
    existing = os.environ.get("QUANTFLEET_TEST_KUBECONFIG")
    if existing:
        kubeconfig = Path(existing)
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        yield ClusterState(data_dir=kubeconfig.parent, kubeconfig=kubeconfig, server=server)
        return
    data_dir = tmp_path_factory.mktemp("cluster")
    failure = ""
    try:
        started = Cluster(load_fleet(), data_dir=data_dir, die_with_parent=True)
        state = started.start(timeout=CLUSTER_START_TIMEOUT)
    except Exception as error:
        failure = f"The test cluster did not start: {error}\nLogs: {data_dir / 'logs'}"
    if failure:
        # Outside the except block, so the report shows the reason, not a chained traceback.
        pytest.fail(failure, pytrace=False)
    try:
        yield state
    finally:
        started.stop()


@pytest.fixture(scope="session")
def kubeconfig(cluster: ClusterState) -> Path:
    """Path of an admin kubeconfig for the session's cluster."""
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """An admin `kubernetes.client.ApiClient` for the session's cluster."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


@pytest.fixture
def make_namespace(
    api_client: client.ApiClient, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """Factory: `make_namespace(labels={...})` creates a uniquely named namespace, ready for pods
    (its default ServiceAccount exists), and deletes it after the test."""
    core = client.CoreV1Api(api_client)
    created: list[str] = []
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")

    def make(labels: dict[str, str] | None = None) -> str:
        name = f"{slug}-{secrets.token_hex(3)}"
        core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        created.append(name)
        poll_until(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=NAMESPACE_READY_TIMEOUT,
            what=f"the default ServiceAccount of namespace {name}",
            retry_on=(client.ApiException,),
        )
        return name

    yield make
    for name in created:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def namespace(make_namespace: Callable[..., str]) -> str:
    """A fresh namespace for this test, deleted afterwards."""
    return make_namespace()


@pytest.fixture(scope="module")
def mock_server() -> Iterator[str]:
    """GuideLLM's MOCK server on 127.0.0.1, for the module's tests."""
    with guidellm_mock_server() as url:
        yield url


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny-qwen2-vl"))


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path, Scheme], Path]:
    """Factory: `checkpoint(source, scheme)` is `source` quantized to `scheme` on the CPU by the
    real quantize program; each pair is quantized once per session."""
    made: dict[tuple[Path, Scheme], Path] = {}

    def make(source: Path, scheme: Scheme) -> Path:
        if (source, scheme) not in made:
            work = tmp_path_factory.mktemp(f"{source.name}-{scheme.lower()}")
            made[source, scheme] = quantize(source, scheme, work / "checkpoint", work)
        return made[source, scheme]

    return make


@pytest.fixture(scope="session")
def local_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The multiple-choice text tasks `qf_fox` and `qf_image` (factories.tasks)."""
    return write_choice_tasks(tmp_path_factory.mktemp("tasks"))


@pytest.fixture(scope="session")
def image_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image task `qf_colour` for vision-language models (factories.tasks)."""
    return write_image_task(tmp_path_factory.mktemp("image-task"))


@pytest.fixture(scope="session")
def vllm_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServers]:
    """Real vLLM servers on loopback, one at a time (factories.vllm)."""
    if not serving_env_ready():
        pytest.fail("serving/.venv has no vLLM: run `make setup`", pytrace=False)
    servers = VllmServers(tmp_path_factory.mktemp("vllm-logs"))
    yield servers
    servers.stop()
