"""pdfleet status: the on-call screen from what deploys/status.py reads (pdfleet.status, pure), and the drain
commands' refusals before any host is contacted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pdfleet import status
from pdfleet.inventory import load
from pdfleet.render import instance_inputs, render
from pdfleet.serving import plan

ROOT = Path(__file__).resolve().parent.parent
PDFLEET = str(Path(sys.executable).parent / "pdfleet")


def unit(state="active", sub="running", restarts="0"):
    return {"ActiveState": state, "SubState": sub, "NRestarts": restarts, "ActiveEnterTimestamp": "Sun 2026-12-06"}


def reports(serving, **overrides) -> dict:
    """Every node as a healthy, converged cluster reports itself; `overrides` per node replace parts."""
    files = render(serving)
    out = {}
    for spec in serving.servers:
        wanted = instance_inputs(files, serving, spec.instance)
        out[spec.host] = {
            "node": spec.host,
            "serving": {
                "instance": spec.instance,
                "role": spec.role,
                "rank": spec.rank,
                "units": {spec.unit: unit()},
                "applied": wanted,
                "health": "200" if spec.serves_api else "-",
                "wanted": wanted,
            },
        }
    view = {
        "router": "http://127.0.0.1:8000",
        "router_error": None,
        "workers": [
            {"instance": w.instance, "role": w.role, "url": w.url, "drained": None, "router": {"status": "ready"}}
            for w in serving.router.workers
        ],
    }
    out[serving.router.host]["router"] = {
        "url": serving.router.url,
        "units": {"pdfleet-router.service": unit(), "pdfleet-router-members.service": unit()},
        "view": view,
    }
    for node, change in overrides.items():
        change(out[node])
    return out


def test_a_healthy_cluster_needs_no_attention():
    serving = plan(load(ROOT / "inventories/prod.py"))
    found = reports(serving)
    assert not status.attention(serving, found)
    text = status.table(serving, found)
    assert text.splitlines()[0].split() == [
        "INSTANCE", "ROLE", "RANK", "NODE", "UNIT", "RESTARTS", "SINCE", "HEALTH", "ROUTER", "DRAINED", "INPUTS"
    ]  # fmt: skip
    rows = {(r.instance, r.rank): r for r in status.rows(serving, found)}
    assert rows[("decode", 1)].health == "-" and rows[("decode", 0)].router == "ready"
    assert all(r.inputs == "current" for r in rows.values())


def test_a_crashed_rank_a_pending_converge_and_a_drain_are_each_shown():
    serving = plan(load(ROOT / "inventories/prod.py"))

    def crashed(report):
        report["serving"]["units"]["sglang-decode.service"] = unit("activating", "auto-restart", "3")

    def stale(report):
        report["serving"]["applied"] = "0" * 64

    def drained(report):
        worker = report["router"]["view"]["workers"][1]
        worker["drained"] = {"by": "operator", "reason": "disk swap", "since": "2026-12-06T03:00:00Z"}
        worker["router"] = None

    found = reports(serving, **{"decode-1": crashed, "prefill-0": lambda r: (stale(r), drained(r))})
    rows = {(r.instance, r.rank): r for r in status.rows(serving, found)}
    assert rows[("decode", 1)].unit == "activating/auto-restart" and rows[("decode", 1)].restarts == "3"
    assert rows[("prefill-0", 0)].inputs == "changed: converge pending"
    assert rows[("prefill-1", 0)].drained == "by operator: disk swap (2026-12-06T03:00:00Z)"
    assert rows[("prefill-1", 0)].router == "absent"
    assert status.attention(serving, found)  # the decode rank, not the drained prefill
    found = reports(serving, **{"prefill-0": drained})
    assert not status.attention(serving, found)  # a drain on purpose is not an alarm
    assert status.document(serving, found)["instances"][1]["drained"].startswith("by operator")


def test_a_node_that_did_not_answer_reads_unknown():
    serving = plan(load(ROOT / "inventories/prod.py"))
    found = reports(serving)
    del found["decode-1"]
    row = next(r for r in status.rows(serving, found) if r.node == "decode-1")
    assert row.unit == "unknown" and status.attention(serving, found)


def run(*args):
    return subprocess.run([PDFLEET, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_drain_refuses_an_unknown_instance_and_the_last_of_a_role_before_any_contact():
    unknown = run("drain", "inventories/prod.py", "prefil-1")
    assert unknown.returncode == 2
    assert (
        "instance: found 'prefil-1', expected an instance of inventories/prod.yaml: prefill-0, prefill-1, decode"
        in (unknown.stderr)
    )
    last = run("drain", "inventories/prod.py", "decode")
    assert last.returncode == 2
    assert "decode is the only decode instance" in last.stderr and "--allow-outage" in last.stderr
    assert "on the router's node" not in last.stderr  # refused before pyinfra was started
