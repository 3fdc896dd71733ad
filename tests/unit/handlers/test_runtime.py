"""The operator's API client has a connection per handler thread."""

import asyncio
import threading

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


def test_the_passes_run_on_as_many_threads_as_the_pool_has_connections() -> None:
    settings = kopf.OperatorSettings()

    async def start() -> str:
        await startup.configure(settings=settings)
        # The thread asyncio.to_thread runs a pass on.
        return await asyncio.to_thread(lambda: threading.current_thread().name)

    thread = asyncio.run(start())
    assert settings.execution.max_workers == runtime.MAX_WORKERS
    assert not thread.startswith("asyncio")  # Kopf's pool, not the loop's own


def test_no_change_handlers_so_no_diff_base_is_needed() -> None:
    """The diff base is empty (startup.NoDiffBase, no deep copy of each watch event): that holds
    only while no handler reacts to changes (on.create, on.update, on.resume, on.delete)."""
    import quantfleet.handlers  # noqa: F401  registers the handlers

    assert kopf.get_default_registry()._changing.get_all_handlers() == []
