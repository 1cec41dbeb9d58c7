"""The endpoint under a bounded open-loop load through the real router while things fail and change
(benchmarks/faults.py runs the same scenarios and prints their table):

- a prefill's server killed: failed requests at most those in flight on it, never 5 s without an answer;
- a prefill node's network cut for 60 s: the same, the router stops routing to it within 10 s and takes it back
  within 15 s of its return;
- an env change of both prefill instances applied by deploys/pd.py: no request failed, one restarted after the other
  (their journals' timestamps);
- drain and undrain of a prefill: no request failed;
- a change that restarts the decode (the last of its role): refused before any change without the switch; with it,
  the outage reported;
- a rank of the decode killed: its peer watch takes rank 0 down promptly (SGLang's would wait 600 s on NCCL), and
  systemd brings the instance back whole.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from benchmarks import faults

RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def sandbox_cluster(sandbox, tmp_path_factory):
    cluster = faults.SandboxCluster()
    converge = faults.pyinfra(str(cluster.inventory), "deploys/pd.py")
    assert converge.returncode == 0, converge.stderr[-3000:]
    cluster.set_latency(200)  # so that requests are in flight when something breaks
    yield cluster, tmp_path_factory.mktemp("faults")
    print("\nfault figures:", json.dumps(RESULTS, indent=1))
    cluster.set_latency(0)
    restored = faults.pyinfra("--data", "pdfleet_allow_outage=all", str(cluster.inventory), "deploys/pd.py")
    assert restored.returncode == 0, restored.stderr[-3000:]


def bounded(row: dict) -> None:
    """Failed requests at most those in flight on the instance when it broke; never 5 s without an answer."""
    assert row["in_flight_at_fault"] is not None
    assert row["failed"] <= row["in_flight_at_fault"], row
    assert row["longest_gap_s"] <= 5, row


def test_a_killed_prefill_costs_at_most_its_requests_in_flight(sandbox_cluster):
    cluster, _ = sandbox_cluster
    cluster.wait_ready()
    row = faults.kill_prefill(cluster, rate=20)
    RESULTS["kill"] = row
    bounded(row)
    assert row["router_back_s"] is not None  # systemd brought it back and the router took it


def test_a_prefill_node_cut_off_is_routed_around_and_taken_back(sandbox_cluster):
    cluster, _ = sandbox_cluster
    cluster.wait_ready()
    row = faults.cut_prefill_network(cluster, rate=20, seconds=60)
    RESULTS["cut"] = row
    bounded(row)
    assert row["router_out_s"] is not None and row["router_out_s"] <= 10, row["router_view"]
    assert row["router_back_s"] is not None and row["router_back_s"] <= 15, row["router_view"]


def test_an_env_change_of_both_prefills_rolls_them_one_after_the_other(sandbox_cluster):
    cluster, work = sandbox_cluster
    cluster.wait_ready()
    row = faults.roll_prefills(cluster, rate=20, work=work)
    RESULTS["roll"] = row
    assert row["failed"] == 0, row
    assert row["one_after_the_other"], row["restarts"]


def test_drain_and_undrain_lose_nothing(sandbox_cluster):
    cluster, _ = sandbox_cluster
    cluster.wait_ready()
    row = faults.drain_undrain(cluster, rate=20)
    RESULTS["drain"] = row
    assert row["failed"] == 0, row
    assert row["while_drained"] in ("draining", "gone")
    # pdfleet status says so, and a drain on purpose is nothing to be paged for (exit 0).
    shown = row["status_while_drained"]
    assert shown["drained"].startswith("by operator: fault scenario") and shown["router"] in ("draining", "absent")
    assert row["status_exit"] == 0


def test_restarting_the_last_decode_needs_the_switch_and_reports_the_outage(sandbox_cluster):
    cluster, work = sandbox_cluster
    cluster.wait_ready()
    row = faults.decode_outage(cluster, rate=20, work=work)
    RESULTS["decode"] = row
    assert row["refused_without_switch"] and row["nothing_changed_when_refused"], row
    assert len(row["outage_reported"]) == 1, row


def test_a_dead_decode_rank_brings_its_peer_down_and_the_instance_back_whole(sandbox_cluster):
    cluster, _ = sandbox_cluster
    cluster.wait_ready()
    row = faults.kill_decode_rank(cluster, rate=20)
    RESULTS["rank"] = row
    # The watch probes every 2 s and acts after 3 misses (rank 1's port is refused at once), not after NCCL's 600 s.
    assert row["rank0_down_s"] is not None and row["rank0_down_s"] <= 15, row
    # Both ranks back after RestartSec (30 s) and the rendezvous, ready in the router again.
    assert row["router_back_s"] is not None and row["router_back_s"] <= 90, row["router_view"]


def test_a_membership_change_shows_in_the_dry_diff_and_never_restarts_the_router(sandbox_cluster):
    """The prefills' breaker threshold changed: only the router's membership file differs; applied under load, the
    router keeps running, the prefills are registered again one at a time, no request fails."""
    cluster, work = sandbox_cluster
    cluster.wait_ready()
    inventory = cluster.inventory_with(
        work / "membership", lambda doc: doc["router"].setdefault("circuit_breaker", {}).update(failure_threshold=2)
    )
    dry = faults.pyinfra("--dry", "--diff", str(inventory), "deploys/pd.py", yes=False)
    assert dry.returncode == 0, dry.stderr[-3000:]
    shown = dry.stdout + dry.stderr
    assert "Will modify /etc/pdfleet/router-members.json" in shown, shown[-3000:]
    assert re.search(r'^\s*-\s+"cb_failure_threshold": 1,$', shown, re.M), shown[-3000:]
    assert re.search(r'^\s*\+\s+"cb_failure_threshold": 2,$', shown, re.M), shown[-3000:]
    router_pid = faults.ssh(cluster.router_node, "systemctl show -p MainPID --value pdfleet-router").strip()
    since = faults.ssh(cluster.router_node, "date +%s").strip()
    with cluster.load(20) as load:
        time.sleep(2)
        started = time.monotonic()
        applied = faults.pyinfra(str(inventory), "deploys/pd.py")
        assert applied.returncode == 0, applied.stderr[-3000:]
        deadline = time.monotonic() + 60
        while True:  # the agent re-registers the prefills with their new spec, one at a time
            workers = json.loads(
                faults.ssh(
                    cluster.router_node,
                    "curl -s -H @/etc/pdfleet/keys/curl-authorization http://127.0.0.1:8000/workers",
                )
            )["workers"]
            thresholds = {
                w["labels"]["pdfleet.instance"]: w.get("resilience", {}).get("cb_failure_threshold")
                for w in workers
                if w["status"] == "ready"
            }
            if thresholds.get("prefill-0") == 2 and thresholds.get("prefill-1") == 2:
                break
            assert time.monotonic() < deadline, thresholds
            time.sleep(1)
        time.sleep(2)
    row = faults.summarize(load.results, since=started)
    RESULTS["membership"] = row
    assert faults.ssh(cluster.router_node, "systemctl show -p MainPID --value pdfleet-router").strip() == router_pid
    assert row["failed"] == 0, row
    log = faults.ssh(cluster.router_node, f"journalctl -u pdfleet-router-members --since @{since} -o cat --no-pager")
    respecified = [line for line in log.splitlines() if "registered with another spec" in line]
    assert len(respecified) == 2  # one prefill, then the other
    back = faults.pyinfra(str(cluster.inventory), "deploys/pd.py")
    assert back.returncode == 0, back.stderr[-3000:]
