#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/nvidia-smi (package nvidia-utils-580-server).

Answers from outputs captured on a real 8xH200 node (driver 580.159.04), installed under
/usr/share/pdfleet-standin/nvidia/. Output is byte for byte the capture, except that a driver package of another
version rewrites the version string (580.159.04 -> its own) everywhere.

Supported (anything else a real nvidia-smi accepts fails with exit 2 and says the stand-in lacks it):
  nvidia-smi                      the default table         nvidia-smi -L
  nvidia-smi -q [-x]              full query (text / XML)   nvidia-smi topo -m | topo -p2p n
  nvidia-smi nvlink -s            NVLink status             nvidia-smi --version | -h
  nvidia-smi --query-gpu=F,... --format=csv[,noheader][,nounits]
      the exact field list of the captured CSV with csv,noheader,nounits answers the capture itself; any other
      field list or format is answered from the captured XML for the fields in QUERY_FIELDS (an unknown field
      fails like the real tool: 'Field "x" is not a valid field to query.', exit 2)
  nvidia-smi [-i ID[,ID]] -pm 0|1 persistence mode (state under /run: a reboot forgets it, as on real GPUs)
  -i / --id selects GPUs (index, UUID or PCI bus id) for -q, -L, the table, --query-gpu, -pm and nvlink -s.
