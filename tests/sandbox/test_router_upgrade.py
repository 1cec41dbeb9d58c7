"""A router upgrade (smg 1.12.0 to the inventory's 1.13.0) through `deploys/pd.py`, under a bounded open-loop load
through the router (benchmarks/router_upgrade.py prints the same figures): the router restarts once, the requests in
flight when the old one is asked to stop finish (its shutdown grace), the new one serves every instance; what the
clients saw in between is reported. One router is one point of failure: the requests sent while none listens fail."""

from __future__ import annotations

import json

import pytest

from benchmarks import faults
from benchmarks import router_upgrade as bench

RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def cluster(sandbox, tmp_path_factory):
    yield faults.SandboxCluster(), tmp_path_factory.mktemp("router-upgrade")
    print("\nrouter upgrade figures:", json.dumps(RESULTS, indent=1))


def test_a_router_upgrade_finishes_the_requests_in_flight_and_serves_on_the_new_version(cluster):
    sandbox, work = cluster
    row = bench.upgrade_under_load(sandbox, rate=10, work=work)
    RESULTS["upgrade"] = {k: v for k, v in row.items() if k != "output_tail"}
    assert row["exit"] == 0, "\n".join(row["output_tail"])
    assert row["scenario"].startswith(f"router smg {bench.EARLIER_SMG} -> {sandbox.cluster.router.version} "), row
    assert row["in_flight_at_stop"] > 0, row  # the load was long enough to have requests in flight at the stop
    assert row["in_flight_failed"] == 0, row  # the shutdown grace let every one of them finish
    assert row["stop_to_start_s"] < sandbox.cluster.router.shutdown_grace_secs, row
    assert row["router_view"] == {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"}, row
