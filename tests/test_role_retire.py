"""roles/retire.py on pyinfra's @fake hosts: what a retired node is sent, and nothing when nothing is left."""

from __future__ import annotations

from roles.retire import RETIRED_DIR, RETIRED_MARK, retire
from tests.fakehosts import converge

UNITS = "/etc/systemd/system/sglang-prefill-0.service\n/etc/systemd/system/pdfleet-router.service"
FOUND = {"for p in /etc/systemd/system/sglang-*.service": UNITS}


def test_a_node_with_serving_units_has_them_stopped_disabled_and_moved_away():
    runs = converge(retire, {"prefill-0": FOUND}, extra_data={"pdfleet_retire_note": "replaced by spare-0"})
    run = runs["prefill-0"]
    assert run.will_change["Retire | serving units stopped, disabled and removed"]
    sent = [c for c in run.commands if "for p in" not in c]
    disable = next(i for i, c in enumerate(sent) if "systemctl disable --now pdfleet-router.service" in c)
    assert "sglang-prefill-0.service" in sent[disable]
    moves = [i for i, c in enumerate(sent) if c.strip().startswith("sh -c 'mv ") or " mv " in c or c.startswith("mv ")]
    assert len(moves) == 2 and all(i > disable for i in moves), sent  # moved only once stopped
    assert any(f"{RETIRED_DIR}/" in sent[i] for i in moves)
    reload = next(i for i, c in enumerate(sent) if "systemctl daemon-reload" in c)
    assert reload > max(moves)
    assert any("replaced by spare-0" in c and RETIRED_MARK in c for c in sent)


def test_a_node_already_retired_is_sent_nothing():
    runs = converge(retire, {"prefill-0": {}})
    assert not runs["prefill-0"].will_change["Retire | serving units stopped, disabled and removed"]
    assert not runs["prefill-0"].ran("systemctl disable")
