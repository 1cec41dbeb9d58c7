"""The host layer's settings (`host:` in the inventory): NVIDIA driver set, RDMA stack, DeepEP driver options,
tuning and reboots. Every knob has a default; the comment beside it says what it does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pdfleet.reader import Section

NVIDIA_SOURCES = ("cuda-repo", "os-archive")
DOCA_SOURCES = ("doca-repo", "os-archive")
RDMA_STACKS = ("inbox", "doca-ofed")
# The distributions pdfleet deploys to, as NVIDIA's repositories name them: (CUDA repo path, DOCA repo path,
# os-release ID, os-release VERSION_ID).
DISTRIBUTIONS = {
    "ubuntu24.04": ("ubuntu2404", "ubuntu24.04", "ubuntu", "24.04"),
    "ubuntu22.04": ("ubuntu2204", "ubuntu22.04", "ubuntu", "22.04"),
    "debian12": ("debian12", "debian12", "debian", "12"),
}
THP_MODES = ("always", "madvise", "never")
DRIVER_VERSION_RE = re.compile(r"^(\d{3})\.\d+\.\d+$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")
VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+~:-]*$")


@dataclass(frozen=True)
class NvidiaConfig:
    source: str
    mirror: str | None
    driver_version: str
    dcgm_version: str
    container_toolkit_version: str

    @property
    def branch(self) -> str:
        return self.driver_version.split(".")[0]


@dataclass(frozen=True)
class RdmaConfig:
    stack: str
    source: str
    mirror: str | None
    doca_version: str
    gdrcopy_version: str


@dataclass(frozen=True)
class BaseConfig:
    extra_packages: tuple[str, ...]
    ntp_servers: tuple[str, ...]


@dataclass(frozen=True)
class TuningConfig:
    disable_acs: bool
    iommu_passthrough: bool
    cpu_governor: str | None
    transparent_hugepages: str
    numa_balancing: bool


@dataclass(frozen=True)
class RebootConfig:
    parallel: int
    defer: bool


@dataclass(frozen=True)
class HostConfig:
    distribution: str
    base: BaseConfig
    nvidia: NvidiaConfig
    rdma: RdmaConfig
    deepep_driver_options: bool
    tuning: TuningConfig
    reboot: RebootConfig


def read_host_config(top: Section) -> HostConfig:
    host = top.section("host", "host")
    # what the nodes run; picks NVIDIA's repository paths and is checked against each host before a change
    distribution = host.get(
        "distribution",
        str,
        "ubuntu24.04",
        expected=" or ".join(DISTRIBUTIONS),
        check=lambda v: v in DISTRIBUTIONS,
    )

    bs = host.section("base")
    base = BaseConfig(
        # more packages every node gets (debugging tools the site likes)
        extra_packages=tuple(
            bs.string_list(
                "extra_packages",
                [],
                check=PACKAGE_RE.match,
                expected="a list of Debian package names",
                item="a Debian package name",
                unique="package",
            )
        ),
        # time servers for chrony (air-gapped sites); empty keeps the distribution's pool
        ntp_servers=tuple(
            bs.string_list(
                "ntp_servers",
                [],
                check=HOSTNAME_RE.match,
                expected="a list of host names or addresses",
                item="a host name or address",
                unique="server",
            )
        ),
    )
    bs.finish()

    nv = host.section("nvidia")
    driver_version = nv.string(  # the exact driver; fabric manager and NSCQ follow it, the set is held
        "driver_version",
        "580.159.04",
        expected="an exact driver version like 580.159.04",
        check=lambda v: bool(DRIVER_VERSION_RE.match(v)),
    )
    nvidia = NvidiaConfig(
        # cuda-repo: NVIDIA's CUDA apt repository and keyring; os-archive: Ubuntu's own -server packages
        source=nv.get(
            "source", str, "cuda-repo", expected="cuda-repo or os-archive", check=lambda v: v in NVIDIA_SOURCES
        ),
        mirror=nv.string("mirror", None),  # repository URL for air-gapped sites; None = NVIDIA's for the release
        driver_version=driver_version,
        dcgm_version=nv.string(
            "dcgm_version",
            "4.4.1",
            check=VERSION_RE.match,  # DCGM 4, CUDA 13 flavour
            expected="an exact version",
        ),
        container_toolkit_version=nv.string(
            "container_toolkit_version", "1.18.0", check=VERSION_RE.match, expected="an exact version"
        ),  # for the container runtime
    )
    nv.finish()

    rd = host.section("rdma")
    rdma = RdmaConfig(
        # inbox: the OS's rdma-core; doca-ofed: NVIDIA's DOCA-OFED (needed for the newest ConnectX features)
        stack=rd.get("stack", str, "doca-ofed", expected="inbox or doca-ofed", check=lambda v: v in RDMA_STACKS),
        # doca-repo: NVIDIA's DOCA apt repository and keyring; os-archive: the distribution's doca-ofed packages
        source=rd.get(
            "source", str, "doca-repo", expected="doca-repo or os-archive", check=lambda v: v in DOCA_SOURCES
        ),
        mirror=rd.string("mirror", None),  # DOCA repository URL for air-gapped sites; None = NVIDIA's for the release
        doca_version=rd.string("doca_version", "3.1.0", check=VERSION_RE.match, expected="an exact version"),
        gdrcopy_version=rd.string("gdrcopy_version", "2.5.1", check=VERSION_RE.match, expected="an exact version"),
    )
    rd.finish()

    tu = host.section("tuning")
    tuning = TuningConfig(
        # ACS on PCIe bridges sends GPU<->NIC traffic through the root complex (NCCL troubleshooting guide)
        disable_acs=tu.boolean("disable_acs", True),
        # iommu=pt keeps DMA from GPUs and NICs untranslated (GPUDirect RDMA); needs a reboot
        iommu_passthrough=tu.boolean("iommu_passthrough", True),
        cpu_governor=tu.string("cpu_governor", "performance"),  # None leaves the governor alone
        # madvise: huge pages only where asked (PyTorch asks); always can stall on compaction
        transparent_hugepages=tu.get(
            "transparent_hugepages", str, "madvise", expected="always, madvise or never", check=lambda v: v in THP_MODES
        ),
        # automatic NUMA balancing migrates pages under pinned, RDMA-registered buffers: off
        numa_balancing=tu.boolean("numa_balancing", False),
    )
    tu.finish()

    rb = host.section("reboot")
    reboot = RebootConfig(
        # hosts serving nothing (a bring-up, spares) rebooting at once; serving hosts go one instance at a time
        parallel=rb.integer("parallel", 32, lo=1),
        defer=rb.boolean("defer", False),  # true: never reboot, list the hosts that need one
    )
    rb.finish()

    config = HostConfig(
        distribution=distribution,
        base=base,
        nvidia=nvidia,
        rdma=rdma,
        # NVreg_EnableStreamMemOPs=1 and PeerMappingOverride=1: DeepEP's IBGDA needs them (DeepEP docs/nvshmem.md)
        deepep_driver_options=host.boolean("deepep_driver_options", True),
        tuning=tuning,
        reboot=reboot,
    )
    host.finish()
    return config
