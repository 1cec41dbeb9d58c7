"""pdfleet.loadgen.summarize: what the clients saw, from hand-made request records."""

from __future__ import annotations

from pdfleet.loadgen import Result, summarize


def steady(start: float, end: float, every: float = 0.1, latency: float = 0.05) -> list[Result]:
    out, t = [], start
    while t < end:
        out.append(Result(t, t + latency, 200))
        t = round(t + every, 6)
    return out


def test_an_outage_is_the_longest_time_without_an_answer_while_clients_ask():
    results = steady(0, 10) + [Result(10 + i * 0.1, 10 + i * 0.1 + 0.01, 503, "no workers") for i in range(30)]
    results += steady(13, 20)
    row = summarize(results)
    assert row["failed"] == 30 and row["codes"] == {"503": 30}
    assert 2.9 <= row["longest_gap_s"] <= 3.1 and 9.9 <= row["longest_gap_from_s"] <= 10.1


def test_a_straggler_answered_after_the_load_stopped_is_a_slow_request_not_an_outage():
    results = steady(0, 10) + [Result(9.0, 24.0, 200)]  # in flight on a dead node, answered after a retry
    row = summarize(results)
    assert row["longest_gap_s"] <= 0.2, row
    assert row["slowest_s"] == 15.0 and row["slowest_sent_s"] == 9.0


def test_silence_at_the_end_of_the_window_counts_to_the_last_request_sent():
    results = steady(0, 5) + [Result(5 + i * 0.1, 30.0, "timeout") for i in range(50)]
    row = summarize(results)
    assert 4.9 <= row["longest_gap_s"] <= 5.0 and row["failed"] == 50
