"""The roles' pyinfra facts: the command each runs and what it makes of real output (pyinfra's fact-test style)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from roles import facts

FIXTURES = Path(__file__).resolve().parent / "fixtures/h200-8gpu-node"


def lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def test_nvidia_smi_fact_on_the_captured_xml():
    fact = facts.NvidiaSmi()
    assert fact.command() == "nvidia-smi -q -x" and fact.requires_command() == "nvidia-smi"
    inventory = fact.process(lines("nvidia-smi-q.xml"))
    assert inventory.driver_version == "580.159.04" and len(inventory.gpus) == 8
    assert facts.NvidiaSmi.name == "roles.facts.NvidiaSmi"


def test_topology_fact_sees_a_full_nv18_mesh():
    links = facts.NvidiaTopology().process(lines("nvidia-smi-topo-m.txt"))
    assert len(links) == 56 and set(links.values()) == {"NV18"}


def test_module_params_and_modules_and_cmdline():
    params = facts.NvidiaModuleParams().process(["EnableStreamMemOPs: 1", 'RegistryDwords: "PeerMappingOverride=1;"'])
    assert params == {"EnableStreamMemOPs": "1", "RegistryDwords": "PeerMappingOverride=1;"}
    assert facts.NvidiaModuleParams.default() == {}
    assert facts.LoadedModules().process(["/sys/module/nvidia_peermem/initstate:live"]) == {"nvidia_peermem"}
    assert facts.KernelCmdline().process(["ro iommu=pt"]) == {"ro": None, "iommu": "pt"}


def test_rdma_sysfs_command_reads_a_real_sysfs_layout(tmp_path):
    """Run the fact's shell command on a sysfs-shaped tree and parse what it printed."""
    port = tmp_path / "sys/class/infiniband/mlx5_0/ports/1"
    (port / "gids").mkdir(parents=True)
    (port / "gid_attrs/types").mkdir(parents=True)
    (port / "state").write_text("4: ACTIVE\n")
    (port / "rate").write_text("400 Gb/sec (4X NDR)\n")
    (port / "link_layer").write_text("Ethernet\n")
    (port / "gids/0").write_text("fe80:0000:0000:0000:0000:0000:0000:0000\n")
    (port / "gids/3").write_text("0000:0000:0000:0000:0000:ffff:0a64:000b\n")
    (port / "gid_attrs/types/3").write_text("RoCE v2\n")
    command = facts.RdmaPorts().command().replace("/sys/class/infiniband", f"{tmp_path}/sys/class/infiniband")
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    [parsed] = facts.RdmaPorts().process(output.splitlines())
    assert (parsed.device, parsed.state, parsed.rate_gbps, parsed.link_layer) == ("mlx5_0", "ACTIVE", 400.0, "Ethernet")
    assert parsed.gids == {3: ("0000:0000:0000:0000:0000:ffff:0a64:000b", "RoCE v2")}
    empty = subprocess.run(
        ["sh", "-c", command.replace(str(tmp_path), str(tmp_path / "none"))], capture_output=True, text=True, check=True
    ).stdout
    assert facts.RdmaPorts().process(empty.splitlines()) == []
