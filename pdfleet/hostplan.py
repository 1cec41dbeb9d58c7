"""What the host layer pins and holds: the NVIDIA set and its companions, as apt pins. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from pdfleet.cluster import Cluster


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


# NVIDIA's CUDA repository for Ubuntu 24.04 on x86_64 (the reference nodes); a site mirror replaces it.
CUDA_REPOSITORY = "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/"


def cuda_mirror(cluster: Cluster) -> str:
    return cluster.host.nvidia.mirror or CUDA_REPOSITORY


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
