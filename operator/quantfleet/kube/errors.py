"""API errors mapped in one place: transient ones retry later, the rest stop with a reason."""

from collections.abc import Iterator
from contextlib import contextmanager

import kopf
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

# 404 (a child vanished mid-pass), 409 (a conflicting write), 429 (throttled) and 5xx clear up
# on their own: retry after a pause instead of failing the object.
TRANSIENT = {404, 409, 429}
RETRY_DELAY_SECONDS = 15


@contextmanager
def api_errors(action: str) -> Iterator[None]:
    """Turn API failures inside the block into Kopf's temporary or permanent errors."""
    try:
        yield
    except ApiException as error:
        status = error.status or 0
        if status in TRANSIENT or status >= 500:
            raise kopf.TemporaryError(
                f"{action}: API answered {status} {error.reason}", delay=RETRY_DELAY_SECONDS
            ) from error
        raise kopf.PermanentError(f"{action}: API refused with {status} {error.reason}") from error
    except (HTTPError, TimeoutError, ConnectionError) as error:
        raise kopf.TemporaryError(
            f"{action}: {type(error).__name__}", delay=RETRY_DELAY_SECONDS
        ) from error
