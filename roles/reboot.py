"""Reboots, explicit and rolling.

A role that changed something only a reboot applies (a driver, module options, the kernel command line) calls
`request`: that writes a mark with the reason under /run (any reboot clears it) and remembers, for this run, that
the host may need one. `rolling()`, the last step of deploys/host.py, then reboots the hosts that need it in the
waves of pdfleet.rebootplan (hosts serving nothing together, `host.reboot.parallel` at a time; then each serving
instance, drained first and put back after its health gate), waiting for each wave to come back before the next.
It never reboots the machine running pyinfra, and with `host.reboot.defer: true` in the inventory, or
`--data pdfleet_defer_reboots=1` on the command line, it reboots nothing and says which hosts still need a reboot,
and why.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from weakref import WeakKeyDictionary

from pyinfra import host, logger, state
from pyinfra.api import FactBase, FunctionCommand, OperationError, QuoteString, StringCommand, deploy, operation
from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta

from pdfleet.rebootplan import Wave, reboot_waves
from roles import common
from roles.facts import SystemdUnitState

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


def _serving_instances() -> frozenset[str]:
    """The instances that serve now: any rank's unit running (or starting). Read on each rank's node; the same
    answers on every host, so every host plans the same waves."""
    serving = common.serving_plan()
    running = {"active", "activating", "reloading", "deactivating"}
    in_run = {h.data.get("pdfleet_node"): h for h in state.inventory}

    def runs(spec) -> bool:
        other = in_run.get(spec.host)  # a node outside this run's inventory (a test's lone host) serves nothing
        if other is None:
            return False
        return common.host_of(spec.host).get_fact(SystemdUnitState, unit=spec.unit) in running

    return frozenset(
        instance.name for instance in serving.cluster.instances if any(runs(s) for s in serving.ranks(instance.name))
    )


def _needs_reboot(node: str) -> bool:
    """Whether a node reboots in this run: a mark left before it, or one of this run's marks that fired (valid
    at execution time, after the marks ran)."""
    other = common.host_of(node)
    if other.get_fact(RebootMark):
        return True
    return any(meta.is_complete() and meta.did_change() for meta in _requests.get(other, []))


# Waves whose drain was refused at execution (no other instance of the role ready): their hosts do not reboot.
_refused_waves: set[int] = set()


def _wave_goes(wave: Wave, number: int) -> Callable[[], bool]:
    return lambda: number not in _refused_waves and any(_needs_reboot(n) for n in wave.nodes)


def _instance_out(state, host, wave: Wave, number: int, outage_allowed: bool) -> None:
    """Before a serving instance's hosts reboot: out of the router, its requests finished; a multi-node instance's
    ranks stopped together (the ones not rebooting too), so that it comes back as one."""
    from roles.restarts import _agent, _others_ready, _run

    serving = common.serving_plan()
    router = serving.router.host
    others = _others_ready(router, wave.instance, wave.role)
    if not others and not outage_allowed:
        _refused_waves.add(number)
        logger.warning(
            f"{host.print_prefix}Reboot | {wave.instance}: no other {wave.role} instance is ready in the router: "
            f"not rebooted now (that would be an outage); its hosts still need a reboot. Bring another {wave.role} "
            f"instance back, or re-run with --data pdfleet_allow_outage={wave.instance}"
        )
        return
    _started[number] = time.monotonic()
    logger.info(f"{host.print_prefix}Reboot | {wave.instance}: draining before its reboot (other {wave.role} "
                f"instances serving: {', '.join(others) or 'none'})")  # fmt: skip
    timeout = str(serving.cluster.router.drain_timeout_secs)
    ok, lines = _agent(router, "drain", wave.instance, "--by", "rolling", "--reason", "reboot", "--timeout", timeout)
    for line in lines:
        logger.info(f"{host.print_prefix}Reboot | {wave.instance}: {line}")
    if not ok:
        logger.warning(
            f"{host.print_prefix}Reboot | {wave.instance}: drain bound hit; rebooting with requests in flight"
        )
    ranks = serving.ranks(wave.instance)
    if len(ranks) > 1:
        for spec in ranks:
            _run(spec.host, f"systemctl stop {shlex.quote(spec.unit)}", f"stop of {spec.unit}")


def _instance_back(state, host, wave: Wave, number: int) -> None:
    """After the reboot: every rank running, rank 0 healthy, back into the router; an outage timed."""
    from roles.restarts import _run, _undrain, _wait_healthy, outage_message

    serving = common.serving_plan()
    ranks = serving.ranks(wave.instance)
    for spec in ranks:  # a rank whose host did not reboot was stopped with the others; one that did, started at boot
        _run(spec.host, f"systemctl reset-failed {shlex.quote(spec.unit)} 2>/dev/null; systemctl start --no-block "
             f"{shlex.quote(spec.unit)}", f"start of {spec.unit}")  # fmt: skip
    head = ranks[0]
    url = f"{head.url}/health_generate"
    timeout = serving.cluster.start_timeout
    rebooted = time.monotonic()
    _wait_healthy(wave.instance, [(s.host, s.unit) for s in ranks], url, timeout)
    healthy = time.monotonic()
    _undrain(host, serving.router.host, wave.instance, timeout)
    back = time.monotonic()
    began = _started.pop(number, rebooted)
    if wave.last_of_role:
        logger.warning(
            f"{host.print_prefix}{outage_message(wave.instance, wave.role, back - began, healthy - rebooted)}"
        )
    logger.info(
        f"{host.print_prefix}Reboot | {wave.instance}: back in the router, {back - began:.1f} s after its drain"
    )


# When each wave's drain began (for the outage and the time out of the router).
_started: dict[int, float] = {}


@operation(is_idempotent=False)
def instance_out(wave: Wave, number: int, acting: bool, outage_allowed: bool):
    """
    Take a serving instance out of the router before its hosts reboot (on its rank-0 node).

    + wave: the wave (its instance and nodes)
    + number: the wave's number in this run
    + acting: whether this host is the instance's rank-0 node (the others do nothing in this step)
    + outage_allowed: the instance may go down although no other of its role serves
    """
    if not acting:
        return
    yield FunctionCommand(_instance_out, (wave, number, outage_allowed), {})


@operation(is_idempotent=False)
def instance_back(wave: Wave, number: int, acting: bool):
    """
    Put a serving instance back after its hosts rebooted: ranks running, healthy, into the router.

    + wave: the wave (its instance and nodes)
    + number: the wave's number in this run
    + acting: whether this host is the instance's rank-0 node (the others do nothing in this step)
    """
    if not acting:
        return
    yield FunctionCommand(_instance_back, (wave, number), {})


@deploy("Reboot")
def rolling() -> None:
    """The reboot step: the marked hosts rebooted in the waves of pdfleet.rebootplan (hosts serving nothing
    together, then each serving instance drained, rebooted and put back), or the hosts that still need one listed.

    Every host calls every wave's steps, in the same order (pyinfra keeps an order across hosts only where one
    host has both operations); a host a step is not about does nothing in it.
    """
    from roles.restarts import allowed_outages

    cluster = common.cluster()
    reasons = host.get_fact(RebootMark)
    # A mark left by an earlier run needs a reboot for sure; otherwise only if a mark of this run fires.
    condition = {} if reasons else {"_if": requested_in_this_run}

    deferred = _deferred()
    if deferred or _is_control_machine():
        why = "reboots deferred" if deferred else "this is the machine running pyinfra, reboot it yourself"
        report_deferred(name="report the hosts that still need one", reasons=reasons, why=why, **condition)
        return

    all_waves = reboot_waves(cluster, _serving_instances(), cluster.host.reboot.parallel)
    me = common.node_name()
    serving = common.serving_plan()
    allowed = allowed_outages()
    total = len(all_waves)
    for number, wave in enumerate(all_waves, start=1):
        member = me in wave.nodes
        if wave.instance and wave.last_of_role and not ({wave.instance, "all"} & allowed):
            if member:
                why = (f"{wave.instance} is the only {wave.role} instance serving: rebooting it is an outage; re-run "
                       f"with --data pdfleet_allow_outage={wave.instance}, or in a maintenance window")  # fmt: skip
                report_deferred(name=f"wave {number} of {total}: {wave.label}: not without the outage switch",
                                reasons=reasons, why=why, **condition)  # fmt: skip
            continue
        goes = {"_if": _wave_goes(wave, number)}
        head = wave.instance is not None and serving.ranks(wave.instance)[0].host == me
        if wave.instance:
            instance_out(
                name=f"wave {number} of {total}: {wave.instance} out of the router",
                wave=wave,
                number=number,
                acting=head,
                outage_allowed=wave.last_of_role,
                **goes,
            )
        reboot_wave(
            name=f"wave {number} of {total}: {wave.label}",
            wave=number,
            waves_total=total,
            member=member,
            reasons=reasons,
            _if=_member_goes(number, condition.get("_if")),
        )
        if wave.instance:
            instance_back(
                name=f"wave {number} of {total}: {wave.instance} back into the router",
                wave=wave,
                number=number,
                acting=head,
                **goes,
            )


def _member_goes(number: int, own: Callable[[], bool] | None) -> Callable[[], bool]:
    """This host reboots in its wave: it needs it (its own mark) and its instance's drain was not refused."""
    return lambda: number not in _refused_waves and (own is None or own())
