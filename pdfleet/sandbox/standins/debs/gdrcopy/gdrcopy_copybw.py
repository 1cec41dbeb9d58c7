#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/gdrcopy_copybw (package gdrcopy-tests 2.5.1).

Prints what GDRCopy 2.5.1's tests/copybw.cpp prints on an H200 (GPUs from the installed driver's captured
nvidia-smi XML; pointers and bandwidths are SYNTHESISED, plausible for PCIe Gen5). It does not check for the gdrdrv
kernel module: modules cannot be loaded in the sandbox (see the pdfleet stand-in README).
"""

import getopt
import sys
import xml.etree.ElementTree as ET

from standin_lib import read_text

WRITE_MBPS = 16203.8
READ_MBPS = 941.752


def usage(path):
    print(f"Usage: {path} [-h][-s <size>][-c <size>][-o <offset>][-d <gpu>][-w <iters>][-r <iters>][-a <fn>]")


def main(argv):
    try:
        opts, _ = getopt.getopt(argv[1:], "s:c:o:d:w:r:a:hl")
    except getopt.GetoptError:
        print("ERROR: invalid option", file=sys.stderr)
        return 1
    size, copy_size, offset, dev, writes, reads, alloc = 128 * 1024, 0, 0, 0, 10000, 100, "cuMemAlloc"
    for opt, value in opts:
        if opt == "-h":
            usage(argv[0])
            return 1
        if opt == "-s":
            size = int(value, 0)
        elif opt == "-c":
            copy_size = int(value, 0)
        elif opt == "-o":
            offset = int(value, 0)
        elif opt == "-d":
            dev = int(value, 0)
        elif opt == "-w":
            writes = int(value, 0)
        elif opt == "-r":
            reads = int(value, 0)
        elif opt == "-a":
            alloc = value
    copy_size = copy_size or size
    if offset % 4:
        print("ERROR: offset must be multiple of 4 bytes", file=sys.stderr)
        return 1
    if offset + copy_size > size:
        print("ERROR: offset + copy size run past the end of the buffer", file=sys.stderr)
        return 1
    xml = read_text("/usr/share/pdfleet-standin/nvidia/nvidia-smi-q.xml")
    if xml is None:
        print(f"{argv[0]}: error while loading shared libraries: libcuda.so.1: cannot open shared object file: "
              "No such file or directory", file=sys.stderr)  # fmt: skip
        return 127
    gpus = ET.fromstring(xml.split("\n", 2)[2]).findall("gpu")
    for n, gpu in enumerate(gpus):
        domain, bus, device = (int(gpu.findtext(f"pci/pci_{k}"), 16) for k in ("domain", "bus", "device"))
        print(f"GPU id:{n}; name: {gpu.findtext('product_name')}; Bus id: {domain:04x}:{bus:02x}:{device:02x}")
    print(f"selecting device {dev}")
    if dev >= len(gpus):
        print(
            'Assertion "CUDA_SUCCESS == cuDeviceGet(&dev, dev_id)" failed: CUDA_ERROR_INVALID_DEVICE', file=sys.stderr
        )
        return 1
    rounded = (size + 65535) & ~65535
    base = 0x7F3A4E000000 + dev * 0x200000000
    print(f"testing size: {size}")
    print(f"rounded size: {rounded}")
    print(f"gpu alloc fn: {alloc}")
    print(f"device ptr: {base:x}")
    print(f"map_d_ptr: 0x{0x7F3A6C1F0000:x}")
    print(f"info.va: {base:x}")
    print(f"info.mapped_size: {rounded}")
    print("info.page_size: 65536")
    print("info.mapped: 1")
    print("info.wc_mapping: 1")
    print("page offset: 0")
    print(f"user-space pointer:0x{0x7F3A6C1F0000:x}")
    print(f"writing test, size={copy_size} offset={offset} num_iters={writes}")
    print(f"write BW: {WRITE_MBPS:.6g}MB/s")
    print(f"reading test, size={copy_size} offset={offset} num_iters={reads}")
    print(f"read BW: {READ_MBPS:.6g}MB/s")
    print("unmapping buffer")
    print("unpinning buffer")
    print("closing gdrdrv")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
