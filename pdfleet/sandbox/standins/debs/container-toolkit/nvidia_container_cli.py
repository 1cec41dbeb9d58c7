#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/nvidia-container-cli (package libnvidia-container-tools 1.18.0).

nvidia-container-cli --version    versions, in the real layout
nvidia-container-cli info         driver and GPUs of the installed driver's captured nvidia-smi XML, in the real
                                  layout; fails like the real one (NVML not found) when no driver is installed
"""

import sys
import xml.etree.ElementTree as ET

from standin_lib import NVIDIA_DATA, installed_driver_version, read_text

VERSION = "@@TOOLKIT_VERSION@@"
ARCHITECTURES = {"Hopper": "9.0", "Ampere": "8.0", "Blackwell": "10.0"}


def main(argv):
    args = [a for a in argv if not a.startswith("--load-kmods") and a not in ("-k", "--no-pivot")]
    if args in (["--version"], ["-V"]):
        print(f"cli-version: {VERSION}\nlib-version: {VERSION}\nbuild platform: x86_64")
        return 0
    if args[:1] != ["info"]:
        print("nvidia-container-cli (pdfleet sandbox stand-in): only 'info' and '--version' are simulated",
              file=sys.stderr)  # fmt: skip
        return 1
    driver = installed_driver_version()
    xml = read_text(f"{NVIDIA_DATA}/nvidia-smi-q.xml")
    if driver is None or xml is None:
        print("nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open "
              "shared object file: no such file or directory", file=sys.stderr)  # fmt: skip
        return 1
    root = ET.fromstring(xml.split("\n", 2)[2])
    lines = [f"NVRM version:   {driver}", f"CUDA version:   {root.findtext('cuda_version')}", ""]
    for index, gpu in enumerate(root.findall("gpu")):
        lines += [
            f"Device Index:   {index}",
            f"Device Minor:   {gpu.findtext('minor_number')}",
            f"Model:          {gpu.findtext('product_name')}",
            f"Brand:          {gpu.findtext('product_brand')}",
            f"GPU UUID:       {gpu.findtext('uuid')}",
            f"Bus Location:   {gpu.findtext('pci/pci_bus_id')}",
            f"Architecture:   {ARCHITECTURES.get(gpu.findtext('product_architecture'), '9.0')}",
            "",
        ]
    print("\n".join(lines[:-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
