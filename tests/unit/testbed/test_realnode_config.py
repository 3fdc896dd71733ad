"""The real node's pure parts: NFD labels from cpuinfo, its config files, the pause image."""

import json
import tarfile
from pathlib import Path

import pytest
import yaml

from quantfleet.api.enums import CpuLevel
from quantfleet.planning.cpu import cpu_level
from quantfleet.testbed.binaries import NodeBinaries
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.nodeconfig import (
    POD_CIDR,
    NodeAddress,
    containerd_config,
    guard_rules,
    kube_proxy_config,
    kubelet_config,
)
from quantfleet.testbed.ociimage import write_image_archive
from quantfleet.testbed.pki import PkiPaths
from quantfleet.testbed.realnode import nfd_labels, preflight

EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 avx512f avx512dq avx512_vnni avx512_bf16 avx512vl
"""
SAPPHIRE_RAPIDS = """vendor_id\t: GenuineIntel
flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
HASWELL = "vendor_id\t: GenuineIntel\nflags\t\t: sse4_2 avx avx2\n"


@pytest.mark.parametrize(
    ("cpuinfo", "want_level", "want_vendor"),
    [
        pytest.param(EPYC, CpuLevel.AVX512_BF16, "AuthenticAMD", id="epyc-avx512-bf16-no-amx"),
        pytest.param(SAPPHIRE_RAPIDS, CpuLevel.AMX, "GenuineIntel", id="sapphire-rapids-amx"),
        pytest.param(HASWELL, CpuLevel.AVX2, "GenuineIntel", id="haswell-avx2-only"),
    ],
)
def test_nfd_labels_give_the_planner_the_cpus_level(
    cpuinfo: str, want_level: CpuLevel, want_vendor: str
) -> None:
    labels = nfd_labels(cpuinfo)

    assert cpu_level(labels) == want_level
    assert labels["feature.node.kubernetes.io/cpu-model.vendor_id"] == want_vendor
    assert all(value == "true" for key, value in labels.items() if "cpuid" in key)


def test_nfd_labels_name_only_flags_the_cpu_has() -> None:
    labels = nfd_labels(EPYC)

    assert "feature.node.kubernetes.io/cpu-cpuid.AVX512VNNI" in labels
    assert "feature.node.kubernetes.io/cpu-cpuid.AMXINT8" not in labels


def test_nfd_labels_of_this_machine_come_from_its_real_cpu() -> None:
    labels = nfd_labels(Path("/proc/cpuinfo").read_text())

    assert cpu_level(labels) is not None  # every x86-64 machine CI runs on has AVX2


def test_guard_drops_pod_traffic_towards_the_host() -> None:
    rules = guard_rules(NodeAddress(7))

    assert 'oifname "qfnode7n" drop' in rules
    assert f"ip saddr {POD_CIDR}" in rules


def test_node_addresses_are_a_private_slash_30_per_index() -> None:
    address = NodeAddress(3)

    assert (address.host_ip, address.node_ip) == ("10.233.3.1", "10.233.3.2")
    assert len(address.veth_host) <= 15  # IFNAMSIZ


def test_kubelet_trusts_only_cluster_certs_and_keeps_host_dns(tmp_path: Path) -> None:
    config = kubelet_config(tmp_path, NodeAddress(0), PkiPaths.under(tmp_path), "/quantfleet/n")

    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["readOnlyPort"] == 0
    assert config["resolvConf"] == str(tmp_path / "resolv.conf")
    assert config["clusterDNS"] == ["10.233.0.2"]
    assert config["cgroupRoot"] == "/quantfleet/n"
    yaml.safe_dump(config)


def test_kube_proxy_leaves_machine_wide_conntrack_settings_alone(tmp_path: Path) -> None:
    conntrack = kube_proxy_config(tmp_path / "k", "node", NodeAddress(0))["conntrack"]

    assert conntrack["maxPerCore"] == 0
    assert all(conntrack[key] == "0s" for key in ("tcpEstablishedTimeout", "udpTimeout"))


def test_containerd_restricts_oom_score_and_uses_our_runc(tmp_path: Path) -> None:
    toml = containerd_config(tmp_path / "root", NodeBinaries(tmp_path), tmp_path)

    assert "restrict_oom_score_adj = true" in toml
    assert f'BinaryName = "{tmp_path / "runc"}"' in toml
    assert 'sandbox = "localhost/quantfleet/pause:3.10"' in toml


def test_pause_image_archive_is_an_oci_layout_named_for_import(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF fake")
    binary.chmod(0o755)
    archive = tmp_path / "pause.tar"

    write_image_archive(archive, "localhost/quantfleet/pause:3.10", {"pause": binary}, ["/pause"])

    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
        manifest = json.load(tar.extractfile(f"blobs/sha256/{manifest_digest}"))  # type: ignore[arg-type]
        layer = manifest["layers"][0]["digest"].removeprefix("sha256:")
        with tarfile.open(fileobj=tar.extractfile(f"blobs/sha256/{layer}")) as rootfs:
            assert rootfs.getnames() == ["pause"]
            assert rootfs.getmember("pause").mode & 0o111
    annotations = index["manifests"][0]["annotations"]
    assert annotations["io.containerd.image.name"] == "localhost/quantfleet/pause:3.10"


def test_fleet_without_cpu_serving_keeps_gpu_pools_and_the_controller_node() -> None:
    fleet = load_fleet()

    kept = {pool.name for pool in fleet.without_cpu_serving().pools}

    assert "xeon-amx" not in kept
    assert "xeon-avx512" not in kept
    assert {"cpu", "t4", "h100"} <= kept


def _cgroups(tmp_path: Path, *controllers: str) -> Path:
    for name in controllers:
        (tmp_path / name).mkdir()
    return tmp_path


ALL_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer")


@pytest.mark.parametrize(
    ("filesystems", "controllers", "euid", "want"),
    [
        pytest.param("nodev\toverlay\n", ALL_CONTROLLERS, 0, None, id="everything-there"),
        pytest.param("nodev\toverlay\n", ALL_CONTROLLERS, 1000, "needs root", id="not-root"),
        pytest.param("nodev\ttmpfs\n", ALL_CONTROLLERS, 0, "no overlay", id="no-overlayfs"),
        pytest.param(
            "nodev\toverlay\n", ALL_CONTROLLERS[:-1], 0, "not mounted", id="cgroup-v2-only"
        ),
    ],
)
def test_preflight_says_in_one_line_what_the_machine_lacks(
    tmp_path: Path, filesystems: str, controllers: tuple[str, ...], euid: int, want: str | None
) -> None:
    lacking = preflight(filesystems, _cgroups(tmp_path, *controllers), euid=euid)

    if want is None:
        assert lacking is None
    else:
        assert lacking is not None
        assert want in lacking
        assert "\n" not in lacking
