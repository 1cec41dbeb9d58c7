"""Facts about a GPU node: tiny pyinfra fact classes that run one command and hand its output to the pure
parsers in pdfleet.hostfacts. Used by the host roles to decide and by the preflight to check."""

from __future__ import annotations

from pyinfra.api import FactBase, StringCommand

from pdfleet import hostfacts


class NvidiaSmi(FactBase):
    """Every GPU of the node (`nvidia-smi -q -x`), or None where the driver's tools are absent."""

    def requires_command(self) -> str:
        return "nvidia-smi"

    def command(self) -> str:
        return "nvidia-smi -q -x"

    def process(self, output: list[str]) -> hostfacts.GpuInventory:
        return hostfacts.parse_nvidia_smi_xml("\n".join(output))


class NvidiaTopology(FactBase):
    """The connection between every pair of GPUs (`nvidia-smi topo -m`): {(GPU0, GPU1): 'NV18', ...}."""

    def requires_command(self) -> str:
        return "nvidia-smi"

    def command(self) -> str:
        return "nvidia-smi topo -m"

    def process(self, output: list[str]) -> dict:
        return hostfacts.parse_topo_matrix("\n".join(output))


class NvidiaModuleParams(FactBase):
    """The nvidia module's parameters in effect (/proc/driver/nvidia/params); empty when it is not loaded."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self) -> str:
        return "cat /proc/driver/nvidia/params 2>/dev/null || true"

    def process(self, output: list[str]) -> dict:
        return hostfacts.parse_nvidia_params("\n".join(output))


class LoadedModules(FactBase):
    """Names of the loaded kernel modules, from sysfs (/sys/module/<name>/initstate reads "live")."""

    @staticmethod
    def default() -> set:
        return set()

    def command(self) -> str:
        return hostfacts.LIVE_MODULES_COMMAND

    def process(self, output: list[str]) -> set:
        return hostfacts.parse_live_modules("\n".join(output))


class KernelCmdline(FactBase):
    """The running kernel's command line (/proc/cmdline) as {key: value or None}."""

    def command(self) -> str:
        return "cat /proc/cmdline"

    def process(self, output: list[str]) -> dict:
        return hostfacts.parse_cmdline(" ".join(output))


class RdmaPorts(FactBase):
    """Every port of every RDMA device from sysfs: state, rate, link layer, GIDs. Empty without RDMA devices."""

    @staticmethod
    def default() -> list:
        return []

    def command(self) -> str:
        return hostfacts.RDMA_SYSFS_COMMAND

    def process(self, output: list[str]) -> list:
        return hostfacts.parse_rdma_sysfs("\n".join(output))


# ---- Preflight (deploys/verify.py): everything else in one round trip, and the all-reduce measurement --------


class NodeProbe(FactBase):
    """Every reading the preflight needs but the bandwidth, in one command that always succeeds: GPUs, topology,
    NVLink, fabric manager, module parameters, modules, RDMA sysfs, kernel command line, IOMMU groups, disk,
    weights, clock, the serving units' memlock. {section: hostfacts.Probe(exit status, output)}."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self, model_path: str, units: tuple[str, ...] = ()) -> str:
        return hostfacts.probe_command(hostfacts.node_probe_sections(model_path, units))

    def process(self, output: list[str]) -> dict:
        return hostfacts.parse_probe("\n".join(output))


class AllreduceBandwidth(FactBase):
    """NCCL all-reduce bus bandwidth across the node's GPUs (pdfleet/allreduce_bench.py run there with the first
    Python found of `pythons`): {"status": "ok", "results": [...]} or {"status": ..., "reason": ...}."""

    @staticmethod
    def default() -> dict:
        return {"status": "error", "reason": "the measurement printed nothing"}

    def command(self, pythons: tuple[str, ...], gpus: int, sizes_mib: tuple[int, ...], iterations: int, timeout: int):
        from pdfleet import allreduce_bench

        return allreduce_bench.remote_command(list(pythons), gpus, list(sizes_mib), iterations, timeout)

    def process(self, output: list[str]) -> dict:
        from pdfleet import allreduce_bench

        return allreduce_bench.parse_output("\n".join(output))


class SystemdUnitState(FactBase):
    """`systemctl is-active UNIT`: active, activating, inactive, failed ..."""

    def command(self, unit: str) -> StringCommand:
        return StringCommand("systemctl", "is-active", unit, "|| true")

    def process(self, output: list[str]) -> str:
        return "".join(output).strip()
