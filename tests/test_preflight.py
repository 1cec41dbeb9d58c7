"""The preflight's checks on the real outputs of an 8xH200 node, and on variants made from them at test time.

`node_probe_text()` builds what roles.facts.NodeProbe reads on a node, section by section, from the captured
outputs in tests/fixtures/h200-8gpu-node; `healthy=True` adds what that node lacked (DeepEP's module parameters,
GDRCopy and peer-memory modules, eight RoCE HCAs, a fabric manager, serving units, staged weights). Each variant
changes one thing and asserts the verdict and the message of the check that must catch it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from pdfleet import allreduce_bench, hostfacts, preflight
from pdfleet.cluster import load_cluster
from pdfleet.errors import InventoryError
from pdfleet.hostfacts import PROBE_MARK

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures/h200-8gpu-node"
LENT = ROOT / "tests/fixtures/h200-4gpu-lent"  # captured by the preflight's own run (docs/examples/)
XML = (FIXTURES / "nvidia-smi-q.xml").read_text()
TOPO = (FIXTURES / "nvidia-smi-topo-m.txt").read_text()
NVLINK = (FIXTURES / "nvidia-smi-nvlink-s.txt").read_text()
BUSBW = json.loads((FIXTURES / "allreduce-busbw.json").read_text())
CLUSTER = load_cluster(ROOT / "inventories/prod.yaml")
UNITS = ("sglang-prefill-0-precompile.service", "sglang-prefill-0.service")
SHARDS = [f"model-{i:05d}-of-000163.safetensors" for i in range(1, 164)]


def fixture_section(name: str) -> str:
    """One '== name' section of proc-driver-nvidia.txt."""
    text = (FIXTURES / "proc-driver-nvidia.txt").read_text()
    body = text[text.index(f"== {name}") :].split("\n", 1)[1]
    return body.split("\n== ", 1)[0]


def rdma_sysfs(hcas=8, rate="400 Gb/sec (4X NDR)", state="4: ACTIVE", layer="Ethernet") -> str:
    """What RDMA_SYSFS_COMMAND prints for ConnectX-7 RoCE ports, as the sandbox's canned DOCA outputs describe."""
    lines = []
    for n in range(hcas):
        lines += [f"mlx5_{n}/1/state\t{state}", f"mlx5_{n}/1/rate\t{rate}", f"mlx5_{n}/1/link_layer\t{layer}"]
        lines += [f"mlx5_{n}/1/gid/3\t0000:0000:0000:0000:0000:ffff:0a64:{n:02x}0b\tRoCE v2"]
    return "\n".join(lines)


def node_probe_sections(healthy: bool = False) -> dict[str, tuple[int, str]]:
    """{section: (exit status, output)}: the captured node, or (healthy) one that has everything it lacked."""
    modules = "\n".join(f"/sys/module/{m}/initstate:live" for m in fixture_section("kernel modules").split())
    sections = {
        "nvidia-smi": (0, XML),
        "topology": (0, TOPO),
        "nvlink": (0, NVLINK),
        "fabricmanager-version": (127, "sh: 1: nv-fabricmanager: not found"),
        "systemd": (0, "no"),
        "fabricmanager-state": (127, "sh: 1: systemctl: not found"),
        "nvidia-params": (0, fixture_section("/proc/driver/nvidia/params (the lines that DeepEP's IBGDA")),
        "modules": (0, modules),
        "rdma": (0, ""),
        "cmdline": (0, "console=ttyS0 reboot=k panic=1 root=/dev/vda rw"),
        "iommu-groups": (0, "0"),
        "disk": (0, "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/vda 269 1 252000000000 1% /"),
        "weights-index": (0, "none"),
        "weights-files": (0, ""),
        "clock": (0, "none"),
    }
    if healthy:
        sections |= {
            "fabricmanager-version": (0, "Fabric Manager version is : 580.159.04"),
            "systemd": (0, "yes"),
            "fabricmanager-state": (0, "active"),
            "nvidia-params": (0, 'EnableStreamMemOPs: 1\nRegistryDwords: "PeerMappingOverride=1;"'),
            "modules": (0, modules + "\n/sys/module/gdrdrv/initstate:live\n/sys/module/nvidia_peermem/initstate:live"),
            "rdma": (0, rdma_sysfs()),
            "cmdline": (0, "BOOT_IMAGE=/vmlinuz root=/dev/md0 ro iommu=pt"),
            "iommu-groups": (0, "211"),
            "memlock": (0, "\n\n".join(f"Id={u}\nLoadState=loaded\nLimitMEMLOCK=infinity" for u in UNITS)),
            "disk": (
                0,
                "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/md1 7e12 1 900000000000 1% /models",
            ),
            "weights-index": (0, "total_size 688000000000\n" + "\n".join(f"shard {s}" for s in SHARDS)),
            "weights-files": (0, "\n".join(f"{s}\t4300000000" for s in SHARDS)),
            "weights-stamp": (0, stamp(CLUSTER.model.revision)),
            "clock": (0, "timedatectl\nyes"),
        }
    return sections


