"""Helpers shared by the stand-in tools. debs.py inlines this file into each tool at the line
`from standin_lib import ...`, so every installed tool is one self-contained file (no shared module, no package that
would own it).

Everything a tool reads or writes goes through `rooted()`: PDFLEET_STANDIN_ROOT (default /) is prepended to every
absolute path, so tests run the tools from a `dpkg-deb -x` tree with their data and state under a temporary root.
"""

import contextlib
import os
import selectors
import signal
import socket
import sys
import time

STANDIN_ROOT = os.environ.get("PDFLEET_STANDIN_ROOT", "/")
NVIDIA_DATA = "/usr/share/pdfleet-standin/nvidia"
# Which driver version the (simulated) kernel module has: written the first time a tool needs the driver after a
# boot, from the installed driver package. /run is a fresh tmpfs at every boot, so a reboot "loads" the new module.
KMOD_MARKER = "/run/pdfleet-standin/nvidia-kmod-version"


def rooted(path):
    """The path on this machine for an absolute path inside the simulated host."""
    if STANDIN_ROOT in ("", "/"):
        return path
    return os.path.join(STANDIN_ROOT, path.lstrip("/"))


def read_text(path, default=None):
    try:
        with open(rooted(path), encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return default


def write_text(path, text, mode=0o644):
    real = rooted(path)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    tmp = f"{real}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, real)


def installed_driver_version():
    """The driver version of the installed nvidia-utils stand-in, or None when no driver is installed."""
    text = read_text(f"{NVIDIA_DATA}/driver-version")
    return text.strip() if text else None


def loaded_driver_version():
    """The version of the simulated loaded kernel module; loads (records) the installed one if none is loaded yet."""
    loaded = read_text(KMOD_MARKER)
    if loaded:
        return loaded.strip()
    installed = installed_driver_version()
    if installed is None:
        return None
    with contextlib.suppress(OSError):
        write_text(KMOD_MARKER, installed + "\n")
    return installed


def sd_notify(state):
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(state.encode())


def daemonize(pidfile=None):
    """Fork into the background like a classic daemon (systemd Type=forking): the parent exits only after the
    intermediate child is gone and the daemon wrote its pid file, so the daemon is the only process left.

    systemd reads the main PID from PIDFile=, or, in a unit without one (Ubuntu's nvidia-persistenced.service),
    guesses it when the starting process exits: the one process left whose parent is the manager. An intermediate
    child still running at that moment would be that process; its exit then ends the service, whose daemon is
    stopped and whose unit goes inactive (seen in CI after a reboot). Reaping it first closes that window.
    stdout/stderr stay open: under systemd they are the journal."""
    read_end, write_end = os.pipe()
    intermediate = os.fork()
    if intermediate > 0:
        os.close(write_end)
        os.waitpid(intermediate, 0)
        ok = os.read(read_end, 1)
        os._exit(0 if ok == b"1" else 1)
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        # Tests widen the window the parent must wait out (tests/test_standin_debs.py).
        time.sleep(float(os.environ.get("PDFLEET_STANDIN_INTERMEDIATE_EXIT_DELAY", "0") or 0))
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if pidfile:
        write_text(pidfile, f"{os.getpid()}\n")
    os.write(write_end, b"1")
    os.close(write_end)


def systemd_listen_sockets():
    """Sockets passed by systemd socket activation (LISTEN_FDS), if they are meant for this process."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0"))
    return [socket.socket(fileno=3 + i) for i in range(count)]


def unix_listener(path, mode=0o660):
    real = rooted(path)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(real)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(real)
    os.chmod(real, mode)
    sock.listen(64)
    return sock


def tcp_listener(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock


class _Stop(Exception):
    pass


def serve(listeners, answer, on_hup=None):
    """Answer one line per connection with answer(line) until SIGTERM/SIGINT (then return)."""

    def stop(_signum, _frame):
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    hup = []
    if on_hup is not None:
        signal.signal(signal.SIGHUP, lambda _s, _f: hup.append(True))
    selector = selectors.DefaultSelector()
    for listener in listeners:
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
    try:
        while True:
            if hup:
                hup.clear()
                on_hup()
            for key, _mask in selector.select(timeout=0.5):
                try:
                    conn, _addr = key.fileobj.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                with conn:
                    conn.settimeout(2)
                    try:
                        line = conn.makefile("r").readline().strip()
                        conn.sendall((answer(line) + "\n").encode())
                    except OSError:
                        pass
    except _Stop:
        pass
    for listener in listeners:
        listener.close()


def ask(address, line, timeout=5.0):
    """Send one line to a stand-in daemon and return its one-line answer; None when nobody listens.
    address: ("unix", path) or ("tcp", host, port)."""
    try:
        if address[0] == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(rooted(address[1]))
        else:
            sock = socket.create_connection((address[1], address[2]), timeout=timeout)
            sock.settimeout(timeout)
    except OSError:
        return None
    with sock:
        try:
            sock.sendall((line + "\n").encode())
            return sock.makefile("r").readline().strip()
        except OSError:
            return None


def die(message, code=1, stream=None):
    print(message, file=stream or sys.stderr)
    sys.exit(code)
