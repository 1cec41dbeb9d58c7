#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/ibv_devinfo (package ibverbs-utils of DOCA-OFED 3.1, rdma-core 2507mlnx58).

Prints the canned, SYNTHESISED output of eight ConnectX-7 RoCE HCAs (see generate_canned.py in the pdfleet source)
with the real options: -d/--ib-dev, -i/--ib-port, -l/--list, -v/--verbose; errors and exit statuses as
libibverbs/examples/devinfo.c has them.
"""

import getopt
import sys

from standin_lib import read_text

DATA = "/usr/share/pdfleet-standin/rdma"


def usage(argv0):
    print(f"Usage: {argv0}             print the ca attributes\n")
    print("Options:")
    print("  -d, --ib-dev=<dev>     use IB device <dev> (default all devices)")
    print("  -i, --ib-port=<port>   use port <port> of IB device (default all ports)")
    print("  -l, --list             print only the IB devices names")
    print("  -v, --verbose          print all the attributes of the IB device(s)")


def blocks(text):
    """{device: its block}, in order."""
    found = {}
    name = None
    for line in text.splitlines(keepends=True):
        if line.startswith("hca_id:\t"):
            name = line.split("\t", 1)[1].strip()
            found[name] = ""
        found[name] += line
    return found


def main(argv):
    try:
        opts, _args = getopt.getopt(argv[1:], "d:i:lv", ["ib-dev=", "ib-port=", "list", "verbose"])
    except getopt.GetoptError as error:
        print(f"{argv[0]}: {error}", file=sys.stderr)
        usage(argv[0])
        return 255
    device, port, verbose = None, 0, False
    for opt, value in opts:
        if opt in ("-d", "--ib-dev"):
            device = value
        elif opt in ("-i", "--ib-port"):
            try:
                port = int(value, 0)
            except ValueError:
                port = 0
            if port <= 0:
                usage(argv[0])
                return 1
        elif opt in ("-v", "--verbose"):
            verbose = True
        elif opt in ("-l", "--list"):
            names = list(blocks(read_text(f"{DATA}/ibv_devinfo.txt", "")))
            print(f"{len(names)} HCA{'s' if len(names) != 1 else ''} found:")
            for name in names:
                print(f"\t{name}")
            print()
            return 0
    found = blocks(read_text(f"{DATA}/ibv_devinfo-v.txt" if verbose else f"{DATA}/ibv_devinfo.txt", ""))
    if not found:
        print("No IB devices found", file=sys.stderr)
        return 255
    if device is not None and device not in found:
        print(f"IB device '{device}' wasn't found", file=sys.stderr)
        return 255
    chosen = [device] if device is not None else list(found)
    if port > 1:
        print("Invalid port requested for device", file=sys.stderr)
        return 4
    sys.stdout.write("".join(found[name] for name in chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