def stamp(revision: str) -> str:
    """The stager's stamp as pdfleet-weights.py writes it after verifying a revision."""
    files = {s: 4300000000 for s in SHARDS}
    return json.dumps({"repo": CLUSTER.model.repo, "revision": revision, "files": files, "checksums": False})


def node_probe_text(sections: dict[str, tuple[int, str]]) -> str:
    """The probe's output as the node prints it (hostfacts.probe_command's markers around each section)."""
    return "\n".join(
        f"{PROBE_MARK} {name}\n{text}\n{PROBE_MARK} {name} exit={status}" for name, (status, text) in sections.items()
    )


def readings(healthy: bool = False, allreduce: dict | None = None, **changes) -> preflight.NodeFacts:
    """NodeFacts through the real parsers; `changes` replace sections: name_with_underscores=(exit, text)."""
    sections = node_probe_sections(healthy)
    sections |= {name.replace("_", "-"): value for name, value in changes.items()}
    probe = hostfacts.parse_probe(node_probe_text(sections))
    return preflight.facts_from_probe(probe, allreduce if allreduce is not None else measured(BUSBW))


def measured(data: dict) -> dict:
    return {"status": "ok", **data}


def results(facts: preflight.NodeFacts, node: str = "prefill-0") -> dict[str, preflight.Result]:
    return {r.check: r for r in preflight.check_node(facts, preflight.expectations(CLUSTER, node))}


# ---- the captured node, as it was -----------------------------------------------------------------------------


def test_the_captured_node_passes_gpus_nvlink_and_fabric_and_fails_deepep_and_rdma():
    got = results(readings())
    for name in ("gpu.count", "gpu.model", "gpu.memory", "gpu.driver", "gpu.persistence", "gpu.ecc", "gpu.mig"):
        assert got[name].status == preflight.PASS, got[name]
    assert got["gpu.count"].seen == "8 GPUs"
    assert got["gpu.memory"].seen == "at least 143771 MiB on each"
    assert got["nvlink.topology"] == preflight.Result(
        "nvlink.topology", "PASS", "NV18 between all 28 pairs of 8 GPUs", "NV18 between every GPU pair"
    )
    assert got["nvlink.links"].seen == "8 GPUs x 18 links at 26.562 GB/s"
    assert got["fabric.state"].status == preflight.PASS
    assert got["fabric.manager"].status == preflight.WARN  # fabric trained without a local fabric manager
    assert got["fabric.manager"].seen == "nv-fabricmanager not installed, yet the fabric is trained"
    assert got["deepep.params"].status == preflight.FAIL
    assert got["deepep.params"].seen == "EnableStreamMemOPs=0, RegistryDwords=''"
    assert "/etc/modprobe.d/pdfleet-deepep.conf" in got["deepep.params"].hint
    assert got["deepep.modules"].seen == "not loaded: gdrdrv, nvidia_peermem"
    assert got["rdma.hcas"].status == preflight.FAIL
    assert got["rdma.hcas"].seen == "no RDMA devices (/sys/class/infiniband is empty or absent)"
    assert "rdma.state" not in got  # nothing more to say about HCAs that are not there
    assert got["host.memlock"].status == preflight.WARN and got["host.memlock"].seen.startswith("PID 1 is not systemd")
    assert got["host.disk"].status == preflight.FAIL and got["host.disk"].seen.startswith("252 GB free on /")


