"""Reboots, explicit and rolling.

A role that changed something only a reboot applies (a driver, module options, the kernel command line) calls
`request`: that writes a mark with the reason under /run (any reboot clears it) and remembers, for this run, that
the host may need one. `rolling()`, the last step of deploys/host.py, then reboots the hosts that need it in waves
of `host.reboot.parallel` (1 by default), waiting for each wave to come back before the next. It never reboots the
machine running pyinfra, and with `host.reboot.defer: true` in the inventory, or `--data pdfleet_defer_reboots=1`
on the command line, it reboots nothing and says which hosts still need a reboot, and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from weakref import WeakKeyDictionary

from pyinfra import host, logger
from pyinfra.api import FactBase, FunctionCommand, OperationError, QuoteString, StringCommand, deploy, operation
from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta

from roles import common

MARK = "/run/pdfleet/reboot-required"
# How long a host may take to come back, from the reboot command to systemd reporting the boot finished.
BOOT_TIMEOUT = 900
# Seconds between reconnect attempts while a host reboots.
RECONNECT_INTERVAL = 2

# The mark operations queued for each host in this run (their _if decides at execution whether they fire).
_requests: WeakKeyDictionary[Host, list[OperationMeta]] = WeakKeyDictionary()


class RebootMark(FactBase):
    """Why this host still needs a reboot: the lines of the mark, or None when none is pending."""

    def command(self) -> str:
        return f"cat {MARK} 2>/dev/null || true"

    def process(self, output: list[str]) -> list[str] | None:
        reasons = [line.strip() for line in output if line.strip()]
        return reasons or None


class MachineId(FactBase):
    """/etc/machine-id: tells the machine running pyinfra apart from its targets."""

    def command(self) -> str:
        return "cat /etc/machine-id"

    def process(self, output: list[str]) -> str:
        return "".join(output).strip()


@operation()
def mark(reason: str):
    """
    Record that this host needs a reboot, and why.

    + reason: one line saying what changed (shown when reboots are deferred)
    """
    yield StringCommand("mkdir -p /run/pdfleet && echo", QuoteString(reason), ">>", MARK)


def request(name: str, reason: str, when: Callable[[], bool]) -> OperationMeta:
    """Mark this host for reboot when `when()` holds at execution time; the rolling reboot sees it."""
    meta = mark(name=name, reason=reason, _if=when)
    _requests.setdefault(host, []).append(meta)
    return meta


def requested_in_this_run() -> bool:
    """Whether a mark of this run fired on this host (valid at execution time, after the marks ran)."""
    return any(meta.is_complete() and meta.did_change() for meta in _requests.get(host, []))


def settled() -> bool:
    """No reboot requested on this host in this run: for operations that must wait for it (a module of a new
    driver loads only after the reboot)."""
    return not requested_in_this_run()


def _is_control_machine() -> bool:
    if host.name == "@local" or host.name.startswith("@local/"):
        return True
    local = Path("/etc/machine-id")
    return local.exists() and local.read_text().strip() == host.get_fact(MachineId)


def _deferred() -> bool:
    switch = str(host.data.get("pdfleet_defer_reboots", "")).lower() in ("1", "true", "yes", "on")
    return switch or common.cluster().host.reboot.defer


def waves(nodes: list[str], parallel: int) -> list[list[str]]:
    """The inventory's nodes, in its order, cut into waves of at most `parallel` hosts."""
    return [nodes[i : i + parallel] for i in range(0, len(nodes), parallel)]


def _reboot_and_wait(state, host) -> None:
    """Reboot, then reconnect until /run was recreated (the mark is gone) and systemd finished booting."""
    host.disconnect()
    deadline = time.monotonic() + BOOT_TIMEOUT
    time.sleep(RECONNECT_INTERVAL)
    while time.monotonic() < deadline:
        host.connect(show_errors=False)
        if host.connected:
            status, output = host.run_shell_command(
                f"test ! -e {MARK} && systemctl is-system-running --wait", print_output=False
            )
            state_line = "".join(output.stdout_lines).strip()
            if state_line in ("running", "degraded"):
                logger.info(f"{host.print_prefix}Reboot | back: system {state_line}")
                return
            host.disconnect()
        time.sleep(RECONNECT_INTERVAL)
    raise OperationError(f"{host.name} did not come back within {BOOT_TIMEOUT}s of its reboot")


@operation(is_idempotent=False)
def reboot_wave(wave: int, waves_total: int, member: bool, reasons: list[str] | None):
    """
    Reboot this host if it is in this wave, and wait for it to come back.

    + wave: this wave's number (1-based), for messages
    + waves_total: how many waves the run has
    + member: whether this host reboots in this wave
    + reasons: what asked for the reboot before this run (the mark's lines), or None
    """
    if not member:
        return
    why = "; ".join(reasons) if reasons else "changed in this run"

    def announce(state, host) -> None:
        logger.info(f"{host.print_prefix}Reboot | wave {wave}/{waves_total}: rebooting ({why})")

    # Said when it happens: a wave whose reboot hangs on this run's changes (`_if`) may not happen at all, as in
    # every --dry run and every run that changed nothing.
    yield FunctionCommand(announce, (), {})
    # The journal says why the host rebooted; the reboot is detached so the SSH channel closes before it drops.
    yield StringCommand(f'logger -t pdfleet "reboot (wave {wave}/{waves_total}): $(paste -sd";" {MARK})"')
    yield StringCommand("( sleep 1 && systemctl reboot ) </dev/null >/dev/null 2>&1 &")
    yield FunctionCommand(_reboot_and_wait, (), {})


@operation()
def report_deferred(reasons: list[str] | None, why: str):
    """
    Say that this host needs a reboot that will not happen in this run.

    + reasons: the mark's lines known before this run, or None when the need arises in this run
    + why: why the reboot is not done (deferred, or this is the machine running pyinfra)
    """
    if reasons:
        # A warning, not a change: nothing happens on the host, but nobody should miss it.
        logger.warning(f"{host.print_prefix}Reboot | still needed ({why}): {'; '.join(reasons)}")
        return

    def warn(state, host) -> None:
        _, output = host.run_shell_command(f"cat {MARK}", print_output=False)
        logger.warning(f"{host.print_prefix}Reboot | needed ({why}): {'; '.join(output.stdout_lines)}")

    yield FunctionCommand(warn, (), {})


@deploy("Reboot")
def rolling() -> None:
    """The reboot step: rolling reboots of the marked hosts, or the list of hosts that still need one."""
    cluster = common.cluster()
    reasons = host.get_fact(RebootMark)
    # A mark left by an earlier run needs a reboot for sure; otherwise only if a mark of this run fires.
    condition = {} if reasons else {"_if": requested_in_this_run}

    deferred = _deferred()
    if deferred or _is_control_machine():
        why = "reboots deferred" if deferred else "this is the machine running pyinfra, reboot it yourself"
        report_deferred(name="report the hosts that still need one", reasons=reasons, why=why, **condition)
        return

    all_waves = waves([node.name for node in cluster.nodes], cluster.host.reboot.parallel)
    me = common.node_name()
    for number, members in enumerate(all_waves, start=1):
        reboot_wave(
            name=f"wave {number} of {len(all_waves)}: {', '.join(members)}",
            wave=number,
            waves_total=len(all_waves),
            member=me in members,
            reasons=reasons,
            **condition,
        )
