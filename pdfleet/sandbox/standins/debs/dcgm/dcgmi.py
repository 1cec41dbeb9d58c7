#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/dcgmi (package datacenter-gpu-manager-4-core).

Connects to the host engine like the real dcgmi (--host, default localhost:5555, unix:// for a socket) and fails
with the real messages when none runs. Answers, in DCGM 4.4's own table layout (dcgmi/Query.cpp, dcgmi/Diag.cpp):
  dcgmi discovery -l     the GPUs of the installed driver's captured nvidia-smi XML (name, PCI bus id, UUID), the
                         4 NVSwitches of an HGX H200 (synthesised: the capture has no NVSwitch list), no ConnectX,
                         no Grace CPU
  dcgmi diag -r 1..4     every test passes on every GPU (-r 1 runs "software" as the real level 1 does; the test
                         lists of levels 2-4 follow DCGM 4.4's suites but are synthesised)
  dcgmi -v / --version   build info of this stand-in and of the running host engine
Other subsystems exist in the real dcgmi; the stand-in says it lacks them (exit 1).
"""

import sys
import xml.etree.ElementTree as ET

from standin_lib import NVIDIA_DATA, ask, loaded_driver_version, read_text

VERSION = "@@DCGM_VERSION@@"
BUILD_INFO = f"Version : {VERSION}\nBuild Type : Release\nBranch Name : rel_dcgm_4_4\nCPU Arch : x86_64\n"
NVSWITCHES = 4  # HGX H200: four third-generation NVSwitch chips
REAL_SUBSYSTEMS = {
    "group", "fieldgroup", "config", "policy", "health", "stats", "topo", "nvlink", "introspect", "dmon",
    "modules", "profile", "settings", "test", "set", "mndiag",
}  # fmt: skip
DIAG_LEVELS = {
    1: [("Deployment", "software")],
    2: [("Deployment", "software"), ("Hardware", "memory"), ("Integration", "pcie")],
    3: [("Deployment", "software"), ("Hardware", "memory"), ("Hardware", "diagnostic"), ("Integration", "pcie"),
        ("Stress", "targeted_stress"), ("Stress", "targeted_power"), ("Stress", "memory_bandwidth")],
    4: [("Deployment", "software"), ("Hardware", "memory"), ("Hardware", "diagnostic"), ("Hardware", "pulse_test"),
        ("Integration", "pcie"), ("Stress", "targeted_stress"), ("Stress", "targeted_power"),
        ("Stress", "memory_bandwidth"), ("Stress", "memtest")],
}  # fmt: skip
DIAG_NAMES = {"quick": 1, "short": 1, "medium": 2, "long": 3, "xlong": 4}
CATEGORY_LINES = {
    "Deployment": "|-----  Deployment  --------+------------------------------------------------|\n",
    "Hardware": "+-----  Hardware  ----------+------------------------------------------------+\n",
    "Integration": "+-----  Integration  -------+------------------------------------------------+\n",
    "Stress": "+-----  Stress  ------------+------------------------------------------------+\n",
}
DIAG_RULE = "+---------------------------+------------------------------------------------+\n"


def gpus():
    """(name, PCI bus id, UUID, device id) of each GPU the installed driver reports."""
    text = read_text(f"{NVIDIA_DATA}/nvidia-smi-q.xml")
    if text is None:
        return []
    root = ET.fromstring(text.split("\n", 2)[2])
    return [
        (g.findtext("product_name"), g.findtext("pci/pci_bus_id"), g.findtext("uuid"), g.findtext("pci/pci_device_id"))
        for g in root.findall("gpu")
    ]


def columns(widths, labels, sections, separate):
    """DcgmiOutputColumns::str(): sections are [first row values, *overflow rows]."""

    def row(cells):
        return "| " + " | ".join(cell.ljust(width - 2) for cell, width in zip(cells, widths, strict=True)) + " |\n"

    rule = "+" + "+".join("-" * width for width in widths) + "+\n"
    text = rule + row(labels) + rule
    for k, section in enumerate(sections):
        if k and separate:
            text += rule
        text += "".join(row(cells) for cells in section)
    return text + rule


def discovery():
    found = gpus()
    text = f"{len(found)} GPU{'' if len(found) == 1 else 's'} found.\n"
    sections = [
        [[str(i), f"Name: {name}"], ["", f"PCI Bus ID: {bus}"], ["", f"Device UUID: {uuid}"]]
        for i, (name, bus, uuid, _dev) in enumerate(found)
    ]
    text += columns([8, 70], ["GPU ID", "Device Information"], sections, separate=True)
    switches = NVSWITCHES if found else 0
    text += f"{switches} NvSwitch{'' if switches == 1 else 'es'} found.\n"
    text += columns([11], ["Switch ID"], [[[str(i)]] for i in range(switches)], separate=False)
    text += "0 ConnectX found.\n" + columns([10], ["ConnectX"], [], separate=False)
    text += "0 CPUs found.\n" + columns([8, 70], ["CPU ID", "Device Information"], [], separate=True)
    return text


def diag_row(name, info):
    if len(info) > 46:
        info = info[:43] + "..."
    return f"| {name:<25} | {info:<46} |\n"


def diag(level):
    found = gpus()
    if not found:
        return "Error: Diagnostic could not be run: no GPUs found.\n", 1
    text = "Successfully ran diagnostic for group.\n" + DIAG_RULE
    text += "| Diagnostic                | Result                                         |\n"
    text += "+===========================+================================================+\n"
    text += "|-----  Metadata  ----------+------------------------------------------------|\n"
    text += diag_row("DCGM Version", VERSION)
    text += diag_row("Driver Version Detected", loaded_driver_version() or "")
    text += diag_row("GPU Device IDs Detected", ", ".join(dev[:4] for *_rest, dev in found))
    tests = DIAG_LEVELS[level]
    for category in ("Deployment", "Hardware", "Integration", "Stress"):
        names = [name for cat, name in tests if cat == category]
        if names:
            text += CATEGORY_LINES[category]
        for name in names:
            text += diag_row(name, "Pass")
            text += "".join(diag_row("", f"GPU{i}: Pass") for i in range(len(found)))
    return text + DIAG_RULE, 0


def connect(host):
    if host.startswith("unix://"):
        address = ("unix", host[len("unix://") :])
    else:
        name, _, port = host.partition(":")
        address = ("tcp", "127.0.0.1" if name == "localhost" else name, int(port or 5555))
    return ask(address, "hello") is not None


def main(argv):
    host = "localhost"
    args = []
    i = 0
    while i < len(argv):
        if argv[i] == "--host" and i + 1 < len(argv):
            host = argv[i + 1]
            i += 2
            continue
        if argv[i].startswith("--host="):
            host = argv[i].split("=", 1)[1]
        else:
            args.append(argv[i])
        i += 1
    if not args:
        print("Error: Required argument missing: subsystem", file=sys.stderr)
        return 255
    if args[0] in ("-v", "--version"):
        print("\nLocal build info:\n" + BUILD_INFO, end="")
        if connect(host):
            print("\nHostengine build info:\n" + BUILD_INFO, end="")
        return 0
    subsystem, rest = args[0], args[1:]
    if subsystem in REAL_SUBSYSTEMS:
        print(f"dcgmi (pdfleet sandbox stand-in): the '{subsystem}' subsystem is not simulated", file=sys.stderr)
        return 1
    if subsystem not in ("discovery", "diag"):
        print("ERROR: Invalid subsystem.\n")
        return 255
    if subsystem == "discovery":
        if rest not in (["-l"], ["--list"]):
            print("dcgmi (pdfleet sandbox stand-in): only 'dcgmi discovery -l' is simulated", file=sys.stderr)
            return 1
        run = discovery
    else:
        level = None
        if len(rest) == 2 and rest[0] in ("-r", "--run"):
            level = int(rest[1]) if rest[1].isdigit() else DIAG_NAMES.get(rest[1].lower())
        if level not in DIAG_LEVELS:
            print("dcgmi (pdfleet sandbox stand-in): only 'dcgmi diag -r 1|2|3|4' is simulated", file=sys.stderr)
            return 1
        run = lambda: diag(level)  # noqa: E731
    if not connect(host):
        print(f"Error: unable to establish a connection to the specified host: {host}")
        print("Error: Unable to connect to host engine. Host engine connection invalid/disconnected.")
        return 256 - 21  # DCGM_ST_CONNECTION_NOT_VALID (-21) as an exit status
    result = run()
    if isinstance(result, tuple):
        text, code = result
    else:
        text, code = result, 0
    sys.stdout.write(text)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
