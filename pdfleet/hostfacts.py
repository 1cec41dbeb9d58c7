"""Parsers for what a GPU node reports about itself: plain data from raw command output, no I/O.

pyinfra facts (in roles/) run the commands and hand their output to these functions; the preflight checks and
the host roles decide on the plain data. Every parser is tested on real captured outputs of an 8xH200 node
(tests/fixtures/h200-8gpu-node) and on variants made from them.
"""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    uuid: str
    pci_bus_id: str
    memory_total_mib: int | None
    persistence_mode: bool
    mig_enabled: bool
    ecc_enabled: bool
    ecc_uncorrected_volatile: int | None  # SRAM + DRAM uncorrectable errors since the driver loaded
    retired_pages_pending: bool
    remapped_rows_failure: bool
    remapped_rows_pending: bool
    fabric_state: str  # "Completed" when the fabric manager has trained the NVSwitch fabric; "N/A" without one
    fabric_status: str  # "Success" or an error


@dataclass(frozen=True)
class GpuInventory:
    driver_version: str
    cuda_version: str
    gpus: tuple[Gpu, ...] = field(default_factory=tuple)


def _text(element, path: str, default: str = "N/A") -> str:
    found = element.find(path)
    return found.text.strip() if found is not None and found.text else default


def _int(value: str) -> int | None:
    match = re.match(r"^\s*(\d+)", value)
    return int(match.group(1)) if match else None


def parse_nvidia_smi_xml(text: str) -> GpuInventory:
    """`nvidia-smi -q -x`: the one machine-readable view of every GPU (0.8 s for 8 GPUs on an H200 node)."""
    root = ElementTree.fromstring(text.encode())  # the DOCTYPE names an external DTD, which expat skips
    gpus = []
    for index, gpu in enumerate(root.findall("gpu")):
        volatile = gpu.find("ecc_errors/volatile")
        uncorrected = None
        if volatile is not None:
            counts = [_int(child.text or "") for child in volatile if "uncorrectable" in child.tag]
            uncorrected = sum(c for c in counts if c is not None) if any(c is not None for c in counts) else None
        gpus.append(
            Gpu(
                index=int(_text(gpu, "minor_number", str(index))) if _text(gpu, "minor_number").isdigit() else index,
                name=_text(gpu, "product_name"),
                uuid=_text(gpu, "uuid"),
                pci_bus_id=gpu.get("id", ""),
                memory_total_mib=_int(_text(gpu, "fb_memory_usage/total")),
                persistence_mode=_text(gpu, "persistence_mode") == "Enabled",
                mig_enabled=_text(gpu, "mig_mode/current_mig") == "Enabled",
                ecc_enabled=_text(gpu, "ecc_mode/current_ecc") == "Enabled",
                ecc_uncorrected_volatile=uncorrected,
                retired_pages_pending=_text(gpu, "retired_pages/pending_retirement") == "Yes",
                remapped_rows_failure=_text(gpu, "remapped_rows/remapped_row_failure") == "Yes",
                remapped_rows_pending=_text(gpu, "remapped_rows/remapped_row_pending") == "Yes",
                fabric_state=_text(gpu, "fabric/state"),
                fabric_status=_text(gpu, "fabric/status"),
            )
        )
    return GpuInventory(
        driver_version=_text(root, "driver_version"),
        cuda_version=_text(root, "cuda_version"),
        gpus=tuple(sorted(gpus, key=lambda g: g.index)),
    )


def parse_nvidia_params(text: str) -> dict[str, str]:
    """/proc/driver/nvidia/params: `Name: value` per line (quotes kept off string values)."""
    params = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            params[key.strip()] = value.strip().strip('"')
    return params


def parse_registry_dwords(value: str) -> dict[str, str]:
    """NVreg_RegistryDwords / the RegistryDwords param: `Key=Value;Key2=Value2;`."""
    pairs = {}
    for item in value.split(";"):
        if "=" in item:
            key, val = item.split("=", 1)
            pairs[key.strip()] = val.strip()
    return pairs


def parse_proc_modules(text: str) -> set[str]:
    """/proc/modules: the names of the loaded kernel modules."""
    return {line.split()[0] for line in text.splitlines() if line.strip()}


