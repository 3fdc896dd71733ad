"""What the vLLM pods say about serving, read from their container statuses: why a server is not
coming up, in vLLM's own words (its log, of which the termination message holds the last lines)
or the kubelet's; and the vLLM release an image tag names. Pure: pods and logs come in as read."""

import re
from dataclasses import dataclass
from datetime import datetime

from quantfleet.api.results import one_line
from quantfleet.builders.children import Json

# Waiting reasons that will not pass by themselves. ContainerCreating and PodInitializing will.
FAILED_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
# vLLM's prefix on each log line: `(EngineCore pid=7) ERROR 12-02 13:45:01 [core.py:843] `.
LOG_PREFIX = re.compile(r"^(?:\(\w+ pid=\d+\)\s*)?(?:[A-Z]+ \d\d-\d\d [\d:.]+ \[[^\]]*\]\s*)?")
# What Python prints last for an exception: `ValueError: ...`, `torch.OutOfMemoryError: ...`.
EXCEPTION_LINE = re.compile(r"(?:\w+\.)*\w*(?:Error|Exception): \S")
# vLLM's processes re-raise a worker's failure as "... See root cause above." / "See stack trace
# for root cause." (vLLM 0.32): the cause is an exception before them.
WRAPPER = "root cause"
# How much of a failed server's log is read when the termination message (its last 80 lines,
# 2 KiB) holds only the wrappers: for an NVFP4 checkpoint on vLLM 0.32 the cause stood 121
# lines before the end (tests/factories/vllm-nvfp4-failure.log).
LOG_TAIL_LINES = 400
# vLLM's startup log naming the linear kernel it chose for a compressed-tensors scheme:
# "Selected CPUInt8ScaledMMLinearKernel for CompressedTensorsW8A8Int8" (scaled-mm schemes),
# "Using CPUWNA16LinearKernel for CompressedTensorsWNA16" (mixed precision).
SELECTED_KERNEL = re.compile(r"(?:Selected|Using) (\w+) for (CompressedTensors\w+)")
# A release tag: v0.32.0, 0.11.0, v0.10.1.1, v0.33.0rc1; `latest` or `nightly-…` name none.
RELEASE_TAG = re.compile(r"v?(\d+(?:\.\d+)+(?:(?:rc|\.post|\.dev)\d+)?)")


@dataclass(frozen=True)
class Failure:
    """A vLLM container that is not ready because it failed: it waits for a reason that will not
    pass, or it ended (vLLM never ends on its own in a Deployment)."""

    pod: str
    container: str
    waiting: Json  # the state's waiting entry, {} if none
    ended: Json  # the terminated entry of its state or last state, {} if none
    previous: bool  # the ended run is the container's previous one (its log is `previous`)
    startup_budget: int | None  # seconds the startup probe allows

    @property
    def wants_log(self) -> bool:
        """Whether vLLM's reason must be looked for further back in its log than the
        termination message reaches."""
        said = vllm_reason(self.ended.get("message") or "")
        return bool(self.ended) and (not said or WRAPPER in said)

    def describe(self, log_tail: str = "") -> str:
        """One line: vLLM's reason (from `log_tail` when given, else the termination message),
        the startup probe's budget when the kubelet stopped a server that never turned ready,
        or the kubelet's reason."""
        if not self.ended:
            return one_line(f"{self.waiting['reason']}: {self.waiting.get('message') or '-'}")
        said = vllm_reason(log_tail) or vllm_reason(self.ended.get("message") or "")
        how = f"exit code {self.ended.get('exitCode')}"
        if self.ended.get("reason") not in (None, "", "Error", "Completed"):
            how = f"{self.ended['reason']}, {how}"
        ran = _seconds(self.ended.get("startedAt"), self.ended.get("finishedAt"))
        budget = self.startup_budget
        if budget is not None and ran is not None and ran >= budget:
            return one_line(f"not ready within the startup probe's {budget}s ({how}): {said}")
        return one_line(said or f"vLLM exited ({how}) without a message")


def serving_failure(pods: list[Json]) -> Failure | None:
    """The failing container of the newest of the Deployment's pods that has one (a rollout
    stuck behind a failing new pod is about the latest spec; ties by pod name), or None while
    they are merely on their way (pending, creating, loading). Pods being deleted are passed
    over."""
    live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    newest_first = sorted(live, key=lambda p: str(p["metadata"]["name"]))
    newest_first.sort(key=lambda p: str(p["metadata"].get("creationTimestamp", "")), reverse=True)
    for pod in newest_first:
        probes = {c["name"]: c.get("startupProbe") for c in pod["spec"]["containers"]}
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("ready"):
                continue
            state, last = status.get("state") or {}, status.get("lastState") or {}
            waiting, ended = state.get("waiting") or {}, state.get("terminated") or {}
            previous = not ended and bool(last.get("terminated"))
            ended = ended or last.get("terminated") or {}
            if ended or waiting.get("reason") in FAILED_WAITING:
                budget = _startup_budget(probes.get(status["name"]))
                name = str(pod["metadata"]["name"])
                return Failure(name, status["name"], waiting, ended, previous, budget)
    return None


def vllm_reason(log: str) -> str:
    """vLLM's one-line reason in (the end of) its log: the last exception line that is not a
    wrapper pointing at an earlier one, else the last exception line, else the last line."""
    lines = [LOG_PREFIX.sub("", line).strip() for line in log.splitlines()]
    lines = [line for line in lines if line]
    raised = [line for line in lines if EXCEPTION_LINE.match(line)]
    causes = [line for line in raised if WRAPPER not in line] or raised
    return one_line(causes[-1] if causes else (lines[-1] if lines else ""))


def image_version(image: str) -> str | None:
    """The release an image's tag names (`vllm/vllm-openai:v0.32.0` -> 0.32.0), else None."""
    name = image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    match = RELEASE_TAG.fullmatch(tag)
    return match.group(1) if match else None


def _startup_budget(probe: Json | None) -> int | None:
    """Seconds the startup probe allows before the kubelet restarts the container."""
    if not probe:
        return None
    delay = probe.get("initialDelaySeconds", 0)
    return int(delay + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))


def _seconds(started: str | None, finished: str | None) -> float | None:
    if not started or not finished:
        return None
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
