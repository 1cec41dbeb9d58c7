"""Host fact parsers on the real outputs of an 8xH200 node, and on variants made from them."""

from __future__ import annotations

from pathlib import Path

from pdfleet.hostfacts import (
    parse_cmdline,
    parse_live_modules,
    parse_nvidia_params,
    parse_nvidia_smi_xml,
    parse_proc_modules,
    parse_rdma_sysfs,
    parse_registry_dwords,
    parse_topo_matrix,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures/h200-8gpu-node"
XML = (FIXTURES / "nvidia-smi-q.xml").read_text()


def test_nvidia_smi_xml_of_a_real_h200_node():
    inventory = parse_nvidia_smi_xml(XML)
    assert (inventory.driver_version, inventory.cuda_version) == ("580.159.04", "13.0")
    assert [g.index for g in inventory.gpus] == list(range(8))
    assert {g.name for g in inventory.gpus} == {"NVIDIA H200"}
    assert {g.memory_total_mib for g in inventory.gpus} == {143771}
    assert all(g.persistence_mode and g.ecc_enabled and not g.mig_enabled for g in inventory.gpus)
    assert {g.ecc_uncorrected_volatile for g in inventory.gpus} == {0}
    assert not any(
        g.retired_pages_pending or g.remapped_rows_failure or g.remapped_rows_pending for g in inventory.gpus
    )
    assert {(g.fabric_state, g.fabric_status) for g in inventory.gpus} == {("Completed", "Success")}
    assert inventory.gpus[0].uuid == "GPU-a5cd2d4c-309d-ca32-a5b5-15fb11a25601"
    assert inventory.gpus[0].pci_bus_id == "00000000:00:06.0"


def test_nvidia_smi_xml_variants_a_missing_gpu_and_an_uncorrected_error():
    first_gpu_end = XML.index("</gpu>") + len("</gpu>")
    second_start = XML.index("<gpu ", first_gpu_end)
    without_gpu0 = XML[: XML.index("<gpu ")] + XML[second_start:]
    assert len(parse_nvidia_smi_xml(without_gpu0).gpus) == 7
    broken = XML.replace("<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>3</dram_uncorrectable>", 1)
    counts = [g.ecc_uncorrected_volatile for g in parse_nvidia_smi_xml(broken).gpus]
    assert counts == [3, 0, 0, 0, 0, 0, 0, 0]
    unfabricated = XML.replace("<state>Completed</state>", "<state>In Progress</state>", 1)
    assert parse_nvidia_smi_xml(unfabricated).gpus[0].fabric_state == "In Progress"


def _section(name: str) -> str:
    text = (FIXTURES / "proc-driver-nvidia.txt").read_text()
    start = text.index(f"== {name}")
    body = text[start:].split("\n", 1)[1]
    return body.split("\n== ", 1)[0]


def test_nvidia_params_show_the_deepep_settings_missing_on_the_captured_node():
    params = parse_nvidia_params(_section("/proc/driver/nvidia/params"))
    assert params["EnableStreamMemOPs"] == "0"
    assert params["RegistryDwords"] == ""
    wanted = parse_nvidia_params('EnableStreamMemOPs: 1\nRegistryDwords: "PeerMappingOverride=1;"\n')
    assert parse_registry_dwords(wanted["RegistryDwords"]) == {"PeerMappingOverride": "1"}


def test_modules_and_cmdline():
    modules = parse_proc_modules("nvidia_uvm 1234 0 - Live 0x0\nnvidia 5678 1 nvidia_uvm, Live 0x0\n")
    assert modules == {"nvidia_uvm", "nvidia"}
    cmdline = parse_cmdline("BOOT_IMAGE=/vmlinuz root=UUID=ab=cd ro iommu=pt quiet\n")
    assert cmdline == {"BOOT_IMAGE": "/vmlinuz", "root": "UUID=ab=cd", "ro": None, "iommu": "pt", "quiet": None}


def test_topo_matrix_is_a_full_nv18_mesh():
    links = parse_topo_matrix((FIXTURES / "nvidia-smi-topo-m.txt").read_text())
    assert len(links) == 8 * 7
    assert set(links.values()) == {"NV18"}


def test_rdma_sysfs_dump():
    dump = (
        "mlx5_0/1/state\t4: ACTIVE\nmlx5_0/1/rate\t400 Gb/sec (4X NDR)\nmlx5_0/1/link_layer\tEthernet\n"
        "mlx5_0/1/gid/3\t0000:0000:0000:0000:0000:ffff:0a64:000b\tRoCE v2\n"
        "mlx5_1/1/state\t1: DOWN\nmlx5_1/1/rate\t10 Gb/sec (4X SDR)\nmlx5_1/1/link_layer\tInfiniBand\n"
    )
    ports = parse_rdma_sysfs(dump)
    assert [(p.device, p.port, p.state, p.rate_gbps, p.link_layer) for p in ports] == [
        ("mlx5_0", 1, "ACTIVE", 400.0, "Ethernet"),
        ("mlx5_1", 1, "DOWN", 10.0, "InfiniBand"),
    ]
    assert ports[0].gids[3] == ("0000:0000:0000:0000:0000:ffff:0a64:000b", "RoCE v2")
    assert parse_rdma_sysfs("") == []  # a node without RDMA devices


def test_live_modules_from_sysfs():
    text = (
        "/sys/module/nvidia/initstate:live\n"
        "/sys/module/nvidia_peermem/initstate:live\n"
        "/sys/module/gdrdrv/initstate:going\n"
        "/sys/module/weird/parameters/initstate:live\n"
    )
    assert parse_live_modules(text) == {"nvidia", "nvidia_peermem"}