# The loaded modules as sysfs shows them: /sys/module/<name>/initstate reads "live" (present also on kernels whose
# /proc/modules is absent).
LIVE_MODULES_COMMAND = "grep -H . /sys/module/*/initstate 2>/dev/null || true"


def parse_live_modules(text: str) -> set[str]:
    """`grep -H . /sys/module/*/initstate` output: the names of the modules whose state is live."""
    live = set()
    for line in text.splitlines():
        path, _, state = line.partition(":")
        parts = path.split("/")
        if state.strip() == "live" and len(parts) == 5 and parts[:3] == ["", "sys", "module"]:
            live.add(parts[3])
    return live


def parse_cmdline(text: str) -> dict[str, str | None]:
    """/proc/cmdline: `key=value` and bare `flag` words (values keep their own '=' signs)."""
    params: dict[str, str | None] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        params[key] = value if sep else None
    return params


def parse_topo_matrix(text: str) -> dict[tuple[str, str], str]:
    """`nvidia-smi topo -m`: the connection between every pair of GPUs ('NV18', 'SYS', 'PIX', ...).

    Written to a pipe, nvidia-smi 580 still underlines the header row (ESC[4m ... ESC[0m): escapes are dropped.
    """
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    header = lines[0].split()
    gpus = [h for h in header if re.fullmatch(r"GPU\d+", h)]
    links = {}
    for line in lines[1:]:
        cells = line.split()
        if not cells or not re.fullmatch(r"GPU\d+", cells[0]):
            continue
        for column, value in zip(gpus, cells[1 : 1 + len(gpus)], strict=False):
            if column != cells[0]:
                links[(cells[0], column)] = value
    return links


@dataclass(frozen=True)
class RdmaPort:
    device: str
    port: int
    state: str  # "ACTIVE", "DOWN", ...
    rate_gbps: float | None
    link_layer: str  # "InfiniBand" or "Ethernet"
    gids: dict = field(default_factory=dict, hash=False)  # index -> (gid, type "RoCE v2" / "IB/RoCE v1" / "")


# One line per sysfs value, so a fact can read every HCA in one round trip:
#   <device>/<port>/<attribute>[/<index>]<TAB><value>
RDMA_SYSFS_COMMAND = (
    'for p in /sys/class/infiniband/*/ports/*; do [ -d "$p" ] || continue; '
    "d=${p#/sys/class/infiniband/}; d=${d%%/*}; n=${p##*/}; "
    'for a in state rate link_layer; do printf \'%s/%s/%s\\t%s\\n\' "$d" "$n" "$a" "$(cat $p/$a 2>/dev/null)"; done; '
    "for g in $p/gids/*; do i=${g##*/}; v=$(cat $g 2>/dev/null) || continue; "
    "case $v in 0000:0000:0000:0000:0000:0000:0000:0000|fe80:0000:0000:0000:0000:0000:0000:0000) continue;; esac; "
    't=$(cat $p/gid_attrs/types/$i 2>/dev/null); printf \'%s/%s/gid/%s\\t%s\\t%s\\n\' "$d" "$n" "$i" "$v" "$t"; '
    "done; done"
)


def parse_rdma_sysfs(text: str) -> list[RdmaPort]:
    """The output of RDMA_SYSFS_COMMAND: every port of every HCA with state, rate, link layer and its GIDs."""
    ports: dict[tuple[str, int], dict] = {}
    for line in text.splitlines():
        if "\t" not in line:
            continue
        key, *values = line.split("\t")
        parts = key.split("/")
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        entry = ports.setdefault((parts[0], int(parts[1])), {"gids": {}})
        if parts[2] == "gid" and len(parts) == 4:
            entry["gids"][int(parts[3])] = (values[0], values[1] if len(values) > 1 else "")
        elif parts[2] in ("state", "rate", "link_layer"):
            entry[parts[2]] = values[0] if values else ""
    result = []
    for (device, port), entry in sorted(ports.items()):
        state = entry.get("state", "")
        rate = re.match(r"\s*([\d.]+)\s*Gb/sec", entry.get("rate", ""))
        result.append(
            RdmaPort(
                device=device,
                port=port,
                state=state.split(":")[-1].strip() if state else "",
                rate_gbps=float(rate.group(1)) if rate else None,
                link_layer=entry.get("link_layer", ""),
                gids=entry["gids"],
            )
        )
    return result


