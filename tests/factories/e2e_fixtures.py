"""Fixtures for the operator end to end, on the session's real control plane (tests/conftest.py),
for every suite that runs the operator (tests/e2e, tests/serving): a pytest plugin the root
conftest loads; none of them starts anything until a test asks for it.

- `installed_crds`: the CRDs in crds/, Established.
- `operator_rbac`: manifests/namespace.yaml, serviceaccount.yaml and rbac.yaml, applied as is.
- `operator_kubeconfig` / `operator_api_client`: the operator ServiceAccount's own token
  (TokenRequest API), bound to exactly that RBAC; never the admin's certificate.
- `operator_process` (session) and `operator` (per test): `quantfleet operator --all-namespaces`
  as a subprocess with that kubeconfig, live on fresh metrics/liveness ports. `operator` makes
  sure it is running when the test starts, so a test may `kill()`, `stop()` or `restart()` it.
- `worker`: the SIMULATED worker in a thread, completing Job pods; set `worker.producer`.
- `models` / `runs`: factories.Models / Runs on the test's namespace, with the operator and the
  worker running.
"""

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from factories import Models, Runs
from quantfleet.cli.localrun import (
    OperatorProcess,
    install_crds,
    install_rbac,
    mint_token,
    write_token_kubeconfig,
)
from quantfleet.testbed.worker import SimulatedResults, SimulatedWorker

OPERATOR_START_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def installed_crds(api_client: client.ApiClient) -> list[str]:
    """Names of the project's CRDs, applied and Established."""
    return install_crds(api_client)


@pytest.fixture(scope="session")
def operator_rbac(api_client: client.ApiClient, installed_crds: list[str]) -> list[str]:
    """`Kind/name` of each RBAC object applied from manifests/ (CRDs first, as kustomize does)."""
    documents = install_rbac(api_client)
    return [f"{doc['kind']}/{doc['metadata']['name']}" for doc in documents]


@pytest.fixture(scope="session")
def operator_kubeconfig(
    api_client: client.ApiClient,
    kubeconfig: Path,
    operator_rbac: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A kubeconfig holding only the operator ServiceAccount's token."""
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    return write_token_kubeconfig(kubeconfig, mint_token(api_client), path)


@pytest.fixture(scope="session")
def operator_api_client(operator_kubeconfig: Path) -> Iterator[client.ApiClient]:
    """A client acting as the operator's ServiceAccount."""
    api = config.new_client_from_config(config_file=str(operator_kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def operator_process(
    operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The session's operator process, not started yet; stopped at the end of the session."""
    log = tmp_path_factory.mktemp("operator-logs") / "operator.log"
    process = OperatorProcess(operator_kubeconfig, log)
    yield process
    process.stop()


@pytest.fixture
def operator(
    operator_process: OperatorProcess, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """The running operator. If the test fails its log is attached to the report; if the
    operator was denied an API call meanwhile, the test errors: the RBAC in manifests/ must
    cover everything the operator does."""
    start_offset = len(operator_process.logs())
    if not operator_process.running:
        operator_process.start(timeout=OPERATOR_START_TIMEOUT)
    yield operator_process
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        request.node.add_report_section(
            "call", "operator log", operator_process.logs()[start_offset:][-20000:]
        )
    denied = operator_process.permission_errors(since=start_offset)
    if denied:
        pytest.fail(
            "The operator was denied API calls (manifests/rbac.yaml):\n" + "\n".join(denied[:5]),
            pytrace=False,
        )


@pytest.fixture
def worker(api_client: client.ApiClient) -> Iterator[SimulatedWorker]:
    """The SIMULATED worker, running in a thread with the default producer (recovery 99.6%).
    Replace `worker.producer` to change outcomes; return None from it to hold a pod Running."""
    simulated = SimulatedWorker(api_client, SimulatedResults()).start()
    yield simulated
    simulated.stop()


@pytest.fixture
def models(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess, worker: SimulatedWorker
) -> Models:
    """QuantizedModels in the test's namespace, the operator and the worker running."""
    return Models(api_client, namespace)


@pytest.fixture
def runs(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess, worker: SimulatedWorker
) -> Runs:
    """BenchmarkRuns in the test's namespace, the operator and the worker running."""
    return Runs(api_client, namespace)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