def test_the_captured_measurement_is_within_the_warning_band_of_its_own_rounded_threshold():
    got = results(readings(healthy=True))["nccl.allreduce"]
    assert (got.status, got.seen) == ("WARN", "365.5 GB/s over 8 GPUs")  # 365.5 < 366 by 0.1%: noise, not a fault
    assert got.details["results"][0]["size_mb"] == 8


# ---- a node with everything -----------------------------------------------------------------------------------


def test_a_healthy_node_passes_every_check():
    fast = measured({**BUSBW, "results": [{**r, "busbw_gbs": r["busbw_gbs"] + 1} for r in BUSBW["results"]]})
    got = results(readings(healthy=True, allreduce=fast))
    assert {name: r.status for name, r in got.items() if r.status != "PASS"} == {}
    assert list(got) == [
        *("gpu.count", "gpu.model", "gpu.memory", "gpu.driver", "gpu.persistence", "gpu.ecc", "gpu.mig"),
        *("gpu.memory_health", "nvlink.topology", "nvlink.links", "fabric.state", "fabric.manager"),
        *("deepep.params", "deepep.modules", "rdma.hcas", "rdma.state", "rdma.rate", "rdma.link_layer", "rdma.gid"),
        *("host.memlock", "host.disk", "host.weights", "host.clock", "host.cmdline", "nccl.allreduce"),
    ]
    assert got["rdma.gid"].seen == "RoCE v2 at index 3 on 8 ports"
    assert got["host.weights"].seen == f"163 shards, 701 GB, revision {CLUSTER.model.revision[:12]} verified by pdfleet"
    assert got["nccl.allreduce"].seen == "366.5 GB/s over 8 GPUs"
    assert got["fabric.manager"].seen == "nv-fabricmanager 580.159.04, service active"


# ---- variants: one fault each ---------------------------------------------------------------------------------


def test_weights_of_another_revision_fail_and_weights_without_a_stamp_pass_saying_so():
    other = results(readings(healthy=True, weights_stamp=(0, stamp("f" * 40))))["host.weights"]
    assert (other.status, other.seen) == (preflight.FAIL, "163 shards, 701 GB of revision ffffffffffff")
    assert other.expected == f"every shard of revision {CLUSTER.model.revision[:12]} at /models/DeepSeek-V3.2"
    assert "deploys/serve.py stages it" in other.hint
    unstamped = results(readings(healthy=True, weights_stamp=(0, "")))["host.weights"]
    assert unstamped.status == preflight.PASS
    assert unstamped.seen == "163 shards, 701 GB (staged without pdfleet: revision not recorded)"


def _drop_gpu(xml: str, index: int) -> str:
    starts = [m.start() for m in re.finditer(r"<gpu id=", xml)]
    end = xml.index("</gpu>", starts[index]) + len("</gpu>")
    return xml[: starts[index]] + xml[end:]


def test_a_missing_gpu():
    topo = "\n".join(line for line in TOPO.splitlines() if not line.startswith("GPU7"))
    got = results(readings(healthy=True, nvidia_smi=(0, _drop_gpu(XML, 7)), topology=(0, topo)))
    assert got["gpu.count"].status == "FAIL"
    assert got["gpu.count"].seen == "7 GPUs (index 0,1,2,3,4,5,6)"
    assert "Xid 79" in got["gpu.count"].hint