# ---- Preflight readings (pdfleet preflight, deploys/verify.py) ------------------------------------------------


def parse_nvlink_status(text: str) -> dict[int, dict[int, float | None]]:
    """`nvidia-smi nvlink -s`: {GPU index: {link: speed in GB/s, or None for an <inactive> link}}."""
    gpus: dict[int, dict[int, float | None]] = {}
    current: dict[int, float | None] | None = None
    for line in text.splitlines():
        gpu = re.match(r"^GPU (\d+):", line)
        if gpu:
            current = gpus.setdefault(int(gpu.group(1)), {})
            continue
        link = re.match(r"^\s+Link (\d+):\s*(.*)$", line)
        if link and current is not None:
            speed = re.match(r"([\d.]+)\s*GB/s", link.group(2))
            current[int(link.group(1))] = float(speed.group(1)) if speed else None
    return gpus


def parse_fabricmanager_version(text: str) -> str | None:
    """`nv-fabricmanager --version`: "Fabric Manager version is : 580.159.04" -> "580.159.04"."""
    match = re.search(r"Fabric Manager version is\s*:\s*(\S+)", text)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Probe:
    """One command's output (stdout and stderr together) and exit status, from a NODE_PROBE run."""

    exit_status: int | None
    text: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def missing(self) -> bool:
        """The command itself was not found (sh's 127)."""
        return self.exit_status == 127


PROBE_MARK = "=== pdfleet-probe"


def probe_command(sections: dict[str, str]) -> str:
    """One shell script that runs every section's command (stdout and stderr together) between markers.

    The script always exits 0: a failing command is a reading (its exit status is kept), not a failed host.
    """
    parts = []
    for name, command in sections.items():
        parts.append(f"echo '{PROBE_MARK} {name}'\n( {command}\n) 2>&1\necho \"{PROBE_MARK} {name} exit=$?\"")
    return "\n".join(parts) + "\ntrue"


def parse_probe(text: str) -> dict[str, Probe]:
    """The output of a probe_command script: {section name: Probe}."""
    sections: dict[str, Probe] = {}
    name, lines = None, []
    for line in text.splitlines():
        if line.startswith(PROBE_MARK + " "):
            rest = line[len(PROBE_MARK) + 1 :].split()
            if len(rest) == 1:
                name, lines = rest[0], []
                continue
            if len(rest) == 2 and rest[1].startswith("exit=") and rest[0] == name:
                status = rest[1][len("exit=") :]
                sections[name] = Probe(int(status) if status.isdigit() else None, "\n".join(lines))
                name, lines = None, []
                continue
        if name is not None:
            lines.append(line)
    if name is not None:  # cut off before its exit line
        sections[name] = Probe(None, "\n".join(lines))
    return sections


# The weights' index: every shard file it names and the tensor bytes it declares (python3 is on every Ubuntu node).
WEIGHTS_INDEX_SCRIPT = (
    "import json,sys; d=json.load(open(sys.argv[1])); "
    'print("total_size", d.get("metadata", {}).get("total_size", "")); '
    '[print("shard", s) for s in sorted(set(d["weight_map"].values()))]'
)
WEIGHTS_INDEX = "model.safetensors.index.json"


def parse_weights_stamp(text: str) -> dict | None:
    """The stager's stamp ({"repo", "revision", "files", ...}); None when absent or unreadable."""
    try:
        stamp = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return stamp if isinstance(stamp, dict) else None


