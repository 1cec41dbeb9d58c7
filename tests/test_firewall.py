"""The rendered firewall, loaded by the real `nft` into throwaway network namespaces and probed with real packets:
who reaches which port of a node (the cluster, admin_cidrs, client_cidrs, a stranger; IPv4 and IPv6), loading it
again replaces pdfleet's table in one transaction and leaves other tables alone, and `security:` mistakes are
refused. Needs root and nft (`.ci/setup --tests` installs it); nothing touches this machine's own namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from pdfleet import firewallplan as fw
from pdfleet.cluster import load_cluster
from pdfleet.errors import InventoryError
from pdfleet.render import render
from pdfleet.serving import plan
from tests.fakehosts import ROOT

PROD = ROOT / "inventories/prod.yaml"
needs_nft = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nft (.ci/setup --tests)"
)

NODE_V4, NODE_V6 = "10.10.0.11", "fd00::11"  # prefill-0, the router's node (its v6 address: only on the veth)
SOURCES = {  # who connects, from which address
    "cluster": ("10.10.0.12", None),
    "admin": ("10.10.9.1", "fd00:9::1"),
    "client": ("10.10.8.50", "fd00:8::50"),
    "stranger": ("10.10.7.7", "fd00:7::7"),
}
RUNTIME_PORT = 41234  # a port no claim names: NCCL's, Mooncake's, a DP-attention worker's


def inventory(tmp_path, **security) -> str:
    doc = yaml.safe_load(PROD.read_text())
    doc["security"] = {
        "admin_cidrs": ["10.10.9.1/32", "fd00:9::/64"],
        "client_cidrs": ["10.10.8.0/24", "fd00:8::/64"],
        **security,
    }
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def rules_of(path: str, node: str = "prefill-0") -> str:
    return render(plan(load_cluster(path)))[node][fw.RULES_FILE].content


def ns(name: str, *argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", name, *argv], capture_output=True, text=True, check=check, **kw)


def nft(name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """nft in the namespace as on a minimal server: without /etc/protocols and /etc/services (no netbase), so a
    protocol or service written by name fails here as it would there."""
    script = 'mount --bind /dev/null /etc/protocols && mount --bind /dev/null /etc/services && exec nft "$@"'
    return ns(name, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "nft", *argv, check=check)


@pytest.fixture
def pair():
    """Two namespaces joined by a veth: `node` (prefill-0's addresses) and `peer` (every source's address)."""
    node, peer = f"pdfw-node-{os.getpid()}", f"pdfw-peer-{os.getpid()}"
    made = []
    try:
        for name in (node, peer):
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
        subprocess.run(["ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "eth0", "netns", peer])
        for name in (node, peer):
            ns(name, "ip", "link", "set", "lo", "up")
            ns(name, "ip", "link", "set", "eth0", "up")
        ns(node, "ip", "addr", "add", f"{NODE_V4}/16", "dev", "eth0")
        ns(node, "ip", "addr", "add", f"{NODE_V6}/16", "dev", "eth0", "nodad")
        for v4, v6 in SOURCES.values():
            ns(peer, "ip", "addr", "add", f"{v4}/16", "dev", "eth0")
            if v6:
                ns(peer, "ip", "addr", "add", f"{v6}/16", "dev", "eth0", "nodad")
        yield node, peer
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


LISTEN = textwrap.dedent(
    """
    import socket, sys, threading, time
    for port in map(int, sys.argv[1:]):
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port)); s.listen(16)
        threading.Thread(target=lambda s=s: [c.close() for c, _ in iter(s.accept, None)], daemon=True).start()
    print("listening", flush=True)
    time.sleep(120)
    """
)
PROBE = textwrap.dedent(
    """
    import json, socket, sys
    from concurrent.futures import ThreadPoolExecutor
    def probe(job):
        source, target, port = job
        family = socket.AF_INET6 if ":" in source else socket.AF_INET
        with socket.socket(family) as s:
            s.settimeout(1.5)
            s.bind((source, 0))
            try:
                s.connect((target, port)); return True
            except OSError:
                return False
    jobs = json.loads(sys.argv[1])
    with ThreadPoolExecutor(len(jobs)) as pool:
        print(json.dumps(list(pool.map(probe, jobs))))
    """
)


def reachable(node: str, peer: str, ports: list[int]) -> dict[tuple[str, str, int], bool]:
    """Which (who, family, port) connects to the node, every probe at once."""
    listener = subprocess.Popen(
        ["ip", "netns", "exec", node, sys.executable, "-c", LISTEN, *map(str, ports)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert listener.stdout.readline().strip() == "listening"
        jobs, keys = [], []
        for who, (v4, v6) in SOURCES.items():
            for family, source, target in (("v4", v4, NODE_V4), ("v6", v6, NODE_V6)):
                if source:
                    for port in ports:
                        jobs.append((source, target, port))
                        keys.append((who, family, port))
        out = ns(peer, sys.executable, "-c", PROBE, json.dumps(jobs), timeout=60).stdout
        return dict(zip(keys, json.loads(out), strict=True))
    finally:
        listener.kill()
        listener.wait()


@needs_nft
def test_the_rendered_rules_let_in_exactly_whom_the_inventory_says_with_real_packets(tmp_path, pair):
    node, peer = pair
    rules = tmp_path / "firewall.nft"
    rules.write_text(rules_of(inventory(tmp_path)))
    ports = [22, 8000, 8055, 8998, 29000, 3000, RUNTIME_PORT]
    assert all(reachable(node, peer, ports).values()), "before any rule, every port answers every source"

    nft(node, "--check", "--file", str(rules))
    nft(node, "--file", str(rules))
    seen = reachable(node, peer, ports)
    for (who, family, port), ok in seen.items():
        if who in ("cluster", "admin"):
            expected = True  # every port, the run-time ones included
        elif who == "client":
            expected = port == 8000  # the router's client port, nothing else
        else:
            expected = False
        assert ok == expected, f"{who} over {family} to port {port}: {'open' if ok else 'closed'}"
    counters = ns(node, "nft", "list", "chain", "inet", "pdfleet", "input").stdout
    assert 'counter packets 0 bytes 0 comment "dropped by the policy"' not in counters


@needs_nft
def test_loading_again_replaces_pdfleets_table_in_one_transaction_and_leaves_other_tables(tmp_path, pair):
    node, _ = pair
    first, second = tmp_path / "first.nft", tmp_path / "second.nft"
    first.write_text(rules_of(inventory(tmp_path)))
    second.write_text(rules_of(inventory(tmp_path, client_cidrs=["10.10.6.0/24"])))
    nft(node, "add", "table", "ip", "theirs")  # another tool's table (Docker's, the distribution's)
    for path in (first, first, second):
        nft(node, "--file", str(path))
    ruleset = ns(node, "nft", "list", "ruleset").stdout
    assert ruleset.count("table inet pdfleet") == 1 and "table ip theirs" in ruleset
    assert "10.10.6.0/24" in ruleset and "10.10.8.0/24" not in ruleset
    assert ruleset.count("policy drop") == 1

    broken = tmp_path / "broken.nft"
    broken.write_text(second.read_text().replace("10.10.6.0/24", "10.10.6.0/99"))
    refused = nft(node, "--file", str(broken), check=False)
    assert refused.returncode != 0
    assert ns(node, "nft", "list", "ruleset").stdout == ruleset, "a refused file changes nothing (one transaction)"


def test_each_node_gets_its_own_ports_and_only_the_routers_node_takes_clients():
    files = render(plan(load_cluster(PROD)))
    router, decode = files["prefill-0"][fw.RULES_FILE].content, files["decode-1"][fw.RULES_FILE].content
    assert "tcp dport 8000 ip saddr @client_v4 accept" in router and "client_v4" not in decode
    assert "elements = { 3000, 8055, 8730, 8998, 9090, 9100, 9400, 29000 }" in router
    assert "elements = { 8055, 8730, 9100, 9400 }" in decode
    decode_0 = files["decode-0"][fw.RULES_FILE].content  # the decode's rank 0 holds the dist-init ports
    assert "5757, 5758, 5759, 5760, 5761, 5762, 5763, 5770" in decode_0
    assert "elements = { 10.10.0.11, 10.10.0.12, 10.10.0.13, 10.10.0.14 }" in router
    assert "elements = { 10.10.0.0/24 }" in router


def test_firewall_off_renders_no_firewall_and_admin_cidrs_are_then_optional(tmp_path):
    doc = yaml.safe_load(PROD.read_text())
    doc["security"] = {"firewall": False}
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    files = render(plan(load_cluster(path)))
    assert not any(fw.RULES_FILE in paths or fw.ROLLBACK_SCRIPT in paths for paths in files.values())


@pytest.mark.parametrize(
    ("security", "found"),
    [
        ({}, "field 'admin_cidrs': found nothing"),
        ({"admin_cidrs": []}, "field 'admin_cidrs': found an empty list"),
        ({"admin_cidrs": ["10.10.0.1/24"]}, "field 'admin_cidrs[0]': found '10.10.0.1/24'"),
        ({"admin_cidrs": ["10.10.0.0/24"], "client_cidrs": ["anywhere"]}, "field 'client_cidrs[0]': found 'anywhere'"),
        ({"admin_cidrs": ["10.10.0.0/24"], "firewall_confirm_secs": 5}, "field 'firewall_confirm_secs': found 5"),
    ],
)
def test_security_mistakes_are_refused_with_the_field_and_what_was_expected(tmp_path, security, found):
    doc = yaml.safe_load(PROD.read_text())
    doc["security"] = security
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(InventoryError) as refused:
        load_cluster(path)
    assert found in str(refused.value) and "security" in str(refused.value)


def test_the_session_address_check_admits_admins_and_nodes_only(tmp_path):
    cluster = load_cluster(inventory(tmp_path))
    assert fw.admits(cluster, "10.10.9.1") and fw.admits(cluster, "fd00:9::abc") and fw.admits(cluster, "10.10.0.13")
    assert not fw.admits(cluster, "10.10.8.50") and not fw.admits(cluster, "10.10.9.2") and not fw.admits(cluster, "")