def test_an_uncorrected_ecc_error():
    gpus = XML.split("<gpu id=")
    gpus[4] = gpus[4].replace(
        "<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>2</dram_uncorrectable>", 1
    )
    got = results(readings(healthy=True, nvidia_smi=(0, "<gpu id=".join(gpus))))
    assert got["gpu.ecc"].status == "FAIL"
    assert got["gpu.ecc"].seen == "uncorrected volatile ECC errors: GPU 3: 2"


def test_a_row_remap_failure_and_a_pending_remap():
    failed = XML.replace(
        "<remapped_row_failure>No</remapped_row_failure>", "<remapped_row_failure>Yes</remapped_row_failure>", 1
    )
    got = results(readings(healthy=True, nvidia_smi=(0, failed)))["gpu.memory_health"]
    assert (got.status, got.seen) == ("FAIL", "row remapping failed on GPU 0")
    pending = XML.replace(
        "<remapped_row_pending>No</remapped_row_pending>", "<remapped_row_pending>Yes</remapped_row_pending>"
    )
    got = results(readings(healthy=True, nvidia_smi=(0, pending)))["gpu.memory_health"]
    assert (got.status, got.seen) == ("WARN", "row remap or page retirement pending on GPU 0,1,2,3,4,5,6,7")


def test_mig_on_persistence_off_and_another_driver():
    xml = XML.replace("<current_mig>Disabled</current_mig>", "<current_mig>Enabled</current_mig>", 1)
    xml = xml.replace(
        "<persistence_mode>Enabled</persistence_mode>", "<persistence_mode>Disabled</persistence_mode>", 2
    )
    xml = xml.replace("<driver_version>580.159.04</driver_version>", "<driver_version>580.126.09</driver_version>")
    got = results(readings(healthy=True, nvidia_smi=(0, xml)))
    assert (got["gpu.mig"].status, got["gpu.mig"].seen) == ("FAIL", "on for GPU 0")
    assert (got["gpu.persistence"].status, got["gpu.persistence"].seen) == ("FAIL", "off on GPU 0,1")
    assert (got["gpu.driver"].status, got["gpu.driver"].seen) == ("FAIL", "580.126.09")
    assert got["gpu.driver"].expected == "580.159.04 (host.nvidia.driver_version)"


def test_a_driver_library_mismatch_is_a_failure_not_a_crash():
    broken = (18, "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.165")
    got = results(readings(healthy=True, nvidia_smi=broken))
    assert got["gpu.count"].status == "FAIL"
    assert (
        got["gpu.count"].seen
        == "nvidia-smi failed (exit 18): Failed to initialize NVML: Driver/library version mismatch"
    )
    assert got["fabric.state"].status == "FAIL"


def test_a_fabric_manager_version_mismatch():
    got = results(readings(healthy=True, fabricmanager_version=(0, "Fabric Manager version is : 580.126.09")))
    assert got["fabric.manager"].status == "FAIL"
    assert got["fabric.manager"].seen == "nv-fabricmanager 580.126.09, driver 580.159.04"
    assert "802" in got["fabric.manager"].hint


def test_a_dead_fabric_manager_and_an_untrained_fabric():
    got = results(readings(healthy=True, fabricmanager_state=(3, "failed")))["fabric.manager"]
    assert (got.status, got.seen) == ("FAIL", "nv-fabricmanager 580.159.04, nvidia-fabricmanager.service failed")
    xml = XML.replace("<state>Completed</state>", "<state>In Progress</state>", 1)
    got = results(readings(nvidia_smi=(0, xml)))
    assert (got["fabric.state"].status, got["fabric.state"].seen) == ("FAIL", "GPU 0: In Progress/Success")
    assert got["fabric.manager"].status == "FAIL"  # no fabric manager and no trained fabric


def test_a_degraded_nvlink():
    lines = NVLINK.splitlines()
    gpu2 = lines.index(next(line for line in lines if line.startswith("GPU 2:")))
    lines[gpu2 + 6] = "\t Link 5: <inactive>"
    lines[gpu2 + 7] = "\t Link 6: 13.281 GB/s"
    got = results(readings(healthy=True, nvlink=(0, "\n".join(lines))))["nvlink.links"]
    assert got.status == "FAIL"
    assert got.seen == "GPU 2 link 5 inactive, GPU 2 link 6 13.281 GB/s"


