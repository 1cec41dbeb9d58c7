"""The preflight's checks: pure functions from one node's readings and its inventory entry to verdicts.

deploys/verify.py reads a node (roles.facts.NodeProbe, roles.facts.AllreduceBandwidth) and hands the readings
here; `pdfleet preflight` prints the results. Each result is PASS, WARN or FAIL with the value seen, what was
expected, and a one-line hint to fix it. No pyinfra here: the checks are tested on the captured outputs of a real
8xH200 node and on variants made from them (tests/test_preflight.py). docs/preflight.md describes every check.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from xml.etree.ElementTree import ParseError

from pdfleet import hostfacts
from pdfleet.cluster import Cluster
from pdfleet.hostfacts import DiskSpace, GpuInventory, Probe, RdmaPort, WeightsIndex
from pdfleet.serving import plan

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
DEEPEP_MODULES = ("gdrdrv", "nvidia_peermem")  # GDRCopy's driver and GPUDirect RDMA's peer-memory client
HOST_DEPLOY = "pyinfra INVENTORY deploys/host.py"


@dataclass(frozen=True)
class Result:
    check: str  # "gpu.count", "nvlink.links", ...
    status: str  # PASS, WARN or FAIL
    seen: str
    expected: str
    hint: str = ""  # one line: what to do; empty on PASS
    details: dict | None = field(default=None, compare=False)  # extra machine-readable data (JSON only)


@dataclass(frozen=True)
class Expectations:
    """What one node must show, from its inventory entry, the cluster and the `verify:` thresholds."""

    node: str
    gpus: int
    gpu_model: str
    gpu_memory_mib: int | None
    driver_version: str
    nvswitch: bool
    nvlink: str
    nvlink_link_gbps: float
    hcas: tuple[str, ...]
    rdma_rate_gbps: float
    rdma_link_layer: str
    gid_index: int
    units: tuple[str, ...]
    model_path: str
    model_revision: str
    model_disk_gb: int
    iommu_passthrough: bool
    deepep_driver_options: bool
    allreduce: bool
    allreduce_busbw_gbps: float
    allreduce_size_mib: int
    allreduce_warn_percent: float


def expectations(cluster: Cluster, node_name: str) -> Expectations:
    node = cluster.node(node_name)
    spec = plan(cluster).server(node_name)  # the node's serving units: their names come from the plan alone
    verify = cluster.verify
    return Expectations(
        node=node.name,
        gpus=node.gpus,
        gpu_model=node.gpu_model,
        gpu_memory_mib=verify.gpu_memory_for(node.gpu_model),
        driver_version=cluster.host.nvidia.driver_version,
        nvswitch=node.nvswitch,
        nvlink=verify.nvlink,
        nvlink_link_gbps=verify.nvlink_link_gbps,
        hcas=tuple(node.hcas),
        rdma_rate_gbps=verify.rdma_rate_gbps,
        rdma_link_layer=verify.rdma_link_layer,
        gid_index=cluster.network.gid_index,
        units=(spec.precompile_unit, spec.unit) if spec else (),
        model_path=cluster.model.path,
        model_revision=cluster.model.revision,
        model_disk_gb=verify.model_disk_gb,
        iommu_passthrough=cluster.host.tuning.iommu_passthrough,
        deepep_driver_options=cluster.host.deepep_driver_options,
        allreduce=verify.allreduce,
        allreduce_busbw_gbps=verify.allreduce_busbw_gbps,
        allreduce_size_mib=verify.allreduce_size_mib,
        allreduce_warn_percent=verify.allreduce_warn_percent,
    )


@dataclass(frozen=True)
class NodeFacts:
    """A node's readings, parsed. None where a reading could not be taken (the field's comment says when)."""

    gpus: GpuInventory | None  # None: nvidia-smi absent or failing (gpu_error says how)
    gpu_error: str
    topology: dict | None  # {(GPU0, GPU1): "NV18"}; None: `nvidia-smi topo -m` failed
    nvlink: dict | None  # {GPU index: {link: GB/s or None}}; None: `nvidia-smi nvlink -s` failed
    fabricmanager_version: str | None  # None: nv-fabricmanager not installed
    systemd: bool  # PID 1 is systemd (systemctl answers)
    fabricmanager_state: str | None  # systemctl is-active; None without systemd
    nvidia_params: dict | None  # None: /proc/driver/nvidia/params absent (module not loaded)
    modules: frozenset
    rdma: tuple[RdmaPort, ...]
    cmdline: dict
    iommu_groups: int | None
    memlock: dict  # {unit: {"LoadState": ..., "LimitMEMLOCK": ...}}
    disk: DiskSpace | None
    weights_index: WeightsIndex | None  # None: no model.safetensors.index.json at model.path
    weight_files: dict  # {shard file name: bytes} at model.path
    weights_stamp: dict | None  # the stager's stamp at model.path (pdfleet.weightsplan.STAMP); None: none
    clock: bool | None  # None: neither timedatectl nor chronyc answered
    allreduce: dict | None  # allreduce_bench's JSON; None: not measured (verify.allreduce: false)


def _first_line(probe: Probe | None) -> str:
    lines = [line.strip() for line in (probe.text if probe else "").splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def facts_from_probe(probe: dict[str, Probe], allreduce: dict | None = None) -> NodeFacts:
    """Parse a roles.facts.NodeProbe reading (and the all-reduce measurement) into NodeFacts."""
    empty = Probe(None, "")

    def section(name: str) -> Probe:
        return probe.get(name, empty)

    gpus, gpu_error = None, ""
    smi = section("nvidia-smi")
    if smi.missing:
        gpu_error = "nvidia-smi not found"
    elif not smi.ok:
        gpu_error = f"nvidia-smi failed (exit {smi.exit_status}): {_first_line(smi)}"
    else:
        try:
            gpus = hostfacts.parse_nvidia_smi_xml(smi.text)
        except ParseError as exc:
            gpu_error = f"nvidia-smi -q -x printed no XML ({exc}): {_first_line(smi)}"
    systemd = section("systemd").text.strip() == "yes"
    fm_state = section("fabricmanager-state")
    index = section("weights-index")
    iommu = section("iommu-groups").text.strip()
    return NodeFacts(
        gpus=gpus,
        gpu_error=gpu_error,
        topology=hostfacts.parse_topo_matrix(section("topology").text) if section("topology").ok else None,
        nvlink=hostfacts.parse_nvlink_status(section("nvlink").text) if section("nvlink").ok else None,
        fabricmanager_version=hostfacts.parse_fabricmanager_version(section("fabricmanager-version").text),
        systemd=systemd,
        fabricmanager_state=(fm_state.text.strip().splitlines() or ["unknown"])[-1] if systemd else None,
        nvidia_params=hostfacts.parse_nvidia_params(section("nvidia-params").text)
        if section("nvidia-params").ok
        else None,
        modules=frozenset(hostfacts.parse_live_modules(section("modules").text)),
        rdma=tuple(hostfacts.parse_rdma_sysfs(section("rdma").text)),
        cmdline=hostfacts.parse_cmdline(section("cmdline").text),
        iommu_groups=int(iommu) if iommu.isdigit() else None,
        memlock=hostfacts.parse_systemctl_show(section("memlock").text) if systemd else {},
        disk=hostfacts.parse_df(section("disk").text),
        weights_index=hostfacts.parse_weights_index(index.text) if index.ok else None,
        weight_files=hostfacts.parse_file_sizes(section("weights-files").text),
        weights_stamp=hostfacts.parse_weights_stamp(section("weights-stamp").text),
        clock=hostfacts.parse_clock(section("clock").text),
        allreduce=allreduce,
    )


def _listing(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# ---- GPUs -----------------------------------------------------------------------------------------------------


def check_gpus(f: NodeFacts, e: Expectations) -> list[Result]:
    expected_count = f"{e.gpus} GPUs"
    if f.gpus is None:
        return [Result("gpu.count", FAIL, f.gpu_error, expected_count, f"install the driver set: {HOST_DEPLOY}")]
    gpus = f.gpus.gpus
    results = []
    indexes = ",".join(str(g.index) for g in gpus)
    results.append(
        Result("gpu.count", PASS, f"{len(gpus)} GPUs", expected_count)
        if len(gpus) == e.gpus
        else Result(
            "gpu.count",
            FAIL,
            f"{len(gpus)} GPUs (index {indexes or 'none'})",
            expected_count,
            "a GPU is missing: look for Xid 79 (fallen off the bus) in `dmesg`, then reseat or replace it",
        )
    )
    names = sorted({g.name for g in gpus})
    wrong = [f"GPU {g.index}: {g.name}" for g in gpus if e.gpu_model not in g.name]
    results.append(
        Result("gpu.model", PASS, ", ".join(names), f"names containing {e.gpu_model!r}")
        if not wrong
        else Result(
            "gpu.model",
            FAIL,
            _listing(wrong),
            f"names containing {e.gpu_model!r}",
            "this node has other GPUs than the inventory says: fix gpu_model of the node (or defaults)",
        )
    )
    memory = [g.memory_total_mib for g in gpus if g.memory_total_mib is not None]
    low = f"{min(memory)} MiB" if memory else "no reading"
    if e.gpu_memory_mib is None:
        results.append(
            Result(
                "gpu.memory",
                WARN,
                low,
                f"no known minimum for {e.gpu_model!r}",
                "set verify.gpu_memory_mib to the memory each GPU must report",
            )
        )
    else:
        short = [
            f"GPU {g.index}: {g.memory_total_mib} MiB" for g in gpus if (g.memory_total_mib or 0) < e.gpu_memory_mib
        ]
        results.append(
            Result("gpu.memory", PASS, f"at least {low} on each", f">= {e.gpu_memory_mib} MiB each")
            if not short
            else Result(
                "gpu.memory",
                FAIL,
                _listing(short),
                f">= {e.gpu_memory_mib} MiB each",
                "a GPU reports less memory than its model has: check `nvidia-smi -q -d MEMORY`, MIG and the driver",
            )
        )
    driver = f.gpus.driver_version
    results.append(
        Result("gpu.driver", PASS, driver, e.driver_version)
        if driver == e.driver_version
        else Result(
            "gpu.driver",
            FAIL,
            driver,
            f"{e.driver_version} (host.nvidia.driver_version)",
            f"install the inventory's driver set and reboot: {HOST_DEPLOY}",
        )
    )
    off = [str(g.index) for g in gpus if not g.persistence_mode]
    results.append(
        Result("gpu.persistence", PASS, "on for every GPU", "on")
        if not off
        else Result(
            "gpu.persistence",
            FAIL,
            f"off on GPU {','.join(off)}",
            "on",
            "enable the persistence daemon: systemctl enable --now nvidia-persistenced (deploys/host.py does)",
        )
    )
    no_ecc = [str(g.index) for g in gpus if not g.ecc_enabled]
    errors = [f"GPU {g.index}: {g.ecc_uncorrected_volatile}" for g in gpus if (g.ecc_uncorrected_volatile or 0) > 0]
    unread = [str(g.index) for g in gpus if g.ecc_enabled and g.ecc_uncorrected_volatile is None]
    if no_ecc:
        results.append(
            Result(
                "gpu.ecc",
                FAIL,
                f"ECC off on GPU {','.join(no_ecc)}",
                "ECC on, 0 uncorrected errors",
                "turn ECC on (nvidia-smi -e 1) and reboot",
            )
        )
    elif errors:
        results.append(
            Result(
                "gpu.ecc",
                FAIL,
                f"uncorrected volatile ECC errors: {_listing(errors)}",
                "ECC on, 0 uncorrected errors",
                "drain the node and reset the GPU (or reboot); if errors come back, replace the GPU",
            )
        )
    elif unread:
        results.append(
            Result(
                "gpu.ecc",
                WARN,
                f"no ECC error counts for GPU {','.join(unread)}",
                "ECC on, 0 uncorrected errors",
                "read them by hand: nvidia-smi -q -d ECC",
            )
        )
    else:
        results.append(Result("gpu.ecc", PASS, "on, 0 uncorrected errors", "ECC on, 0 uncorrected errors"))
    mig = [str(g.index) for g in gpus if g.mig_enabled]
    results.append(
        Result("gpu.mig", PASS, "off", "off")
        if not mig
        else Result(
            "gpu.mig",
            FAIL,
            f"on for GPU {','.join(mig)}",
            "off",
            "turn MIG off (nvidia-smi -i N -mig 0) and reset the GPU: SGLang needs whole GPUs",
        )
    )
    failed = [str(g.index) for g in gpus if g.remapped_rows_failure]
    pending = [str(g.index) for g in gpus if g.remapped_rows_pending or g.retired_pages_pending]
    expected_health = "no row-remap failure, nothing pending"
    if failed:
        results.append(
            Result(
                "gpu.memory_health",
                FAIL,
                f"row remapping failed on GPU {','.join(failed)}",
                expected_health,
                "the GPU ran out of spare rows: replace it (NVIDIA's row remapping guide)",
            )
        )
    elif pending:
        results.append(
            Result(
                "gpu.memory_health",
                WARN,
                f"row remap or page retirement pending on GPU {','.join(pending)}",
                expected_health,
                "reset the GPU or reboot to apply the pending remap",
            )
        )
    else:
        results.append(Result("gpu.memory_health", PASS, "no remap failure, nothing pending", expected_health))
    return results


# ---- NVLink and the NVSwitch fabric ----------------------------------------------------------------------------


def check_nvlink(f: NodeFacts, e: Expectations) -> list[Result]:
    if not e.nvswitch:
        return []  # the inventory says this node has no NVSwitch: nothing to expect
    results = []
    names = [f"GPU{g.index}" for g in f.gpus.gpus] if f.gpus else []
    expected_mesh = f"{e.nvlink} between every GPU pair"
    if f.topology is None:
        results.append(
            Result("nvlink.topology", FAIL, "nvidia-smi topo -m failed", expected_mesh, "run it by hand for the error")
        )
    else:
        seen_gpus = sorted({a for a, _ in f.topology} | set(names), key=lambda n: int(n[3:]))
        wrong = []
        for i, a in enumerate(seen_gpus):
            for b in seen_gpus[i + 1 :]:
                link = f.topology.get((a, b), "none")
                if link != e.nvlink:
                    wrong.append(f"{a}-{b} {link}")
        pairs = len(seen_gpus) * (len(seen_gpus) - 1) // 2
        results.append(
            Result(
                "nvlink.topology", PASS, f"{e.nvlink} between all {pairs} pairs of {len(seen_gpus)} GPUs", expected_mesh
            )
            if not wrong and seen_gpus
            else Result(
                "nvlink.topology",
                FAIL,
                _listing(wrong) if wrong else "no GPU in the matrix",
                expected_mesh,
                "a GPU reaches another over fewer NVLinks or PCIe: check `nvidia-smi nvlink -s`, the fabric, reseat",
            )
        )
    links_expected = int(e.nvlink[2:])
    expected_links = f"{links_expected} links per GPU, each >= {e.nvlink_link_gbps} GB/s"
    if f.nvlink is None:
        results.append(
            Result("nvlink.links", FAIL, "nvidia-smi nvlink -s failed", expected_links, "run it by hand for the error")
        )
    else:
        bad = []
        speeds = set()
        for gpu, links in sorted(f.nvlink.items()):
            if len(links) != links_expected:
                bad.append(f"GPU {gpu}: {len(links)} links")
            for link, speed in sorted(links.items()):
                if speed is None:
                    bad.append(f"GPU {gpu} link {link} inactive")
                elif speed < e.nvlink_link_gbps:
                    bad.append(f"GPU {gpu} link {link} {speed} GB/s")
                else:
                    speeds.add(speed)
        missing = [n for n in (g.index for g in f.gpus.gpus) if n not in f.nvlink] if f.gpus else []
        bad += [f"GPU {n}: no links" for n in missing]
        shown = ", ".join(f"{s:g}" for s in sorted(speeds))
        results.append(
            Result(
                "nvlink.links", PASS, f"{len(f.nvlink)} GPUs x {links_expected} links at {shown} GB/s", expected_links
            )
            if not bad and f.nvlink
            else Result(
                "nvlink.links",
                FAIL,
                _listing(bad) if bad else "no NVLink reported",
                expected_links,
                "a degraded NVLink: `nvidia-smi nvlink -e` for error counters; reset the GPU, then reseat or RMA",
            )
        )
    return results


def check_fabric(f: NodeFacts, e: Expectations) -> list[Result]:
    if not e.nvswitch:
        return []
    results = []
    expected_state = "Completed / Success on every GPU"
    fabric_ok = False
    if f.gpus is None:
        results.append(Result("fabric.state", FAIL, f.gpu_error, expected_state, "the GPUs must answer first"))
    else:
        wrong = [
            f"GPU {g.index}: {g.fabric_state}/{g.fabric_status}"
            for g in f.gpus.gpus
            if (g.fabric_state, g.fabric_status) != ("Completed", "Success")
        ]
        fabric_ok = not wrong and bool(f.gpus.gpus)
        results.append(
            Result("fabric.state", PASS, "Completed / Success on every GPU", expected_state)
            if fabric_ok
            else Result(
                "fabric.state",
                FAIL,
                _listing(wrong) if wrong else "no GPU",
                expected_state,
                "the NVSwitch fabric is not trained: start nvidia-fabricmanager and read /var/log/fabricmanager.log",
            )
        )
    driver = f.gpus.driver_version if f.gpus else e.driver_version
    expected = f"nv-fabricmanager {driver} (the driver's version), service active"
    version = f.fabricmanager_version
    if version is None:
        if fabric_ok:
            results.append(
                Result(
                    "fabric.manager",
                    WARN,
                    "nv-fabricmanager not installed, yet the fabric is trained",
                    expected,
                    "fabric managed outside this host (a VM on a host that runs it)? else install it: " + HOST_DEPLOY,
                )
            )
        else:
            results.append(
                Result(
                    "fabric.manager",
                    FAIL,
                    "nv-fabricmanager not installed",
                    expected,
                    f"install nvidia-fabricmanager at the driver's version: {HOST_DEPLOY}",
                )
            )
    elif version != driver:
        results.append(
            Result(
                "fabric.manager",
                FAIL,
                f"nv-fabricmanager {version}, driver {driver}",
                expected,
                f"fabric manager and driver must be one version (CUDA error 802 otherwise): {HOST_DEPLOY} and reboot",
            )
        )
    elif f.systemd and f.fabricmanager_state != "active":
        results.append(
            Result(
                "fabric.manager",
                FAIL,
                f"nv-fabricmanager {version}, nvidia-fabricmanager.service {f.fabricmanager_state}",
                expected,
                "systemctl restart nvidia-fabricmanager; journalctl -u nvidia-fabricmanager for why it stopped",
            )
        )
    else:
        state = f", service {f.fabricmanager_state}" if f.systemd else " (no systemd to ask about the service)"
        results.append(Result("fabric.manager", PASS, f"nv-fabricmanager {version}{state}", expected))
    return results


# ---- DeepEP's driver needs ------------------------------------------------------------------------------------


def check_deepep(f: NodeFacts, e: Expectations) -> list[Result]:
    expected = "EnableStreamMemOPs=1 and PeerMappingOverride=1 in RegistryDwords"
    if e.deepep_driver_options:
        fix = f"{HOST_DEPLOY} writes /etc/modprobe.d/pdfleet-deepep.conf and rebuilds the initramfs; then reboot"
    else:
        fix = (
            'host.deepep_driver_options is false: add options nvidia NVreg_EnableStreamMemOPs=1 NVreg_RegistryDwords="'
            'PeerMappingOverride=1;" yourself, rebuild the initramfs, reboot'
        )
    results = []
    params = f.nvidia_params
    if params is None:
        results.append(
            Result("deepep.params", FAIL, "/proc/driver/nvidia/params absent (nvidia not loaded)", expected, fix)
        )
    else:
        stream = params.get("EnableStreamMemOPs", "absent")
        dwords = params.get("RegistryDwords", "")
        peer = hostfacts.parse_registry_dwords(dwords).get("PeerMappingOverride")
        seen = f"EnableStreamMemOPs={stream}, RegistryDwords={dwords!r}"
        results.append(
            Result("deepep.params", PASS, seen, expected)
            if stream == "1" and peer == "1"
            else Result("deepep.params", FAIL, seen, expected, fix)
        )
    missing = [m for m in DEEPEP_MODULES if m not in f.modules]
    results.append(
        Result("deepep.modules", PASS, "gdrdrv, nvidia_peermem loaded", "gdrdrv and nvidia_peermem loaded")
        if not missing
        else Result(
            "deepep.modules",
            FAIL,
            f"not loaded: {', '.join(missing)}",
            "gdrdrv and nvidia_peermem loaded",
            f"{HOST_DEPLOY} installs GDRCopy and loads both at every boot (by hand: modprobe {' '.join(missing)})",
        )
    )
    return results


# ---- RDMA -----------------------------------------------------------------------------------------------------


def check_rdma(f: NodeFacts, e: Expectations) -> list[Result]:
    if not e.hcas:
        return []  # a spare node without HCAs in the inventory: nothing to expect
    present = sorted({p.device for p in f.rdma})
    missing = [h for h in e.hcas if h not in present]
    expected = f"{len(e.hcas)} HCAs: {_listing(list(e.hcas), 8)}"
    if not present:
        return [
            Result(
                "rdma.hcas",
                FAIL,
                "no RDMA devices (/sys/class/infiniband is empty or absent)",
                expected,
                "no RDMA NIC or no driver: install the RDMA stack (host.rdma.stack) with " + HOST_DEPLOY,
            )
        ]
    results = [
        Result("rdma.hcas", PASS, f"all {len(e.hcas)} present", expected)
        if not missing
        else Result(
            "rdma.hcas",
            FAIL,
            f"missing {_listing(missing)} (present: {_listing(present)})",
            expected,
            "fix the node's hcas in the inventory to what `ibv_devinfo -l` lists, or the NIC/driver",
        )
    ]
    ports = [p for p in f.rdma if p.device in e.hcas]
    if not ports:
        return results
    down = [f"{p.device}/{p.port} {p.state or 'unknown'}" for p in ports if p.state != "ACTIVE"]
    results.append(
        Result("rdma.state", PASS, f"{len(ports)} ports ACTIVE", "every port ACTIVE")
        if not down
        else Result(
            "rdma.state",
            FAIL,
            _listing(down),
            "every port ACTIVE",
            "link down: check the cable and the switch port (ibstat; ip link for RoCE)",
        )
    )
    slow = [f"{p.device}/{p.port} {p.rate_gbps or 0:g} Gb/s" for p in ports if (p.rate_gbps or 0) < e.rdma_rate_gbps]
    rates = ", ".join(f"{r:g}" for r in sorted({p.rate_gbps for p in ports if p.rate_gbps}))
    results.append(
        Result("rdma.rate", PASS, f"{rates} Gb/s", f">= {e.rdma_rate_gbps:g} Gb/s")
        if not slow
        else Result(
            "rdma.rate",
            FAIL,
            _listing(slow),
            f">= {e.rdma_rate_gbps:g} Gb/s",
            "a degraded link: reseat or replace the cable/transceiver, check the switch port's speed",
        )
    )
    layers = [f"{p.device}/{p.port} {p.link_layer}" for p in ports if p.link_layer != e.rdma_link_layer]
    results.append(
        Result("rdma.link_layer", PASS, e.rdma_link_layer, e.rdma_link_layer)
        if not layers
        else Result(
            "rdma.link_layer",
            FAIL,
            _listing(layers),
            e.rdma_link_layer,
            "set the port type (mlxconfig LINK_TYPE_P1) or verify.rdma_link_layer to what the fabric is",
        )
    )
    if e.rdma_link_layer == "Ethernet":
        no_gid = [
            f"{p.device}/{p.port}: {p.gids[e.gid_index][1] or 'no type'}"
            if e.gid_index in p.gids
            else f"{p.device}/{p.port}: none"
            for p in ports
            if p.gids.get(e.gid_index, ("", ""))[1] != "RoCE v2"
        ]
        expected_gid = f"a RoCE v2 GID at index {e.gid_index} (network.gid_index) on every port"
        results.append(
            Result("rdma.gid", PASS, f"RoCE v2 at index {e.gid_index} on {len(ports)} ports", expected_gid)
            if not no_gid
            else Result(
                "rdma.gid",
                FAIL,
                _listing(no_gid),
                expected_gid,
                "give the HCA's netdev its address (ibdev2netdev), or set network.gid_index to what show_gids lists",
            )
        )
    return results


# ---- The host -------------------------------------------------------------------------------------------------


def check_host(f: NodeFacts, e: Expectations) -> list[Result]:
    results = []
    if e.units:
        expected = f"LimitMEMLOCK=infinity for {', '.join(e.units)}"
        if not f.systemd:
            results.append(
                Result(
                    "host.memlock",
                    WARN,
                    "PID 1 is not systemd: no units to read",
                    expected,
                    "serving units need systemd; on this host run the servers with ulimit -l unlimited",
                )
            )
        else:
            absent = [u for u in e.units if f.memlock.get(u, {}).get("LoadState", "not-found") == "not-found"]
            limited = [
                f"{u}: {f.memlock[u].get('LimitMEMLOCK', '?')}"
                for u in e.units
                if u not in absent and f.memlock[u].get("LimitMEMLOCK") != "infinity"
            ]
            if limited:
                results.append(
                    Result(
                        "host.memlock",
                        FAIL,
                        _listing(limited),
                        expected,
                        "RDMA registration needs unlimited locked memory: install pdfleet's units (deploys/serve.py)",
                    )
                )
            elif absent:
                results.append(
                    Result(
                        "host.memlock",
                        WARN,
                        f"not installed yet: {', '.join(absent)}",
                        expected,
                        "deploys/serve.py installs them with LimitMEMLOCK=infinity",
                    )
                )
            else:
                results.append(Result("host.memlock", PASS, "infinity", expected))
    need = e.model_disk_gb * 1e9
    present = sum(f.weight_files.values())
    expected_disk = f"free + weights present >= {e.model_disk_gb} GB at {e.model_path}"
    if f.disk is None:
        results.append(Result("host.disk", FAIL, "df printed nothing", expected_disk, f"check {e.model_path} by hand"))
    else:
        seen = f"{f.disk.available_bytes / 1e9:.0f} GB free on {f.disk.mount}, {present / 1e9:.0f} GB of shards there"
        results.append(
            Result("host.disk", PASS, seen, expected_disk)
            if f.disk.available_bytes + present >= need
            else Result(
                "host.disk",
                FAIL,
                seen,
                expected_disk,
                "make room, or put model.path on a filesystem with space for the weights",
            )
        )
    expected_weights = f"every shard model.safetensors.index.json lists, at {e.model_path}"
    index = f.weights_index
    if index is None:
        results.append(
            Result(
                "host.weights",
                WARN,
                f"not staged: no {hostfacts.WEIGHTS_INDEX} in {e.model_path}",
                expected_weights,
                "deploys/serve.py stages the pinned revision",
            )
        )
    else:
        missing = [s for s in index.shards if f.weight_files.get(s, 0) == 0]
        total = sum(f.weight_files.get(s, 0) for s in index.shards)
        if missing or not index.shards:
            results.append(
                Result(
                    "host.weights",
                    FAIL,
                    f"{len(missing)} of {len(index.shards)} shards missing or empty: {_listing(missing)}",
                    expected_weights,
                    "deploys/serve.py resumes the copy and verifies it",
                )
            )
        elif index.total_size is not None and total < index.total_size:
            results.append(
                Result(
                    "host.weights",
                    FAIL,
                    f"shards hold {total} bytes, fewer than the {index.total_size} tensor bytes the index declares",
                    expected_weights,
                    "a shard is truncated: deploys/serve.py verifies and fetches it again",
                )
            )
        else:
            results.append(_staged_revision(f.weights_stamp, e, f"{len(index.shards)} shards, {total / 1e9:.0f} GB"))
    results.append(
        Result("host.clock", PASS, "synchronised", "synchronised (NTP)")
        if f.clock
        else Result(
            "host.clock",
            FAIL if f.clock is False else WARN,
            "not synchronised" if f.clock is False else "cannot tell: neither timedatectl (systemd) nor chronyc",
            "synchronised (NTP)",
            "chrony keeps the clock (deploys/host.py installs it); chronyc sources shows its servers",
        )
    )
    iommu = f.cmdline.get("iommu", "absent") if "iommu" in f.cmdline else "absent"
    if not e.iommu_passthrough:
        results.append(Result("host.cmdline", PASS, f"iommu={iommu}", "anything (host.tuning.iommu_passthrough off)"))
    elif iommu == "pt":
        results.append(Result("host.cmdline", PASS, "iommu=pt", "iommu=pt"))
    elif f.iommu_groups == 0:
        results.append(
            Result(
                "host.cmdline",
                WARN,
                f"iommu={iommu}, and no IOMMU groups: no IOMMU translates DMA here",
                "iommu=pt",
                f"harmless while the IOMMU is off; {HOST_DEPLOY} sets iommu=pt (reboot) for when it is on",
            )
        )
    else:
        results.append(
            Result(
                "host.cmdline",
                FAIL,
                f"iommu={iommu} ({f.iommu_groups} IOMMU groups)",
                "iommu=pt",
                f"GPUDirect RDMA through a translating IOMMU is slow: {HOST_DEPLOY} sets iommu=pt; reboot",
            )
        )
    return results


# ---- NCCL all-reduce ------------------------------------------------------------------------------------------


def check_allreduce(f: NodeFacts, e: Expectations) -> list[Result]:
    threshold = e.allreduce_busbw_gbps
    expected = f">= {threshold:g} GB/s bus bandwidth at {e.allreduce_size_mib} MiB"
    name = "nccl.allreduce"
    reading = f.allreduce
    if reading is None:
        return [Result(name, WARN, "not measured (verify.allreduce: false)", expected, "")]
    status = reading.get("status")
    reason = reading.get("reason", "")
    gpus_seen = len(f.gpus.gpus) if f.gpus else 0
    if status == "unavailable" or (status == "no-gpus" and not gpus_seen):
        return [
            Result(
                name,
                WARN,
                f"not measured: {reason}",
                expected,
                "install the serving runtime (its Python has torch) first, or run nccl-tests' all_reduce_perf",
            )
        ]
    if status == "no-gpus":
        return [
            Result(
                name,
                FAIL,
                f"CUDA sees no GPU while nvidia-smi lists {gpus_seen}: {reason}",
                expected,
                "CUDA cannot start (error 802 when the fabric manager is down): check fabric.manager, dmesg",
            )
        ]
    if status != "ok":
        return [Result(name, FAIL, f"measurement failed: {reason}", expected, "rerun with NCCL_DEBUG=INFO to see why")]
    by_size = {r.get("size_mb"): r for r in reading.get("results", [])}
    details = {
        "world": reading.get("world"),
        "nccl": reading.get("nccl"),
        "torch": reading.get("torch"),
        "nccl_nvls_enable": reading.get("nccl_nvls_enable"),
        "results": reading.get("results", []),
    }
    row = by_size.get(e.allreduce_size_mib)
    if row is None:
        return [Result(name, FAIL, f"no result at {e.allreduce_size_mib} MiB", expected, "", details)]
    busbw = float(row["busbw_gbs"])
    seen = f"{busbw:.1f} GB/s over {reading.get('world')} GPUs"
    if busbw >= threshold:
        return [Result(name, PASS, seen, expected, "", details)]
    floor = threshold * (1 - e.allreduce_warn_percent / 100)
    hint = "a slow NVLink path: check nvlink.links, `nvidia-smi nvlink -e`, and NCCL_DEBUG=INFO for the transport used"
    return [Result(name, WARN if busbw >= floor else FAIL, seen, expected, hint, details)]


def unreadable() -> Result:
    """The result for a node whose probe printed nothing at all (the shell failed: sudo, a lost connection)."""
    return Result(
        "probe",
        FAIL,
        "no readings: the probe printed nothing (pyinfra's output above says why)",
        "the node answers roles.facts.NodeProbe",
        "run it by hand to see the error: pyinfra INVENTORY deploys/verify.py -v",
    )


CHECKS = (check_gpus, check_nvlink, check_fabric, check_deepep, check_rdma, check_host, check_allreduce)


def check_node(f: NodeFacts, e: Expectations) -> list[Result]:
    """Every check of one node, in the order of docs/preflight.md."""
    return [result for check in CHECKS for result in check(f, e)]


# ---- Reports --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeReport:
    node: str
    host: str  # as pyinfra names it: the node name, or @local
    results: tuple[Result, ...]
    seconds: float | None = None  # how long the readings took

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.results if r.status == s) for s in (PASS, WARN, FAIL)}

    def to_dict(self) -> dict:
        return {
            "node": self.node,
            "host": self.host,
            "seconds": self.seconds,
            "counts": self.counts,
            "results": [{k: v for k, v in asdict(r).items() if v is not None} for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict) -> NodeReport:
        results = tuple(
            Result(r["check"], r["status"], r["seen"], r["expected"], r.get("hint", ""), r.get("details"))
            for r in data["results"]
        )
        return cls(data["node"], data["host"], results, data.get("seconds"))


def failed(reports: list[NodeReport]) -> bool:
    return any(r.status == FAIL for report in reports for r in report.results)


def to_json(reports: list[NodeReport]) -> str:
    return json.dumps({"failed": failed(reports), "nodes": [r.to_dict() for r in reports]}, indent=2)


def to_table(reports: list[NodeReport]) -> str:
    """One block per node: CHECK, STATUS, SEEN, EXPECTED, and the hint under every row that is not PASS."""
    out = []
    for report in reports:
        counts = report.counts
        took = f" in {report.seconds:.1f} s" if report.seconds is not None else ""
        header = f"== {report.node}" + (f" ({report.host})" if report.host != report.node else "")
        out.append(f"{header}: {counts[PASS]} PASS, {counts[WARN]} WARN, {counts[FAIL]} FAIL{took}")
        rows = [("CHECK", "STATUS", "SEEN", "EXPECTED")] + [
            (r.check, r.status, r.seen, r.expected) for r in report.results
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for index, row in enumerate(rows):
            line = "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
            out.append(f"{line}  {row[3]}".rstrip())
            result = report.results[index - 1] if index else None
            if result is not None and result.status != PASS and result.hint:
                out.append(f"{'':{widths[0]}}  -> {result.hint}")
        out.append("")
    total = {s: sum(r.counts[s] for r in reports) for s in (PASS, WARN, FAIL)}
    verdict = "FAILED" if failed(reports) else "passed"
    out.append(
        f"preflight {verdict}: {len(reports)} node(s), {total[PASS]} PASS, {total[WARN]} WARN, {total[FAIL]} FAIL"
    )
    return "\n".join(out)


def _staged_revision(stamp: dict | None, e, shards: str) -> Result:
    """Shards complete: which revision they are, when pdfleet's stager staged and verified them."""
    expected = f"every shard of revision {e.model_revision[:12]} at {e.model_path}"
    if stamp is None:
        return Result("host.weights", PASS, f"{shards} (staged without pdfleet: revision not recorded)", expected)
    revision = str(stamp.get("revision"))
    if revision != e.model_revision:
        return Result(
            "host.weights",
            FAIL,
            f"{shards} of revision {revision[:12]}",
            expected,
            "the inventory pins another revision: deploys/serve.py stages it",
        )
    return Result("host.weights", PASS, f"{shards}, revision {revision[:12]} verified by pdfleet", expected)
