"""GuideLLM's own OpenAI-compatible MOCK server on loopback, in a child process.

The socket is bound and listening before the child starts, and the child says "ready" on a pipe
once Sanic serves: waiting for it is one blocking read with a deadline, no polling.
"""

import json
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MOCK_MODEL = "tiny"
MOCK_TTFT_MS = 15
MOCK_ITL_MS = 3
MOCK_OUTPUT_TOKENS = 8
# Importing GuideLLM and Sanic takes long on a loaded two-core machine.
START_TIMEOUT = 240.0
READY = b"ready\n"
# GuideLLM starts 10 worker processes by default; two cores are shared here.
FEW_GUIDELLM_WORKERS = {"GUIDELLM__MAX_WORKER_PROCESSES": "2"}


@contextmanager
def guidellm_mock_server(
    *, fail_after_requests: int | None = None, timeout: float = START_TIMEOUT
) -> Iterator[str]:
    """The mock server's base URL (fixed TTFT and ITL, 8 output tokens per request); with
    `fail_after_requests` it answers 500 to every generation request after that many."""
    settings: dict[str, Any] = {
        "model": MOCK_MODEL,
        "ttft_ms": MOCK_TTFT_MS,
        "itl_ms": MOCK_ITL_MS,
        "output_tokens": MOCK_OUTPUT_TOKENS,
        "fail_after_requests": fail_after_requests,
    }
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ready_read, ready_write = os.pipe()
        fds = (listener.fileno(), ready_write)
        process = subprocess.Popen(
            [sys.executable, __file__, *map(str, fds), json.dumps(settings)],
            pass_fds=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(ready_write)  # the child holds the only write end: its exit reads as EOF
        port = listener.getsockname()[1]
    try:
        with os.fdopen(ready_read, "rb") as ready:
            answered, _, _ = select.select([ready], [], [], timeout)
            if not answered or ready.readline() != READY:
                raise RuntimeError(f"guidellm mock server did not come up ({process.poll()=})")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _serve(listener_fd: int, ready_fd: int, settings: dict[str, Any]) -> None:
    """In the child: serve on the inherited socket, say ready once Sanic accepts requests."""
    from guidellm.mock_server.server import MockServer
    from guidellm.schemas.mock_server import MockServerConfig

    server = MockServer(MockServerConfig(**settings))

    async def ready(*_: Any) -> None:
        os.write(ready_fd, READY)
        os.close(ready_fd)

    server.app.register_listener(ready, "after_server_start")
    server.app.run(
        sock=socket.socket(fileno=listener_fd),
        single_process=True,
        access_log=False,
        motd=False,
    )


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]))