def test_a_gpu_pair_over_pcie():
    topo = TOPO.replace("GPU3\tNV18\tNV18\tNV18\t X \tNV18", "GPU3\tNV18\tNV18\tNV18\t X \tSYS", 1)
    got = results(readings(healthy=True, topology=(0, topo)))["nvlink.topology"]
    assert (got.status, got.seen) == ("FAIL", "GPU3-GPU4 SYS")


def test_a_degraded_rdma_link_and_a_down_port():
    sysfs = rdma_sysfs().replace("mlx5_3/1/rate\t400 Gb/sec (4X NDR)", "mlx5_3/1/rate\t200 Gb/sec (4X HDR)")
    sysfs = sysfs.replace("mlx5_5/1/state\t4: ACTIVE", "mlx5_5/1/state\t1: DOWN")
    got = results(readings(healthy=True, rdma=(0, sysfs)))
    assert (got["rdma.rate"].status, got["rdma.rate"].seen) == ("FAIL", "mlx5_3/1 200 Gb/s")
    assert (got["rdma.state"].status, got["rdma.state"].seen) == ("FAIL", "mlx5_5/1 DOWN")
    assert got["rdma.hcas"].status == "PASS"


def test_missing_hcas_infiniband_ports_and_a_missing_roce_gid():
    got = results(readings(healthy=True, rdma=(0, rdma_sysfs(hcas=6))))["rdma.hcas"]
    assert (got.status, got.seen) == (
        "FAIL",
        "missing mlx5_6, mlx5_7 (present: mlx5_0, mlx5_1, mlx5_2, mlx5_3 and 2 more)",
    )
    got = results(readings(healthy=True, rdma=(0, rdma_sysfs(layer="InfiniBand"))))["rdma.link_layer"]
    assert (got.status, got.seen) == (
        "FAIL",
        "mlx5_0/1 InfiniBand, mlx5_1/1 InfiniBand, mlx5_2/1 InfiniBand, mlx5_3/1 InfiniBand and 4 more",
    )
    no_gid = "\n".join(line for line in rdma_sysfs().splitlines() if not line.startswith("mlx5_2/1/gid/3"))
    got = results(readings(healthy=True, rdma=(0, no_gid)))["rdma.gid"]
    assert (got.status, got.seen) == ("FAIL", "mlx5_2/1: none")


def test_the_decode_nodes_hca_list_is_what_is_checked():
    got = results(readings(healthy=True), node="decode-0")["rdma.hcas"]
    assert (got.status, got.seen) == (
        "FAIL",
        "missing mlx5_8, mlx5_9 (present: mlx5_0, mlx5_1, mlx5_2, mlx5_3 and 4 more)",
    )


def test_deepep_params_missing_or_half_set_and_modules_missing():
    half = (0, 'EnableStreamMemOPs: 1\nRegistryDwords: ""')
    got = results(readings(healthy=True, nvidia_params=half))["deepep.params"]
    assert (got.status, got.seen) == ("FAIL", "EnableStreamMemOPs=1, RegistryDwords=''")
    got = results(readings(healthy=True, nvidia_params=(1, "cat: /proc/driver/nvidia/params: No such file")))
    assert got["deepep.params"].seen == "/proc/driver/nvidia/params absent (nvidia not loaded)"
    modules = node_probe_sections(healthy=True)["modules"][1].replace("/sys/module/gdrdrv/initstate:live", "")
    got = results(readings(healthy=True, modules=(0, modules)))["deepep.modules"]
    assert (got.status, got.seen) == ("FAIL", "not loaded: gdrdrv")


