"""The handlers under test talk to an in-memory fake of the kube layer (fake_kube.FakeKube)."""

from typing import Any

import kopf
import pytest
from fake_kube import FakeKube

from quantfleet.handlers import benchmarkrun, quantizedmodel, reconciler, runtime
from quantfleet.testbed.fleet import build_nodes, load_fleet

# The kube modules the handlers call, by the names they import them under.
KUBE_MODULES = ("children", "custom_objects", "baseline_cache", "references")
# The claim the factories' models read from and write to (pvc://models/...).
MODELS_CLAIM = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "models", "namespace": "ml"},
}


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    """A fake cluster standing in for every kube module the handlers use, and for kopf.event."""
    fake = FakeKube()
    for module in (reconciler, quantizedmodel, benchmarkrun):
        for name in KUBE_MODULES:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, fake)
    monkeypatch.setattr(runtime, "api_client", lambda: None)
    monkeypatch.setattr(kopf, "event", fake.event)
    fake.add(MODELS_CLAIM)
    return fake


@pytest.fixture(scope="session")
def fleet_nodes() -> list[dict[str, Any]]:
    """The Nodes of the default simulated fleet, as the Node index holds them."""
    return build_nodes(load_fleet())
