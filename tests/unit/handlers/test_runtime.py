"""The operator's API client has a connection per handler thread."""

import kopf
import pytest
from kubernetes import client, config

from quantfleet.handlers import runtime, startup


@pytest.fixture
def in_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials as in a pod, without a pod: the loader sets a default configuration."""
    monkeypatch.setattr(client.Configuration, "_default", None)

    def load() -> None:
        client.Configuration.set_default(client.Configuration(host="https://kubernetes.default"))

    monkeypatch.setattr(config, "load_incluster_config", load)


@pytest.mark.parametrize("threads", [16, 64], ids=["the default 16 threads", "64 threads"])
def test_the_connection_pool_is_sized_from_the_handler_threads(
    in_cluster: None, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    """Also in issue 10: a pool smaller than the threads logged "Connection pool is full,
    discarding connection" under load."""
    monkeypatch.setattr(runtime, "MAX_WORKERS", threads)

    api = runtime.connect()

    assert api.configuration.host == "https://kubernetes.default"
    assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] == threads


def test_kopf_runs_as_many_handler_threads_as_the_pool_has_connections() -> None:
    settings = kopf.OperatorSettings()
    startup.configure(settings=settings)
    assert settings.execution.max_workers == runtime.MAX_WORKERS