def test_memlock_weights_disk_clock_and_kernel_command_line():
    limited = (0, "\n\n".join(f"Id={u}\nLoadState=loaded\nLimitMEMLOCK=8388608" for u in UNITS))
    got = results(readings(healthy=True, memlock=limited))["host.memlock"]
    assert (got.status, got.seen) == ("FAIL", f"{UNITS[0]}: 8388608, {UNITS[1]}: 8388608")
    absent = (0, "\n\n".join(f"Id={u}\nLoadState=not-found\nLimitMEMLOCK=8388608" for u in UNITS))
    got = results(readings(healthy=True, memlock=absent))["host.memlock"]
    assert (got.status, got.seen) == ("WARN", f"not installed yet: {UNITS[0]}, {UNITS[1]}")
    files = "\n".join(f"{s}\t4300000000" for s in SHARDS[:160]) + f"\n{SHARDS[160]}\t0"
    got = results(readings(healthy=True, weights_files=(0, files)))
    assert got["host.weights"].status == "FAIL"
    assert got["host.weights"].seen == (
        "3 of 163 shards missing or empty: model-00161-of-000163.safetensors, model-00162-of-000163.safetensors, "
        "model-00163-of-000163.safetensors"
    )
    assert got["host.disk"].status == "PASS"  # 900 GB free + the shards there
    truncated = "\n".join(f"{s}\t4000000000" for s in SHARDS)
    got = results(readings(healthy=True, weights_files=(0, truncated)))["host.weights"]
    assert got.seen == "shards hold 652000000000 bytes, fewer than the 688000000000 tensor bytes the index declares"
    got = results(readings(healthy=True, clock=(0, "chronyc\nLeap status     : Not synchronised")))["host.clock"]
    assert (got.status, got.seen) == ("FAIL", "not synchronised")
    got = results(readings(healthy=True, cmdline=(0, "ro quiet")))["host.cmdline"]
    assert (got.status, got.seen) == ("FAIL", "iommu=absent (211 IOMMU groups)")


def test_the_allreduce_verdicts():
    slow = measured({**BUSBW, "results": [{**r, "busbw_gbs": 300.0} for r in BUSBW["results"]]})
    got = results(readings(healthy=True, allreduce=slow))["nccl.allreduce"]
    assert (got.status, got.seen) == ("FAIL", "300.0 GB/s over 8 GPUs")
    unavailable = {
        "status": "unavailable",
        "reason": "torch not importable (ModuleNotFoundError: No module named 'torch')",
    }
    got = results(readings(healthy=True, allreduce=unavailable))["nccl.allreduce"]
    assert (got.status, got.seen) == ("WARN", f"not measured: {unavailable['reason']}")
    no_cuda = {"status": "no-gpus", "reason": "torch 2.11.0+cu130 sees no CUDA device"}
    got = results(readings(healthy=True, allreduce=no_cuda))["nccl.allreduce"]
    assert got.status == "FAIL"
    assert got.seen == "CUDA sees no GPU while nvidia-smi lists 8: torch 2.11.0+cu130 sees no CUDA device"
    got = results(readings(healthy=True, allreduce={"status": "error", "reason": "rank 3 exited 1: NCCL error"}))
    assert (got["nccl.allreduce"].status, got["nccl.allreduce"].seen) == (
        "FAIL",
        "measurement failed: rank 3 exited 1: NCCL error",
    )


# ---- parsers the preflight added ------------------------------------------------------------------------------


def test_topology_as_nvidia_smi_writes_it_to_a_pipe_with_an_underlined_header():
    text = (LENT / "nvidia-smi-topo-m.txt").read_text()
    assert "\x1b[4mGPU0" in text  # the real output of the lent H200 machine
    links = hostfacts.parse_topo_matrix(text)
    assert len(links) == 4 * 3 and set(links.values()) == {"NV18"}


def test_nvlink_status_of_both_machines():
    assert {g: set(links.values()) for g, links in hostfacts.parse_nvlink_status(NVLINK).items()} == {
        g: {26.562} for g in range(8)
    }
    lent = hostfacts.parse_nvlink_status((LENT / "nvidia-smi-nvlink-s.txt").read_text())
    assert sorted(lent) == [0, 1, 2, 3] and all(len(links) == 18 for links in lent.values())
    assert hostfacts.parse_nvlink_status("GPU 0: NVIDIA H200 (UUID: x)\n\t Link 0: <inactive>\n") == {0: {0: None}}


