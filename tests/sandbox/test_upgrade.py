"""An SGLang version change on the serving sandbox (0.5.23 and the 0.5.6.post2 stand-in, whose bootstrap protocols
differ as the real ones do: a mixed pair fails every request). pdfleet never builds a mixed pair: a converge that
would roll the new version in while the old one serves stops before any change; in its window
(`pdfleet_allow_outage=all`) every instance moves to the new version and back again (the rollback), under a
bounded open-loop load through the router. benchmarks/upgrade.py prints the same figures against the floor of
restarting every instance."""

from __future__ import annotations

import json

import pytest

from benchmarks import faults
from benchmarks import upgrade as bench
from pdfleet.runtimeplan import serving_venv

RESULTS: dict[str, dict] = {}


def keep(rows: dict[str, dict]) -> None:
    """The figures for the module's summary, without the commands' output tails."""
    for name, row in rows.items():
        outcome = row["outcome"]
        RESULTS[name] = (
            {**row, "outcome": {k: v for k, v in outcome.items() if k != "stderr_tail"}}
            if isinstance(outcome, dict) and "stderr_tail" in outcome
            else row
        )


@pytest.fixture(scope="module")
def cluster(sandbox, tmp_path_factory):
    sandbox_cluster = faults.SandboxCluster()
    converge = faults.pyinfra(str(sandbox_cluster.inventory), "deploys/pd.py")
    assert converge.returncode == 0, converge.stderr[-3000:]
    yield sandbox_cluster, tmp_path_factory.mktemp("upgrade")
    print("\nupgrade figures:", json.dumps(RESULTS, indent=1, default=str))


def test_an_sglang_version_change_on_the_serving_cluster_is_refused_and_changes_nothing(cluster):
    """Prefill and decode of different SGLang versions cannot pair: a converge that would roll a new version in while
    the old one serves stops before any change (docs/runbooks/upgrade.md)."""
    sandbox, work = cluster
    sandbox.wait_ready(timeout=180)
    pids = {s.unit: faults.ssh(s.host, f"systemctl show -p MainPID --value {s.unit}") for s in sandbox.serving.servers}
    other = sandbox.inventory_with(work / "sglang-0.5.6.post2", lambda doc: doc["sglang"].update(version="0.5.6.post2"))
    refused = faults.pyinfra(str(other), "deploys/pd.py", "--data", "pdfleet_allow_outage=decode")
    assert refused.returncode != 0
    assert "serves SGLang 0.5.23, the inventory says 0.5.6.post2: prefill and decode" in refused.stderr, refused.stderr
    assert "Nothing was changed" in refused.stderr and "pdfleet_allow_outage=all" in refused.stderr
    after = {s.unit: faults.ssh(s.host, f"systemctl show -p MainPID --value {s.unit}") for s in sandbox.serving.servers}
    assert after == pids  # nothing restarted
    venv = serving_venv(sandbox.cluster)
    for spec in sandbox.serving.servers:  # the running version's wheels untouched
        assert faults.ssh(spec.host, f"ls -d {venv}/lib/python3*/site-packages/sglang-0.5.23.dist-info").strip(), spec
    assert sandbox.view() == {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"}


def test_a_version_cutover_and_its_rollback_in_the_window(cluster):
    sandbox, work = cluster
    rows = bench.upgrade_and_rollback(sandbox, rate=10, work=work)
    keep(rows)
    old, new = sandbox.cluster.sglang_version, bench.OTHER_VERSION
    refused = rows["refused"]
    assert refused["outcome"]["exit"] != 0 and refused["failed"] == 0, refused
    assert f"serves SGLang {old}, the inventory says {new}" in "\n".join(refused["outcome"]["stderr_tail"])
    # Ahead of the window: the new set installed beside the serving one, nothing restarted, nothing failed.
    prepared = rows["prepared ahead of the window"]
    assert prepared["outcome"]["exit"] == 0, "\n".join(prepared["outcome"]["stderr_tail"])
    assert prepared["outcome"]["restarted"] == [] and prepared["failed"] == 0, prepared
    for host, sets in prepared["outcome"]["sets"].items():
        assert [s.split("-")[1] for s in sets] == sorted([old, new]), (host, sets)
    cutover, rollback = rows[f"cutover {old} -> {new}"], rows[f"rollback {new} -> {old}"]
    for row in (cutover, rollback):
        outcome = row["outcome"]
        assert outcome["exit"] == 0, "\n".join(outcome["stderr_tail"])
        # one downtime figure printed by the deploy, within what the clients saw (their longest gap includes the
        # drain of the requests in flight and the load's own pacing)
        # at least the clients' longest time without an answer, at most the span of their failures (CI run 7: answers
        # came back in the middle of a window's failures; cause not yet found), within the load's pacing
        reported = outcome["reported_outage_s"]
        assert reported is not None, "\n".join(outcome["stderr_tail"])
        assert row["longest_gap_s"] - 2.0 <= reported <= row["last_failure_s"] - row["first_failure_s"] + 2.0, row
    # The rollback finds its runtime and kernels on disk: nothing compiled, the old set never reinstalled.
    assert sum(cutover["outcome"]["compiles"].values()) > 0, cutover["outcome"]["compiles"]  # a new key: compiled
    assert rollback["outcome"]["compiles"] == dict.fromkeys(rollback["outcome"]["compiles"], 0), rollback["outcome"]
    assert rows["old set untouched by the cutover and the rollback"]["outcome"] is True, rows
    instances = [i.name for i in sandbox.cluster.instances]
    assert rows["versions after the cutover"]["outcome"] == dict.fromkeys(instances, new)
    assert rows["versions after the rollback"]["outcome"] == dict.fromkeys(instances, old)
    assert rows["router_view"]["outcome"] == {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"}


def test_blue_green_on_the_spares_and_back_without_a_failed_request(cluster):
    """The sandbox reshaped into one serving set (prefill-0, a one-node decode on decode-0) and its two spares: the
    new version comes up on the spares, the router serves both sets (never a mixed pair), the old set is drained and
    becomes the spares; then back the same way, onto nodes that still hold the old runtime and DeepGEMM cache."""
    sandbox, work = cluster
    rows = bench.blue_green_and_back(sandbox, rate=10, work=work)
    keep(rows)
    old, new = sandbox.cluster.sglang_version, bench.OTHER_VERSION
    there, back = rows[f"blue/green {old} -> {new}"], rows[f"blue/green back {new} -> {old}"]
    for row, version, nodes in ((there, new, ["decode-1", "prefill-1"]), (back, old, ["decode-0", "prefill-0"])):
        outcome = row["outcome"]
        assert outcome["exit"] == 0, "\n".join(outcome["stderr_tail"])
        assert row["failed"] == 0 and row["requests"] > 0, row  # the goal: not one failed request
        assert outcome["serving_nodes"] == nodes and outcome["versions"] == {"prefill-0": version, "decode": version}
    # back onto nodes that hold the old version: nothing compiled, the old wheel set not reinstalled
    assert sum(back["outcome"]["compiles"].values()) == 0, back["outcome"]["compiles"]
    assert rows["blue/green: the first set's runtime untouched by the round trip"]["outcome"] is True
    assert rows["blue/green: router view"]["outcome"] == {"prefill-0": "ready", "decode": "ready"}
    assert rows["sandbox restored"]["outcome"] == {"exit": 0, "retire_exit": 0}
