"""Fixtures for the planning tests: the node and inventory factories of tests/factories."""

from collections.abc import Callable
from typing import Any

import pytest

from factories import make_inventory, make_node
from quantfleet.planning.inventory import Inventory


@pytest.fixture
def node_factory() -> Callable[..., dict[str, Any]]:
    return make_node


@pytest.fixture
def inventory_factory() -> Callable[..., Inventory]:
    return make_inventory