def test_the_probe_script_runs_under_sh_and_parses_back(tmp_path):
    """hostfacts.probe_command for real: stand-in tools first on PATH, everything else this machine's."""
    tools = tmp_path / "bin"
    tools.mkdir()
    scripts = {
        "nvidia-smi": f'case "$*" in "-q -x") cat {FIXTURES}/nvidia-smi-q.xml;; "topo -m") cat {FIXTURES}/'
        f'nvidia-smi-topo-m.txt;; "nvlink -s") cat {FIXTURES}/nvidia-smi-nvlink-s.txt;; *) exit 2;; esac',
        "nv-fabricmanager": 'echo "Fabric Manager version is : 580.159.04"',
        "timeout": 'shift; exec "$@"',
    }
    for name, body in scripts.items():
        (tools / name).write_text(f"#!/bin/sh\n{body}\n")
        (tools / name).chmod(0o755)
    model = tmp_path / "models/m"
    model.mkdir(parents=True)
    (model / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 10}, "weight_map": {"a": "x.safetensors", "b": "x.safetensors"}})
    )
    (model / "x.safetensors").write_bytes(b"0123456789ab")
    command = hostfacts.probe_command(hostfacts.node_probe_sections(str(model) + "/", ["a.service"]))
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    probe = hostfacts.parse_probe(done.stdout)
    assert set(probe) >= set(hostfacts.node_probe_sections("/x", ["a.service"])) - {"memlock"}
    facts = preflight.facts_from_probe(probe)
    assert facts.gpus is not None and len(facts.gpus.gpus) == 8
    assert set(facts.topology.values()) == {"NV18"} and len(facts.nvlink) == 8
    assert facts.fabricmanager_version == "580.159.04"
    assert facts.weights_index == hostfacts.WeightsIndex(10, ("x.safetensors",))
    assert facts.weight_files == {"x.safetensors": 12}
    assert facts.disk is not None and facts.disk.available_bytes > 0
    assert probe["nvidia-params"].exit_status is not None and probe["cmdline"].ok


def test_a_probe_cut_off_keeps_what_it_read():
    text = node_probe_text({"systemd": (0, "yes")}) + f"\n{PROBE_MARK} nvidia-smi\n<?xml"
    probe = hostfacts.parse_probe(text)
    assert probe["systemd"] == hostfacts.Probe(0, "yes")
    assert probe["nvidia-smi"] == hostfacts.Probe(None, "<?xml")


# ---- the measurement's arithmetic and its remote command --------------------------------------------------------


def test_bus_bandwidth_reproduces_the_captured_figures():
    for row in BUSBW["results"]:
        algbw, busbw = allreduce_bench.bus_bandwidth(row["size_mb"] << 20, row["time_us"] / 1e6, BUSBW["world"])
        assert algbw == pytest.approx(row["algbw_gbs"], rel=1e-9)
        assert busbw == pytest.approx(row["busbw_gbs"], rel=1e-9)


def test_the_remote_command_reports_no_python_and_no_torch(tmp_path):
    command = allreduce_bench.remote_command([str(tmp_path / "none")], 8, [8], 3, 30)
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert allreduce_bench.parse_output(done.stdout) == {
        "status": "unavailable",
        "reason": f"no Python on the node ({tmp_path / 'none'})",
    }
    python = tmp_path / "python3"  # a Python where `import torch` fails
    (tmp_path / "torch.py").write_text("raise ImportError('no CUDA build here')\n")
    python.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path} exec {os.sys.executable} "$@"\n')
    python.chmod(0o755)
    command = allreduce_bench.remote_command([str(tmp_path / "none"), str(python)], 8, [8], 3, 30)
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert allreduce_bench.parse_output(done.stdout) == {
        "status": "unavailable",
        "reason": "torch not importable (ImportError: no CUDA build here)",
    }
    assert allreduce_bench.parse_output("Traceback\nKilled")["reason"] == "no result printed: Killed"


