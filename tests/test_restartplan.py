"""pdfleet.restartplan.decide: what a converge does to one instance, from what its ranks run now."""

from __future__ import annotations

from pdfleet.restartplan import decide

NEW, OLD = "n" * 64, "o" * 64


def step(digests, states, siblings=1, allowed=False, drained_by_rolling=False):
    return decide("decode", "decode", NEW, digests, states, siblings, allowed, drained_by_rolling)


def test_current_and_serving_is_left_alone_or_put_back_after_an_interrupted_roll():
    assert step([NEW, NEW], ["active", "active"]).kind == "none"
    assert step([NEW, NEW], ["active", "activating"]).kind == "none"  # systemd is bringing a rank back
    assert step([NEW, NEW], ["active", "active"], drained_by_rolling=True).kind == "back-in"


def test_what_does_not_serve_is_started_without_a_drain():
    first = step([None, None], ["inactive", "inactive"], siblings=0)
    assert (first.kind, first.restart, first.label) == ("start", False, "started, every rank at once (first start)")
    crashed = step([NEW, NEW], ["failed", "failed"], siblings=0)
    assert (crashed.kind, crashed.restart) == ("start", False)
    stale = step([OLD, OLD], ["failed", "inactive"], siblings=0)  # new inputs for a crashed instance: no outage
    assert (stale.kind, stale.restart) == ("start", True)
    left_out = step([OLD, OLD], ["failed", "failed"], drained_by_rolling=True)
    assert (left_out.kind, left_out.back_in) == ("start", True)


def test_a_rank_down_behind_a_serving_rank_0_restarts_them_all():
    broken = step([NEW, NEW], ["active", "failed"], siblings=0)
    assert (broken.kind, broken.restart) == ("start", True) and "rank 1 failed" in broken.label


def test_changed_inputs_roll_while_another_instance_serves_the_role():
    assert step([OLD, OLD], ["active", "active"], siblings=1).kind == "roll"
    assert step([NEW, OLD], ["active", "active"], siblings=1).kind == "roll"  # one rank behind: all restart


def test_the_last_instance_of_a_role_is_an_outage_refused_unless_allowed():
    refused = step([OLD, OLD], ["active", "active"], siblings=0)
    assert refused.kind == "refuse" and "pdfleet_allow_outage=decode" in refused.label
    assert step([OLD, OLD], ["active", "active"], siblings=0, allowed=True).kind == "outage"


def test_a_version_change_is_never_rolled_only_cut_over_when_every_instance_may_go_down():
    def versioned(running, siblings=1, allowed=False, cutover=False):
        return decide("prefill-0", "prefill", NEW, [OLD], ["active"], siblings, allowed, False,
                      running_version=running, version="0.5.23", cutover_allowed=cutover)  # fmt: skip

    refused = versioned("0.5.6.post2")  # another prefill serves: a roll would pair 0.5.23 with the 0.5.6.post2 decode
    assert refused.kind == "refuse" and "SGLang 0.5.6.post2 -> 0.5.23" in refused.label
    assert "pdfleet_allow_outage=all" in refused.label
    assert versioned("0.5.6.post2", siblings=0, allowed=True).kind == "refuse"  # its own switch is not enough
    cutover = versioned("0.5.6.post2", cutover=True)
    assert cutover.kind == "cutover" and "SGLang 0.5.6.post2 -> 0.5.23" in cutover.label
    assert versioned("0.5.23").kind == "roll"  # same version: other inputs changed, rolled as before
    assert versioned(None).kind == "roll"  # started before versions were recorded: not known, not guarded
    stopped = decide("prefill-0", "prefill", NEW, [OLD], ["failed"], 1, False, False,
                     running_version="0.5.6.post2", version="0.5.23")  # fmt: skip
    assert stopped.kind == "start"  # serves nothing: started on the new version
