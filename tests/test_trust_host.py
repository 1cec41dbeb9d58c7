"""SSH host keys, strict by default: pyinfra is told to refuse an unpinned node, the first contact tells the person how
to pin it, and `pdfleet trust-host` pins a key only after it matched the fingerprint read on the node's console
(or the person said yes). The node here is a real SSH server on loopback (paramiko's server side, an ed25519 host
key), scanned by the real ssh-keyscan; the pins are read back by the real ssh-keygen."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import paramiko
import pytest
import yaml

from pdfleet import knownhosts
from pdfleet.cluster import load_cluster
from pdfleet.inventory import host_data, pyinfra_groups
from tests.fakehosts import ROOT

PROD = ROOT / "inventories/prod.yaml"
ADDRESS = "127.0.0.11"  # prefill-0 of the test inventory, on loopback


class SshServer:
    """Answers SSH key exchanges with one ed25519 host key until closed."""

    def __init__(self, address: str):
        self.key = paramiko.Ed25519Key.from_private_key_file(self._make_key())
        self.sock = socket.socket()
        self.sock.bind((address, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _make_key(self) -> str:
        path = f"/tmp/pdfleet-test-hostkey-{os.getpid()}-{id(self)}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
        self._key_path = path
        return path

    @property
    def fingerprint(self) -> str:
        return knownhosts.fingerprint(self.key.get_base64())

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.key)
            try:
                transport.start_server(server=paramiko.ServerInterface())
            except (paramiko.SSHException, EOFError, OSError):
                pass
            finally:
                transport.close()

    def close(self) -> None:
        self.sock.close()
        for suffix in ("", ".pub"):
            if os.path.exists(self._key_path + suffix):
                os.unlink(self._key_path + suffix)


@pytest.fixture
def node():
    server = SshServer(ADDRESS)
    yield server
    server.close()


def inventory(tmp_path, port: int, **ssh) -> tuple:
    doc = yaml.safe_load(PROD.read_text())
    doc["ssh"] = {"user": "root", "port": port, "known_hosts": "keys/known_hosts", **ssh}
    for i, entry in enumerate(doc["nodes"]):
        entry["address"] = f"127.0.0.{11 + i}"
    doc["security"] = {"admin_cidrs": ["127.0.0.0/8"]}
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "lab.py").write_text((ROOT / "inventories/prod.py").read_text())
    return path, tmp_path / "keys" / "known_hosts"


def trust(inventory_yaml, *args, answer: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pdfleet.cli", "trust-host", str(inventory_yaml), *args],
        capture_output=True, text=True, input=answer, cwd=ROOT, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def ssh_keygen_finds(known_hosts, port: int) -> bool:
    found = subprocess.run(["ssh-keygen", "-F", f"[{ADDRESS}]:{port}", "-f", str(known_hosts)], capture_output=True)
    return found.returncode == 0


def test_pyinfra_is_told_to_check_host_keys_strictly_by_default_and_accept_new_only_when_asked(tmp_path):
    path, known = inventory(tmp_path, 22)
    data = host_data(load_cluster(path), "prefill-0", path)
    assert data["ssh_strict_host_key_checking"] == "yes" and data["ssh_known_hosts_file"] == str(known)
    relaxed, _ = inventory(tmp_path, 22, strict_host_keys=False)
    assert host_data(load_cluster(relaxed), "prefill-0", relaxed)["ssh_strict_host_key_checking"] == "accept-new"
    default = host_data(load_cluster(PROD), "prefill-0", PROD)
    assert default["ssh_known_hosts_file"] == os.path.expanduser("~/.ssh/known_hosts")


def test_the_fingerprint_from_the_console_pins_the_key_and_ssh_keygen_finds_it(tmp_path, node):
    path, known = inventory(tmp_path, node.port)
    done = trust(path, "prefill-0", "--fingerprint", node.fingerprint)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"pinned ssh-ed25519 {node.fingerprint}" in done.stdout
    assert ssh_keygen_finds(known, node.port) and oct(known.stat().st_mode & 0o777) == "0o600"
    again = trust(path, "prefill-0", "--fingerprint", node.fingerprint)
    assert again.returncode == 0 and "already pinned" in again.stdout


def test_a_fingerprint_that_differs_pins_nothing(tmp_path, node):
    path, known = inventory(tmp_path, node.port)
    done = trust(path, "prefill-0", "--fingerprint", "SHA256:" + "A" * 43)
    assert done.returncode == 1 and "NOT pinned" in done.stdout and node.fingerprint in done.stdout
    assert not known.exists() or not ssh_keygen_finds(known, node.port)


def test_without_a_fingerprint_the_person_is_asked_and_no_means_no(tmp_path, node):
    path, known = inventory(tmp_path, node.port)
    refused = trust(path, "prefill-0", answer="n\n")
    assert refused.returncode == 1 and node.fingerprint in refused.stdout and "console" in refused.stdout
    assert not known.exists()
    accepted = trust(path, "prefill-0", answer="y\n")
    assert accepted.returncode == 0 and ssh_keygen_finds(known, node.port)


def test_a_node_pinned_to_another_key_is_refused_and_sent_to_replace_node(tmp_path, node):
    path, known = inventory(tmp_path, node.port)
    other = SshServer(ADDRESS)
    try:
        known.parent.mkdir(parents=True, exist_ok=True)
        known.write_text(f"[{ADDRESS}]:{node.port} ssh-ed25519 {other.key.get_base64()}\n")
        refused = trust(path, "prefill-0", "--yes")
        assert refused.returncode == 1 and "replace-node" in refused.stdout and other.fingerprint in refused.stdout
        assert known.read_text() == f"[{ADDRESS}]:{node.port} ssh-ed25519 {other.key.get_base64()}\n"
    finally:
        other.close()


def test_first_contact_lists_the_unpinned_nodes_with_how_to_pin_them_and_hashed_pins_count(tmp_path, node, capsys):
    path, known = inventory(tmp_path, node.port)
    pyinfra_groups(str(path.with_suffix(".py")))
    told = capsys.readouterr().err
    assert "4 node(s) have no pinned SSH host key" in told and "pyinfra will refuse to connect" in told
    assert "prefill-0 127.0.0.11" in told and "pdfleet trust-host" in told and "ssh-keygen -lf" in told

    assert trust(path, "prefill-0", "--yes").returncode == 0
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)  # HashKnownHosts
    assert "|1|" in known.read_text() and ADDRESS not in known.read_text()
    pyinfra_groups(str(path.with_suffix(".py")))
    told = capsys.readouterr().err
    assert "3 node(s)" in told and "prefill-0 127.0.0.11" not in told and "prefill-1 127.0.0.12" in told
