"""What the vLLM pods say about serving: a failing server's reason in vLLM's own words (its log
tail is the termination message) or the kubelet's, None while it is on its way; and the vLLM
release an image tag names."""

from typing import Any

import pytest

from factories.pods import (
    NVFP4_LOG,
    NVFP4_LOG_TAIL,
    make_serving_pod,
    running,
    terminated,
    waiting,
)
from quantfleet.builders.serving_status import (
    LOG_TAIL_LINES,
    image_version,
    serving_failure,
    vllm_reason,
)

Json = dict[str, Any]
NVFP4 = "ValueError: Failed to find a kernel that can implement the NVFP4 linear layer. Reasons:"
# All that the termination message of real vLLM keeps of that failure: the wrapper's line.
WRAPPED = (
    "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"
)
PULL = 'Back-off pulling image "vllm/vllm-openai:v0.99.0"'


@pytest.mark.parametrize(
    ("pods", "want_failure"),
    [
        pytest.param([], None, id="no pods yet"),
        pytest.param([make_serving_pod(ready=True)], None, id="a ready server"),
        pytest.param([make_serving_pod(state=running())], None, id="loading weights"),
        pytest.param([make_serving_pod(state=waiting("ContainerCreating"))], None,
                     id="creating: on its way"),
        pytest.param(
            [make_serving_pod(state=waiting("CrashLoopBackOff", "back-off 40s restarting"),
                              last_state=terminated(NVFP4_LOG_TAIL))],
            WRAPPED, id="crash-looping on an NVFP4 checkpoint: the termination message's reason",
        ),
        pytest.param([make_serving_pod(state=terminated("ValueError: bad\n"))], "ValueError: bad",
                     id="just exited"),
        pytest.param(
            [make_serving_pod(state=running(), last_state=terminated("ValueError: bad\n"))],
            "ValueError: bad", id="restarted after a crash: the last crash is the news",
        ),
        pytest.param([make_serving_pod(state=terminated(exit_code=137, reason="OOMKilled"))],
                     "vLLM exited (OOMKilled, exit code 137) without a message",
                     id="killed without a log tail: the kubelet's reason"),
        pytest.param(
            [make_serving_pod(state=waiting("CrashLoopBackOff"),
                              last_state=terminated("Loading safetensors shards\n",
                                                    exit_code=143, seconds=1800))],
            "not ready within the startup probe's 1800s (exit code 143): "
            "Loading safetensors shards",
            id="stopped by the startup probe: its budget, read from the pod",
        ),
        pytest.param([make_serving_pod(state=waiting("ImagePullBackOff", PULL))],
                     f"ImagePullBackOff: {PULL}", id="an image that cannot be pulled"),
        pytest.param([make_serving_pod(state=waiting("InvalidImageName", "bad ref"))],
                     "InvalidImageName: bad ref", id="an invalid image name"),
        pytest.param(
            [make_serving_pod(state=waiting("CreateContainerConfigError",
                                            'secret "hf-token" not found'))],
            'CreateContainerConfigError: secret "hf-token" not found',
            id="a missing secret",
        ),
        pytest.param(
            [make_serving_pod("b", ready=True),
             make_serving_pod("a", state=waiting("ImagePullBackOff", PULL))],
            f"ImagePullBackOff: {PULL}", id="one replica ready, one failing",
        ),
        pytest.param(
            [make_serving_pod("a", state=waiting("CrashLoopBackOff"),
                              last_state=terminated("vllm: error: unrecognized arguments\n")),
             make_serving_pod("b", state=waiting("ImagePullBackOff", PULL),
                              created="2030-01-01T00:05:00Z")],
            f"ImagePullBackOff: {PULL}",
            id="a rollout stuck on a failing new pod: the newest pod, the latest spec, is news",
        ),
        pytest.param(
            [make_serving_pod(state=terminated(NVFP4_LOG_TAIL), deleting=True)], None,
            id="a pod on its way out of a rollout is no news",
        ),
    ],
)  # fmt: skip
def test_serving_failure(pods: list[Json], want_failure: str | None) -> None:
    failure = serving_failure(pods)
    assert (failure.describe() if failure else None) == want_failure


