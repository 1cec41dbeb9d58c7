"""Blue/green's switch, on the router's node (`pdfleet blue-green`, deploys/switch.py): the router routes to the new
set beside the old one, then only to the new one.

This run's inventory is the incoming set (the new SGLang version on the spares); host data `pdfleet_outgoing` names
the inventory of the set it replaces. The router's membership holds both (pdfleet.render.members_file: the
outgoing instances renamed `NAME@VERSION`). Each worker carries its version as smg's pairing protocol, so the
router pairs a prefill only with a decode of its own version: both sets serve side by side, never a mixed pair.
Once every incoming instance is ready in the router, every outgoing one is drained at once (no new requests, those
in flight finish). What clients see: nothing.
"""

from __future__ import annotations

import json
import shlex
import time

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, OperationError, deploy, operation

from pdfleet.render import outgoing_name
from pdfleet.serving import MEMBERS_AGENT, MEMBERS_FILE
from roles import common
from roles.drain import agents_at_once
from roles.router import router

# Seconds between two looks at the router's view of the incoming instances.
POLL = 1


def _ready(state, host, instances: list[str], timeout: int) -> None:
    deadline = time.monotonic() + timeout
    command = " ".join(shlex.quote(a) for a in ("python3", MEMBERS_AGENT, "show", MEMBERS_FILE))
    while True:
        ok, output = host.run_shell_command(command, print_output=False)
        status = {}
        if ok:
            view = json.loads("\n".join(output.stdout_lines))
            status = {w["instance"]: (w["router"] or {}).get("status", "absent") for w in view["workers"]}
        waiting = [name for name in instances if status.get(name) != "ready"]
        if not waiting:
            logger.info(
                f"{host.print_prefix}Switch | ready in the router beside the outgoing set: {', '.join(instances)}"
            )
            return
        if time.monotonic() > deadline:
            states = ", ".join(f"{name} {status.get(name, 'absent')}" for name in waiting)
            raise OperationError(
                f"Switch | not ready in the router within {timeout} s: {states}; the outgoing set still serves "
                "alone. Look at `pdfleet status` on the staged inventory, then run the same command again"
            )
        time.sleep(POLL)


def _drain(state, host, instances: list[str], reason: str, timeout: int) -> None:
    ok, lines = agents_at_once(
        host, [("drain", name, "--by", "operator", "--reason", reason, "--timeout", str(timeout)) for name in instances]
    )
    for line in lines:
        logger.info(f"{host.print_prefix}Switch | {line}")
    if not ok:
        logger.warning(
            f"{host.print_prefix}Switch | drain bound hit: the outgoing engines finish the rest when stopped"
        )


@operation(is_idempotent=False)
def incoming_ready(instances: list[str], timeout: int):
    """
    Wait until the router reports every incoming instance ready (the membership agent registers an engine once its
    /health answers).

    + instances: the incoming instances' names
    + timeout: seconds to wait (sglang.start_timeout)
    """
    yield FunctionCommand(_ready, (instances, timeout), {})


@operation(is_idempotent=False)
def outgoing_drained(instances: list[str], reason: str, timeout: int):
    """
    Drain every outgoing instance at once: the router stops sending them requests, those in flight finish.

    + instances: the outgoing instances as the membership names them (`NAME@VERSION`)
    + reason: kept in the membership, shown by pdfleet status
    + timeout: seconds each may take (router.drain_timeout_secs)
    """
    yield FunctionCommand(_drain, (instances, reason, timeout), {})


@deploy("Switch")
def switch():
    serving = common.serving_plan()
    if serving.router.host != common.node_name():
        return
    outgoing_yaml = host.data.get("pdfleet_outgoing")
    if not outgoing_yaml:
        raise OperationError("deploys/switch.py needs --data pdfleet_outgoing=<the inventory of the set it replaces>")
    outgoing = common.outgoing_plan(outgoing_yaml)
    router()  # the membership: both sets
    incoming_ready(
        name="incoming set ready in the router",
        instances=[w.instance for w in serving.router.workers],
        timeout=serving.cluster.start_timeout,
    )
    incoming = {w.url for w in serving.router.workers}
    version = outgoing.cluster.sglang_version
    outgoing_drained(
        name="outgoing set drained",
        instances=[outgoing_name(w.instance, version) for w in outgoing.router.workers if w.url not in incoming],
        reason=f"blue/green: replaced by SGLang {serving.cluster.sglang_version}",
        timeout=serving.cluster.router.drain_timeout_secs,
    )
