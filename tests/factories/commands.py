"""The project's built binaries (bin/: kubectl, helm, promtool, ...) run as a user types them."""

import subprocess

from quantfleet.testbed.binaries import find_binaries

BIN = find_binaries().kubebin.parent


def run(*command: str) -> str:
    """Run `command`; its stdout, or a failed assertion with its output."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"
    return done.stdout
