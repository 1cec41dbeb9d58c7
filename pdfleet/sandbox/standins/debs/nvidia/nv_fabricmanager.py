#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/nv-fabricmanager (package nvidia-fabricmanager-580).

Like the real one: `--version` prints "Fabric Manager version is : X"; it reads the config file (-c), refuses to
start when its version differs from the loaded driver's (the failure operators hit after a partial upgrade:
"fabric manager NVIDIA GPU driver interface version A don't match with driver version B"), logs to LOG_FILE_NAME,
daemonizes when DAEMONIZE=1 (pid file /run/nvidia-fabricmanager/nv-fabricmanager.pid) and reports the NVSwitch
fabric of an HGX H200 as configured. There are no NVSwitches to program.
"""

import contextlib
import os
import sys
import time

from standin_lib import daemonize, loaded_driver_version, read_text, rooted, serve, write_text

VERSION = "@@DRIVER_VERSION@@"
PIDFILE = "/run/nvidia-fabricmanager/nv-fabricmanager.pid"
DEFAULT_CONFIG = "/usr/share/nvidia/nvswitch/fabricmanager.cfg"

USAGE = """NVIDIA Fabric Manager
Runs as a background process to configure the NVSwitches to form
a single memory fabric among all participating GPUs.

Usage: nv-fabricmanager [options]

Options include:
[-h | --help]: Displays help information
[-v | --version]: Displays the Fabric Manager version and exit.
[-c | --config]: Provides Fabric Manager config file path/name which controls all the config options.
[-r | --restart]: Restart Fabric Manager after exit. Applicable to Shared NVSwitch and vGPU multitenancy modes.
"""


class Logger:
    def __init__(self, path, append, level):
        self.level = level
        self.handle = None
        if path:
            real = rooted(path)
            os.makedirs(os.path.dirname(real), exist_ok=True)
            self.handle = open(real, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 (lives as long as FM)

    def __call__(self, severity, message, console=False):
        rank = {"CRITICAL": 1, "ERROR": 2, "WARNING": 3, "INFO": 4}[severity]
        if console:
            print(message, flush=True)
        if self.handle is not None and rank <= self.level:
            stamp = time.strftime("%b %d %Y %H:%M:%S")
            self.handle.write(f"[{stamp}] [{severity}] [tid {os.getpid()}] {message}\n")
            self.handle.flush()


def read_config(path):
    text = read_text(path)
    if text is None:
        return None
    config = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            config[key.strip()] = value.strip()
    return config


def main(argv):
    config_path = DEFAULT_CONFIG
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-v", "--version"):
            print(f"Fabric Manager version is : {VERSION}")
            return 0
        if arg in ("-h", "--help"):
            print(USAGE)
            return 0
        if arg in ("-c", "--config"):
            i += 1
            if i >= len(argv):
                print(USAGE, file=sys.stderr)
                return 1
            config_path = argv[i]
        elif arg.startswith("--config="):
            config_path = arg.split("=", 1)[1]
        elif arg in ("-r", "--restart"):
            pass
        else:
            print(f"Invalid command line argument {arg}\n{USAGE}", file=sys.stderr)
            return 1
        i += 1

    config = read_config(config_path)
    if config is None:
        print(f"Fabric Manager failed to open config file {config_path}", file=sys.stderr)
        return 1
    log = Logger(config.get("LOG_FILE_NAME", ""), config.get("LOG_APPEND_TO_LOG", "1") == "1",
                 int(config.get("LOG_LEVEL", "4")))  # fmt: skip
    log("INFO", f"Fabric Manager version {VERSION} is running with the following configuration options")
    for key in (
        "LOG_LEVEL",
        "LOG_FILE_NAME",
        "DAEMONIZE",
        "FABRIC_MODE",
        "FM_CMD_BIND_INTERFACE",
        "FM_CMD_PORT_NUMBER",
    ):
        log("INFO", f"{key} : {config.get(key, '')}")

    driver = loaded_driver_version()
    if driver is None:
        message = "fabric manager failed to open NVIDIA driver: no NVIDIA driver is loaded"
        log("ERROR", message)
        print(message, file=sys.stderr)
        return 1
    if driver != VERSION:
        message = (
            f"fabric manager NVIDIA GPU driver interface version {VERSION} don't match with driver version "
            f"{driver}. Please update with matching NVIDIA driver package."
        )
        log("ERROR", message)
        print(message, file=sys.stderr)
        return 1

    if config.get("DAEMONIZE", "1") == "1":
        daemonize(PIDFILE)
    else:
        write_text(PIDFILE, f"{os.getpid()}\n")
    log("INFO", "Connected to 1 node.", console=True)
    log(
        "INFO",
        "Successfully configured all the available NVSwitches to route GPU NVLink traffic. NVLink Peer-to-Peer "
        "support will be enabled once the GPUs are successfully registered with the NVLink fabric.",
        console=True,
    )
    serve([], lambda _line: "")
    log("INFO", "Fabric Manager received a signal to exit; exiting.")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(rooted(PIDFILE))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
