#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/dockerd (package docker-ce).

What the real daemon does that a deploy can observe, without containers:
- reads /etc/docker/daemon.json at start and on SIGHUP (the unit's ExecReload) and refuses to start when it is not
  valid JSON; the runtimes it loaded ("runc" plus daemon.json's "runtimes") and "default-runtime" are what the
  stand-in docker CLI gets from it, so `nvidia-ctk runtime configure` takes effect only after a restart or
  reload, as with the real daemon;
- waits for containerd's socket (--containerd) and fails when it does not come up;
- serves the API socket: -H fd:// (socket activation by docker.socket) or -H unix://PATH, default
  /var/run/docker.sock, and tells systemd it is ready (Type=notify).
The CLI speaks a one-line protocol to it ("info" -> JSON); images and containers are the CLI's files under
/var/lib/docker-standin.
"""

import json
import os
import sys
import time

from standin_lib import ask, read_text, sd_notify, serve, systemd_listen_sockets, unix_listener

VERSION = "@@DOCKER_VERSION@@"
COMMIT = "f8215cc"  # moby v28.5.1


def log(level, message, **fields):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    extra = "".join(f" {k}={v}" for k, v in fields.items())
    print(f'time="{stamp}" level={level} msg={json.dumps(message)}{extra}', file=sys.stderr, flush=True)


class Daemon:
    def __init__(self, config_file):
        self.config_file = config_file
        self.config = {}

    def load(self):
        text = read_text(self.config_file)
        if text is None:
            self.config = {}
            return None
        try:
            config = json.loads(text)
        except ValueError as error:
            return f"unable to configure the Docker daemon with file {self.config_file}: {error}"
        if not isinstance(config, dict):
            return f"unable to configure the Docker daemon with file {self.config_file}: not a JSON object"
        self.config = config
        return None

    def reload(self):
        error = self.load()
        if error:
            log("error", error)
        else:
            log("info", "Reloaded configuration", config=json.dumps(json.dumps(self.config, sort_keys=True)))

    def info(self):
        runtimes = {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}
        for name, runtime in (self.config.get("runtimes") or {}).items():
            runtimes[name] = {"path": runtime.get("path", ""), "runtimeArgs": runtime.get("args", [])}
        return {
            "ServerVersion": VERSION,
            "Pid": os.getpid(),
            "Runtimes": runtimes,
            "DefaultRuntime": self.config.get("default-runtime", "runc"),
            "CDIEnabled": bool((self.config.get("features") or {}).get("cdi", True)),
            "DataRoot": self.config.get("data-root", "/var/lib/docker"),
            "Config": self.config,
        }

    def answer(self, line):
        if line == "info":
            return json.dumps(self.info())
        return "OK"


def main(argv):
    hosts, containerd, config_file = [], None, "/etc/docker/daemon.json"
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in ("-H", "--host", "--containerd", "--config-file", "--data-root", "--log-level", "-l", "--pidfile",
                    "-p", "--exec-root"):  # fmt: skip
            if not eq:
                i += 1
                if i >= len(argv):
                    print(f"flag needs an argument: {name}", file=sys.stderr)
                    return 125
                inline = argv[i]
            if name in ("-H", "--host"):
                hosts.append(inline)
            elif name == "--containerd":
                containerd = inline
            elif name == "--config-file":
                config_file = inline
        elif arg in ("-v", "--version"):
            print(f"Docker version {VERSION}, build {COMMIT}")
            return 0
        elif arg in ("-D", "--debug", "--live-restore", "--iptables=false", "--ip-forward=false"):
            pass
        else:
            print(f"unknown flag: {arg}", file=sys.stderr)
            return 125
        i += 1

    daemon = Daemon(config_file)
    log("info", "Starting up")
    error = daemon.load()
    if error:
        print(error, file=sys.stderr)
        return 1
    if containerd:
        deadline = time.monotonic() + 10
        while ask(("unix", containerd), "ping", timeout=1) is None:
            if time.monotonic() > deadline:
                print(f'failed to start daemon: failed to dial "{containerd}": context deadline exceeded',
                      file=sys.stderr)  # fmt: skip
                return 1
            time.sleep(0.2)
    listeners = []
    for host in hosts or ["unix:///var/run/docker.sock"]:
        if host == "fd://":
            sockets = systemd_listen_sockets()
            if not sockets:
                print("failed to load listeners: no sockets found via socket activation: make sure the service "
                      "was started by systemd", file=sys.stderr)  # fmt: skip
                return 1
            listeners += sockets
        elif host.startswith("unix://"):
            listeners.append(unix_listener(host[len("unix://") :], 0o660))
        else:
            print(f"pdfleet sandbox stand-in: dockerd listens on unix sockets only, not {host}", file=sys.stderr)
            return 1
    log("info", "Loading containers: start.")
    log("info", "Loading containers: done.")
    log("info", "Docker daemon", commit=COMMIT, **{"containerd-snapshotter": "false"}, version=VERSION)
    log("info", "Daemon has completed initialization")
    for host in hosts or ["unix:///var/run/docker.sock"]:
        log("info", "API listen on " + (host[len("unix://") :] if host.startswith("unix://") else "/run/docker.sock"))
    sd_notify("READY=1")
    serve(listeners, daemon.answer, on_hup=daemon.reload)
    log("info", "Processing signal 'terminated'")
    log("info", "Daemon shutdown complete")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
