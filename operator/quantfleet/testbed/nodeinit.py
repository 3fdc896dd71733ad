"""PID 1 of a real node's namespaces (PID, mount, network), as a kind node container's init is:
it mounts the node's private /run, /var/lib and /var/log, brings up its network, relays the API
server into the node, starts containerd, kubelet, kube-proxy and CoreDNS, and on SIGTERM stops
them all and removes the node's cgroups.

`testbed.realnode` writes every config file and starts this module under `unshare`; when this
process ends, the kernel ends everything left in its PID namespace, and the mounts and the network
namespace (with the veth pair, bridge and nftables rules in it) go with it.
"""

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
PROXY_BUFFER = 65536
STOP_TIMEOUT = 15.0
SOCKET_TIMEOUT = 30.0

_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def connect_in(netns_fd: int, address: tuple[str, int]) -> socket.socket:
    """A TCP connection made from the network namespace at `netns_fd`; the socket stays there."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        setns(netns_fd)
        try:
            return socket.create_connection(address, timeout=SOCKET_TIMEOUT)
        finally:
            setns(own)
    finally:
        os.close(own)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(PROXY_BUFFER):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def relay(listener: socket.socket, host_netns: int, upstream: tuple[str, int]) -> None:
    """Accept in the node's namespace, connect in the host's: the API server listens on the
    host's loopback only, and the node reaches it without any route out of its namespace."""
    while True:
        downstream, _ = listener.accept()
        try:
            up = connect_in(host_netns, upstream)
        except OSError:
            downstream.close()
            continue
        up.settimeout(None)
        for pair in ((downstream, up), (up, downstream)):
            threading.Thread(target=_pump, args=pair, daemon=True).start()


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)


def mount_private_dirs(dirs: list[str]) -> None:
    """Fresh tmpfs over the folders the node's components write to by fixed path (/run,
    /var/lib/cni, /var/log/containers, ...): the host's are hidden, and nothing is left there."""
    for folder in dirs:
        run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", folder)


def setup_network(config: dict[str, Any]) -> None:
    run("ip", "link", "set", "lo", "up")
    veth = config["vethNode"]
    run("ip", "addr", "add", f"{config['nodeIP']}/30", "dev", veth)
    run("ip", "link", "set", veth, "up")
    # No default route: the node's namespace knows the veth's /30, its pods' bridge and the
    # service range, and nothing else. Pods may not reach the host's end of the veth at all.
    run("nft", "-f", config["guardRules"])


def _hierarchies() -> list[Path]:
    return sorted(p for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir())


def node_cgroups(root: str) -> list[Path]:
    """The node's cgroup (the kubelet's cgroupRoot) in every hierarchy, cgroup v2's too."""
    return [hierarchy / root.strip("/") for hierarchy in _hierarchies()]


def make_cgroups(root: str) -> None:
    """The kubelet's cgroupRoot in every v1 hierarchy; cpuset needs its CPUs and memory nodes
    copied down before a task may join."""
    for hierarchy in _hierarchies():
        if hierarchy.name == "unified":
            continue
        path = hierarchy
        for part in root.strip("/").split("/"):
            path = path / part
            if not path.exists():
                path.mkdir()
                if hierarchy.name == "cpuset":
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        (path / name).write_text((path.parent / name).read_text())


def remove_cgroups(paths: list[Path]) -> None:
    """Remove each subtree, deepest first (rmdir of an empty cgroup), then its parent when
    nothing else is left in it."""
    for top in paths:
        if not top.exists():
            continue
        folders = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for folder in [*folders, top, top.parent]:
            with contextlib.suppress(OSError):
                folder.rmdir()


def remove_tree(folder: Path) -> None:
    """Remove `folder` (the node's image store: gigabytes), unmounting what is mounted in it
    first (snapshots of containers that were running), so no test run leaves it behind."""
    mounted = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(f"{folder}/")
    ]
    for point in sorted(mounted, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(folder, ignore_errors=True)


def kill_everything_else() -> None:
    """SIGKILL every other process of this PID namespace and wait until they are gone."""
    me = os.getpid()
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        others = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        others = [pid for pid in others if pid != me]
        if not others:
            return
        for pid in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        reap({})
        time.sleep(0.05)


def reap(exited: dict[int, int]) -> None:
    """Collect every exited child, ours and the orphans (container shims) this init inherits."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        exited[pid] = os.waitstatus_to_exitcode(status)


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    logs = Path(config["logDir"])
    # The host's harness moves the veth's node end in, then says go.
    sys.stdin.readline()
    mount_private_dirs(config["tmpfsDirs"])
    for folder in config["makeDirs"]:
        Path(folder).mkdir(parents=True, exist_ok=True)
    for source, target in config["bindFiles"]:
        run("mount", "--bind", "-o", "ro", source, target)
    for source, target in config["bindDirs"]:
        run("mount", "--bind", source, target)
    setup_network(config)
    make_cgroups(config["cgroupRoot"])
    cgroups = node_cgroups(config["cgroupRoot"])

    listener = socket.create_server(("0.0.0.0", config["apiserverPort"]), backlog=128)
    upstream = ("127.0.0.1", config["apiserverPort"])
    threading.Thread(
        target=relay, args=(listener, config["hostNetnsFd"], upstream), daemon=True
    ).start()

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    exited: dict[int, int] = {}
    children: dict[str, subprocess.Popen[bytes]] = {}
    env = {**os.environ, "PATH": f"{config['binDir']}:{os.environ.get('PATH', '')}"}
    failed = ""
    for component in config["components"]:
        name = component["name"]
        with (logs / f"{name}.log").open("ab") as sink:
            children[name] = subprocess.Popen(
                component["argv"], stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, env=env
            )
        if wait_for := component.get("waitForPath"):
            deadline = time.monotonic() + 60
            while not Path(wait_for).exists() and time.monotonic() < deadline:
                reap(exited)
                if children[name].pid in exited:
                    break
                time.sleep(0.05)
    print("started", flush=True)

    while not failed and not stopping.wait(0.2):
        reap(exited)
        for name, child in children.items():
            if child.pid in exited:
                failed = f"{name} exited with code {exited[child.pid]}"
    if failed:
        print(failed, flush=True)
    for child in reversed(children.values()):
        if child.pid not in exited:
            os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        reap(exited)
        if all(child.pid in exited for child in children.values()):
            break
        time.sleep(0.05)
    kill_everything_else()
    remove_cgroups(cgroups)
    for folder in config["removeOnExit"]:
        remove_tree(Path(folder))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
