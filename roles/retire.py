"""Retire a node from serving (`pdfleet replace-node`, deploys/retire.py): its units stopped and out of systemd.

A replaced node that comes back later (repaired, re-cabled, powered on by someone who did not know) must not
rejoin the cluster: a returning decode rank would knock on its old rank 0's rendezvous, a returning router would
answer on the old URL. So its serving units are stopped, disabled, and their unit files moved to RETIRED_DIR (kept
for a person to read; nothing can start a unit whose file is gone), and RETIRED_MARK says when, why and by whom.
The weights share stays: it only serves copies to peers. Adding the node back is a converge (pd.py), which writes
the units again.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation

from pdfleet.serving import MEMBERS_UNIT, ROUTER_UNIT, UNIT_DIR

RETIRED_DIR = "/var/lib/pdfleet/retired"
RETIRED_MARK = "/etc/pdfleet/retired"


class PresentUnitFiles(FactBase):
    """Which of the given unit files (or their drop-in directories) exist under /etc/systemd/system."""

    def command(self, units: tuple[str, ...]) -> str:
        paths = " ".join(shlex.quote(f"{UNIT_DIR}/{u}{suffix}") for u in units for suffix in ("", ".d"))
        return f'for p in {paths}; do [ -e "$p" ] && echo "$p"; done; true'

    def process(self, output: list[str]) -> list[str]:
        return [line.strip() for line in output if line.strip()]


def serving_units(spec, router: bool) -> tuple[str, ...]:
    """The units that make a node part of the cluster: its instance's (server, precompile, peer watch) and the
    router's when it runs there."""
    units: list[str] = []
    if spec is not None:
        units += [spec.unit, spec.precompile_unit, spec.peer_watch_unit]
    if router:
        units += [ROUTER_UNIT, MEMBERS_UNIT]
    return tuple(units)


@operation()
def units_retired(units: tuple[str, ...], note: str):
    """
    Stop and disable the units, move their unit files out of systemd's reach, write the retired mark.

    + units: the unit names (those already gone are skipped)
    + note: one line for the mark (cluster, when, replaced by whom)
    """
    present = host.get_fact(PresentUnitFiles, units=units)
    if not present:
        host.noop(f"no serving unit left on this node ({', '.join(units) or 'none planned'})")
        return
    names = sorted({p.rsplit("/", 1)[1].removesuffix(".d") for p in present})
    quoted = " ".join(shlex.quote(n) for n in names)
    # --no-block is not used: the stop must be over (the engine's drain bounded by TimeoutStopSec) before the
    # files move, or systemd would lose track of a unit still stopping.
    yield StringCommand(f"systemctl disable --now {quoted} 2>&1 || true")
    yield StringCommand(f"mkdir -p {RETIRED_DIR}")
    for path in present:
        yield StringCommand(f"rm -rf {RETIRED_DIR}/{shlex.quote(path.rsplit('/', 1)[1])}")
        yield StringCommand(f"mv {shlex.quote(path)} {RETIRED_DIR}/")
    yield StringCommand("systemctl daemon-reload")
    yield StringCommand(f"systemctl reset-failed {quoted} 2>/dev/null || true")
    yield StringCommand(f'mkdir -p /etc/pdfleet && echo "$(date -Is)" {shlex.quote(note)} >> {RETIRED_MARK}')