Simulated kernel module: the first run after a boot records the installed driver version as "loaded"; after a
driver package upgrade without reboot every command fails like the real tool ("Driver/library version mismatch").
"""

import os
import sys
import xml.etree.ElementTree as ET

from standin_lib import NVIDIA_DATA, loaded_driver_version, read_text, rooted, write_text

DRIVER_VERSION = "@@DRIVER_VERSION@@"
PERSISTENCE_OFF = "/run/pdfleet-standin/nvidia-persistence-disabled"
USAGE_ERROR = "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n"

# Options a real nvidia-smi has that the stand-in does not answer.
REAL_ONLY_OPTIONS = {
    "-d", "--display", "-f", "--filename", "-l", "--loop", "-lms", "--loop-ms", "-u", "--unit", "-e",
    "--ecc-config", "-p", "--reset-ecc-errors", "-c", "--compute-mode", "-r", "--gpu-reset", "-vm",
    "--virt-mode", "-lgc", "--lock-gpu-clocks", "-rgc", "--reset-gpu-clocks", "-lmc", "--lock-memory-clocks",
    "-rmc", "--reset-memory-clocks", "-ac", "--applications-clocks", "-rac", "--reset-applications-clocks",
    "-pl", "--power-limit", "-mig", "--multi-instance-gpu", "-am", "--accounting-mode", "-caa",
    "--clear-accounted-apps", "--query-compute-apps", "--query-accounted-apps", "--query-retired-pages",
    "--query-remapped-rows", "--query-supported-clocks", "-dm", "--driver-model", "-fdm", "-gtt", "-cc",
    "--cuda-clocks", "-b", "--binary-format", "-s", "-t", "-a", "--dtd", "--debug",
}  # fmt: skip

# --query-gpu fields answered from the XML: name -> (path under <gpu>, unit shown in the header or "").
QUERY_FIELDS = {
    "name": ("product_name", ""),
    "gpu_name": ("product_name", ""),
    "serial": ("serial", ""),
    "gpu_serial": ("serial", ""),
    "uuid": ("uuid", ""),
    "gpu_uuid": ("uuid", ""),
    "pci.bus_id": ("pci/pci_bus_id", ""),
    "gpu_bus_id": ("pci/pci_bus_id", ""),
    "vbios_version": ("vbios_version", ""),
    "persistence_mode": ("persistence_mode", ""),
    "compute_mode": ("compute_mode", ""),
    "pstate": ("performance_state", ""),
    "memory.total": ("fb_memory_usage/total", "MiB"),
    "memory.reserved": ("fb_memory_usage/reserved", "MiB"),
    "memory.used": ("fb_memory_usage/used", "MiB"),
    "memory.free": ("fb_memory_usage/free", "MiB"),
    "utilization.gpu": ("utilization/gpu_util", "%"),
    "utilization.memory": ("utilization/memory_util", "%"),
    "temperature.gpu": ("temperature/gpu_temp", ""),
    "temperature.memory": ("temperature/memory_temp", ""),
    "fan.speed": ("fan_speed", "%"),
    "power.draw": ("gpu_power_readings/average_power_draw", "W"),
    "power.draw.average": ("gpu_power_readings/average_power_draw", "W"),
    "power.draw.instant": ("gpu_power_readings/instant_power_draw", "W"),
    "power.limit": ("gpu_power_readings/current_power_limit", "W"),
    "power.default_limit": ("gpu_power_readings/default_power_limit", "W"),
    "power.min_limit": ("gpu_power_readings/min_power_limit", "W"),
    "power.max_limit": ("gpu_power_readings/max_power_limit", "W"),
    "clocks.sm": ("clocks/sm_clock", "MHz"),
    "clocks.current.sm": ("clocks/sm_clock", "MHz"),
    "clocks.gr": ("clocks/graphics_clock", "MHz"),
    "clocks.current.graphics": ("clocks/graphics_clock", "MHz"),
    "clocks.mem": ("clocks/mem_clock", "MHz"),
    "clocks.current.memory": ("clocks/mem_clock", "MHz"),
    "clocks.max.sm": ("max_clocks/sm_clock", "MHz"),
    "clocks.max.gr": ("max_clocks/graphics_clock", "MHz"),
    "clocks.max.graphics": ("max_clocks/graphics_clock", "MHz"),
    "clocks.max.mem": ("max_clocks/mem_clock", "MHz"),
    "clocks.max.memory": ("max_clocks/mem_clock", "MHz"),
    "ecc.mode.current": ("ecc_mode/current_ecc", ""),
    "ecc.mode.pending": ("ecc_mode/pending_ecc", ""),
    "mig.mode.current": ("mig_mode/current_mig", ""),
    "mig.mode.pending": ("mig_mode/pending_mig", ""),
    "pcie.link.gen.current": ("pci/pci_gpu_link_info/pcie_gen/current_link_gen", ""),
    "pcie.link.gen.max": ("pci/pci_gpu_link_info/pcie_gen/max_link_gen", ""),
    "pcie.link.width.current": ("pci/pci_gpu_link_info/link_widths/current_link_width", ""),
    "pcie.link.width.max": ("pci/pci_gpu_link_info/link_widths/max_link_width", ""),
}
UNCORRECTABLE = ("sram_uncorrectable_parity", "sram_uncorrectable_secded", "dram_uncorrectable")
CORRECTABLE = ("sram_correctable", "dram_correctable")
ECC_SUMS = {
    "ecc.errors.uncorrected.volatile.total": ("volatile", UNCORRECTABLE),
    "ecc.errors.uncorrected.aggregate.total": ("aggregate", UNCORRECTABLE),
    "ecc.errors.corrected.volatile.total": ("volatile", CORRECTABLE),
    "ecc.errors.corrected.aggregate.total": ("aggregate", CORRECTABLE),
}


class UsageError(Exception):
    pass


class NotInStandin(Exception):
    pass


def data(name):
    text = read_text(f"{NVIDIA_DATA}/{name}")
    if text is None:
        sys.exit(f"nvidia-smi (pdfleet sandbox stand-in): missing data file {NVIDIA_DATA}/{name}")
    return text


CAPTURED_VERSION = None


def versioned(text):
    """Outputs were captured with one driver version; another driver package reports its own."""
    if CAPTURED_VERSION != DRIVER_VERSION:
        text = text.replace(CAPTURED_VERSION, DRIVER_VERSION)
    return text


def out(text):
    sys.stdout.buffer.write(versioned(text).encode())
    sys.stdout.flush()


class Gpus:
    """The GPUs of the captured node: index, PCI bus id, UUID (from the XML), and persistence state."""

    def __init__(self):
        self.xml_text = data("nvidia-smi-q.xml")
        self.root = ET.fromstring(self.xml_text.split("\n", 2)[2])  # skip the XML declaration and DOCTYPE
        self.elements = self.root.findall("gpu")
        self.bus_ids = [g.get("id") for g in self.elements]
        self.uuids = [g.findtext("uuid") for g in self.elements]
        off = read_text(PERSISTENCE_OFF, "")
        self.persistence_off = {int(x) for x in off.split()}

    def select(self, ids):
        if ids is None:
            return list(range(len(self.elements)))
        chosen = []
        for item in ids.split(","):
            item = item.strip()
            index = None
            if item.isdigit() and int(item) < len(self.elements):
                index = int(item)
            elif item in self.uuids:
                index = self.uuids.index(item)
            else:
                for i, bus in enumerate(self.bus_ids):
                    if item.upper() in (bus.upper(), bus[4:].upper()):
                        index = i
            if index is None:
                out("No devices were found\n")
                sys.exit(6)
            chosen.append(index)
        return chosen


def split_blocks(text, starts):
    """(header, [block per GPU], footer) of a capture whose GPU blocks begin with lines for which starts() holds."""
    lines = text.splitlines(keepends=True)
    firsts = [i for i, line in enumerate(lines) if starts(line)]
    header = "".join(lines[: firsts[0]])
    blocks = ["".join(lines[a:b]) for a, b in zip(firsts, firsts[1:] + [len(lines)], strict=True)]
    return header, blocks


def query_xml(gpus, chosen):
    header, blocks = split_blocks(gpus.xml_text, lambda line: line.startswith("\t<gpu id="))
    footer = ""
    last = blocks[-1]
    end = last.index("\t</gpu>\n") + len("\t</gpu>\n")
    blocks[-1], footer = last[:end], last[end:]
    parts = []
    for i in chosen:
        block = blocks[i]
        if i in gpus.persistence_off:
            block = block.replace("<persistence_mode>Enabled<", "<persistence_mode>Disabled<", 1)
        parts.append(block)
    return header + "".join(parts) + footer


def query_text(gpus, chosen):
    header, blocks = split_blocks(data("nvidia-smi-q.txt"), lambda line: line.startswith("GPU 0000"))
    parts = []
    for i in chosen:
        block = blocks[i]
        if i in gpus.persistence_off:
            block = block.replace("Persistence Mode                                   : Enabled",
                                  "Persistence Mode                                   : Disabled", 1)  # fmt: skip
        parts.append(block)
    return header + "".join(parts)


def table(gpus, chosen):
    lines = data("nvidia-smi.txt").splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith("|====")) + 1
    count = len(gpus.elements)
    rows = [lines[first + 4 * i : first + 4 * i + 4] for i in range(count)]
    rest = lines[first + 4 * count :]
    parts = []
    for i in chosen:
        row = list(rows[i])
        if i in gpus.persistence_off:
            row[0] = row[0].replace("  On  |", " Off  |", 1)
        parts.append("".join(row))
    return "".join(lines[:first]) + "".join(parts) + "".join(rest)


def list_gpus(chosen):
    lines = data("nvidia-smi-L.txt").splitlines(keepends=True)
    return "".join(lines[i] for i in chosen)


def field_value(gpus, index, field, units):
    gpu = gpus.elements[index]
    if field == "index":
        return str(index), ""
    if field == "count":
        return str(len(gpus.elements)), ""
    if field == "driver_version":
        return gpus.root.findtext("driver_version"), ""
    if field in ECC_SUMS:
        kind, names = ECC_SUMS[field]
        values = [gpu.findtext(f"ecc_errors/{kind}/{name}") for name in names]
        if any(v is None or not v.isdigit() for v in values):
            return "[N/A]", ""
        return str(sum(int(v) for v in values)), ""
    path, unit = QUERY_FIELDS[field]
    value = (gpu.findtext(path) or "N/A").strip()
    if field == "persistence_mode" and index in gpus.persistence_off:
        value = "Disabled"
    if value == "N/A":
        return "[N/A]", unit
    if field.startswith("temperature."):
        return value.split()[0], unit
    if field.startswith("pcie.link.width"):
        return value.rstrip("x"), unit
    if unit and not units:
        value = value.split()[0]
    return value, unit


def query_gpu(gpus, chosen, fields_arg, format_arg):
    if not format_arg:
        raise UsageError
    formats = [f.strip() for f in format_arg.split(",")]
    if "csv" not in formats or any(f not in ("csv", "noheader", "nounits") for f in formats):
        raise UsageError
    fields = [f.strip() for f in fields_arg.split(",")]
    for field in fields:
        if field not in QUERY_FIELDS and field not in ECC_SUMS and field not in ("index", "count", "driver_version"):
            out(f'Field "{field}" is not a valid field to query.\n\n')
            sys.exit(2)
    header = "noheader" not in formats
    units = "nounits" not in formats
    captured_fields = data("nvidia-smi-query-gpu.fields").strip()
    if fields_arg.strip() == captured_fields and not header and not units:
        rows = data("nvidia-smi-query-gpu.csv").splitlines(keepends=True)
        position = fields.index("persistence_mode")
        text = ""
        for i in chosen:
            row = rows[i]
            if i in gpus.persistence_off:
                cells = row.rstrip("\n").split(", ")
                cells[position] = "Disabled"
                row = ", ".join(cells) + "\n"
            text += row
        return text
    lines = []
    if header:
        names = []
        for field in fields:
            unit = QUERY_FIELDS.get(field, ("", ""))[1]
            names.append(f"{field} [{unit}]" if unit and units else field)
        lines.append(", ".join(names))
    for i in chosen:
        lines.append(", ".join(field_value(gpus, i, field, units)[0] for field in fields))
    return "".join(line + "\n" for line in lines)


def persistence_mode(gpus, chosen, value):
    value = value.strip().upper()
    if value in ("1", "ENABLED"):
        enable = True
    elif value in ("0", "DISABLED"):
        enable = False
    else:
        raise UsageError
    if os.geteuid() != 0:
        bus = gpus.bus_ids[chosen[0]]
        out(f"Unable to set persistence mode for GPU {bus}: Insufficient Permissions\n")
        out("Terminating early due to previous errors.\n")
        sys.exit(4)
    off = set(gpus.persistence_off)
    lines = []
    for i in chosen:
        bus = gpus.bus_ids[i]
        currently = i not in off
        if currently == enable:
            lines.append(f"Persistence mode is already {'Enabled' if enable else 'Disabled'} for GPU {bus}.")
        elif enable:
            off.discard(i)
            lines.append(f"Enabled Legacy persistence mode for GPU {bus}.")
        else:
            off.add(i)
            lines.append(f"Disabled persistence mode for GPU {bus}.")
    write_text(PERSISTENCE_OFF, "".join(f"{i}\n" for i in sorted(off)))
    lines.append("All done.")
    return "".join(line + "\n" for line in lines)


def help_text():
    return (
        f"NVIDIA System Management Interface -- v{DRIVER_VERSION}\n\n"
        "NVSMI provides monitoring information for Tesla and select Quadro devices.\n\n"
        "(pdfleet sandbox stand-in: answers -L, -q [-x], --query-gpu, -pm, topo -m, topo -p2p n, nvlink -s,\n"
        " --version and the default table from outputs captured on an 8xH200 node.)\n"
    )


def subcommand(gpus, args):
    command, rest = args[0], args[1:]
    if command == "topo":
        if rest in (["-m"], ["--matrix"]):
            return data("nvidia-smi-topo-m.txt")
        if rest in (["-p2p", "n"], ["--p2pstatus", "n"]):
            return data("nvidia-smi-topo-p2p-n.txt")
        if rest and rest[0] in ("-mp", "--matrix_pci", "-p2p", "--p2pstatus", "-i", "--id", "-n", "-c", "-C"):
            raise NotInStandin("topo " + " ".join(rest))
        raise UsageError
    # nvlink
    ids = None
    if len(rest) == 3 and rest[0] in ("-i", "--id"):
        ids, rest = rest[1], rest[2:]
    elif len(rest) == 3 and rest[1] in ("-i", "--id"):
        ids, rest = rest[2], rest[:1]
    if rest in (["-s"], ["--status"]):
        chosen = gpus.select(ids)
        _, blocks = split_blocks(data("nvidia-smi-nvlink-s.txt"), lambda line: line.startswith("GPU "))
        return "".join(blocks[i] for i in chosen)
    if rest:
        raise NotInStandin("nvlink " + " ".join(rest))
    raise UsageError


def main(argv):
    global CAPTURED_VERSION
    CAPTURED_VERSION = data("captured-version").strip()
    if argv[:1] in (["-h"], ["--help"]):
        out(help_text())
        return 0
    loaded = loaded_driver_version()
    if loaded != DRIVER_VERSION:
        out("Failed to initialize NVML: Driver/library version mismatch\n")
        out("NVML library version: " + ".".join(DRIVER_VERSION.split(".")[:2]) + "\n")
        return 18
    gpus = Gpus()
    if argv and argv[0] in ("topo", "nvlink"):
        out(subcommand(gpus, argv))
        return 0
    opts = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")

        def value(name=name, eq=eq, inline=inline):
            nonlocal i
            if eq:
                return inline
            i += 1
            if i >= len(argv):
                raise UsageError
            return argv[i]

        if name in ("-q", "--query"):
            opts["query"] = True
        elif name in ("-x", "--xml-format"):
            opts["xml"] = True
        elif name in ("-L", "--list-gpus"):
            opts["list"] = True
        elif name in ("-i", "--id"):
            opts["ids"] = value()
        elif name in ("-pm", "--persistence-mode"):
            opts["pm"] = value()
        elif name == "--query-gpu":
            opts["query_gpu"] = value()
        elif name == "--format":
            opts["format"] = value()
        elif name == "--version":
            opts["version"] = True
        elif name in ("-h", "--help"):
            opts["help"] = True
        elif name in REAL_ONLY_OPTIONS:
            raise NotInStandin(arg)
        else:
            raise UsageError
        i += 1
    modes = [k for k in ("query", "list", "pm", "query_gpu", "version", "help") if k in opts]
    if len(modes) > 1 or ("xml" in opts and modes != ["query"]) or ("format" in opts and modes != ["query_gpu"]):
        raise UsageError
    chosen = gpus.select(opts.get("ids"))
    mode = modes[0] if modes else "table"
    if mode == "help":
        out(help_text())
    elif mode == "version":
        cuda = gpus.root.findtext("cuda_version")
        nvml = ".".join(DRIVER_VERSION.split(".")[:2])
        out(
            f"NVIDIA-SMI version  : {DRIVER_VERSION}\nNVML version        : {nvml}\n"
            f"DRIVER version      : {DRIVER_VERSION}\nCUDA Version        : {cuda}\n"
        )
    elif mode == "query":
        out(query_xml(gpus, chosen) if "xml" in opts else query_text(gpus, chosen))
    elif mode == "list":
        out(list_gpus(chosen))
    elif mode == "pm":
        out(persistence_mode(gpus, chosen, opts["pm"]))
    elif mode == "query_gpu":
        out(query_gpu(gpus, chosen, opts["query_gpu"], opts.get("format")))
    else:
        out(table(gpus, chosen))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UsageError:
        sys.stdout.write(USAGE_ERROR)
        sys.exit(2)
    except NotInStandin as error:
        sys.stderr.write(
            f"nvidia-smi (pdfleet sandbox stand-in): '{error}' is a real nvidia-smi option the stand-in does not "
            f"answer (it only has captured outputs; see {rooted(NVIDIA_DATA)}/README)\n"
        )
        sys.exit(2)
