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
from pyinfra.api import FactBase, OperationError, StringCommand, deploy, operation

from pdfleet.serving import UNIT_DIR
from roles import common

RETIRED_DIR = "/var/lib/pdfleet/retired"
RETIRED_MARK = "/etc/pdfleet/retired"
# The units that make a node part of a pdfleet cluster: every instance's (server, DeepGEMM precompile, peer watch)
# and the router's. Matched by name on the node, so a node is retired whatever inventory it was converged from.
SERVING_UNIT_GLOBS = ("sglang-*.service", "pdfleet-router.service", "pdfleet-router-members.service")
# What `pdfleet_retire_scope=instances` retires: the SGLang units only (blue/green's outgoing set, whose nodes stay in
# the cluster as spares and may keep running the router).
INSTANCE_UNIT_GLOBS = ("sglang-*.service",)


class PresentUnitFiles(FactBase):
    """The unit files (and drop-in directories) under /etc/systemd/system matching the given globs."""

    def command(self, globs: tuple[str, ...]) -> str:
        patterns = " ".join(f"{UNIT_DIR}/{g}{suffix}" for g in globs for suffix in ("", ".d"))
        return f'for p in {patterns}; do [ -e "$p" ] && echo "$p"; done; true'

    def process(self, output: list[str]) -> list[str]:
        return sorted({line.strip() for line in output if line.strip()})


@operation()
def units_retired(note: str, globs: tuple[str, ...] = SERVING_UNIT_GLOBS):
    """
    Stop and disable the node's serving units, move their unit files out of systemd's reach, write the mark.

    + note: one line for the mark (cluster, replaced by whom)
    + globs: which unit files count as serving (default: SGLang instances and the router)
    """
    present = host.get_fact(PresentUnitFiles, globs=globs)
    if not present:
        host.noop("no serving unit left on this node")
        return
    names = sorted({p.rsplit("/", 1)[1].removesuffix(".d") for p in present})
    quoted = " ".join(shlex.quote(n) for n in names)
    # Not --no-block: the stop (the engine's drain, bounded by TimeoutStopSec) must be over before the files move,
    # or systemd would lose track of a unit still stopping.
    yield StringCommand(f"systemctl disable --now {quoted} 2>&1 || true")
    yield StringCommand(f"mkdir -p {RETIRED_DIR}")
    for path in present:
        yield StringCommand(f"rm -rf {RETIRED_DIR}/{shlex.quote(path.rsplit('/', 1)[1])}")
        yield StringCommand(f"mv {shlex.quote(path)} {RETIRED_DIR}/")
    yield StringCommand("systemctl daemon-reload")
    yield StringCommand(f"systemctl reset-failed {quoted} 2>/dev/null || true")
    yield StringCommand(f'mkdir -p /etc/pdfleet && echo "$(date -Is)" {shlex.quote(note)} >> {RETIRED_MARK}')


@deploy("Retire")
def retire() -> None:
    """This node's serving units retired (deploys/retire.py), with a note for the mark from the host data
    `pdfleet_retire_note` (default: the cluster it leaves, when pyinfra knows the inventory); host data
    `pdfleet_retire_scope`: all (default: SGLang and the router) or instances (SGLang's units only)."""
    known = host.data.get("pdfleet_inventory")
    cluster = f"cluster {common.cluster().name}" if known else "its cluster"
    scope = str(host.data.get("pdfleet_retire_scope") or "all")
    if scope not in ("all", "instances"):
        raise OperationError(f"pdfleet_retire_scope: found {scope!r}, expected all or instances")
    units_retired(
        name="serving units stopped, disabled and removed",
        note=str(host.data.get("pdfleet_retire_note") or f"retired from {cluster} (pdfleet)"),
        globs=SERVING_UNIT_GLOBS if scope == "all" else INSTANCE_UNIT_GLOBS,
    )
