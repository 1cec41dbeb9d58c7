#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/sbin/show_gids (package mlnx-tools of DOCA-OFED 3.1).

Prints the canned, SYNTHESISED GID tables of eight ConnectX-7 RoCE HCAs (see generate_canned.py in the pdfleet
source): GIDs 0/1 link-local (RoCE v1/v2), 2/3 IPv4 (RoCE v1/v2). `show_gids DEV` limits it to one device.
"""

import sys

from standin_lib import read_text

DATA = "/usr/share/pdfleet-standin/rdma"


def main(argv):
    lines = read_text(f"{DATA}/show_gids.txt", "").splitlines(keepends=True)
    header, rows = lines[:2], [line for line in lines[2:] if not line.startswith("n_gids_found=")]
    if argv:
        devices = {row.split("\t", 1)[0] for row in rows}
        for device in argv[0].split():
            if device not in devices:
                print(f"ls: cannot access '/sys/class/infiniband/{device}/ports/': No such file or directory",
                      file=sys.stderr)  # fmt: skip
        rows = [row for row in rows if row.split("\t", 1)[0] in argv[0].split()]
    sys.stdout.write("".join(header + rows) + f"n_gids_found={len(rows)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
