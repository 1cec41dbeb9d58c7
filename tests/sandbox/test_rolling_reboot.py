"""A driver bump on the serving sandbox through deploys/host.py, under a bounded open-loop load through the real
router (benchmarks/rolling_reboot.py prints the same figures): each instance drained before its hosts reboot and
back in the router after, one instance at a time, the decode's two ranks in one wave (it goes down once) with its
outage reported; prefill-1's wave costs no request. prefill-0's costs what the router's own reboot costs (the
router runs there): reported, not bounded."""

from __future__ import annotations

import json
import time

import pytest

from benchmarks import faults
from benchmarks import rolling_reboot as bench
from tests.sandbox.conftest import on_host, pdfleet

RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def serving_cluster(sandbox, tmp_path_factory):
    cluster = faults.SandboxCluster()
    converge = faults.pyinfra(str(cluster.inventory), "deploys/pd.py")
    assert converge.returncode == 0, converge.stderr[-3000:]
    cluster.set_latency(200)
    yield cluster, tmp_path_factory.mktemp("reboot")
    print("\nrolling reboot figures:", json.dumps(RESULTS, indent=1))
    pdfleet("sandbox", "down")  # the next modules expect hosts on the inventory's driver
    pdfleet("sandbox", "up")


def boots(host: str, since: float) -> list[float]:
    """When the host's boots finished (systemd's "Startup finished"), epoch seconds, since `since`."""
    lines = on_host(host, f"journalctl _PID=1 --since @{int(since)} -o json --no-pager").stdout.splitlines()
    return [
        int(e["__REALTIME_TIMESTAMP"]) / 1e6
        for e in map(json.loads, lines)
        if str(e.get("MESSAGE", "")).startswith("Startup finished")
    ]


def test_a_driver_bump_reboots_instance_by_instance_drained_the_decode_in_one_wave(serving_cluster):
    cluster, work = serving_cluster
    cluster.wait_ready(timeout=180)
    since = time.time()
    row = bench.driver_bump_under_load(cluster, rate=10, work=work)
    RESULTS["bump"] = {k: v for k, v in row.items() if k != "output_tail"}
    assert row["exit"] == 0, "\n".join(row["output_tail"])
    waves = row["waves"]
    assert list(waves) == ["prefill-0", "prefill-1", "decode"], row
    for earlier, later in zip(list(waves.values()), list(waves.values())[1:], strict=False):
        assert earlier["back_s"] < later["out_s"], waves  # one instance at a time
    assert waves["prefill-1"]["failed"] == 0, waves["prefill-1"]  # drained first: no request lost
    assert row["reported_outages"] and row["reported_outages"][0].startswith("decode "), row
    for host in ("prefill-0", "prefill-1", "decode-0", "decode-1"):
        assert len(boots(host, since)) == 1, host  # one reboot each
        assert f"<driver_version>{bench.BUMPED_DRIVER}</driver_version>" in on_host(host, "nvidia-smi -q -x").stdout
    decode = [boots(h, since)[0] for h in ("decode-0", "decode-1")]
    assert abs(decode[0] - decode[1]) < 30, decode  # the same wave
    assert cluster.view() == {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"}
