"""Starting and stopping the cluster's component processes, each tracked by its PID and start
time so that only processes this package started are ever signalled."""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOG_TAIL_BYTES = 4000


class ComponentError(RuntimeError):
    """A component could not be started or died while the cluster was coming up."""


class PortInUseError(ComponentError):
    """A port the cluster needs is already bound by another process."""


@dataclass(frozen=True)
class ProcessRecord:
    """One started component: enough to find it again from another shell and to be sure that
    the PID still belongs to it (PIDs are reused; the kernel's start time is not)."""

    name: str
    pid: int
    start_ticks: int
    log: str

    @classmethod
    def of(cls, name: str, pid: int, log: Path) -> "ProcessRecord":
        """The record of a running process started by this package."""
        return cls(name=name, pid=pid, start_ticks=_start_ticks(pid) or 0, log=str(log))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ProcessRecord":
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            log=str(data["log"]),
        )

    def rss_mib(self) -> float:
        """Resident memory of the process in MiB, 0 when it is not running."""
        if not self.is_running():
            return 0.0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def is_running(self) -> bool:
        """True while the PID is alive and is still the process that was started."""
        return _start_ticks(self.pid) == self.start_ticks and not _is_zombie(self.pid)


PR_SET_PDEATHSIG = 1


def die_with_parent_preexec() -> None:
    """In a child before exec: the kernel SIGKILLs it when the thread that forked it dies."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_port_free(port: int, what: str) -> None:
    """Raise PortInUseError naming `what` when 127.0.0.1:`port` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise PortInUseError(
                f"Port 127.0.0.1:{port} for {what} is already in use ({error.strerror}); "
                "stop whatever holds it (another `quantfleet dev up`?) or pick another port"
            ) from error


class Component:
    """A running component process and its log file."""

    def __init__(
        self, name: str, argv: list[str], log: Path, die_with_parent: bool = False
    ) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as sink:
            try:
                # A session of its own: the cluster outlives `quantfleet dev up`, and a Ctrl-C
                # in the shell that started it does not reach it.
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent_preexec if die_with_parent else None,
                )
            except OSError as error:
                raise ComponentError(f"Could not start {name} ({argv[0]}): {error}") from error
        self.record = ProcessRecord.of(name, self.process.pid, log)

    def check_alive(self) -> None:
        """Raise ComponentError with the end of the log when the process has exited."""
        code = self.process.poll()
        if code is None:
            return
        tail = log_tail(self.log)
        if "address already in use" in tail:
            raise PortInUseError(
                f"{self.name} exited with code {code}: a port it needs is taken (by a process "
                f"that bound it after the testbed chose it?); end of {self.log}:\n{tail}"
            )
        raise ComponentError(f"{self.name} exited with code {code}; end of {self.log}:\n{tail}")


def log_tail(log: Path) -> str:
    try:
        with log.open("rb") as source:
            source.seek(0, os.SEEK_END)
            source.seek(max(0, source.tell() - LOG_TAIL_BYTES))
            return source.read().decode(errors="replace")
    except OSError:
        return "(no log)"


def stop(records: list[ProcessRecord], timeout: float = 15.0) -> list[str]:
    """Stop the given processes, newest first: SIGTERM, then SIGKILL past `timeout`.

    Only PIDs whose start time still matches are signalled. Returns the names stopped.
    """
    stopped = []
    for record in reversed(records):
        if not record.is_running():
            continue
        _signal(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while record.is_running() and time.monotonic() < deadline:
            _reap(record.pid)
            time.sleep(0.05)
        if record.is_running():
            _signal(record.pid, signal.SIGKILL)
        _reap(record.pid)
        stopped.append(record.name)
    return stopped


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    # Not our child when started from another shell: init reaps it then.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces; the fields after it are positional.
    return stat[stat.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of proc(5), counted from `state`


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] == "Z"