def node_probe_sections(model_path: str, units: tuple[str, ...] | list[str]) -> dict[str, str]:
    """What the preflight reads from a node, as {section: shell command}; every command only reads."""
    path = shlex.quote(model_path)
    index = shlex.quote(f"{model_path.rstrip('/')}/{WEIGHTS_INDEX}")
    stamp = shlex.quote(f"{model_path.rstrip('/')}/.pdfleet/verified.json")
    sections = {
        "nvidia-smi": "timeout 120 nvidia-smi -q -x",
        "topology": "timeout 60 nvidia-smi topo -m",
        "nvlink": "timeout 60 nvidia-smi nvlink -s",
        "fabricmanager-version": "nv-fabricmanager --version",
        "systemd": "if [ -d /run/systemd/system ]; then echo yes; else echo no; fi",
        "fabricmanager-state": "systemctl is-active nvidia-fabricmanager.service",
        "nvidia-params": "cat /proc/driver/nvidia/params",
        "modules": LIVE_MODULES_COMMAND,
        "rdma": RDMA_SYSFS_COMMAND,
        "cmdline": "cat /proc/cmdline",
        "iommu-groups": "ls /sys/kernel/iommu_groups 2>/dev/null | wc -l",
        "disk": f'p={path}; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; df -P -B1 "$p"',
        "weights-index": f"if [ -f {index} ]; then python3 -c '{WEIGHTS_INDEX_SCRIPT}' {index}; else echo none; fi",
        "weights-files": f"find {path} -maxdepth 1 -type f -name '*.safetensors' -printf '%f\\t%s\\n' 2>/dev/null",
        # The stamp pdfleet's stager writes after verifying a staged revision (pdfleet.weightsplan.STAMP).
        "weights-stamp": f"cat {stamp} 2>/dev/null || true",
        "clock": (
            "if [ -d /run/systemd/system ] && command -v timedatectl >/dev/null 2>&1; then "
            "echo timedatectl; timedatectl show -p NTPSynchronized --value; "
            "elif command -v chronyc >/dev/null 2>&1; then echo chronyc; chronyc -n tracking; "
            "else echo none; fi"
        ),
    }
    if units:
        sections["memlock"] = "systemctl show -p Id -p LoadState -p LimitMEMLOCK " + " ".join(
            shlex.quote(u) for u in units
        )
    return sections


def parse_systemctl_show(text: str) -> dict[str, dict[str, str]]:
    """`systemctl show -p Id -p ... UNIT...`: {unit id: {property: value}} (one block per unit, blank-separated)."""
    units: dict[str, dict[str, str]] = {}
    block: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if "Id" in block:
                units[block["Id"]] = block
            block = {}
        elif "=" in line:
            key, value = line.split("=", 1)
            block[key.strip()] = value.strip()
    return units


@dataclass(frozen=True)
class DiskSpace:
    path: str  # the nearest existing directory of the model path
    mount: str
    available_bytes: int


def parse_df(text: str) -> DiskSpace | None:
    """`df -P -B1 PATH`: the filesystem holding PATH and its free bytes."""
    for line in text.splitlines()[1:]:
        cells = line.split()
        if len(cells) >= 6 and cells[3].isdigit():
            return DiskSpace(path=cells[5], mount=cells[5], available_bytes=int(cells[3]))
    return None


@dataclass(frozen=True)
class WeightsIndex:
    total_size: int | None  # tensor bytes the index declares (metadata.total_size)
    shards: tuple[str, ...]


def parse_weights_index(text: str) -> WeightsIndex | None:
    """The output of WEIGHTS_INDEX_SCRIPT, or None where the index is absent ('none')."""
    if text.strip() == "none":
        return None
    total, shards = None, []
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "total_size" and value.strip().isdigit():
            total = int(value)
        elif key == "shard" and value.strip():
            shards.append(value.strip())
    return WeightsIndex(total, tuple(shards))


def parse_file_sizes(text: str) -> dict[str, int]:
    """`find ... -printf '%f\\t%s\\n'`: {file name: size in bytes}."""
    sizes = {}
    for line in text.splitlines():
        name, sep, size = line.rpartition("\t")
        if sep and size.strip().isdigit():
            sizes[name] = int(size)
    return sizes


def parse_clock(text: str) -> bool | None:
    """The probe's clock section: True synchronised, False not, None when neither timedatectl nor chronyc answers."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] == "none":
        return None
    if lines[0] == "timedatectl":
        return {"yes": True, "no": False}.get(lines[1]) if len(lines) > 1 else None
    if lines[0] == "chronyc":
        leap = [line for line in lines if line.startswith("Leap status")]
        return leap[0].split(":", 1)[1].strip() == "Normal" if leap else None
    return None
