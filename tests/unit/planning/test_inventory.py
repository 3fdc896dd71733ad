"""The GPU inventory read from Node objects through GFD labels (§4)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from factories import GPU_TAINT, make_fleet, make_node
from quantfleet.api.enums import GpuFamily
from quantfleet.planning.gpu import ComputeCapability, family_of
from quantfleet.planning.inventory import GpuNode, SkippedNode, build_inventory, read_gpu_node

NodeFactory = Callable[..., dict[str, Any]]
CC = ComputeCapability


@dataclass(frozen=True)
class Case:
    id: str
    node: dict[str, Any]
    want_family: GpuFamily | None = None
    want_cc: ComputeCapability | None = None
    want_gpus: int | None = None
    want_memory_mib: int | None = None
    want_labelled_cc: bool = True
    want_skipped: str | None = None
    want_taints: list[str] = field(default_factory=list)


CASES = [
    Case("h100 with every gfd label", make_node("h100"), GpuFamily.HOPPER, CC(9, 0), 8, 81559),
    Case(
        "an unknown product still reads through compute and memory labels",
        make_node("h100", labels={"nvidia.com/gpu.product": "NVIDIA-Mystery-X"}),
        GpuFamily.HOPPER,
        CC(9, 0),
        8,
        81559,
    ),
    Case(
        "a missing family label follows from the compute capability",
        make_node("l40s", gpus=4, labels={"nvidia.com/gpu.family": None}),
        GpuFamily.ADA_LOVELACE,
        CC(8, 9),
        4,
        46068,
    ),
    Case(
        "a family label that disagrees loses to the compute capability",
        make_node("a6000", gpus=4, labels={"nvidia.com/gpu.family": "hopper"}),
        GpuFamily.AMPERE,
        CC(8, 6),
        4,
    ),
    Case(
        "an old gfd with only the family label falls back to the family floor",
        make_node(
            "a6000",
            gpus=4,
            labels={"nvidia.com/gpu.compute.major": None, "nvidia.com/gpu.compute.minor": None},
        ),
        GpuFamily.AMPERE,
        CC(8, 0),
        4,
        want_labelled_cc=False,
    ),
    Case(
        "consumer blackwell 12.0 is blackwell",
        make_node("rtx-pro-6000", gpus=2),
        GpuFamily.BLACKWELL,
        CC(12, 0),
        2,
    ),
    Case(
        "allocatable below capacity wins (some gpus held by the device plugin)",
        make_node("a100", gpus=8, allocatable="6"),
        GpuFamily.AMPERE,
        CC(8, 0),
        6,
    ),
    Case(
        "the gpu taint is kept for tolerations",
        make_node("h100", taints=[GPU_TAINT]),
        GpuFamily.HOPPER,
        CC(9, 0),
        8,
        want_taints=["nvidia.com/gpu=present:NoSchedule"],
    ),
    Case(
        "a soft foreign taint does not rule a node out",
        make_node("t4", gpus=1, taints=[{"key": "spot", "effect": "PreferNoSchedule"}]),
        GpuFamily.TURING,
        CC(7, 5),
        1,
        want_taints=["spot:PreferNoSchedule"],
    ),
    Case(
        "a foreign hard taint reserves the node for someone else",
        make_node("h100", taints=[{"key": "team", "value": "research", "effect": "NoSchedule"}]),
        want_skipped="reserved by taint team=research:NoSchedule",
    ),
    Case(
        "a cordoned node takes no new pods",
        make_node("a100", unschedulable=True),
        want_skipped="cordoned",
    ),
    Case(
        "zero allocatable gpus (mig mixed strategy) cannot take whole-gpu pods",
        make_node("a100", allocatable="0"),
        want_skipped="no allocatable nvidia.com/gpu",
    ),
    Case(
        "no memory label means the replica cannot be sized",
        make_node("l4", gpus=1, labels={"nvidia.com/gpu.memory": None}),
        want_skipped="no nvidia.com/gpu.memory label",
    ),
    Case(
        "neither compute nor family labels",
        make_node(
            "l4",
            labels={
                "nvidia.com/gpu.compute.major": None,
                "nvidia.com/gpu.family": None,
                "nvidia.com/gpu.count": "1",
            },
        ),
        want_skipped="no nvidia.com/gpu.compute.major",
    ),
    Case(
        "a pre-volta gpu is not a generation we know",
        make_node(
            "t4",
            labels={"nvidia.com/gpu.compute.major": "6", "nvidia.com/gpu.compute.minor": "1"},
        ),
        want_skipped="older than volta",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_read_gpu_node(case: Case) -> None:
    node = read_gpu_node(case.node)

    if case.want_skipped:
        assert isinstance(node, SkippedNode)
        assert case.want_skipped in node.reason
        return
    assert isinstance(node, GpuNode)
    assert node.family is case.want_family
    assert node.compute_capability == case.want_cc
    assert node.gpus == case.want_gpus
    assert node.labelled_compute_capability is case.want_labelled_cc
    assert [str(t) for t in node.taints] == case.want_taints
    if case.want_memory_mib:
        assert node.memory_mib == case.want_memory_mib


def test_a_node_without_gpus_is_left_out_silently() -> None:
    cpu_node = {"metadata": {"name": "cpu-0", "labels": {}}, "status": {"allocatable": {}}}

    assert read_gpu_node(cpu_node) is None
    assert build_inventory([cpu_node]).describe() == "no GPU nodes"


def test_pools_group_same_gpus_newest_first(node_factory: NodeFactory) -> None:
    nodes = [
        *make_fleet("t4", "a100", "h100", "h200", nodes_each=2),
        node_factory("a100", name="a100-small", gpus=4),
    ]

    pools = build_inventory(nodes).pools

    assert [(str(p.compute_capability), p.memory_mib, len(p.nodes)) for p in pools] == [
        ("9.0", 143771, 2),
        ("9.0", 81559, 2),
        ("8.0", 81920, 3),
        ("7.5", 15360, 2),
    ]
    assert pools[2].max_gpus_per_node == 8


def test_inventory_lists_families_and_describes_skipped_nodes(node_factory: NodeFactory) -> None:
    usable = build_inventory([node_factory("l4", gpus=1), node_factory("h100")])
    unusable = build_inventory(
        [node_factory("a100", name=f"a100-{i}", unschedulable=True) for i in range(5)]
    )

    assert usable.families == (GpuFamily.ADA_LOVELACE, GpuFamily.HOPPER)
    assert "hopper 9.0, 80 GiB, up to 8 GPUs/node (1 nodes, 8 of 8 GPUs free)" in usable.describe()
    assert unusable.describe().startswith("no usable GPU nodes (a100-0: cordoned")
    assert unusable.describe().endswith("and 2 more)")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param("8.9", CC(8, 9), id="major and minor"),
        pytest.param("9", CC(9, 0), id="major only means minor zero"),
        pytest.param(" 10.0 ", CC(10, 0), id="surrounding spaces"),
    ],
)
def test_parse_compute_capability(text: str, want: ComputeCapability) -> None:
    assert ComputeCapability.parse(text) == want


@pytest.mark.parametrize("text", ["", "ampere", "8.x", "-1.0"])
def test_parse_compute_capability_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a compute capability"):
        ComputeCapability.parse(text)


@pytest.mark.parametrize(
    ("cc", "want_family"),
    [
        pytest.param(CC(6, 1), None, id="pascal is before gfd families"),
        pytest.param(CC(7, 0), GpuFamily.VOLTA, id="volta"),
        pytest.param(CC(7, 5), GpuFamily.TURING, id="turing"),
        pytest.param(CC(8, 0), GpuFamily.AMPERE, id="ampere a100"),
        pytest.param(CC(8, 7), GpuFamily.AMPERE, id="ampere orin"),
        pytest.param(CC(8, 9), GpuFamily.ADA_LOVELACE, id="ada"),
        pytest.param(CC(9, 0), GpuFamily.HOPPER, id="hopper"),
        pytest.param(CC(10, 0), GpuFamily.BLACKWELL, id="blackwell datacenter"),
        pytest.param(CC(12, 0), GpuFamily.BLACKWELL, id="blackwell consumer"),
    ],
)
def test_family_follows_compute_capability(
    cc: ComputeCapability, want_family: GpuFamily | None
) -> None:
    assert family_of(cc) == want_family
