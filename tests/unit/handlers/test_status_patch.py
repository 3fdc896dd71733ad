"""The status writer's merge patch (RFC 7386) from the status last written to the new one:
nested fields that are gone become explicit nulls, unchanged ones are not sent."""

from typing import Any

import pytest
from fake_kube import apply_merge_patch

from quantfleet.handlers.reconciler import merge_patch

Json = dict[str, Any]


@pytest.mark.parametrize(
    ("old", "new", "want_patch"),
    [
        pytest.param({"a": 1}, {"a": 1}, {}, id="nothing changed: an empty patch"),
        pytest.param({"a": 1}, {"a": 2}, {"a": 2}, id="a changed scalar is sent"),
        pytest.param({"a": 1, "b": 2}, {"a": 1}, {"b": None}, id="a removed top-level key is null"),
        pytest.param(
            {"children": {"quantizeJob": "q", "deployment": "m-vllm", "service": "m-vllm"}},
            {"children": {"quantizeJob": "q"}},
            {"children": {"deployment": None, "service": None}},
            id="serving disabled: the nested children are nulled, the kept one is not sent",
        ),
        pytest.param(
            {"serving": {"endpoint": "http://m", "readyReplicas": 1}},
            {},
            {"serving": None},
            id="a removed object is one null, not a null per field",
        ),
        pytest.param(
            {"plan": {"scheme": "FP8", "rationale": {"why": "x", "old": 1}}},
            {"plan": {"scheme": "FP8", "rationale": {"why": "y"}}},
            {"plan": {"rationale": {"why": "y", "old": None}}},
            id="removals two levels down",
        ),
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Planned"}]},
            {"conditions": [{"type": "Ready", "status": "False"}]},
            {"conditions": [{"type": "Ready", "status": "False"}]},
            id="a changed list is replaced whole, as merge patches do",
        ),
        pytest.param({}, {"children": {}}, {"children": {}}, id="a new empty object is sent"),
        pytest.param({"a": {"b": 1}}, {"a": 5}, {"a": 5}, id="an object replaced by a scalar"),
    ],
)
def test_merge_patch_turns_old_into_new(old: Json, new: Json, want_patch: Json) -> None:
    patch = merge_patch(old, new)
    assert patch == want_patch
    assert apply_merge_patch(old, patch) == new
