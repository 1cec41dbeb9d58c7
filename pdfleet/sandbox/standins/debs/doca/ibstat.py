#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/sbin/ibstat (package infiniband-diags of DOCA-OFED 3.1, rdma-core
2507mlnx58).

Prints the canned, SYNTHESISED state of eight ConnectX-7 RoCE HCAs (see generate_canned.py in the pdfleet source):
  ibstat [-l | -s | -p] [CA_NAME [PORT]]   as infiniband-diags/ibstat.c prints them
"""

import sys

from standin_lib import read_text

DATA = "/usr/share/pdfleet-standin/rdma"


def main(argv):
    list_only = short = ports = False
    args = []
    for arg in argv:
        if arg in ("-l", "--list_of_cas"):
            list_only = True
        elif arg in ("-s", "--short"):
            short = True
        elif arg in ("-p", "--port_list"):
            ports = True
        elif arg in ("-h", "--help"):
            print("Usage: ibstat [options] <ca_name> [portnum]")
            return 0
        elif arg.startswith("-"):
            print(f"ibstat: invalid option -- '{arg.lstrip('-')}'", file=sys.stderr)
            return 255
        else:
            args.append(arg)
    cas = {}
    for line in read_text(f"{DATA}/ibstat.txt", "").splitlines(keepends=True):
        if line.startswith("CA '"):
            name = line.split("'")[1]
            cas[name] = []
        cas[name].append(line)
    chosen = list(cas)
    if args:
        if args[0] not in cas:
            print(f"ibpanic: [{1}] main: '{args[0]}' IB device can't be found", file=sys.stderr)
            return 255
        chosen = [args[0]]
    out = []
    for name in chosen:
        lines = cas[name]
        if list_only:
            out.append(f"{name}\n")
        elif ports:
            out += ["0x" + line.split("0x")[1] for line in lines if "Port GUID:" in line]
        elif len(args) > 1:
            port = int(args[1], 0)
            if port != 1:
                print(f"ibwarn: [1] ca_stat: CA: '{name}' has no port number {port} - max (1)", file=sys.stderr)
                print(f"ibwarn: [1] main: stat of IB device '{name}' failed", file=sys.stderr)
                continue
            out.append(f"CA: '{name}'\n")
            out += [line.lstrip("\t") for line in lines[7:]]
        elif short:
            out += lines[:7]
        else:
            out += lines
    sys.stdout.write("".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
