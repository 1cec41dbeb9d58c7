"""What the host layer pins and holds: the NVIDIA set and its companions, as apt pins. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from pdfleet.cluster import Cluster, node_ports
from pdfleet.hostconfig import DISTRIBUTIONS


@dataclass(frozen=True)
class Pin:
    name: str
    version: str  # an apt pin pattern: the exact upstream version, any packaging revision


def nvidia_pins(cluster: Cluster) -> list[Pin]:
    """The driver, fabric manager, NSCQ and DCGM (and the container toolkit for container runtimes), as one set."""
    nvidia = cluster.host.nvidia
    branch, version = nvidia.branch, nvidia.driver_version
    pins = [
        Pin(f"nvidia-driver-{branch}-server-open", f"{version}-*"),
        Pin(f"nvidia-utils-{branch}-server", f"{version}-*"),
        Pin(f"nvidia-compute-utils-{branch}-server", f"{version}-*"),
        Pin(f"nvidia-kernel-common-{branch}-server", f"{version}-*"),
        Pin(f"libnvidia-compute-{branch}-server", f"{version}-*"),
        Pin(f"nvidia-fabricmanager-{branch}", f"{version}-*"),
        Pin(f"libnvidia-nscq-{branch}", f"{version}-*"),
        Pin("datacenter-gpu-manager-4-core", f"1:{nvidia.dcgm_version}-*"),
        Pin("datacenter-gpu-manager-4-cuda13", f"1:{nvidia.dcgm_version}-*"),
    ]
    if cluster.runtime.kind == "container":
        toolkit = nvidia.container_toolkit_version
        pins += [
            Pin("nvidia-container-toolkit", f"{toolkit}-*"),
            Pin("nvidia-container-toolkit-base", f"{toolkit}-*"),
            Pin("libnvidia-container-tools", f"{toolkit}-*"),
            Pin("libnvidia-container1", f"{toolkit}-*"),
        ]
    return pins


# NVIDIA's CUDA repository (driver set, fabric manager, NSCQ, DCGM, container toolkit, GDRCopy) for one
# distribution on x86_64; a site mirror replaces the whole URL.
CUDA_REPOSITORY = "https://developer.download.nvidia.com/compute/cuda/repos/{path}/x86_64/"
# NVIDIA's DOCA repository (DOCA-OFED): one tree per DOCA release and distribution; its key sits at the top.
DOCA_REPOSITORY = "https://linux.mellanox.com/public/repo/doca/{version}/{path}/x86_64/"
DOCA_KEY_URL = "https://linux.mellanox.com/public/repo/doca/GPG-KEY-Mellanox.pub"


def cuda_mirror(cluster: Cluster) -> str:
    path = DISTRIBUTIONS[cluster.host.distribution][0]
    return cluster.host.nvidia.mirror or CUDA_REPOSITORY.format(path=path)


def doca_mirror(cluster: Cluster) -> str:
    rdma = cluster.host.rdma
    path = DISTRIBUTIONS[cluster.host.distribution][1]
    return rdma.mirror or DOCA_REPOSITORY.format(version=rdma.doca_version, path=path)


def doca_key_url(cluster: Cluster) -> str:
    """NVIDIA's key, or the one a mirror serves beside its package index."""
    mirror = cluster.host.rdma.mirror
    return mirror.rstrip("/") + "/GPG-KEY-Mellanox.pub" if mirror else DOCA_KEY_URL


def rdma_pins(cluster: Cluster) -> list[Pin]:
    """GDRCopy (userspace and the gdrdrv module source) and, with DOCA-OFED, its metapackage, as one set."""
    rdma = cluster.host.rdma
    pins = [Pin(name, f"{rdma.gdrcopy_version}-*") for name in GDRCOPY_PACKAGES]
    if rdma.stack == "doca-ofed":
        pins.append(Pin("doca-ofed", f"{rdma.doca_version}-*"))
    return pins


# GDRCopy as NVIDIA's CUDA repository packages it: gdrdrv-dkms builds the module, libgdrapi is what NVSHMEM
# loads, gdrcopy-tests holds gdrcopy_copybw (the preflight's check).
GDRCOPY_PACKAGES = ("gdrdrv-dkms", "libgdrapi", "gdrcopy-tests", "gdrcopy")
# The distribution's RDMA userspace (stack: inbox): verbs, the mlx5 provider, diagnostics, bandwidth tests.
INBOX_RDMA_PACKAGES = ("rdma-core", "ibverbs-providers", "ibverbs-utils", "infiniband-diags", "perftest")
# Loaded at every boot through /etc/modules-load.d (and now, by the rdma role).
GPUDIRECT_MODULES = ("nvidia_peermem", "gdrdrv")

# What every node gets: time sync, NUMA and PCI tools the tuning and preflight use, JSON for scripts, transfer
# tools for weights and caches.
BASE_PACKAGES = ("chrony", "numactl", "pciutils", "jq", "curl", "ca-certificates", "ethtool", "lsof", "rsync")


@dataclass(frozen=True)
class Sysctl:
    key: str
    value: str
    why: str


def sysctls(cluster: Cluster, node: str) -> list[Sysctl]:
    """The kernel settings of a node, each with the reason it is set (the comment in /etc/sysctl.d)."""
    numa = cluster.host.tuning.numa_balancing
    return [
        Sysctl(
            "kernel.numa_balancing",
            "1" if numa else "0",
            "Automatic NUMA balancing migrates pages of processes already placed by GPU, and with them buffers"
            " registered for RDMA: off unless the inventory asks (host.tuning.numa_balancing).",
        ),
        Sysctl(
            "vm.max_map_count",
            "1048576",
            "One mapping per safetensors shard, CUDA allocation and NCCL buffer: a 163-shard checkpoint served"
            " by 8 ranks needs more than the default 65530.",
        ),
        Sysctl(
            "net.ipv4.ip_local_reserved_ports",
            reserved_ports(node_ports(cluster, node)),
            "The serving ports of this node (HTTP, bootstrap, dist-init and its neighbours, router): an outgoing"
            " connection must never take one as its ephemeral port before the service binds it.",
        ),
    ]


def reserved_ports(ports: list[int]) -> str:
    """Ports as the kernel prints ip_local_reserved_ports: sorted, adjacent ones merged ('5757-5763,5770')."""
    ranges: list[list[int]] = []
    for port in sorted(set(ports)):
        if ranges and port == ranges[-1][1] + 1:
            ranges[-1][1] = port
        else:
            ranges.append([port, port])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def hosts_entries(cluster: Cluster) -> list[tuple[str, str]]:
    """(address, name) of every cluster node, for the managed block of /etc/hosts."""
    return [(node.address, node.name) for node in cluster.nodes]


# Packages that move only with pdfleet (one host at a time, with a reboot where needed), never unattended.
UNATTENDED_BLACKLIST = (
    "nvidia-",
    "libnvidia-",
    "datacenter-gpu-manager",
    "docker-ce",
    "containerd.io",
    "doca-",
    "mlnx-",
    "ibverbs-",
    "infiniband-diags",
    "rdma-core",
    "gdrcopy",
    "gdrdrv",
    "libgdrapi",
    "linux-image",
    "linux-modules",
    "linux-headers",
)
