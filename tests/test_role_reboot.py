"""roles.reboot's waves: the inventory's order, at most `parallel` hosts at a time."""

from __future__ import annotations

from roles.reboot import waves

NODES = ["prefill-0", "prefill-1", "decode-0", "decode-1"]


def test_one_at_a_time_by_default():
    assert waves(NODES, 1) == [["prefill-0"], ["prefill-1"], ["decode-0"], ["decode-1"]]


def test_n_at_a_time_and_a_short_last_wave():
    assert waves(NODES, 3) == [["prefill-0", "prefill-1", "decode-0"], ["decode-1"]]
    assert waves(NODES, 4) == [NODES]
