"""The preflight's thresholds (`verify:` in the inventory, optional). Every knob has a default; the comment beside
it says what it does and where the number comes from. docs/preflight.md lists them again with each check."""

from __future__ import annotations

from dataclasses import dataclass

from pdfleet.reader import Problems, Section

LINK_LAYERS = ("Ethernet", "InfiniBand")

# What `nvidia-smi -q -x` reports as fb_memory_usage/total for each model, less about 0.5% so that a driver that
# reserves a little more still passes: H200 reads 143771 MiB (tests/fixtures/h200-8gpu-node), H100 80GB 81559.
GPU_MEMORY_MIB = {"H200": 143000, "H100": 81000}


@dataclass(frozen=True)
class VerifyConfig:
    gpu_memory_mib: int | None  # None: by the node's gpu_model (GPU_MEMORY_MIB); unknown model: not checked
    nvlink: str
    nvlink_link_gbps: float
    rdma_rate_gbps: float
    rdma_link_layer: str
    model_disk_gb: int
    allreduce: bool
    allreduce_busbw_gbps: float
    allreduce_size_mib: int
    allreduce_warn_percent: float
    allreduce_iterations: int
    allreduce_timeout: int

    def gpu_memory_for(self, model: str) -> int | None:
        """The least memory each GPU must report, MiB: the inventory's, else the known value for the model."""
        return self.gpu_memory_mib if self.gpu_memory_mib is not None else GPU_MEMORY_MIB.get(model)


def _number(section: Section, key: str, default: float, lo: float) -> float:
    return section.get(
        key, (int, float), default, expected=f"a number of at least {lo}", check=lambda v: v >= lo
    )  # YAML reads 366 as int and 26.5 as float: both are numbers here


def read_verify_config(top: Section) -> VerifyConfig:
    v = top.section("verify", "verify")
    config = VerifyConfig(
        # least memory each GPU reports (MiB); unset: by gpu_model (H200 143000, H100 81000)
        gpu_memory_mib=v.integer("gpu_memory_mib", None, lo=1),
        # what `nvidia-smi topo -m` shows between every GPU pair of an NVSwitch node (HGX H100/H200: 18 NVLinks)
        nvlink=v.string(
            "nvlink", "NV18", expected="NV<links> like NV18", check=lambda s: s[:2] == "NV" and s[2:].isdigit()
        ),
        # least speed of every NVLink in `nvidia-smi nvlink -s`, GB/s (NVLink 4 runs at 26.562)
        nvlink_link_gbps=_number(v, "nvlink_link_gbps", 26.5, 0),
        # least rate of every port of the inventory's HCAs, Gb/s (ConnectX-7: 400 Gb/s NDR / 400GbE)
        rdma_rate_gbps=_number(v, "rdma_rate_gbps", 400, 0),
        # link layer of every HCA port: Ethernet (RoCE, with a RoCE v2 GID at network.gid_index) or InfiniBand
        rdma_link_layer=v.get(
            "rdma_link_layer", str, "Ethernet", expected="Ethernet or InfiniBand", check=lambda s: s in LINK_LAYERS
        ),
        # room the weights need under model.path, GB: free space plus the shard bytes already there
        # (DeepSeek-V3.2: 163 safetensors shards, about 690 GB)
        model_disk_gb=v.integer("model_disk_gb", 700, lo=0),
        # measure NCCL all-reduce across the node's GPUs (about 30 s a node, every GPU busy meanwhile)
        allreduce=v.boolean("allreduce", True),
        # least all-reduce bus bandwidth at allreduce_size_mib, GB/s: 8xH200, bf16, NVLink SHARP off, measured
        # 365.5 (tests/fixtures/h200-8gpu-node/allreduce-busbw.json)
        allreduce_busbw_gbps=_number(v, "allreduce_busbw_gbps", 366, 0),
        # message size the threshold applies to, MiB (the measurement also reports 8, 64, 256 and 1024 MiB)
        allreduce_size_mib=v.integer("allreduce_size_mib", 4096, lo=1),
        # up to this many percent below the threshold is a WARN (run-to-run noise); further below is a FAIL
        allreduce_warn_percent=_number(v, "allreduce_warn_percent", 5, 0),
        # timed all-reduces per size (after 5 warm-up ones); the median counts
        allreduce_iterations=v.integer("allreduce_iterations", 20, lo=1),
        # seconds the measurement may take before it is stopped and reported as a FAIL
        allreduce_timeout=v.integer("allreduce_timeout", 600, lo=10),
    )
    v.finish()
    return config


def default_verify_config() -> VerifyConfig:
    """The defaults alone (an inventory without `verify:`)."""
    return read_verify_config(Section({}, "inventory", Problems("-")))
