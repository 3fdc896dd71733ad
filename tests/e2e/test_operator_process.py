"""The harness runs the real operator with its own RBAC: it comes up live without permission
errors, serves metrics, comes back after a crash, and stops cleanly on SIGTERM as in its pod."""

import pytest

from quantfleet.cli.localrun import OperatorProcess

pytestmark = pytest.mark.integration


def test_operator_serves_metrics_and_restarts_after_a_kill(
    operator: OperatorProcess,
) -> None:
    assert operator.running
    assert "# TYPE" in operator.metrics()
    first_pid = operator.pid

    assert operator.kill() == -9
    assert not operator.running
    operator.start()

    assert operator.running
    assert operator.pid != first_pid
    assert "# TYPE" in operator.metrics()


def test_operator_lacks_no_permission_it_uses(operator: OperatorProcess) -> None:
    """Kopf's start-up (discovery, the CRD scan, its watches) logs no 403; the `operator`
    fixture checks the same for everything each e2e test makes the operator do."""
    operator.restart()
    assert "# TYPE" in operator.metrics()  # started and serving
    assert operator.permission_errors() == []


def test_operator_stops_gracefully_on_sigterm(operator: OperatorProcess) -> None:
    assert operator.stop() == 0
    assert not operator.running
