#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/nvidia-persistenced (package nvidia-compute-utils-580-server).

Behaves like the real daemon towards systemd and the host: forks into the background (the Ubuntu unit is
Type=forking), writes /var/run/nvidia-persistenced/nvidia-persistenced.pid, listens on the socket
/var/run/nvidia-persistenced/socket, drops to --user/--group, logs what the real one logs (verbose), and fails
like the real one when the user does not exist or no driver is installed. It holds no device: there is none.
"""

import grp
import os
import pwd
import sys

from standin_lib import (
    daemonize,
    installed_driver_version,
    loaded_driver_version,
    read_text,
    rooted,
    serve,
    unix_listener,
    write_text,
)

VERSION = "@@DRIVER_VERSION@@"
RUN_DIR = "/var/run/nvidia-persistenced"

USAGE = """
nvidia-persistenced:  version {version}

  The NVIDIA Persistence Daemon.

  A tool for maintaining persistent driver state, specifically for use by the NVIDIA Linux driver.

  Copyright (C) 2013-2018 NVIDIA Corporation.

nvidia-persistenced [options]

  -v, --version            Print the utility version and exit.
  -h, --help               Print usage information for the command line options and exit.
  -V, --verbose            Controls how much information is printed.
  -u USERNAME, --user=USERNAME
  -g GROUPNAME, --group=GROUPNAME
  --persistence-mode, --no-persistence-mode
  --uvm-persistence-mode, --no-uvm-persistence-mode
  --nvidia-cfg-path=PATH
  -f, --foreground
"""


def log(message):
    print(f"nvidia-persistenced: {message}", file=sys.stderr, flush=True)


def fail(message):
    log(message)
    print("nvidia-persistenced failed to initialize. Check syslog for more details.", file=sys.stderr, flush=True)
    sys.exit(1)


def main(argv):
    user = group = None
    foreground = verbose = False
    persistence = True
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in ("-u", "--user", "-g", "--group", "--nvidia-cfg-path"):
            if not eq:
                i += 1
                if i >= len(argv):
                    sys.exit(f"nvidia-persistenced: option '{arg}' requires an argument")
                inline = argv[i]
            if name in ("-u", "--user"):
                user = inline
            elif name in ("-g", "--group"):
                group = inline
        elif arg in ("-v", "--version"):
            print(USAGE.format(version=VERSION).split("nvidia-persistenced [options]")[0], end="")
            return 0
        elif arg in ("-h", "--help"):
            print(USAGE.format(version=VERSION))
            return 0
        elif arg in ("-f", "--foreground"):
            foreground = True
        elif arg in ("-V", "--verbose"):
            verbose = True
        elif arg == "--persistence-mode":
            persistence = True
        elif arg == "--no-persistence-mode":
            persistence = False
        elif arg in ("--uvm-persistence-mode", "--no-uvm-persistence-mode"):
            pass
        else:
            print(f"nvidia-persistenced: Unrecognized option: '{arg}'\n", file=sys.stderr)
            print(USAGE.format(version=VERSION), file=sys.stderr)
            return 1
        i += 1

    uid = gid = None
    if user is not None:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            fail(f"Failed to find user '{user}'")
        uid, gid = entry.pw_uid, entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            fail(f"Failed to find group '{group}'")
    loaded = loaded_driver_version()
    if loaded is not None and loaded != VERSION:
        fail(
            f"NVRM: API mismatch: the client has the version {VERSION}, but this kernel module has the version "
            f"{loaded}. Please make sure that this kernel module and all NVIDIA driver components have the same "
            "version."
        )
    if installed_driver_version() is None:
        fail("Failed to query NVIDIA devices. Please ensure that the NVIDIA device files (/dev/nvidia*) exist, "
             "and that user {} has read and write permissions for those files.".format(user or "root"))  # fmt: skip

    run_dir = rooted(RUN_DIR)
    os.makedirs(run_dir, exist_ok=True)
    if uid is not None and os.geteuid() == 0:
        os.chown(run_dir, uid, gid)
    if verbose:
        log("Verbose syslog connection opened")
    pidfile = f"{RUN_DIR}/nvidia-persistenced.pid"
    if foreground:
        write_text(pidfile, f"{os.getpid()}\n")
    else:
        daemonize(pidfile)
    listener = unix_listener(f"{RUN_DIR}/socket", 0o777)
    if uid is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        log(f"Now running with user ID {uid} and group ID {gid}")
    log(f"Started ({os.getpid()})")
    xml = read_text("/usr/share/pdfleet-standin/nvidia/nvidia-smi-q.xml", "")
    for line in xml.splitlines():
        if line.startswith("\t<gpu id="):
            bus = line.split('"')[1][4:].lower()
            log(f"device {bus} - registered")
            if verbose:
                log(f"device {bus} - persistence mode {'enabled' if persistence else 'disabled'}.")
                log(f"device {bus} - NUMA memory onlined.")
    log("Local RPC services initialized")
    serve([listener], lambda _line: "ok")
    log("Received signal 15")
    log("Socket closed.")
    log("PID file unlocked.")
    log("PID file closed.")
    log(f"Shutdown ({os.getpid()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
