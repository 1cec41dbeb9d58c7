#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/ofed_info (package mlnx-ofed-kernel-utils of DOCA-OFED 3.1).

ofed_info -s    the one-line version (what deploys compare)
ofed_info -n    the version number
ofed_info       the version line and the stand-in packages' versions
"""

import sys

VERSION = "@@OFED_VERSION@@"
PACKAGES = "@@OFED_PACKAGES@@"


def main(argv):
    if argv == ["-s"]:
        print(f"OFED-internal-{VERSION}:")
    elif argv == ["-n"]:
        print(VERSION)
    elif not argv:
        print(f"OFED-internal-{VERSION}:\n\nInstalled Packages:\n-------------------")
        for line in PACKAGES.split(";"):
            print(line)
    else:
        print("Usage: ofed_info [-s|-n|-l|-p]", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
