"""A producer for the test worker that runs the REAL benchmark program for benchmark Job pods:
the pod's own command, arguments and QF_* environment, with only what this host must change
swapped in (the in-cluster endpoint, the tokenizer's location, where files go). Its results are
measured, so they are not marked simulated; every other pod gets `fallback`'s (SIMULATED) ones."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantfleet.api.contract import ENV_PREFIX
from quantfleet.api.results import FailureResult, dump_result, one_line
from quantfleet.testbed.worker import (
    Outcome,
    Producer,
    SimulatedResults,
    container_env,
    job_container,
    pod_arguments,
    program_of,
)

# Bounds one run of the program here (GuideLLM stops each benchmark on its own limits).
RUN_TIMEOUT_SECONDS = 1800.0


@dataclass
class ProgramRunner:
    """Producer: for a benchmark pod, `python -m quantfleet_jobs.benchmark` as the pod runs it,
    its --target replaced by `endpoint(target)` (a base URL this host reaches; it may start the
    server first) and its --tokenizer by `tokenizers[tokenizer]` when listed. The pod gets the
    program's exit code and termination-log JSON; `results` keeps them by pod name."""

    endpoint: Callable[[str], str]
    workdir: Path
    tokenizers: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)  # added to this process's environment
    fallback: Producer = field(default_factory=SimulatedResults)
    results: dict[str, str] = field(default_factory=dict)

    def __call__(self, pod: dict[str, Any]) -> Outcome | None:
        if program_of(pod) != "benchmark":
            return self.fallback(pod)
        name = pod["metadata"]["name"]
        arguments = pod_arguments(pod)  # the program's own parser: what the pod would run
        container = job_container(pod)
        work = self.workdir / name
        log = work / "termination-log"
        try:
            target = self.endpoint(arguments.target)
        except Exception as error:  # no server to measure: the pod fails, with the reason
            return self._failed(name, 1, f"no server for {arguments.target}: {error}")
        # Later flags win in argparse: the pod's own arguments stay as they are, unedited.
        overrides = [
            f"--target={target}",
            f"--tokenizer={self.tokenizers.get(arguments.tokenizer, arguments.tokenizer)}",
            f"--output={work / 'reports'}",
            f"--termination-log={log}",
            f"--workdir={work / 'scratch'}",
        ]
        program = [str(word) for word in container["command"][1:]]  # after `python`
        environ = {k: v for k, v in container_env(container).items() if k.startswith(ENV_PREFIX)}
        work.mkdir(parents=True, exist_ok=True)
        completed = subprocess.run(
            [sys.executable, *program, *map(str, container.get("args") or []), *overrides],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
            env={**os.environ, **environ, **self.env},
        )
        if not log.is_file():  # it died before writing its result: say so with its last words
            reason = f"the benchmark program wrote no result: {completed.stderr[-500:]}"
            return self._failed(name, completed.returncode or 1, reason)
        self.results[name] = log.read_text()
        return completed.returncode, self.results[name]

    def _failed(self, pod_name: str, exit_code: int, reason: str) -> Outcome:
        result = dump_result(FailureResult(program="benchmark", reason=one_line(reason)))
        self.results[pod_name] = result
        return exit_code, result
