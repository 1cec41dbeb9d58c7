#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/nv-hostengine (package datacenter-gpu-manager-4-core).

Listens where the real host engine listens (TCP 127.0.0.1:5555 by default, -p/-b to change; -d for a unix socket)
so that `dcgmi` finds it or fails to connect exactly when the real one would. -n keeps it in the foreground (the
unit's mode); otherwise it daemonizes and writes --pid (default /var/run/nvhostengine.pid). --service-account
must name an existing user (the package's postinst creates nvidia-dcgm), as with the real engine.
"""

import pwd
import sys

from standin_lib import daemonize, serve, tcp_listener, unix_listener

VERSION = "@@DCGM_VERSION@@"
BUILD_INFO = f"Version : {VERSION}\nBuild Type : Release\nBranch Name : rel_dcgm_4_4\nCPU Arch : x86_64\n"


def main(argv):
    port, bind, unix_path, account, pidfile = 5555, "127.0.0.1", None, None, "/var/run/nvhostengine.pid"
    foreground = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")

        def value(eq=eq, inline=inline, name=name):
            nonlocal i
            if eq:
                return inline
            i += 1
            if i >= len(argv):
                sys.exit(f"Error: missing value for {name}")
            return argv[i]

        if name in ("-n", "--no-daemon"):
            foreground = True
        elif name in ("-p", "--port"):
            port = int(value())
        elif name in ("-b", "--bind-interface"):
            bind = value()
        elif name in ("-d", "--domain-socket"):
            unix_path = value()
        elif name == "--service-account":
            account = value()
        elif name == "--pid":
            pidfile = value()
        elif name in ("-f", "--log-filename", "--log-level", "--denylist-modules", "--blacklist-modules"):
            value()
        elif name in ("-v", "--version"):
            print(BUILD_INFO, end="")
            return 0
        elif name in ("-t", "--term"):
            return 0
        elif name in ("-h", "--help"):
            print("nv-hostengine [-n] [-p PORT] [-b IP|ALL] [-d SOCKET] [--service-account USER] [--pid FILE]")
            return 0
        else:
            print(f"PARSE ERROR: Argument: {arg}\n             Couldn't find match for argument", file=sys.stderr)
            return 1
        i += 1

    if account is not None:
        try:
            pwd.getpwnam(account)
        except KeyError:
            print(f"Err: Failed to start DCGM Server: the service account '{account}' does not exist", flush=True)
            return 1
    try:
        if unix_path:
            listener = unix_listener(unix_path, 0o777)
        else:
            listener = tcp_listener("0.0.0.0" if bind == "ALL" else bind, port)
    except OSError as error:
        print(f"Err: Failed to start DCGM Server: {error}", flush=True)
        return 1
    if unix_path:
        print(f"Started host engine version {VERSION} using socket path: {unix_path} ", flush=True)
    else:
        print(f"Started host engine version {VERSION} using port number: {port} ", flush=True)
    if not foreground:
        daemonize(pidfile)
    serve([listener], lambda line: f"dcgm-standin {VERSION}" if line == "hello" else "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
