#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/containerd (package containerd.io).

Runs no containers: it serves its socket (/run/containerd/containerd.sock, or --address) so that dockerd finds it,
tells systemd it is ready (Type=notify) and logs what the real one logs at start.
"""

import sys
import time

from standin_lib import sd_notify, serve, unix_listener

VERSION = "@@CONTAINERD_VERSION@@"
REVISION = "b98a3aace656320842a23f4a392a33f46af97866"  # containerd v1.7.28 as built for containerd.io


def log(level, message, **fields):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    extra = "".join(f" {k}={v}" for k, v in fields.items())
    print(f'time="{stamp}" level={level} msg="{message}"{extra}', file=sys.stderr, flush=True)


def main(argv):
    address = "/run/containerd/containerd.sock"
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in ("-a", "--address", "-c", "--config", "--log-level", "-l", "--root", "--state"):
            if not eq:
                i += 1
                inline = argv[i] if i < len(argv) else ""
            if name in ("-a", "--address"):
                address = inline
        elif arg in ("-v", "--version"):
            print(f"containerd containerd.io v{VERSION} {REVISION}")
            return 0
        else:
            print(f"containerd: flag provided but not defined: {arg}", file=sys.stderr)
            return 1
        i += 1
    started = time.monotonic()
    log("info", "starting containerd", revision=REVISION, version=f"v{VERSION}")
    listener = unix_listener(address, 0o660)
    log("info", "serving...", address=address)
    log("info", f"containerd successfully booted in {time.monotonic() - started:.6f}s")
    sd_notify("READY=1")
    serve([listener], lambda _line: "OK")
    log("info", "Stop CRI service")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
