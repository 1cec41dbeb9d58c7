"""What a converge does to one serving instance, from what its ranks run now: pure, so every case is a unit test.

roles/restarts.py reads each rank's applied digest and unit state (facts of the instance's nodes) and acts on the
`Step` this returns; docs of the rules are there.
"""

from __future__ import annotations

from dataclasses import dataclass

# Unit states in which a unit is on its way up or down: systemd (Restart=) owns it, a converge leaves it.
IN_TRANSITION = ("activating", "reloading", "deactivating")


@dataclass(frozen=True)
class Step:
    kind: str  # "none" | "back-in" | "start" | "roll" | "outage" | "cutover" | "refuse"
    label: str  # what the operation is called: what happens and why
    restart: bool = False  # start: a stale rank is restarted rather than started
    back_in: bool = False  # start: then back into the router once healthy (an interrupted rolling restart's)


def decide(
    instance: str,
    role: str,
    digest: str,
    digests: list[str | None],
    states: list[str],
    siblings: int,
    allowed: bool,
    drained_by_rolling: bool,
    running_version: str | None = None,
    version: str = "",
    cutover_allowed: bool = False,
) -> Step:
    """
    + instance / role: the instance and its role
    + digest: the inputs it must run (pdfleet.render.instance_inputs)
    + digests / states: per rank, rank 0 first: the digest it was last started with, `systemctl is-active`
    + siblings: other instances of the role in the inventory
    + allowed: the run may take this instance down although it is the last of its role
    + drained_by_rolling: the router's membership holds it drained by an interrupted rolling restart
    + running_version / version: the SGLang version it was last started with (None: not known) and the one it must
      run. Prefill and decode of different versions cannot pair, so a version change is never rolled: one
      instance on the new version beside the others on the old one fails every request it takes.
    + cutover_allowed: the run may take every instance down (`pdfleet_allow_outage=all`): a version change then
      is a cutover: every instance changing version is stopped first, then all start together on the new one
    """
    current = all(d == digest for d in digests)
    settled = all(s == "active" or s in IN_TRANSITION for s in states)
    if current and settled:
        if drained_by_rolling:
            return Step("back-in", "back into the router once healthy (an interrupted rolling restart drained it)")
        return Step("none", f"running its current inputs ({', '.join(states)})")
    back = " then back into the router" if drained_by_rolling else ""
    if current and states[0] == "active":
        broken = ", ".join(f"rank {i} {s}" for i, s in enumerate(states) if not (s == "active" or s in IN_TRANSITION))
        return Step(
            "start", f"every rank restarted ({broken}: the instance cannot serve){back}", True, drained_by_rolling
        )
    if states[0] != "active":
        why = "first start" if digests[0] is None else f"rank 0 {states[0] or 'unknown'}"
        stale = not current and digests[0] is not None
        label = f"started, every rank at once ({why}{', inputs changed' if stale else ''}){back}"
        return Step("start", label, stale, drained_by_rolling)
    if running_version and version and running_version != version:
        change = f"SGLang {running_version} -> {version}"
        if cutover_allowed:
            return Step(
                "cutover",
                f"cutover: {change}: stopped with every instance, all started together on the new version: "
                "OUTAGE (allowed)",
            )
        return Step(
            "refuse",
            f"restart refused: {change}: prefill and decode of different versions cannot pair, so no instance "
            "changes version while the others serve (needs --data pdfleet_allow_outage=all, in a window)",
        )
    if siblings:
        return Step("roll", f"rolling restart: inputs changed ({siblings} other {role} instance(s) keep serving)")
    if allowed:
        return Step("outage", f"restart: inputs changed; the only {role} instance: OUTAGE (allowed)")
    return Step(
        "refuse",
        f"restart refused: inputs changed; the only {role} instance: OUTAGE "
        f"(needs --data pdfleet_allow_outage={instance})",
    )
