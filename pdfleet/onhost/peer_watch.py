#!/usr/bin/python3
"""pdfleet-peer-watch: a rank of a multi-node SGLang instance that lost a peer restarts, so the instance comes back
whole instead of hanging.

When one node of a multi-node instance dies, the others do not exit: they wait in NCCL collectives until the
watchdog's timeout (600 s by default), serving nothing (sglang #3099, #3932). systemd restarts the dead rank, but
it cannot rejoin peers stuck in the old collective. This watch runs beside each rank's serving unit
(sglang-INSTANCE-peer-watch.service, BindsTo= it), installed by roles/units.py as
/usr/local/lib/pdfleet/pdfleet-peer-watch.py:

    pdfleet-peer-watch.py --unit sglang-decode.service --peer http://10.0.0.14:8055/health [--peer ...]
                          [--interval 2] [--failures 3] [--timeout 5]

It waits until every peer answered /health once (the instance is up: a starting instance is not watched), then
probes them every --interval seconds; a peer that fails --failures probes in a row (refused, timed out, or an
answer other than 200) makes it kill the local serving unit (SIGKILL: its requests wait on collectives that
never finish, so SGLang's drain on SIGTERM would hold a stop until TimeoutStopSec). systemd's Restart= starts it
again after RestartSec, as it starts the rank that died: the ranks come back together and meet again.
Standard library only.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request


def log(message: str) -> None:
    print(f"pdfleet-peer-watch: {message}", flush=True)


def healthy(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Watch:
    """The decision, apart from the clock and the network (tests drive it)."""

    def __init__(self, peers: list[str], failures: int):
        self.peers = peers
        self.failures = failures
        self.seen_up: set[str] = set()
        self.misses = dict.fromkeys(peers, 0)

    @property
    def armed(self) -> bool:
        return self.seen_up == set(self.peers)

    def observe(self, peer: str, ok: bool) -> str | None:
        """Record one probe; returns the peer lost (the reason to restart) or None."""
        if ok:
            self.seen_up.add(peer)
            self.misses[peer] = 0
            return None
        if not self.armed:
            return None
        self.misses[peer] += 1
        return peer if self.misses[peer] >= self.failures else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pdfleet-peer-watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--unit", required=True, help="this rank's serving unit, restarted when a peer is lost")
    parser.add_argument("--peer", action="append", required=True, help="another rank's /health URL (repeat)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between probes")
    parser.add_argument("--failures", type=int, default=3, help="failed probes in a row that mean a peer is lost")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds a probe may take")
    args = parser.parse_args(argv)
    watch = Watch(args.peer, args.failures)
    log(f"watching {', '.join(args.peer)} for {args.unit}; armed once every peer answered")
    while True:
        for peer in args.peer:
            was_armed = watch.armed
            lost = watch.observe(peer, healthy(peer, args.timeout))
            if watch.armed and not was_armed:
                log("every peer answered: armed")
            if lost:
                log(f"peer {lost} failed {args.failures} probes in a row: killing {args.unit}; systemd restarts it")
                # Stopping the unit stops this watch too (BindsTo=): the kill must not be cut short.
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                subprocess.run(["systemctl", "kill", "--signal=SIGKILL", args.unit], check=False)
                return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
