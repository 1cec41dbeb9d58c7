"""pdfleet.rebootplan on the prod inventory: hosts serving nothing together (bounded), then each serving instance
alone with all its nodes, the last of a role marked as an outage."""

from __future__ import annotations

from pathlib import Path

from pdfleet.cluster import load_cluster
from pdfleet.rebootplan import Wave, reboot_waves

ROOT = Path(__file__).resolve().parent.parent
PROD = load_cluster(ROOT / "inventories/prod.yaml")
ALL = frozenset(i.name for i in PROD.instances)


def test_a_cold_cluster_reboots_in_one_wave_whatever_its_size():
    assert reboot_waves(PROD, frozenset(), parallel=32) == [Wave(("prefill-0", "prefill-1", "decode-0", "decode-1"))]
    assert reboot_waves(PROD, frozenset(), parallel=3) == [
        Wave(("prefill-0", "prefill-1", "decode-0")),
        Wave(("decode-1",)),
    ]


def test_a_serving_cluster_goes_one_instance_at_a_time_the_decode_ranks_together():
    waves = reboot_waves(PROD, ALL, parallel=32)
    assert [(w.nodes, w.instance, w.last_of_role) for w in waves] == [
        (("prefill-0",), "prefill-0", False),
        (("prefill-1",), "prefill-1", False),
        (("decode-0", "decode-1"), "decode", True),
    ]
    assert waves[2].label == "decode (decode-0, decode-1)"


def test_idle_hosts_go_first_and_a_lone_serving_prefill_is_the_last_of_its_role():
    waves = reboot_waves(PROD, frozenset({"prefill-1", "decode"}), parallel=32)
    assert waves[0] == Wave(("prefill-0",))
    assert waves[0].label == "prefill-0 (serving nothing)"
    assert [(w.instance, w.last_of_role) for w in waves[1:]] == [("prefill-1", True), ("decode", True)]
