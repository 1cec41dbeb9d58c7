"""Serving wheel sets side by side (pdfleet/runtimeplan.py, roles/runtime.py): which are kept, which deleted,
and how the node's listing is read."""

from __future__ import annotations

import dataclasses
import re

from pdfleet.inventory import load
from pdfleet.runtimeplan import SET_NAME, serving_set_name, sets_to_remove
from roles.runtime import ServingSets
from tests.test_plan import PROD

OLD, PREVIOUS, CURRENT = "sglang-0.5.5-aaaaaaaaaaaa", "sglang-0.5.6.post2-bbbbbbbbbbbb", "sglang-0.5.23-cccccccccccc"


def test_a_set_is_named_by_its_version_and_the_digest_of_every_pin():
    cluster = load(PROD)
    name = serving_set_name(cluster)
    assert re.fullmatch(r"sglang-0\.5\.23-[0-9a-f]{12}", name) and SET_NAME.match(name)
    other_wheel = dataclasses.replace(
        cluster, runtime=dataclasses.replace(cluster.runtime, wheels={"mooncake-transfer-engine": "0.3.14"})
    )
    assert serving_set_name(other_wheel) != name  # a companion's new pin is a new set, installed beside
    other_version = dataclasses.replace(cluster, sglang_version="0.5.6.post2")
    assert serving_set_name(other_version).startswith("sglang-0.5.6.post2-")


def test_the_previous_set_stays_for_a_rollback_and_older_ones_go():
    present = {OLD: 100.0, PREVIOUS: 200.0, CURRENT: 300.0}
    assert sets_to_remove(present, CURRENT, in_use=set(), keep=2) == [OLD]
    assert sets_to_remove(present, CURRENT, in_use=set(), keep=3) == []


def test_a_set_an_instance_was_started_with_is_never_removed():
    """Installed before the window: the running engines still use the old set although newer ones exist."""
    present = {OLD: 100.0, PREVIOUS: 200.0, CURRENT: 300.0}
    assert sets_to_remove(present, CURRENT, in_use={OLD}, keep=2) == [PREVIOUS]
    assert sets_to_remove(present, CURRENT, in_use={OLD, PREVIOUS}, keep=2) == []


def test_the_inventorys_set_is_kept_even_when_it_is_the_oldest():
    """A rollback to a set installed long ago: the newer ones are the candidates, not it."""
    present = {OLD: 100.0, PREVIOUS: 200.0, CURRENT: 300.0}
    assert sets_to_remove(present, OLD, in_use={CURRENT}, keep=2) == [PREVIOUS]


def test_the_listing_keeps_only_set_directories_and_reads_the_records():
    output = [
        f"set 1700000000 /opt/pdfleet/sglang/{CURRENT}/pyvenv.cfg",
        "set 1600000000 /opt/pdfleet/sglang/my-own-venv/pyvenv.cfg",  # not pdfleet's: never touched
        f"use {CURRENT}",
        f"use {PREVIOUS}",
    ]
    assert ServingSets().process(output) == {"present": {CURRENT: 1700000000.0}, "in_use": [CURRENT, PREVIOUS]}
    assert ServingSets.default() == {"present": {}, "in_use": []}


def test_deep_gemm_caches_of_older_keys_go_beyond_keep_and_the_listing_ignores_other_directories():
    from roles.deepgemm import CacheDirs

    root = "/var/cache/pdfleet/deep_gemm"
    listed = CacheDirs().process(
        [
            f"1700000300 {root}/cccccccccccccccc/pdfleet.key",  # this node's key now
            f"1700000200 {root}/bbbbbbbbbbbbbbbb/pdfleet.key",  # the version before: a rollback needs it
            f"1700000100 {root}/aaaaaaaaaaaaaaaa/pdfleet.key",
            f"1700000000 {root}/kernels/pdfleet.key",  # not a key directory: never touched
        ]
    )
    assert sorted(listed) == ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"]
    assert sets_to_remove(listed, "cccccccccccccccc", set(), keep=2) == ["aaaaaaaaaaaaaaaa"]
    # before the cutover's start the new key has no directory yet: the one serving stays
    assert sets_to_remove(listed, "dddddddddddddddd", set(), keep=2) == ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]
