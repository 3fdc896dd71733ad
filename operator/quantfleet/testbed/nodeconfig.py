"""The real node's configuration files, as pure functions of its address and paths: containerd,
the CNI bridge, kubelet, kube-proxy, CoreDNS and the nftables guard of its network namespace
(testbed.realnode writes them; ../shared/reference/realnode.md says why each setting is there)."""

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantfleet.testbed.binaries import NodeBinaries
from quantfleet.testbed.pki import PkiPaths
from quantfleet.testbed.processes import ComponentError

# Pods' addresses exist only inside the node's namespace; apart from kwok's simulated 10.244/16.
POD_CIDR = "10.245.0.0/24"
POD_GATEWAY = "10.245.0.1"
CLUSTER_DOMAIN = "cluster.local"
KUBELET_PORT = 10250
PAUSE_IMAGE = "localhost/quantfleet/pause:3.10"
# Paths inside the node's mount namespace (its own tmpfs on /run): short, as unix socket paths
# must be (108 bytes), and the standard ones, so no component needs to be told.
CONTAINERD_STATE = Path("/run/containerd")
CONTAINERD_SOCKET = CONTAINERD_STATE / "containerd.sock"
# The kubelet's root and pod logs, bind-mounted there from the node's data folder (on disk).
KUBELET_ROOT = Path("/var/lib/kubelet")
POD_LOGS = Path("/var/log/pods")


@dataclass(frozen=True)
class NodeAddress:
    """The /30 between the host and one node: 10.233.<index>.1 (host) and .2 (node)."""

    index: int

    @property
    def host_ip(self) -> str:
        return f"10.233.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"10.233.{self.index}.2"

    @property
    def veth_host(self) -> str:
        return f"qfnode{self.index}h"

    @property
    def veth_node(self) -> str:
        return f"qfnode{self.index}n"

    @classmethod
    def pick(cls) -> "NodeAddress":
        """The first index whose veth names and addresses this machine does not use."""
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
        addresses = subprocess.run(
            ["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True
        )
        taken = links.stdout + addresses.stdout
        for index in range(256):
            address = cls(index)
            if address.veth_host not in taken and f" {address.host_ip}/" not in taken:
                return address
        raise ComponentError("No free 10.233.N.0/30 for a real node (256 in use?)")


def guard_rules(address: NodeAddress) -> str:
    """nftables rules of the node's namespace: its pods reach the node (API relay, DNS, kubelet)
    and each other, never the host's end of the veth, and nothing is forwarded out of it."""
    return f"""table inet quantfleet_guard {{
  chain forward {{
    type filter hook forward priority -10; policy accept;
    oifname "{address.veth_node}" drop
  }}
  chain output {{
    type filter hook output priority -10; policy accept;
    ip saddr {POD_CIDR} oifname "{address.veth_node}" drop
  }}
}}
"""


def containerd_config(root: Path, binaries: NodeBinaries, cni_conf: Path) -> str:
    """containerd 2.x (config version 3) for a node with no registry and cgroup v1."""
    return f"""version = 3
root = "{root}"
state = "{CONTAINERD_STATE}"
[grpc]
  address = "{CONTAINERD_SOCKET}"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    # No registry to pull one from: a pause image built here (bin/pause) and imported.
    sandbox = "{PAUSE_IMAGE}"
[plugins.'io.containerd.cri.v1.runtime']
  # Root here lacks CAP_SYS_RESOURCE: lowering a sandbox's oom_score_adj fails every pod.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  enable_unprivileged_icmp = false
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "{binaries.runc}"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{binaries.cni_dir}"]
    conf_dir = "{cni_conf}"
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
"""


def cni_config(ipam_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "quantfleet",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "qf0",
                "isGateway": True,
                "isDefaultGateway": True,
                # No masquerade: pods' traffic has nowhere to go but the node's namespace.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(
    folder: Path, address: NodeAddress, pki: PkiPaths, cgroup_root: str
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": address.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "tlsCertFile": str(folder / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(folder / "kubelet-serving.key"),
        # Only clients with a cert of the cluster's CA (the API server's kubelet client) may call.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(pki.ca_cert)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        # This machine has cgroup v1 only (deprecated since 1.35, still supported).
        "failCgroupV1": False,
        "failSwapOn": False,
        "protectKernelDefaults": False,
        "clusterDNS": [address.node_ip],
        "clusterDomain": CLUSTER_DOMAIN,
        # Not the host's resolv.conf: no search domain or nameserver of the host reaches a pod.
        "resolvConf": str(folder / "resolv.conf"),
        # A shared test machine: evict only when truly out, never collect our imported images.
        "evictionHard": {
            "memory.available": "200Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        # Back to no pressure 10 s after the disk frees (default 5 min of NoSchedule).
        "evictionPressureTransitionPeriod": "10s",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "staticPodPath": "",
        "rotateCertificates": False,
    }


def kube_proxy_config(kubeconfig: Path, name: str, address: NodeAddress) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": name,
        "clusterCIDR": POD_CIDR,
        "bindAddress": address.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{address.node_ip}/32"],
        # Leave the machine-wide conntrack limits and timeouts as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
            "udpTimeout": "0s",
            "udpStreamTimeout": "0s",
        },
    }


def corefile(kubeconfig: Path) -> str:
    """Cluster DNS for the pods; no `forward`: a name outside the cluster is not resolved, so
    no query leaves the machine."""
    return f""".:53 {{
    errors
    health 127.0.0.1:8082
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""


COREDNS_RBAC: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "quantfleet:coredns"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["endpoints", "services", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "quantfleet:coredns"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "quantfleet:coredns",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "quantfleet:coredns"}
        ],
    },
]
