"""Which checkpoint serves (issue 32): the current spec's once promoted, else the one promoted
before, whatever the verdict on the current one; and what Ready says of it."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from factories import make_plan, make_spec
from quantfleet.api.conditions import Reason
from quantfleet.api.enums import Scheme
from quantfleet.api.quantizedmodel import PromotedArtifact
from quantfleet.builders.promotion import Promotion, placed, promoted_artifact
from quantfleet.builders.status import DeploymentObservation, Observed, build_status
from quantfleet.planning.planner import Unplaceable

NOW = datetime(2026, 12, 8, tzinfo=UTC)
EARLIER = PromotedArtifact(
    id="a0", uri="pvc://models/old/a0", scheme=Scheme.FP8_DYNAMIC, parameters=7_600_000_000
)
PASSED = Promotion(True, Reason.PASSED_GATE, "recovery 99.50% meets the 99% gate")
BELOW = Promotion(False, Reason.BELOW_GATE, "recovery 90.00% is 9.00 points below the 99% gate")
AWAITING = Promotion(False, Reason.AWAITING_APPROVAL, "set spec.serving.approvedArtifact: a1")


@pytest.mark.parametrize(
    ("promotion", "recorded", "want_id"),
    [
        pytest.param(PASSED, None, "a1", id="the current artifact promoted: it serves"),
        pytest.param(PASSED, EARLIER, "a1", id="a newer promotion replaces the earlier one"),
        pytest.param(BELOW, EARLIER, "a0", id="the current one below the gate: the earlier serves"),
        pytest.param(AWAITING, EARLIER, "a0", id="awaiting approval: the approved one serves"),
        pytest.param(None, EARLIER, "a0", id="no verdict yet: the earlier one serves"),
        pytest.param(BELOW, None, None, id="nothing promoted ever: nothing serves"),
    ],
)
def test_promoted_artifact(
    promotion: Promotion | None, recorded: PromotedArtifact | None, want_id: str | None
) -> None:
    spec = make_spec()
    plan = make_plan(spec)

    served = promoted_artifact(spec, "a1", plan, promotion, recorded)

    assert (served.id if served else None) == want_id
    if want_id == "a1":
        assert served is not None
        assert served.uri == spec.output.artifact_uri("a1")
        assert (served.scheme, served.parameters) == (plan.scheme, plan.parameters)


def test_placed_records_where_the_plan_put_it() -> None:
    plan = make_plan(make_spec())

    kept = placed(EARLIER, plan)

    assert kept.gpu_family == plan.target_families[0]
    assert kept.model_copy(update={"gpu_family": None}) == EARLIER


NO_GPUS = Unplaceable(Scheme.FP8_DYNAMIC, make_spec().quantization.resolved_objective,
                      Reason.NO_GPU_NODES, "no GPU nodes in the inventory")  # fmt: skip


@pytest.mark.parametrize(
    ("observed", "want_ready", "want_in_message"),
    [
        pytest.param(
            {"deployment": DeploymentObservation("d", 1, 1)},
            ("True", Reason.DEPLOYMENT_READY),
            "1/1 vLLM replicas ready, serving artifact a0 until the current spec's a1 is promoted",
            id="ready, naming what serves and what it waits for",
        ),
        pytest.param(
            {"serving_unplaceable": NO_GPUS},
            ("False", Reason.NO_GPU_NODES),
            "artifact a0: no GPU nodes",
            id="no Deployment and nowhere to place one: the planner's reason",
        ),
        pytest.param(
            {"deployment": DeploymentObservation("d", 1, 0)},
            ("False", Reason.DEPLOYMENT_PROGRESSING),
            "0/1 vLLM replicas ready",
            id="replicas still coming up",
        ),
    ],
)
def test_ready_speaks_of_the_artifact_that_serves(
    observed: dict[str, Any], want_ready: tuple[str, str], want_in_message: str
) -> None:
    spec = make_spec()
    seen = replace(
        Observed(1, make_plan(spec), "a1", promotion=BELOW, promoted=EARLIER), **observed
    )

    status = build_status(spec, seen, [], NOW)

    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == want_ready
    assert want_in_message in ready.message
    assert status.promoted_artifact == EARLIER
