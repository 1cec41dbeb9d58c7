"""Multi-node start-up as the sandbox needs to see it: the ranks of one instance meet before any of them serves.

Real SGLang (torch.distributed) starts a TCP store on node rank 0 at --dist-init-addr's port; every rank connects
to it, and no rank finishes start-up (rank 0 opens no HTTP port, ranks >= 1 no health stub) until all --nnodes are
there. Later, losing a peer kills the collective: the other ranks fail. Rank 0's clean stop (its ShutdownReq
broadcast) stops the other ranks cleanly. This module reproduces exactly that with one TCP connection per rank:

    rank N -> rank 0:  "rank N nnodes M\\n"
    rank 0 -> all:     "ready\\n" once every rank 1..M-1 is connected;  "shutdown\\n" on a clean stop
    EOF without "shutdown" = the peer died -> this process fails (exit status 1)
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class RendezvousError(Exception):
    pass


def _split(addr: str) -> tuple[str, int]:
    """HOST:PORT as SGLang reads --dist-init-addr: an IPv6 host in brackets ([fd00::13]:5757); a bare IPv6 address
    (fd00::13:5757) is refused, as 0.5.23 refuses it (it cannot tell the port from the address)."""
    if addr.startswith("["):
        host, close, port = addr[1:].partition("]")
        if not close or not port.startswith(":") or ":" not in host:
            raise RendezvousError(f"--dist-init-addr {addr!r} is not [IPV6]:PORT")
        port = port[1:]
    else:
        host, _, port = addr.rpartition(":")
        if ":" in host:
            raise RendezvousError(f"--dist-init-addr {addr!r}: an IPv6 address must be in brackets, [{host}]:{port}")
    if not host or not port.isdigit():
        raise RendezvousError(f"--dist-init-addr {addr!r} is not HOST:PORT")
    return host, int(port)


class Rendezvous:
    def __init__(self, dist_init_addr: str, nnodes: int, rank: int, stop: threading.Event, on_lost):
        self.host, self.port = _split(dist_init_addr)
        self.nnodes = nnodes
        self.rank = rank
        self.stop = stop
        self.on_lost = on_lost  # called with a message when a peer is gone
        self.ready = threading.Event()
        self.closing = False
        self.peers: dict[int, socket.socket] = {}
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.conn: socket.socket | None = None

    # -- rank 0 ---------------------------------------------------------------------------------------------------

    def listen(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", self.port))  # torch's TCPStore listens on every address of the port
        except OSError as exc:
            sock.close()
            raise RendezvousError(f"cannot listen on the --dist-init-addr port {self.port}: {exc}") from exc
        sock.listen(16)
        sock.settimeout(0.5)
        self.listener = sock
        threading.Thread(target=self._accept, name="rendezvous-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set() and not self.closing:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._register, args=(conn,), daemon=True).start()

    def _register(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            line = conn.makefile("rb").readline().decode(errors="replace").split()
        except OSError:
            conn.close()
            return
        if len(line) != 4 or line[0] != "rank" or line[2] != "nnodes" or not (line[1] + line[3]).isdigit():
            conn.close()
            return
        rank, nnodes = int(line[1]), int(line[3])
        if nnodes != self.nnodes or not 1 <= rank < self.nnodes:
            try:
                conn.sendall(f"error rank {rank} nnodes {nnodes} does not fit nnodes {self.nnodes}\n".encode())
            finally:
                conn.close()
            return
        conn.settimeout(None)
        with self.lock:
            if self.ready.is_set():
                # the collective was formed without this process: a restarted rank cannot rejoin it
                conn.sendall(b"error the instance is already running; restart every rank\n")
                conn.close()
                return
            old = self.peers.pop(rank, None)
            if old is not None:
                old.close()
            self.peers[rank] = conn
            complete = len(self.peers) == self.nnodes - 1
            if complete:
                for peer in self.peers.values():
                    peer.sendall(b"ready\n")
                self.ready.set()
        if complete:
            for peer_rank, peer in list(self.peers.items()):
                threading.Thread(target=self._watch, args=(peer_rank, peer), daemon=True).start()

    def _watch(self, rank: int, conn: socket.socket) -> None:
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        if not self.closing and not self.stop.is_set():
            self.on_lost(f"node rank {rank} left the instance")

    # -- rank >= 1 ------------------------------------------------------------------------------------------------

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while not self.stop.is_set():
            try:
                conn = socket.create_connection((self.host, self.port), timeout=2)
            except OSError as exc:
                last = str(exc)
                if time.monotonic() > deadline:
                    raise RendezvousError(
                        f"rank 0 at {self.host}:{self.port} not reachable for {timeout:g} s ({last})"
                    ) from None
                self.stop.wait(0.5)
                continue
            conn.sendall(f"rank {self.rank} nnodes {self.nnodes}\n".encode())
            conn.settimeout(0.5)
            buffer = b""
            while not self.stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    conn.close()
                    raise RendezvousError(f"rank 0 at {self.host}:{self.port} closed the connection")
                buffer += data
                if b"\n" in buffer:
                    break
            if self.stop.is_set():
                conn.close()
                return
            first = buffer.split(b"\n", 1)[0].decode(errors="replace")
            if first != "ready":
                conn.close()
                raise RendezvousError(f"rank 0 refused: {first}")
            conn.settimeout(None)
            self.conn = conn
            self.ready.set()
            threading.Thread(target=self._watch_rank0, args=(conn, buffer.split(b"\n", 1)[1]), daemon=True).start()
            return

    def _watch_rank0(self, conn: socket.socket, buffer: bytes) -> None:
        try:
            while b"shutdown" not in buffer:
                data = conn.recv(4096)
                if not data:
                    break
                buffer += data
        except OSError:
            pass
        if self.closing or self.stop.is_set():
            return
        if b"shutdown" in buffer:
            self.on_lost(None)  # rank 0's ShutdownReq: a clean stop
        else:
            self.on_lost("node rank 0 left the instance")

    # -- both -----------------------------------------------------------------------------------------------------

    def close(self) -> None:
        self.closing = True
        with self.lock:
            peers = list(self.peers.values())
        for peer in peers:
            with contextlib.suppress(OSError):
                peer.sendall(b"shutdown\n")
            peer.close()
        if self.listener is not None:
            self.listener.close()
        if self.conn is not None:
            self.conn.close()
