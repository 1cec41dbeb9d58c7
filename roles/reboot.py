"""Reboots are explicit: a role that changed something only a reboot applies marks the host; the reboot role
(deploys/host.py, last) reboots marked hosts one at a time. The mark lives in /run, so any reboot clears it."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand, operation

MARK = "/run/pdfleet/reboot-required"


@operation()
def mark(reason: str):
    """
    Record that this host needs a reboot, and why.

    + reason: one line saying what changed (shown when reboots are deferred)
    """
    yield StringCommand("mkdir -p /run/pdfleet && echo", QuoteString(reason), ">>", MARK)
