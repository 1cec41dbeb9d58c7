"""deploys/verify.py through real pyinfra (its @fake connector answering with the captured node's outputs), and
`pdfleet preflight` as a person runs it: exit status, table, JSON, and what reaches the hosts (facts only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.context import ctx_state
from pyinfra_cli.util import load_deploy_file

from pdfleet.cluster import load_cluster
from pdfleet.inventory import host_data
from tests.test_preflight import BUSBW, node_probe_sections, node_probe_text

ROOT = Path(__file__).resolve().parent.parent
PROD = ROOT / "inventories/prod.yaml"
BIN = Path(sys.executable).parent


def answers(healthy: bool) -> dict:
    """What a node answers to the two facts: the probe (by its marker) and the measurement (by its base64 text)."""
    return {
        "pdfleet-probe": node_probe_text(node_probe_sections(healthy)),
        "base64": json.dumps({"status": "ok", **BUSBW}),
    }


def run_verify(out: Path, nodes: dict[str, dict]) -> dict:
    cluster = load_cluster(PROD)
    hosts = [
        (
            f"@fake/{name}",
            {
                **host_data(cluster, name, PROD),
                "fake_delay": 0,
                "fake_delay_jitter": 0,
                "fake_responses": responses,
                "pdfleet_verify_out": str(out),
            },
        )
        for name, responses in nodes.items()
    ]
    state = State(Inventory((hosts, {})), Config())
    with ctx_state.use(state):
        connect_all(state)
        load_deploy_file(state, str(ROOT / "deploys/verify.py"))
        assert state.get_op_order() == []  # read-only: not one operation
        return {host.data.pdfleet_node: list(host.connector.executed_commands) for host in state.inventory}


def test_the_deploy_reads_each_node_with_two_facts_and_writes_a_report(tmp_path):
    commands = run_verify(tmp_path, {"prefill-0": answers(healthy=False), "decode-1": answers(healthy=True)})
    for node, sent in commands.items():
        assert len(sent) == 2, (node, sent)
        assert "pdfleet-probe" in str(sent[0]) and "--gpus 8 --sizes-mib 8,64,256,1024,4096" in str(sent[1])
    captured = json.loads((tmp_path / "prefill-0.json").read_text())
    assert captured["counts"] == {"PASS": 11, "WARN": 6, "FAIL": 4}
    failed = [r["check"] for r in captured["results"] if r["status"] == "FAIL"]
    assert failed == ["deepep.params", "deepep.modules", "rdma.hcas", "host.disk"]
    healthy = json.loads((tmp_path / "decode-1.json").read_text())
    # decode-1's inventory entry lists mlx5_8 and mlx5_9, which the healthy reading does not have
    assert [(r["check"], r["seen"]) for r in healthy["results"] if r["status"] == "FAIL"] == [
        ("rdma.hcas", "missing mlx5_8, mlx5_9 (present: mlx5_0, mlx5_1, mlx5_2, mlx5_3 and 4 more)")
    ]


def test_allreduce_off_in_the_inventory_sends_only_the_probe(tmp_path):
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(PROD.read_text() + "\nverify:\n  allreduce: false\n")
    cluster = load_cluster(inventory)
    data = {**host_data(cluster, "prefill-1", inventory), "fake_delay": 0, "fake_delay_jitter": 0}
    data |= {"fake_responses": answers(healthy=True), "pdfleet_verify_out": str(tmp_path)}
    state = State(Inventory(([("@fake/prefill-1", data)], {})), Config())
    with ctx_state.use(state):
        connect_all(state)
        load_deploy_file(state, str(ROOT / "deploys/verify.py"))
        [host] = list(state.inventory)
        assert len(host.connector.executed_commands) == 1
    report = json.loads((tmp_path / "prefill-1.json").read_text())
    [allreduce] = [r for r in report["results"] if r["check"] == "nccl.allreduce"]
    assert (allreduce["status"], allreduce["seen"]) == ("WARN", "not measured (verify.allreduce: false)")


def fake_inventory(tmp_path: Path, broken: str | None = None) -> Path:
    """A copy of prod whose hosts are @fake ones answering like the captured node (`broken`: one that fails)."""
    shutil.copy(PROD, tmp_path / "fake.yaml")
    (tmp_path / "fake.py").write_text(
        "import json\n"
        "from pdfleet.inventory import pyinfra_groups\n"
        "from tests.test_verify_deploy import answers\n"
        "_groups = pyinfra_groups(__file__)\n"
        "def _fake(items):\n"
        "    return [(f'@fake/{name}', {**data, 'fake_delay': 0, 'fake_delay_jitter': 0,\n"
        f"             'fake_responses': {{'pdfleet-probe': {{'success': False, 'stderr': 'probe refused'}}}}\n"
        f"             if name == {broken!r} else answers(False)}}) for name, data in items]\n"
        "prefill = _fake(_groups['prefill'])\n"
        "decode = _fake(_groups['decode'])\n"
    )
    return tmp_path / "fake.py"


def preflight(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pdfleet"), "preflight", *args], cwd=cwd, capture_output=True, text=True)


def test_pdfleet_preflight_prints_a_table_per_node_and_exits_1_on_a_failure(tmp_path):
    done = preflight(str(fake_inventory(tmp_path)), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    headers = [line for line in lines if line.startswith("== ")]
    assert [h.split(":")[0] for h in headers] == [
        "== prefill-0 (@fake/prefill-0)",
        "== prefill-1 (@fake/prefill-1)",
        "== decode-0 (@fake/decode-0)",
        "== decode-1 (@fake/decode-1)",
    ]
    assert all(": 11 PASS, 6 WARN, 4 FAIL in " in h for h in headers)
    assert lines[-1] == "preflight FAILED: 4 node(s), 44 PASS, 24 WARN, 16 FAIL"


def test_pdfleet_preflight_json_and_a_node_that_cannot_be_read(tmp_path):
    done = preflight(str(fake_inventory(tmp_path, broken="decode-0")), "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    by_node = {n["node"]: n for n in data["nodes"]}
    assert data["failed"] is True and list(by_node) == ["prefill-0", "prefill-1", "decode-0", "decode-1"]
    [probe] = by_node["decode-0"]["results"]
    assert (probe["check"], probe["status"]) == ("probe", "FAIL")
    assert probe["seen"] == "no readings: the probe printed nothing (pyinfra's output above says why)"
    assert by_node["decode-1"]["counts"] == {"PASS": 11, "WARN": 6, "FAIL": 4}


def test_a_host_pyinfra_did_not_read_is_a_failure(tmp_path):
    # --limit takes node names; the fake inventory names its hosts @fake/NODE, so pyinfra reads none of them
    done = preflight(str(fake_inventory(tmp_path)), "--limit", "decode-0", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == "== decode-0: 0 PASS, 0 WARN, 1 FAIL"
    assert lines[2].split()[:2] == ["connect", "FAIL"]
    assert "pyinfra exited 0 and wrote no report for decode-0" in lines[2]


def test_a_wrong_node_name_is_one_line_and_nothing_is_contacted(tmp_path):
    done = preflight("inventories/prod.py", "--limit", "prefil-0", cwd=ROOT)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "pdfleet: --limit: found 'prefil-0', expected a node of inventories/prod.yaml: "
        "prefill-0, prefill-1, decode-0, decode-1"
    ]
    done = preflight("inventories/prod.py", "--local", "nope", cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.startswith("pdfleet: --local: found 'nope', expected a node of inventories/prod.yaml")
