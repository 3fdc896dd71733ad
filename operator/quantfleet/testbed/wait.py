"""Polling for a condition with a deadline: how the testbed and the integration tests wait,
instead of sleeping for a guessed time."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(TimeoutError):
    """A condition did not hold before its deadline."""


def poll_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    retry_on: tuple[type[Exception], ...] = (),
) -> T:
    """Call `check` until it returns a truthy value and return that value.

    Exceptions of the `retry_on` types count as "not yet" (a server still starting refuses
    connections); any other exception propagates at once. On timeout the error names `what`
    and the last "not yet" seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except retry_on as error:
            last = error
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"Timed out after {timeout:g}s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)
