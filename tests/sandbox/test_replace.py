"""`pdfleet replace-node` on the sandbox with a spare (a fifth host), under a bounded open-loop load through the real
router (benchmarks/replace.py runs the same replacement and prints its phases):

- every refusal leaves the inventory, the nodes and the router as they were;
- a re-imaged node (same name and address, wiped disk, a new SSH host key) comes back through the runbook: the new
  key pinned after the guard, the node converged from bare, its instance back in the router;
- prefill-1 cut off the network and replaced by the spare: the endpoint keeps answering, failed requests at most
  those in flight on prefill-1 at the cut, the spare serves prefill-1 in the router, no request to the hub and no
  DeepGEMM compile during the replacement;
- decode-1 (rank 1 of the only decode instance) cut off and replaced by the spare: refused without --allow-outage,
  then the decode back with both ranks (rank 0 restarted with the new membership) and the outage reported;
- prefill-0, the router's node, cut off and replaced: the router moves to prefill-1 and answers there.

The last two start again from fresh hosts (the spare is spent by then).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks import faults
from benchmarks import replace as bench
from pdfleet import knownhosts
from pdfleet.inventory import load
from tests.sandbox.conftest import ROOT, pdfleet

RESULTS: dict[str, dict] = {}
CUT: list[str] = []  # links the scenarios cut, each the link of a host started then (set up again at the end)


@pytest.fixture(scope="module")
def spare_cluster(sandbox, tmp_path_factory):
    work = tmp_path_factory.mktemp("replace")
    inventory = bench.spare_inventory(work)
    cluster = bench.cluster_with_spare(inventory)
    yield cluster
    print("\nreplacement figures:", json.dumps(RESULTS, indent=1))
    for link in {cluster.veth("prefill-1"), *CUT}:
        subprocess.run(["ip", "link", "set", link, "up"], check=False)
    bench.fresh_sandbox(cluster.inventory)


def replace_node(inventory, *args: str) -> subprocess.CompletedProcess:
    return faults.pdfleet("replace-node", str(inventory), *args, timeout=1200)


def test_refusals_change_nothing(spare_cluster):
    cluster = spare_cluster
    yaml_path = cluster.inventory.with_suffix(".yaml")
    before = yaml_path.read_bytes()
    pid = faults.ssh("prefill-1", "systemctl show -p MainPID --value sglang-prefill-1").strip()
    cases = {
        "no terminal": (("prefill-1", "spare-0"), "no terminal to confirm on and no --yes: nothing was changed"),
        "last of its role": (("decode-1", "spare-0", "--yes"), "only decode instance"),
        "NEW serves": (("prefill-1", "decode-0", "--yes"), "NEW: decode-0 already serves instance decode"),
        "OLD unknown": (("prefill-7", "spare-0", "--yes"), "OLD: found 'prefill-7', expected a node of"),
    }
    for case, (args, message) in cases.items():
        result = replace_node(cluster.inventory, *args)
        assert result.returncode == 2 and message in result.stderr, (case, result.stderr)
    spare_link = cluster.veth("spare-0")
    subprocess.run(["ip", "link", "set", spare_link, "down"], check=True)
    try:
        silent = replace_node(cluster.inventory, "prefill-1", "spare-0", "--yes")
    finally:
        subprocess.run(["ip", "link", "set", spare_link, "up"], check=True)
    assert silent.returncode == 2 and "NEW: spare-0 (10.77.0.15) does not answer over SSH" in silent.stderr
    dry = replace_node(cluster.inventory, "prefill-1", "spare-0", "--dry")
    assert dry.returncode == 0, dry.stderr
    assert "-    nodes: [prefill-1]" in dry.stdout and "+    nodes: [spare-0]" in dry.stdout
    assert "dry | nothing was changed" in dry.stderr
    assert yaml_path.read_bytes() == before and not list(yaml_path.parent.glob(".sandbox.replace*"))
    assert faults.ssh("prefill-1", "systemctl show -p MainPID --value sglang-prefill-1").strip() == pid
    assert cluster.view() == {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"}


def test_a_reimaged_node_comes_back_through_the_runbook(spare_cluster):
    cluster = spare_cluster
    known_hosts = cluster.cluster.ssh.known_hosts
    pinned_before = knownhosts.entries(Path(known_hosts).read_text(), "10.77.0.12", "prefill-1")
    hub_before = bench.hub_requests()
    with cluster.load(20) as load:
        time.sleep(3)
        in_flight = cluster.in_flight("prefill-1")
        t0 = time.monotonic()
        reimaged = pdfleet("sandbox", "reimage", "-i", str(cluster.inventory), "prefill-1", timeout=300)
        assert reimaged.returncode == 0
        result = replace_node(cluster.inventory, "prefill-1", "prefill-1", "--yes")
        took = time.monotonic() - t0
        time.sleep(3)
    row = {
        "scenario": "prefill-1 re-imaged and brought back",
        **faults.summarize(load.results, since=t0 - 1),
        "in_flight_at_fault": in_flight,
        "replace_s": round(took, 1),
    }
    RESULTS["reimage"] = row
    assert result.returncode == 0, result.stderr[-4000:]
    assert "host key | prefill-1 (10.77.0.12) shows a new host key" in result.stderr
    pinned_after = knownhosts.entries(Path(known_hosts).read_text(), "10.77.0.12", "prefill-1")
    assert pinned_after and pinned_after != pinned_before and len(set(pinned_after)) == 1
    assert bench.hub_requests() == hub_before  # weights from peers, never the hub
    assert cluster.view()["prefill-1"] == "ready"
    assert row["failed"] <= in_flight and row["longest_gap_s"] <= 5, row


def test_a_dead_prefill_is_replaced_by_the_spare_under_load(spare_cluster, tmp_path):
    cluster = spare_cluster
    cluster.wait_ready(timeout=180)
    before = tmp_path / "before"  # the inventory as it was: the runbook's retire by hand, once prefill-1 answers
    before.mkdir()
    for name in ("sandbox.yaml", "sandbox.py"):
        (before / name).write_bytes((cluster.inventory.parent / name).read_bytes())
    row = bench.replace_dead_prefill(cluster, rate=20)
    RESULTS["replace"] = {k: v for k, v in row.items() if k != "output_tail"}
    assert row["exit"] == 0, "\n".join(row["output_tail"])
    assert row["failed"] <= row["in_flight_at_fault"], row
    assert row["longest_gap_s"] <= 5, row
    assert row["served_by"] == "spare-0" and row["router_view"].get("prefill-1") == "ready", row
    assert row["hub_requests"] == 0, row
    assert set(row["compiles"].values()) == {0}, row["compiles"]
    after = load(cluster.inventory)
    assert "prefill-1" not in [n.name for n in after.nodes] and after.placement("spare-0")[0].name == "prefill-1"
    assert not list(cluster.inventory.parent.glob(".sandbox.replace*"))  # done: no progress left behind
    repository = load(ROOT / "inventories/sandbox.py")  # the repository's inventory was not touched
    assert repository.placement("spare-0") is None and repository.placement("prefill-1")[0].name == "prefill-1"

    # prefill-1 comes back on the network: its engine still runs (it could not be retired) but the router, whose
    # membership names the spare, does not take it; retired by hand as the runbook says, nothing of it is left.
    subprocess.run(["ip", "link", "set", cluster.veth("prefill-1"), "up"], check=True)
    deadline = time.monotonic() + 60
    while faults.ssh("prefill-1", "echo up", check=False).strip() != "up":
        assert time.monotonic() < deadline
        time.sleep(1)
    workers = json.loads(
        faults.ssh("prefill-0", "curl -s -H @/etc/pdfleet/keys/curl-authorization http://127.0.0.1:8000/workers")
    )["workers"]
    assert not [w for w in workers if "10.77.0.12" in w["url"]], workers
    retired = faults.pyinfra(str(before / "sandbox.py"), "deploys/retire.py", "--limit", "prefill-1")
    assert retired.returncode == 0, retired.stderr[-3000:]
    left = faults.ssh("prefill-1", "systemctl list-unit-files 'sglang-*' --no-legend; cat /etc/pdfleet/retired")
    assert "sglang-prefill-1.service" not in left and "retired from cluster sandbox" in left, left


def fresh_cluster_with_spare(spent: faults.SandboxCluster, work: Path) -> faults.SandboxCluster:
    """The sandbox wiped and brought back with a fresh spare (the previous scenario spent it)."""
    bench.fresh_sandbox(spent.inventory)
    return bench.cluster_with_spare(bench.spare_inventory(work))


def test_a_dead_decode_rank_is_replaced_with_its_outage_reported(spare_cluster, tmp_path):
    cluster = fresh_cluster_with_spare(spare_cluster, tmp_path)
    spare_cluster.inventory = cluster.inventory  # the fixture's teardown takes down what is up now
    cluster.wait_ready(timeout=180)
    hub_before = bench.hub_requests()
    with cluster.load(10) as load:
        time.sleep(3)
        CUT.append(cluster.veth("decode-1"))
        subprocess.run(["ip", "link", "set", CUT[-1], "down"], check=True)
        t0 = time.monotonic()
        # As on call: the endpoint's decode is down (the router took it out) when the runbook starts.
        while cluster.view().get("decode") == "ready":
            assert time.monotonic() < t0 + 60, "the router kept a decode with a dead rank 60 s"
            time.sleep(0.5)
        noticed = time.monotonic() - t0
        refused = replace_node(cluster.inventory, "decode-1", "spare-0", "--yes")
        result = replace_node(cluster.inventory, "decode-1", "spare-0", "--yes", "--allow-outage")
        ended = time.monotonic()
        time.sleep(5)
    assert refused.returncode == 2 and "--allow-outage" in refused.stderr, refused.stderr
    assert result.returncode == 0, result.stderr[-4000:]
    during = faults.summarize(load.results, since=t0)
    after = faults.summarize(load.results, since=ended + 1)
    reported = [line for line in result.stderr.splitlines() if "done | OUTAGE of the decode role:" in line]
    RESULTS["decode"] = {"scenario": "decode-1 cut off, replaced by spare-0", **during,
                         "router_noticed_s": round(noticed, 1), "replace_s": round(ended - t0, 1),
                         "reported": reported, "after": after}  # fmt: skip
    assert reported and "when this command found decode out of the router" in reported[0], result.stderr[-3000:]
    seconds = float(reported[0].split("decode role:", 1)[1].split(" s ", 1)[0])
    assert 0 < seconds <= ended - t0
    serving = faults.SandboxCluster(cluster.inventory)
    assert [(r.rank, r.host) for r in serving.serving.ranks("decode")] == [(0, "decode-0"), (1, "spare-0")]
    for rank in serving.serving.ranks("decode"):
        state = faults.ssh(rank.host, f"systemctl is-active {rank.unit}", inventory=cluster.inventory)
        assert state.strip() == "active", rank
    assert serving.view() == {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"}
    assert after["requests"] > 0 and after["failed"] == 0, after  # serving again once the command returned
    assert bench.hub_requests() == hub_before


def test_the_routers_node_is_replaced_and_the_router_answers_elsewhere(spare_cluster, tmp_path):
    cluster = fresh_cluster_with_spare(spare_cluster, tmp_path)
    spare_cluster.inventory = cluster.inventory
    cluster.wait_ready(timeout=180)
    assert cluster.router_node == "prefill-0"
    CUT.append(cluster.veth("prefill-0"))
    subprocess.run(["ip", "link", "set", CUT[-1], "down"], check=True)
    t0 = time.monotonic()
    result = replace_node(cluster.inventory, "prefill-0", "spare-0", "--yes")
    took = time.monotonic() - t0
    assert result.returncode == 0, result.stderr[-4000:]
    assert "-  node: prefill-0" in result.stdout and "+  node: prefill-1" in result.stdout, result.stdout
    moved = faults.SandboxCluster(cluster.inventory)
    assert moved.router_node == "prefill-1" and moved.router_url.startswith("http://10.77.0.12:")
    assert f"the endpoint: {moved.router_url}" in result.stderr
    assert moved.view() == {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"}
    with moved.load(10) as load:
        time.sleep(5)
    answered = faults.summarize(load.results)
    RESULTS["router"] = {"scenario": "prefill-0 (the router's node) cut off, replaced by spare-0",
                         "replace_s": round(took, 1), "new_router": moved.router_url, "after": answered}  # fmt: skip
    assert answered["requests"] > 0 and answered["failed"] == 0, answered