@pytest.mark.parametrize(
    ("state", "last_state", "want_previous"),
    [
        pytest.param(waiting("CrashLoopBackOff"), terminated(NVFP4_LOG_TAIL), True,
                     id="crash-looping: the log of the run before"),
        pytest.param(terminated(NVFP4_LOG_TAIL), None, False, id="just exited: its own log"),
    ],
)  # fmt: skip
def test_a_wrapped_reason_is_looked_for_in_the_log(
    state: Json, last_state: Json | None, want_previous: bool
) -> None:
    """Real vLLM's termination message (its last 80 lines) holds only the wrappers of an
    NVFP4 checkpoint's failure; the cause is further back in its log."""
    failure = serving_failure([make_serving_pod(state=state, last_state=last_state)])
    assert failure is not None
    assert failure.wants_log
    assert (failure.pod, failure.container, failure.previous) == (
        "qwen-vllm-7d9f-x2k4",
        "vllm",
        want_previous,
    )
    log_tail = "\n".join(NVFP4_LOG.splitlines()[-LOG_TAIL_LINES:])
    assert failure.describe(log_tail) == NVFP4


@pytest.mark.parametrize(
    "pod",
    [
        pytest.param(make_serving_pod(state=terminated("ValueError: bad\n")), id="a plain reason"),
        pytest.param(make_serving_pod(state=waiting("ImagePullBackOff", PULL)), id="waiting"),
    ],
)
def test_no_log_is_read_when_the_status_says_why(pod: Json) -> None:
    failure = serving_failure([pod])
    assert failure is not None
    assert not failure.wants_log


@pytest.mark.parametrize(
    ("log_tail", "want_reason"),
    [
        pytest.param(NVFP4_LOG, NVFP4, id="real vLLM's log: the root cause under two wrappers"),
        pytest.param(NVFP4_LOG_TAIL, WRAPPED,
                     id="real vLLM's termination message: only the last wrapper is left"),
        pytest.param("Traceback (most recent call last):\n  x\ntorch.OutOfMemoryError: CUDA out "
                     "of memory. Tried to allocate 2.00 GiB\n",
                     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                     id="a dotted exception name"),
        pytest.param("INFO loading\n\nKilled\n\n", "Killed", id="no exception: the last line"),
        pytest.param("", "", id="nothing said"),
    ],
)  # fmt: skip
def test_vllm_reason_is_one_line(log_tail: str, want_reason: str) -> None:
    assert vllm_reason(log_tail) == want_reason


@pytest.mark.parametrize(
    ("image", "want_version"),
    [
        pytest.param("vllm/vllm-openai:v0.32.0", "0.32.0", id="a release tag"),
        pytest.param("registry.local:5000/vllm/vllm-openai:0.11.0", "0.11.0",
                     id="a registry with a port, a tag without v"),
        pytest.param("vllm/vllm-openai:v0.10.1.1", "0.10.1.1", id="a four-part release"),
        pytest.param("vllm/vllm-openai:v0.33.0rc1", "0.33.0rc1", id="a release candidate"),
        pytest.param("vllm/vllm-openai:v0.32.0@sha256:abc", "0.32.0", id="a tag and a digest"),
        pytest.param("vllm/vllm-openai:latest", None, id="latest names no release"),
        pytest.param("vllm/vllm-openai@sha256:abc", None, id="a digest alone"),
        pytest.param("registry.local:5000/vllm", None, id="no tag, a registry port"),
        pytest.param("vllm/vllm-openai:nightly-0a1b2c", None, id="a nightly"),
    ],
)  # fmt: skip
def test_image_version(image: str, want_version: str | None) -> None:
    assert image_version(image) == want_version