# ---- thresholds from the inventory ------------------------------------------------------------------------------


def _inventory_with(tmp_path, verify_yaml: str) -> Path:
    path = tmp_path / "inv.yaml"
    path.write_text((ROOT / "inventories/prod.yaml").read_text() + "\nverify:\n" + verify_yaml)
    return path


def test_thresholds_default_and_from_the_inventory(tmp_path):
    assert CLUSTER.verify.allreduce_busbw_gbps == 366 and CLUSTER.verify.nvlink == "NV18"
    assert CLUSTER.verify.gpu_memory_for("H200") == 143000 and CLUSTER.verify.gpu_memory_for("B200") is None
    cluster = load_cluster(_inventory_with(tmp_path, "  allreduce_busbw_gbps: 300.5\n  rdma_link_layer: InfiniBand\n"))
    assert (cluster.verify.allreduce_busbw_gbps, cluster.verify.rdma_link_layer) == (300.5, "InfiniBand")
    got = results(readings(healthy=True))  # the same readings against other thresholds
    assert got["nccl.allreduce"].status == "WARN"
    e = preflight.expectations(cluster, "prefill-0")
    checked = {r.check: r for r in preflight.check_node(readings(healthy=True), e)}
    assert checked["nccl.allreduce"].status == "PASS"
    assert (
        checked["rdma.link_layer"].seen
        == "mlx5_0/1 Ethernet, mlx5_1/1 Ethernet, mlx5_2/1 Ethernet, mlx5_3/1 Ethernet and 4 more"
    )
    assert "rdma.gid" not in checked  # no RoCE GID on InfiniBand


def test_a_bad_threshold_is_one_line_naming_file_field_found_and_expected(tmp_path):
    path = _inventory_with(tmp_path, '  allreduce_busbw_gbps: "fast"\n  nvlink: NVx\n  allreduce_size: 4096\n')
    with pytest.raises(InventoryError) as caught:
        load_cluster(path, "inv.yaml")
    lines = str(caught.value).splitlines()
    first = len((ROOT / "inventories/prod.yaml").read_text().splitlines()) + 3  # after a blank line and "verify:"
    assert lines == [
        f"inv.yaml:{first}: verify: field 'allreduce_busbw_gbps': found 'fast', expected a number of at least 0",
        f"inv.yaml:{first + 1}: verify: field 'nvlink': found 'NVx', expected NV<links> like NV18",
        f"inv.yaml:{first + 2}: verify: field 'allreduce_size': found an unknown field, expected 'allreduce_size_mib' "
        "(the known field spelt most like it)",
    ]


# ---- reports ----------------------------------------------------------------------------------------------------


def test_table_and_json_of_a_report():
    report = preflight.NodeReport(
        "prefill-0",
        "@local",
        tuple(preflight.check_node(readings(), preflight.expectations(CLUSTER, "prefill-0"))),
        12.3,
    )
    table = preflight.to_table([report])
    lines = table.splitlines()
    assert lines[0] == "== prefill-0 (@local): 11 PASS, 6 WARN, 4 FAIL in 12.3 s"
    assert lines[1].split() == ["CHECK", "STATUS", "SEEN", "EXPECTED"]
    deepep = lines.index(next(line for line in lines if line.startswith("deepep.params")))
    assert lines[deepep + 1].strip().startswith("-> pyinfra INVENTORY deploys/host.py writes /etc/modprobe.d/")
    assert lines[-1] == "preflight FAILED: 1 node(s), 11 PASS, 6 WARN, 4 FAIL"
    data = json.loads(preflight.to_json([report]))
    assert data["failed"] is True and data["nodes"][0]["counts"] == {"PASS": 11, "WARN": 6, "FAIL": 4}
    assert preflight.NodeReport.from_dict(data["nodes"][0]) == report
