"""Start, watch and stop the simulated hosts.

One host = a network namespace with a veth on the sandbox bridge, a cgroup of its own, an overlay root over the
image, and a detached supervisor (supervise.sh) that boots systemd in fresh namespaces and boots it again after a
reboot. State lives in <sandbox dir>/hosts/<name>/: upper/ (the host's disk), supervisor.pid, unshare.pid,
console.log. Every process is found and ended by its own PID, checked against its command line first.

The stand-in Hugging Face hub (hub.py) runs beside the hosts in a namespace of its own on the same bridge, at the
/24's second address, port 8080, in its own cgroup; its state is in <sandbox dir>/hub/: token (made once, 0600,
kept across downs), requests.jsonl, knobs.json, hub.pid, console.log.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pdfleet.cluster import load_cluster
from pdfleet.sandbox.paths import (
    BRIDGE,
    CGROUP_NAME,
    HUB_NETNS,
    HUB_PORT,
    HUB_VETH,
    NETNS_PREFIX,
    VETH_PREFIX,
    SandboxPaths,
)

HERE = Path(__file__).resolve().parent
SUPERVISE = HERE / "supervise.sh"
HUB = HERE / "hub.py"
HUB_START_TIMEOUT = 10.0
BOOT_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class SandboxError(RuntimeError):
    pass


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    index: int

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.name}"

    @property
    def veth(self) -> str:
        return f"{VETH_PREFIX}{self.index}"


def hosts_of(inventory: Path) -> list[Host]:
    cluster = load_cluster(inventory)
    return [Host(node.name, node.address, index) for index, node in enumerate(cluster.nodes)]


def network_of(hosts: list[Host]) -> ipaddress.IPv4Network:
    """The /24 all sandbox hosts live in; the bridge takes its first address."""
    networks = {ipaddress.ip_interface(f"{h.address}/24").network for h in hosts}
    if len(networks) != 1:
        raise SandboxError(f"sandbox hosts must share one /24, found {sorted(map(str, networks))}")
    return networks.pop()


def run(*cmd: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(cmd), capture_output=capture, text=True, check=False)
    if check and result.returncode != 0:
        raise SandboxError(f"{' '.join(cmd)} failed: {(result.stderr or result.stdout).strip()}")
    return result


def cgroup_root() -> Path:
    """This machine's cgroup2 hierarchy: /sys/fs/cgroup on pure v2, /sys/fs/cgroup/unified on hybrid hosts."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return Path("/sys/fs/cgroup") / CGROUP_NAME
    if Path("/sys/fs/cgroup/unified/cgroup.controllers").exists():
        return Path("/sys/fs/cgroup/unified") / CGROUP_NAME
    raise SandboxError("no cgroup2 hierarchy on this machine (systemd in the hosts needs one)")


