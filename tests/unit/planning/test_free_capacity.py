"""Free capacity: pools are ranked among those whose free GPUs (allocatable minus what bound pods
request) hold every replica now; a model that fits the fleet but not its free GPUs waits with
InsufficientFreeGpus, distinct from InsufficientGpuMemory (fits never)."""

from typing import Any

import pytest

from factories import make_node
from quantfleet.api.conditions import Reason
from quantfleet.api.contract import LABEL_MODEL
from quantfleet.api.enums import GpuFamily, Scheme
from quantfleet.planning.inventory import (
    Held,
    HeldPod,
    build_inventory,
    read_held_pod,
    requested,
)
from quantfleet.planning.planner import Plan, PlanRequest, Unplaceable, plan_placement

B = 10**9
FLEET = [make_node("t4", name="t4-0", gpus=1), make_node("a6000", name="a6000-0", gpus=4)]


def pod(
    node: str | None = "t4-0",
    gpus: int = 1,
    phase: str = "Running",
    init_gpus: int = 0,
    model: str | None = None,
) -> dict[str, Any]:
    def container(count: int) -> dict[str, Any]:
        return {"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(count)}}}

    return {
        "metadata": {
            "namespace": "ml",
            "name": "p",
            "labels": {LABEL_MODEL: model} if model else {},
        },
        "spec": {
            **({"nodeName": node} if node else {}),
            "containers": [container(gpus)],
            "initContainers": [container(init_gpus)] if init_gpus else [],
        },
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("body", "want"),
    [
        (pod(), HeldPod("ml", "p", "t4-0", 1)),
        (pod(gpus=1, init_gpus=3), HeldPod("ml", "p", "t4-0", 3)),
        (pod(model="qwen"), HeldPod("ml", "p", "t4-0", 1, "qwen")),
        (pod(node=None), None),  # not bound: holds nothing yet
        (pod(phase="Succeeded"), None),
        (pod(phase="Failed"), None),
        (pod(gpus=0), None),
    ],
)
def test_a_pod_holds_gpus_while_bound_and_unfinished(
    body: dict[str, Any], want: HeldPod | None
) -> None:
    assert read_held_pod(body, LABEL_MODEL) == want


def test_a_models_own_pods_do_not_count_as_taken() -> None:
    pods = [HeldPod("ml", "a", "n", 2, "qwen"), HeldPod("ml", "b", "n", 1, "other")]
    pods.append(HeldPod("other-ns", "c", "n", 4, "qwen"))

    assert requested(pods, namespace="ml", model="qwen") == {"n": Held(gpus=5)}
    assert requested(pods) == {"n": Held(gpus=7)}


def test_a_node_read_once_per_version_still_shows_what_each_pass_sees_held() -> None:
    """Nodes are read once per version and holding: the same version under another holding (a
    pass leaving its own model's pods out) or a new version (more GPUs) is not the node read
    before."""
    node = make_node("a6000", name="a6000-v", gpus=4)
    node["metadata"].update(uid="u-a6000-v", resourceVersion="7")

    def free(held: dict[str, Held]) -> int:
        return sum(n.gpus - n.requested_gpus for n in build_inventory([node], held).nodes)

    assert [free({"a6000-v": Held(gpus=3)}), free({"a6000-v": Held(gpus=1)}), free({})] == [1, 3, 4]
    node["metadata"]["resourceVersion"] = "8"
    node["status"]["allocatable"]["nvidia.com/gpu"] = "8"
    assert free({"a6000-v": Held(gpus=1)}) == 7


def plan(taken: dict[str, int], replicas: int = 1) -> Plan | Unplaceable:
    request = PlanRequest(parameters=7 * B, scheme=Scheme.W8A8, replicas=replicas)
    held = {node: Held(gpus=gpus) for node, gpus in taken.items()}
    return plan_placement(request, build_inventory(FLEET, held))


def test_best_fit_takes_the_next_smallest_gpu_when_the_smallest_is_full() -> None:
    empty, full = plan({}), plan({"t4-0": 1})

    assert isinstance(empty, Plan)
    assert isinstance(full, Plan)
    assert empty.target_families[0] == GpuFamily.TURING
    assert full.target_families[0] == GpuFamily.AMPERE
    assert "1 x ampere 48 GiB (TP 1) by BestFit" in full.rationale


def test_replicas_count_against_free_gpus() -> None:
    placed = plan({"a6000-0": 1}, replicas=3)
    waiting = plan({"a6000-0": 2}, replicas=3)

    assert isinstance(placed, Plan)
    assert placed.target_families[0] == GpuFamily.AMPERE  # 3 free A6000s; the one T4 is too few
    assert isinstance(waiting, Unplaceable)
    assert waiting.reason == Reason.INSUFFICIENT_FREE_GPUS


def test_fitting_the_fleet_but_not_its_free_gpus_waits_and_says_what_is_free() -> None:
    waiting = plan({"t4-0": 1, "a6000-0": 4})

    assert isinstance(waiting, Unplaceable)
    assert waiting.reason == Reason.INSUFFICIENT_FREE_GPUS
    assert "1 replica(s) fit the fleet but not its free GPUs now" in waiting.message
    assert "W8A8 on 1 x turing 15 GiB: 0 of 1 GPUs free" in waiting.message
    assert "W8A8 on 1 x ampere 48 GiB: 0 of 4 GPUs free" in waiting.message
    assert waiting.message.endswith("planned again as GPUs free up")


def test_a_model_no_gpu_holds_is_still_insufficient_memory_when_the_fleet_is_full() -> None:
    request = PlanRequest(parameters=400 * B, scheme=Scheme.W8A8)

    verdict = plan_placement(
        request, build_inventory(FLEET, {"t4-0": Held(gpus=1), "a6000-0": Held(gpus=4)})
    )

    assert isinstance(verdict, Unplaceable)
    assert verdict.reason == Reason.INSUFFICIENT_GPU_MEMORY


def test_zero_replicas_need_no_free_gpus() -> None:
    assert isinstance(plan({"t4-0": 1, "a6000-0": 4}, replicas=0), Plan)


def test_a_kept_kind_wins_while_it_has_room_and_is_left_when_full() -> None:
    """A served model stays where its plan put it (no roll when a better kind frees up); once
    its kind has no room left for it, it moves."""
    request = PlanRequest(parameters=7 * B, scheme=Scheme.W8A8, keep=GpuFamily.AMPERE)

    kept = plan_placement(request, build_inventory(FLEET))
    left = plan_placement(request, build_inventory(FLEET, {"a6000-0": Held(gpus=4)}))

    assert isinstance(kept, Plan)
    assert isinstance(left, Plan)
    assert kept.target_families[0] == GpuFamily.AMPERE
    assert left.target_families[0] == GpuFamily.TURING


def test_target_weights_do_not_follow_other_pools_free_gpus() -> None:
    """The weights become the Deployment's node affinity: a runner-up pool filling up must not
    reorder them (every change rolls the model's pods)."""
    fleet = [*FLEET, make_node("l40s", name="l40s-0", gpus=4)]
    request = PlanRequest(parameters=7 * B, scheme=Scheme.W8A8)

    def weights(held: dict[str, Held]) -> list[tuple[str, int]]:
        found = plan_placement(request, build_inventory(fleet, held))
        assert isinstance(found, Plan)
        return [(str(target.pool.family), target.weight) for target in found.targets]

    empty = weights({})
    assert empty[0][0] == GpuFamily.TURING
    assert weights({"a6000-0": Held(gpus=4)}) == empty
    assert weights({"l40s-0": Held(gpus=4)}) == empty


def test_a_full_fleet_keeps_a_plan_where_it_is() -> None:
    """With no room anywhere, a model already planned stays planned (its steps' status is not
    taken back to Waiting); a model with no plan yet waits for free GPUs."""
    full = build_inventory(FLEET, {"t4-0": Held(gpus=1), "a6000-0": Held(gpus=4)})

    kept = plan_placement(
        PlanRequest(parameters=7 * B, scheme=Scheme.W8A8, keep=GpuFamily.AMPERE), full
    )
    fresh = plan_placement(PlanRequest(parameters=7 * B, scheme=Scheme.W8A8), full)

    assert isinstance(kept, Plan)
    assert kept.target_families[0] == GpuFamily.AMPERE
    assert isinstance(fresh, Unplaceable)
    assert fresh.reason == Reason.INSUFFICIENT_FREE_GPUS
