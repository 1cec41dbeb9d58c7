"""pdfleet-peer-watch (pdfleet/onhost/peer_watch.py): a rank that lost a peer restarts its own unit, once the
instance had been up whole; a starting instance is left alone."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path

from pdfleet.onhost.peer_watch import Watch

ROOT = Path(__file__).resolve().parent.parent
WATCH = ROOT / "pdfleet/onhost/peer_watch.py"


def test_not_armed_until_every_peer_answered_then_a_run_of_failures_means_lost():
    watch = Watch(["a", "b"], failures=2)
    assert watch.observe("a", False) is None and watch.observe("a", False) is None  # starting: not watched
    watch.observe("a", True)
    assert not watch.armed
    watch.observe("b", True)
    assert watch.armed
    assert watch.observe("b", False) is None
    assert watch.observe("b", True) is None  # a miss then an answer: the run starts again
    assert watch.observe("b", False) is None
    assert watch.observe("b", False) == "b"


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_lost_peer_restarts_the_local_unit(tmp_path):
    # systemctl on PATH records what it was asked: the watch must not restart anything on this machine.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "systemctl.calls"
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "systemctl").chmod(0o755)
    peer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{peer.server_address[1]}/health"
    watch = subprocess.Popen(
        [sys.executable, str(WATCH), "--unit", "sglang-decode.service", "--peer", url, "--interval", "0.2",
         "--failures", "3", "--timeout", "1"],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        assert watch.poll() is None  # the peer answers: nothing to do
        lost_at = time.monotonic()
        peer.shutdown()
        peer.server_close()
        assert watch.wait(10) == 0
        took = time.monotonic() - lost_at
    finally:
        if watch.poll() is None:
            watch.kill()
    output = watch.stdout.read()
    assert "every peer answered: armed" in output and "failed 3 probes in a row" in output
    # Killed (its requests hang on collectives: a drain on SIGTERM would wait them out); Restart= brings it back.
    assert calls.read_text() == "kill --signal=SIGKILL sglang-decode.service\n"
    assert 0.4 < took < 5  # three probes 0.2 s apart, refused at once
