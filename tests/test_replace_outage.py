"""pdfleet replace-node's outage report when the last instance of a role is replaced: timed from the moment the
command found it out of the router, or the converge's own figure (roles/restarts.py's line, read back)."""

from __future__ import annotations

import time

from pdfleet.replace import _outage_report, deploy_outage_figure
from pdfleet.replaceplan import Replacement
from roles.restarts import outage_message

DECODE = Replacement(
    old="decode-1", new="spare-0", reimage=False, instance="decode", role="decode", rank=1, nnodes=2,
    last_of_role=True, moves=(), old_text="", new_text="", router_url="http://10.77.0.11:8000",
)  # fmt: skip


def test_the_converges_outage_line_is_read_back():
    output = "\n".join(
        [
            "    [decode-0] Restart | decode: restarted (2 ranks); waiting for http://10.77.0.13:30000/health",
            f"    [decode-0] {outage_message('decode', 'decode', 8.44, 6.1)}",
            "    [decode-0] Restart | decode: rolled in 8.4 s (restart to health 6.1 s)",
        ]
    )
    assert (
        deploy_outage_figure(output)
        == "8.4 s without a decode instance in the router (restart to rank 0's health 6.1 s)"
    )
    assert deploy_outage_figure("    [decode-0] Restart | decode: rolled in 8.4 s") is None


def test_an_instance_already_out_is_timed_from_when_the_command_found_it():
    began = time.mktime((2026, 12, 6, 3, 0, 5, 0, 0, -1))
    report = _outage_report(DECODE, {"out_since": began, "ended": began + 42.25, "deploy_figure": "9.0 s without"})
    assert report.startswith("OUTAGE of the decode role: 42.2 s from 03:00:05 (when this command found decode out")


def test_an_instance_the_converge_stopped_reports_the_deploys_figure():
    report = _outage_report(DECODE, {"out_since": None, "ended": 100.0, "deploy_figure": "8.4 s without a decode"})
    assert report == "OUTAGE of the decode role: 8.4 s without a decode"
    assert "Restart | ... OUTAGE" in _outage_report(DECODE, {"out_since": None, "ended": 100.0})
