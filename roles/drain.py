"""Drain and undrain an instance by hand (`pdfleet drain` / `undrain`, deploys/drain.py), on the router's node.

The membership agent does the work (pdfleet/onhost/router_members.py): it records the instance drained by the
operator in the router's membership file, applies it at once (smg stops routing to it, lets its requests finish)
and waits until the engine's own queues are empty, within `router.drain_timeout_secs`. A converge keeps the record:
the instance stays out of the router until `pdfleet undrain`, which waits until the router reports it ready.
"""

from __future__ import annotations

import shlex

from pyinfra import logger
from pyinfra.api import FunctionCommand, OperationError, operation

from pdfleet.serving import MEMBERS_AGENT, MEMBERS_FILE

# The agent's exit status when the bound was hit (pdfleet/onhost/router_members.py).
TIMED_OUT = 3


def _agent(state, host, action: str, instance: str, reason: str, timeout: int) -> None:
    args = ["python3", MEMBERS_AGENT, action, MEMBERS_FILE, instance, "--by", "operator", "--timeout", str(timeout)]
    if action == "drain":
        args += ["--reason", reason]
    ok, output = host.run_shell_command(" ".join(shlex.quote(a) for a in args) + "; echo exit=$?", print_output=False)
    lines = [line.removeprefix("pdfleet-router-members: ") for line in output.stdout_lines + output.stderr_lines]
    status = next((line for line in reversed(lines) if line.startswith("exit=")), "exit=?")
    for line in lines:
        if not line.startswith("exit="):
            logger.info(f"{host.print_prefix}Drain | {line}")
    if status != "exit=0":
        last = next((line for line in reversed(lines) if not line.startswith("exit=")), "no output")
        raise OperationError(f"{action} {instance}: {last}" + (" (bound hit)" if status == f"exit={TIMED_OUT}" else ""))


def _at_once(calls: list[tuple[str, ...]]) -> str:
    """A shell line running several pdfleet-router-members calls at once; it exits 1 when any failed."""
    shells = " ".join(
        "( "
        + " ".join(shlex.quote(a) for a in ("python3", MEMBERS_AGENT, call[0], MEMBERS_FILE, *call[1:]))
        + ' ) & pids="$pids $!";'
        for call in calls
    )
    # each job's PID kept as it starts: `jobs -p` lists nothing in a non-interactive dash (the nodes' sh)
    return f'failed=0; pids=""; {shells} for pid in $pids; do wait "$pid" || failed=1; done; exit $failed'


def agents_at_once(router, calls: list[tuple[str, ...]]) -> tuple[bool, list[str]]:
    """Several pdfleet-router-members calls on the router's node (pyinfra host `router`) at once, each waiting for
    its own instance: whether every one exited 0, and what they said."""
    ok, output = router.run_shell_command(_at_once(calls), print_output=False)
    return ok, [line.removeprefix("pdfleet-router-members: ") for line in output.stdout_lines + output.stderr_lines]


@operation(is_idempotent=False)
def instance_membership(action: str, instance: str, reason: str, timeout: int):
    """
    Take an instance out of the router and wait for its requests (drain), or put it back and wait until the router
    reports it ready (undrain). Runs on the router's node.

    + action: drain or undrain
    + instance: the instance's name
    + reason: why (kept in the membership, shown by pdfleet status)
    + timeout: seconds to wait (router.drain_timeout_secs, or the instance's start time for an undrain)
    """
    if action not in ("drain", "undrain"):
        raise OperationError(f"pdfleet_drain_action: found {action!r}, expected drain or undrain")
    yield FunctionCommand(_agent, (action, instance, reason, timeout), {})
