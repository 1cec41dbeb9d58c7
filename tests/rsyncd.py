"""A real `rsync --daemon` on 127.0.0.1 for the tests of peer copies (the weights stager, the DeepGEMM cache)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def rsync_daemon(directory: Path, modules: dict[str, Path]):
    """Serve `modules` ({name: directory}) read only on 127.0.0.1; yields the port. Ends the daemon by its PID."""
    if not shutil.which("rsync"):
        pytest.fail("rsync is not installed: apt-get install rsync (`.ci/setup --tests` installs it)")
    port = free_port()
    conf = directory / "rsyncd.conf"
    identity = "uid = root\ngid = root\n" if os.geteuid() == 0 else ""
    sections = "".join(f"[{name}]\npath = {path}\nread only = yes\nlist = no\n" for name, path in modules.items())
    conf.write_text(f"use chroot = no\n{identity}pid file = {directory / 'rsyncd.pid'}\n{sections}")
    process = subprocess.Popen(
        ["rsync", "--daemon", "--no-detach", f"--config={conf}", f"--port={port}", "--address=127.0.0.1",
         f"--log-file={directory / 'rsyncd.log'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"rsync --daemon did not start: {(directory / 'rsyncd.log').read_text()}")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
