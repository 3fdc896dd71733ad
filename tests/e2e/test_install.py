"""The install commands of the README, as a platform team types them, with the real kubectl
against the real API server."""

import subprocess
from pathlib import Path

import pytest

from quantfleet.cli.localrun import CRD_DIR
from quantfleet.testbed.binaries import find_binaries

pytestmark = pytest.mark.integration

CRDS = ("quantizedmodels.quantfleet.io", "benchmarkruns.quantfleet.io")


@pytest.mark.parametrize("how", ["-f", "-k"])
def test_the_crds_apply_as_a_folder_and_as_a_kustomization(
    how: str, kubeconfig: Path, installed_crds: list[str]
) -> None:
    kubectl = find_binaries().kubebin.parent / "kubectl"
    done = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", "apply", how, str(CRD_DIR)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    applied = {line.split()[0] for line in done.stdout.splitlines()}
    assert applied == {f"customresourcedefinition.apiextensions.k8s.io/{crd}" for crd in CRDS}