def _alive(pid: int, marker: str) -> bool:
    """Is `pid` running and is it ours (its command line mentions `marker`)? Guards against reused PIDs."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class Sandbox:
    def __init__(self, inventory: Path, paths: SandboxPaths, log=print):
        self.inventory = inventory
        self.paths = paths
        self.hosts = hosts_of(inventory)
        self.network = network_of(self.hosts)
        self.log = log

    # ----- state -----

    def supervisor_pid(self, host: Host) -> int | None:
        pid = _read_pid(self.paths.host(host.name) / "supervisor.pid")
        return pid if pid and _alive(pid, str(SUPERVISE)) else None

    def init_pid(self, host: Host) -> int | None:
        """The host's PID 1 (systemd) as this machine sees it: the child of its unshare."""
        unshare = _read_pid(self.paths.host(host.name) / "unshare.pid")
        if not unshare or not _alive(unshare, "unshare"):
            return None
        try:
            children = Path(f"/proc/{unshare}/task/{unshare}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def system_state(self, host: Host) -> str:
        pid = self.init_pid(host)
        if pid is None:
            return "stopped" if self.supervisor_pid(host) is None else "booting"
        result = run("nsenter", "-t", str(pid), "-m", "-p", "-n", "-u", "systemctl", "is-system-running", check=False)
        return result.stdout.strip() or "booting"

    # ----- up -----

    def up(self) -> list[str]:
        """Start every host not already running; returns the names started."""
        self._check_root()
        self._ensure_client_key()
        self._ensure_api_keys()
        self._ensure_bridge()
        self._start_hub()
        started = []
        for host in self.hosts:
            if self.supervisor_pid(host):
                continue
            self._create(host)
            self._start(host)
            started.append(host.name)
        self._write_known_hosts()
        self.wait_ready([h for h in self.hosts if h.name in started])
        return started

    def _check_root(self) -> None:
        if os.geteuid() != 0:
            raise SandboxError("the sandbox needs root (network namespaces, mounts, cgroups): run it with sudo")
        missing = [tool for tool in ("ip", "nsenter", "unshare", "setpriv", "ssh-keygen") if not shutil.which(tool)]
        if missing:
            raise SandboxError(
                f"missing tools: {', '.join(missing)} (apt-get install iproute2 util-linux openssh-client)"
            )

    def _ensure_api_keys(self) -> None:
        """The API key files the inventory names (security.client_keys_file, engine_key_file), like the hub token:
        random, 0600 in a 0700 directory, made once and kept across runs. Both hold the same key: smg 1.13.0
        forwards the client's key to the engines (pdfleet/apikeys.py)."""
        cluster = load_cluster(self.inventory)
        security = cluster.security
        if not security.api_keys:
            return
        base = Path(cluster.source).resolve().parent
        files = [base / name for name in (security.client_keys_file, security.engine_key_file) if name]
        existing = [path.read_text().strip() for path in files if path.exists()]
        key = existing[0] if existing else "pdfleet-" + secrets.token_hex(24)
        for path in files:
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(key + "\n")

    def _ensure_client_key(self) -> None:
        self.paths.ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.paths.client_key.exists():
            run(
                "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pdfleet-sandbox", "-f", str(self.paths.client_key)
            )

    def _ensure_bridge(self) -> None:
        for route in run("ip", "-4", "route", "show").stdout.splitlines():
            target = route.split()[0]
            theirs = target != "default" and f"dev {BRIDGE}" not in route
            if theirs and ipaddress.ip_network(target, strict=False).overlaps(self.network):
                raise SandboxError(f"the sandbox network {self.network} overlaps this machine's route '{route}'")
        if run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
            gateway = next(self.network.hosts())
            run("ip", "link", "add", BRIDGE, "type", "bridge")
            run("ip", "addr", "add", f"{gateway}/{self.network.prefixlen}", "dev", BRIDGE)
            run("ip", "link", "set", BRIDGE, "up")

    # ----- the stand-in hub -----

    @property
    def hub_address(self) -> str:
        return str(self.network.network_address + 2)

    @property
    def hub_endpoint(self) -> str:
        return f"http://{self.hub_address}:{HUB_PORT}"

    @property
    def hub_token_file(self) -> Path:
        return self.paths.hub / "token"

    def hub_pid(self) -> int | None:
        pid = _read_pid(self.paths.hub / "hub.pid")
        return pid if pid and _alive(pid, str(HUB)) else None

    def _start_hub(self) -> None:
        """The stand-in hub, listening on its own namespace's address only; once (a running one is kept)."""
        if self.hub_pid():
            return
        address = self.hub_address
        clash = [h.name for h in self.hosts if h.address == address]
        if clash:
            raise SandboxError(
                f"{self.inventory}: node {clash[0]} has {address}, the address of the sandbox's stand-in hub"
                f" (the /24's second address): give the node another one"
            )
        base = self.paths.hub
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = self.hub_token_file
        if not token.exists():
            alphabet = string.ascii_letters + string.digits
            fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write("hf_" + "".join(secrets.choice(alphabet) for _ in range(34)) + "\n")
        knobs = base / "knobs.json"
        if not knobs.exists():
            knobs.write_text("{}\n")
        (base / "requests.jsonl").touch()
        if HUB_NETNS not in run("ip", "netns", "list").stdout.split():
            run("ip", "netns", "add", HUB_NETNS)
            run("ip", "link", "add", HUB_VETH, "type", "veth", "peer", "name", "eth0", "netns", HUB_NETNS)
            run("ip", "link", "set", HUB_VETH, "master", BRIDGE, "up")
            run("ip", "-n", HUB_NETNS, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0")
            run("ip", "-n", HUB_NETNS, "link", "set", "eth0", "up")
            run("ip", "-n", HUB_NETNS, "link", "set", "lo", "up")
        cgroup = cgroup_root() / "hub"
        cgroup.mkdir(parents=True, exist_ok=True)
        argv = [
            *("sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup)),  # into its cgroup, same PID
            *("ip", "netns", "exec", HUB_NETNS, sys.executable, str(HUB), "--listen", f"{address}:{HUB_PORT}"),
            *("--token-file", str(token), "--log", str(base / "requests.jsonl"), "--knobs", str(knobs)),
        ]
        with open(base / "console.log", "ab") as console:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=console, stderr=console, start_new_session=True
            )
        (base / "hub.pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + HUB_START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise SandboxError(f"the stand-in hub exited with {process.returncode}; see {base / 'console.log'}")
            try:
                socket.create_connection((address, HUB_PORT), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise SandboxError(
                        f"the stand-in hub does not answer on {self.hub_endpoint} after {HUB_START_TIMEOUT:.0f} s;"
                        f" see {base / 'console.log'}"
                    ) from None
                time.sleep(0.02)

    def _stop_hub(self) -> None:
        pid = self.hub_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while self.hub_pid() and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.hub_pid():
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while self.hub_pid() and time.monotonic() < deadline:
                    time.sleep(0.02)
        if HUB_NETNS in run("ip", "netns", "list").stdout.split():
            run("ip", "netns", "del", HUB_NETNS)  # its veth goes with it
        for name in ("hub.pid", "requests.jsonl", "knobs.json", "knobs.json.tmp", "console.log"):
            (self.paths.hub / name).unlink(missing_ok=True)

    def _create(self, host: Host) -> None:
        """The host's disk (overlay upper) on first start: name, peers, keys, machine id."""
        base = self.paths.host(host.name)
        for sub in ("upper", "work", "merged"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "stopping").unlink(missing_ok=True)
        upper = base / "upper"
        if (upper / "etc/hostname").exists():
            return  # an existing disk: keep it as it is
        etc = upper / "etc"
        (etc / "ssh").mkdir(parents=True, exist_ok=True)
        (etc / "hostname").write_text(f"{host.name}\n")
        peers = "".join(f"{h.address}\t{h.name}\n" for h in self.hosts)
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{peers}")
        (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")
        key = etc / "ssh/ssh_host_ed25519_key"
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}", "-f", str(key))
        root_ssh = upper / "root/.ssh"
        root_ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root_ssh / "authorized_keys").write_text(self.paths.client_key.with_suffix(".pub").read_text())
        (root_ssh / "authorized_keys").chmod(0o600)

    def _start(self, host: Host) -> None:
        if run("ip", "netns", "list").stdout.split().count(host.netns) == 0:
            run("ip", "netns", "add", host.netns)
            if host.veth in _sandbox_veths():  # left by a namespace the kernel has not freed yet
                run("ip", "link", "del", host.veth)
            run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
            run("ip", "link", "set", host.veth, "master", BRIDGE, "up")
            run("ip", "-n", host.netns, "addr", "add", f"{host.address}/{self.network.prefixlen}", "dev", "eth0")
            run("ip", "-n", host.netns, "link", "set", "eth0", "up")
            run("ip", "-n", host.netns, "link", "set", "lo", "up")
        cgroup = cgroup_root() / host.name
        cgroup.mkdir(parents=True, exist_ok=True)
        base = self.paths.host(host.name)
        with open(base / "console.log", "ab") as console:
            process = subprocess.Popen(
                ["bash", str(SUPERVISE), host.name, host.netns, str(cgroup), str(self.paths.rootfs), str(base)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=console,
                start_new_session=True,
            )
        (base / "supervisor.pid").write_text(f"{process.pid}\n")

    def _write_known_hosts(self) -> None:
        lines = []
        for host in self.hosts:
            pub = self.paths.host(host.name) / "upper/etc/ssh/ssh_host_ed25519_key.pub"
            if pub.exists():
                kind, key = pub.read_text().split()[:2]
                lines.append(f"{host.address} {kind} {key}\n{host.name} {kind} {key}\n")
        self.paths.known_hosts.write_text("".join(lines))

    def wait_ready(self, hosts: list[Host], timeout: float = BOOT_TIMEOUT) -> None:
        """Until systemd says running and sshd answers, on every host."""
        deadline = time.monotonic() + timeout
        pending = list(hosts)
        while pending:
            for host in list(pending):
                state = self.system_state(host)
                if state in ("running", "degraded") and self._ssh_banner(host):
                    if state == "degraded":
                        failed = self.exec(host, "systemctl", "--failed", "--no-legend", "--plain").stdout.strip()
                        raise SandboxError(f"{host.name} booted degraded; failed units:\n{failed}")
                    pending.remove(host)
            if pending and time.monotonic() > deadline:
                details = ", ".join(f"{h.name}: {self.system_state(h)}" for h in pending)
                raise SandboxError(
                    f"hosts not ready after {timeout:.0f} s ({details}); see {self.paths.hosts}/<host>/console.log"
                )
            if pending:
                time.sleep(0.1)

    def _ssh_banner(self, host: Host) -> bool:
        try:
            with socket.create_connection((host.address, 22), timeout=1) as sock:
                return sock.recv(16).startswith(b"SSH-")
        except OSError:
            return False

    def exec(self, host: Host, *cmd: str) -> subprocess.CompletedProcess:
        """Run a command inside a host (all its namespaces), without ssh."""
        pid = self.init_pid(host)
        if pid is None:
            raise SandboxError(f"{host.name} is not running")
        return run("nsenter", "-t", str(pid), "-m", "-p", "-n", "-u", "-i", "-C", *cmd, check=False)

    def reimage(self, name: str) -> None:
        """Wipe one host's disk and boot it fresh, as a re-imaged machine comes back: same name and address, a new
        SSH host key, nothing of the cluster on it. The pinned keys are left as they were (the replacement runbook
        pins the new one after its guard)."""
        self._check_root()
        host = next((h for h in self.hosts if h.name == name), None)
        if host is None:
            raise SandboxError(f"{name}: not a host of {self.inventory} ({', '.join(h.name for h in self.hosts)})")
        self._stop(host)
        shutil.rmtree(self.paths.host(host.name), ignore_errors=True)
        self._create(host)
        self._start(host)
        self.wait_ready([host])

    # ----- down -----

    def started_hosts(self) -> list[Host]:
        """Every host this sandbox directory holds state for, whichever inventory started it: the inventory's own
        hosts and those left by `up -i OTHER` (a host is stopped by its own PIDs and namespace name, both found
        from its directory's name)."""
        known = {host.name: host for host in self.hosts}
        if self.paths.hosts.is_dir():
            for directory in sorted(self.paths.hosts.iterdir()):
                if directory.is_dir() and directory.name not in known:
                    known[directory.name] = Host(directory.name, "", -1)
        return list(known.values())

    def down(self) -> None:
        """Stop every host and the hub and remove all traces from this machine: processes, namespaces, cgroups,
        bridge, disks (the hub's token stays). Hosts started from another inventory go too."""
        self._check_root()
        hosts = self.started_hosts()
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            list(pool.map(self._stop, hosts))
        self._stop_hub()
        for host in hosts:
            if host.netns in run("ip", "netns", "list").stdout.split():
                run("ip", "netns", "del", host.netns)
            shutil.rmtree(self.paths.host(host.name), ignore_errors=True)
        # The kernel frees a deleted namespace (and the veth end in it) later, in a work queue: an `up` right after
        # could find the old pair still there. Deleting this side removes both ends at once.
        for link in _sandbox_veths():
            run("ip", "link", "del", link, check=False)
        if run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            run("ip", "link", "del", BRIDGE)
        root = cgroup_root()
        if root.exists():
            _remove_cgroup_tree(root)
        self.paths.known_hosts.unlink(missing_ok=True)

    def _stop(self, host: Host) -> None:
        base = self.paths.host(host.name)
        supervisor = self.supervisor_pid(host)
        if base.exists():
            (base / "stopping").touch()
        init = self.init_pid(host)
        if init:
            os.kill(init, signal.SIGRTMIN + 4)  # systemd: orderly poweroff
        deadline = time.monotonic() + STOP_TIMEOUT
        while supervisor and self.supervisor_pid(host) and time.monotonic() < deadline:
            time.sleep(0.1)
        init = self.init_pid(host)
        if init:
            os.kill(init, signal.SIGKILL)  # the kernel then ends every process of the host's PID namespace
        deadline = time.monotonic() + 5
        while supervisor and self.supervisor_pid(host) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.supervisor_pid(host):
            os.kill(supervisor, signal.SIGKILL)


def _sandbox_veths() -> list[str]:
    """The host-side ends of the sandbox's veth pairs on this machine (named VETH_PREFIX + index, or the hub's)."""
    listing = run("ip", "-o", "link", "show", "type", "veth").stdout
    names = [line.split(":", 2)[1].strip().split("@", 1)[0] for line in listing.splitlines() if line.count(":") >= 2]
    return [name for name in names if name.startswith(VETH_PREFIX)]


def _remove_cgroup_tree(root: Path) -> None:
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        directory.rmdir()
    root.rmdir()
