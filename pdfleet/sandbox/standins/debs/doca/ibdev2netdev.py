#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/sbin/ibdev2netdev (package mlnx-tools of DOCA-OFED 3.1).

Prints the canned, SYNTHESISED mapping of eight ConnectX-7 RoCE HCAs to their netdevs (see generate_canned.py in
the pdfleet source); -v adds PCI address, part number, description and firmware, as the real script does.
"""

import sys

from standin_lib import read_text

DATA = "/usr/share/pdfleet-standin/rdma"


def usage():
    print("ibdev2netdev <options>")
    print("-h, --help                print help message")
    print("-v, --verbose             print more info")


def main(argv):
    if argv[:1] in (["-h"], ["--help"]):
        usage()
        return 0
    if len(argv) > 1 or (argv and argv[0] != "-v"):
        usage()
        return 255
    name = "ibdev2netdev-v.txt" if argv else "ibdev2netdev.txt"
    sys.stdout.write(read_text(f"{DATA}/{name}", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
