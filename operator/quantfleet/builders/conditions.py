"""Conditions as metav1.Condition wants them, for every kind: bounded messages, and a transition
time that is kept while the status holds. Pure: the clock comes in as `now`."""

from datetime import datetime
from typing import Literal

from quantfleet.api.common import MAX_MESSAGE_CHARS, Condition

ConditionStatus = Literal["True", "False", "Unknown"]


def condition(kind: str, status: ConditionStatus, reason: str, message: str) -> Condition:
    """A condition with its message cut to the API's bound."""
    return Condition(type=kind, status=status, reason=reason, message=message[:MAX_MESSAGE_CHARS])


def stamp(
    condition: Condition, previous: list[Condition], generation: int, now: datetime
) -> Condition:
    """Set observedGeneration, and keep the old transition time when the status is unchanged."""
    before = next((c for c in previous if c.type == condition.type), None)
    changed = before is None or before.status != condition.status
    since = now if changed or before is None else before.last_transition_time
    return condition.model_copy(
        update={"observed_generation": generation, "last_transition_time": since or now}
    )
