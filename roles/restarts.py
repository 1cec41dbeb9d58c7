"""Serving instances started and restarted one at a time, never all instances of a role at once.

An instance (all its ranks) restarts when the inputs it runs with changed: one digest over every rank's env file,
DeepGEMM key and units (`pdfleet.render.instance_inputs`), recorded on each rank when its unit is (re)started.
The decision and the work belong to the instance's rank-0 node, which reads every rank's digest and unit state:

- not serving yet (first start, stopped, failed): every rank started at once, without waiting (`--no-block`);
  the health gate waits for all instances together, so a cold bring-up does not wait instance by instance;
- serving with its current inputs: nothing;
- serving with other inputs: a rolling restart: out of the router (`pdfleet-router-members drain --by rolling`:
  no new requests, then the engine's queues empty, within `router.drain_timeout_secs`), every rank restarted
  together, rank 0's /health_generate waited for (`sglang.start_timeout`), back into the router (ready), and
  only then the next instance. The instances go in the inventory's order, those that compile their DeepGEMM
  cache first, those that copy it after the copy.

Restarting the last serving instance of a role is an outage: a run stops before any change unless
`--data pdfleet_allow_outage=INSTANCE[,INSTANCE]` (or `all`) allows it, and `--dry` says so. At the restart itself,
an instance whose role has no other instance ready in the router is refused the same way (another one may have
failed since). An allowed outage is timed, from the stop to rank 0's health, and reported.

An SGLang version change is never rolled (prefill and decode of different versions cannot pair): without
`pdfleet_allow_outage=all` the run stops before any change; with it, the run is a cutover: on the router's node every
instance changing version is drained then stopped, all of them, before any starts; each then starts (those that
compile their DeepGEMM cache first, the copies after), and when every one is healthy and back in the router, the
first chat completion through the router ends the outage, whose duration (the drain to that answer) is printed.

A run cut short leaves the instance drained `by rolling` and its old digest: the next run restarts it again and
puts it back, or, when it already runs its current inputs, waits for its health and puts it back.
"""

from __future__ import annotations

import json
import shlex
import time

from pyinfra import host, logger
from pyinfra.api import DeployError, FactBase, FunctionCommand, OperationError, StringCommand, deploy, operation

from pdfleet.apikeys import CURL_HEADER
from pdfleet.render import instance_inputs, key_file
from pdfleet.restartplan import Step, decide
from pdfleet.runtimeplan import IN_USE_DIR, serving_set_name
from pdfleet.serving import MEMBERS_AGENT, MEMBERS_FILE
from roles import common
from roles.deepgemm import cache_copied, cache_from_peer, old_caches_removed
from roles.drain import agents_at_once
from roles.facts import SystemdUnitState
from roles.router import RouterMembership

# Per instance: the digest of the inputs its unit was last (re)started with (pdfleet.render.instance_inputs).
APPLIED_DIR = "/var/lib/pdfleet/applied"
# Per instance: the SGLang version it was last (re)started with.
VERSIONS_DIR = "/var/lib/pdfleet/sglang-version"
# Seconds between two looks at a restarting instance's health.
POLL = 2


class AppliedInputs(FactBase):
    """The digest of the inputs an instance's unit was last (re)started with; None before the first start."""

    def command(self, instance: str) -> StringCommand:
        return StringCommand("cat", f"{APPLIED_DIR}/{instance}", "2>/dev/null", "|| true")

    def process(self, output: list[str]) -> str | None:
        return "".join(output).strip() or None


class AppliedVersion(FactBase):
    """The SGLang version an instance's unit was last (re)started with; None when not recorded (before the first
    start, or started by a pdfleet that did not record it)."""

    def command(self, instance: str) -> StringCommand:
        return StringCommand("cat", f"{VERSIONS_DIR}/{instance}", "2>/dev/null", "|| true")

    def process(self, output: list[str]) -> str | None:
        return "".join(output).strip() or None


def outage_message(instance: str, role: str, seconds: float, to_health: float) -> str:
    """The line that reports an allowed outage (pdfleet replace-node reads its figure back)."""
    return (
        f"Restart | {instance}: OUTAGE of the {role} role: {seconds:.1f} s without a {role} instance in the router "
        f"(restart to rank 0's health {to_health:.1f} s)"
    )


def allowed_outages() -> set[str]:
    """Instances this run may take down although no other instance of their role serves (`--data
    pdfleet_allow_outage=decode`, several separated by commas, or `all`)."""
    raw = str(host.data.get("pdfleet_allow_outage") or "")
    return {name.strip() for name in raw.split(",") if name.strip()}


_connected = common.host_of


def _run(name: str, command: str, what: str) -> list[str]:
    """Run a command on a node; its output lines (stdout then stderr); raises naming the node and the step."""
    ok, output = _connected(name).run_shell_command(command, print_output=False)
    lines = output.stdout_lines + output.stderr_lines
    if not ok:
        raise OperationError(f"{what} on {name} failed:\n" + "\n".join(lines[-20:]))
    return lines


def _say(where, instance: str, message: str) -> None:
    logger.info(f"{where.print_prefix}Restart | {instance}: {message.removeprefix(f'{instance}: ')}")


def _agent(router: str, *args: str) -> tuple[bool, list[str]]:
    """pdfleet-router-members on the router's node (pdfleet/onhost/router_members.py): (exit 0, its lines)."""
    command = " ".join(shlex.quote(a) for a in ("python3", MEMBERS_AGENT, args[0], MEMBERS_FILE, *args[1:]))
    ok, output = _connected(router).run_shell_command(command, print_output=False)
    lines = [line.removeprefix("pdfleet-router-members: ") for line in output.stdout_lines + output.stderr_lines]
    return ok, lines


def _others_ready(router: str, instance: str, role: str) -> list[str]:
    """The other instances of `role` the router routes to now."""
    ok, lines = _agent(router, "show")
    if not ok:
        raise OperationError(f"reading the router's membership on {router} failed:\n" + "\n".join(lines[-20:]))
    view = json.loads("\n".join(lines))
    return [
        w["instance"]
        for w in view["workers"]
        if w["role"] == role
        and w["instance"] != instance
        and not w["drained"]
        and (w["router"] or {}).get("status") == "ready"
    ]


def _undrain(where, router: str, instance: str, timeout: int) -> None:
    ok, lines = _agent(router, "undrain", instance, "--by", "rolling", "--timeout", str(timeout))
    for line in lines:
        _say(where, instance, line)
    if not ok:
        raise OperationError(f"{instance}: not back in the router: {lines[-1] if lines else 'no answer'}")


def _wait_healthy(instance: str, ranks: list[tuple[str, str]], url: str, timeout: int) -> None:
    """Until rank 0's /health_generate answers 200; fails at once when a rank's unit failed or is restarting."""
    head = ranks[0][0]
    deadline = time.monotonic() + timeout
    while True:
        ok, _ = _connected(head).run_shell_command(
            f"curl -fsS -o /dev/null --max-time 30 {shlex.quote(url)}", print_output=False
        )
        if ok:
            return
        for node, unit in ranks:
            ok, output = _connected(node).run_shell_command(
                f"systemctl show -p SubState --value {shlex.quote(unit)}", print_output=False
            )
            sub = "".join(output.stdout_lines).strip()
            if sub in ("failed", "auto-restart"):
                _, journal = _connected(node).run_shell_command(
                    f"journalctl -u {shlex.quote(unit)} -n 20 --no-pager -o cat", print_output=False
                )
                raise OperationError(
                    f"{instance}: {unit} on {node} is {sub} after its restart; it stays out of the router.\n"
                    + "\n".join(journal.stdout_lines)
                )
        if time.monotonic() > deadline:
            raise OperationError(
                f"{instance}: {url} did not answer within {timeout} s (sglang.start_timeout) of its restart; "
                "it stays out of the router"
            )
        time.sleep(POLL)


def _start_all(ranks: list[tuple[str, str]], instance: str, digest: str, restart: bool) -> None:
    """Every rank started (or restarted) without waiting for it to serve, its new digest recorded.

    A multi-node instance restarts as one: every rank stopped first, then every rank started, so that no new rank
    meets an old one still in the collective (a rank restarted beside a live peer cannot rejoin it).
    """
    if restart and len(ranks) > 1:
        for node, unit in ranks:
            _run(node, f"systemctl stop {shlex.quote(unit)}", f"stop of {unit}")
    verb = "restart" if restart and len(ranks) == 1 else "start"
    cluster = common.cluster()
    version = cluster.sglang_version
    # the wheel set it runs, never pruned while it may (roles/runtime.py)
    in_use = f" && mkdir -p {IN_USE_DIR} && echo {serving_set_name(cluster)} > {IN_USE_DIR}/{instance}"
    for node, unit in ranks:
        _run(
            node,
            f"systemctl reset-failed {shlex.quote(unit)} 2>/dev/null; systemctl {verb} --no-block {shlex.quote(unit)}"
            f" && mkdir -p {APPLIED_DIR} && echo {digest} > {APPLIED_DIR}/{instance}"
            f" && mkdir -p {VERSIONS_DIR} && echo {shlex.quote(version)} > {VERSIONS_DIR}/{instance}"
            + (in_use if cluster.runtime.kind == "venv" else ""),
            f"{verb} of {unit}",
        )


def _roll(
    state,
    host,
    instance: str,
    role: str,
    ranks: list[tuple[str, str]],
    digest: str,
    router: str,
    health_url: str,
    start_timeout: int,
    drain_timeout: int,
    outage_allowed: bool,
) -> None:
    """Drain, restart every rank, wait for health, put back: one instance's rolling restart."""
    others = _others_ready(router, instance, role)
    if not others and not outage_allowed:
        raise OperationError(
            f"{instance}: no other {role} instance is ready in the router, so restarting it now would be an outage; "
            f"nothing was changed on it. Bring another {role} instance back first, or re-run with "
            f"--data pdfleet_allow_outage={instance}"
        )
    started = time.monotonic()
    _say(host, instance, f"draining (other {role} instances serving: {', '.join(others) or 'none'})")
    ok, lines = _agent(
        router, "drain", instance, "--by", "rolling", "--reason", "rolling restart", "--timeout", str(drain_timeout)
    )
    for line in lines:
        _say(host, instance, line)
    if not ok:
        # The bound was hit: the requests left get SGLang's own drain on SIGTERM, up to the unit's TimeoutStopSec.
        logger.warning(f"{host.print_prefix}Restart | {instance}: drain bound hit; restarting with requests in flight")
    stopped = time.monotonic()
    _start_all(ranks, instance, digest, restart=True)
    _say(host, instance, f"restarted ({len(ranks)} rank{'s' if len(ranks) > 1 else ''}); waiting for {health_url}")
    _wait_healthy(instance, ranks, health_url, start_timeout)
    healthy = time.monotonic()
    _undrain(host, router, instance, start_timeout)
    back = time.monotonic()
    if not others:
        logger.warning(f"{host.print_prefix}{outage_message(instance, role, back - started, healthy - stopped)}")
    _say(host, instance, f"rolled in {back - started:.1f} s (restart to health {healthy - stopped:.1f} s)")


def _back_in(state, host, instance: str, ranks, router: str, health_url: str, start_timeout: int) -> None:
    """An interrupted rolling restart's instance, already on its current inputs: healthy, then back in."""
    _wait_healthy(instance, ranks, health_url, start_timeout)
    _undrain(host, router, instance, start_timeout)


def _start(state, host, ranks: list[tuple[str, str]], instance: str, digest: str, restart: bool) -> None:
    _start_all(ranks, instance, digest, restart)


# Per run: when the cutover's drain began, read by its last step to time the outage.
_cutover_began: dict[int, float] = {}


def cutover_message(change: str, seconds: float, to_health: float) -> str:
    """The line that reports a cutover's outage (the upgrade benchmark reads its figures back)."""
    return (
        f"Cutover | {change}: OUTAGE of the endpoint: {seconds:.1f} s from the drain to the first answer through "
        f"the router on the new version (stop to every instance healthy {to_health:.1f} s)"
    )


def _agents_at_once(router: str, calls: list[tuple[str, ...]]) -> tuple[bool, list[str]]:
    return agents_at_once(_connected(router), calls)


def _cutover_stop(state, host, instances: list[tuple[str, list[tuple[str, str]]]], router: str, drain: int) -> None:
    """Every instance out of the router (new requests get 503, those in flight finish), then every rank stopped."""
    began = _cutover_began[id(state)] = time.monotonic()

    def say(message: str) -> None:
        logger.info(f"{host.print_prefix}Cutover | +{time.monotonic() - began:.1f} s | {message}")

    names = [name for name, _ in instances]
    logger.warning(f"{host.print_prefix}Cutover | draining {', '.join(names)}: the endpoint stops answering now")
    drains = [
        ("drain", name, "--by", "rolling", "--reason", "version cutover", "--timeout", str(drain)) for name in names
    ]
    ok, lines = _agents_at_once(router, drains)
    for line in lines:
        say(line)
    if not ok:  # the bound was hit: SGLang's own drain on SIGTERM takes the rest, up to the unit's TimeoutStopSec
        logger.warning(f"{host.print_prefix}Cutover | drain bound hit; stopping with requests in flight")
    units_by_node: dict[str, list[str]] = {}
    for _, ranks in instances:
        for node, unit in ranks:
            units_by_node.setdefault(node, []).append(unit)
    # one `systemctl stop` per node for all its units; the nodes one after the other (each waits for its units)
    for node, units in units_by_node.items():
        _run(node, "systemctl stop " + " ".join(shlex.quote(u) for u in units), f"stop of {', '.join(units)}")
    say(f"stopped: {', '.join(names)} ({sum(len(r) for _, r in instances)} ranks)")


def _cutover_serve(state, host, instances, router: str, health: dict[str, str], timeout: int, change: str) -> None:
    """Every instance healthy and back in the router, then the first answer through it: the outage timed."""
    began = _cutover_began.get(id(state), time.monotonic())

    def say(message: str) -> None:
        logger.info(f"{host.print_prefix}Cutover | +{time.monotonic() - began:.1f} s | {message}")

    for name, ranks in instances:  # started together: waiting for each in turn costs the slowest
        _wait_healthy(name, ranks, health[name], timeout)
        say(f"{name}: healthy on the new version")
    healthy = time.monotonic()
    ok, lines = _agents_at_once(
        router, [("undrain", name, "--by", "rolling", "--timeout", str(timeout)) for name, _ in instances]
    )
    for line in lines:
        say(line)
    if not ok:
        raise OperationError(f"Cutover | not every instance is back in the router: {lines[-1] if lines else ''}")
    cluster = common.cluster()
    body = json.dumps(
        {"model": cluster.model.served_name, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 8}
    )
    serving = common.serving_plan()
    url = f"{serving.router.local_url}/v1/chat/completions"
    # the router's client key from its node's root-only header file, never on a command line
    key = f"-H @{CURL_HEADER} " if serving.router.key_args else ""
    probe = (
        f"curl -sS -o /dev/null -w '%{{http_code}}' --max-time 30 {key}-H 'Content-Type: application/json' "
        f"--data {shlex.quote(body)} {shlex.quote(url)}"
    )
    deadline = time.monotonic() + timeout
    while True:
        _, output = _connected(router).run_shell_command(probe, print_output=False)
        code = "".join(output.stdout_lines).strip()
        if code == "200":
            break
        if code in ("401", "403"):  # a refused key does not heal by waiting
            raise OperationError(f"Cutover | the router at {url} refused pdfleet's API key (HTTP {code})")
        if time.monotonic() > deadline:
            raise OperationError(f"Cutover | {url} did not answer within {timeout} s of every instance being ready")
        time.sleep(0.5)
    answered = time.monotonic()
    logger.warning(f"{host.print_prefix}{cutover_message(change, answered - began, healthy - began)}")


@operation(is_idempotent=False)
def cutover_stopped(instances: list[tuple[str, list[tuple[str, str]]]], change: str):
    """
    The first step of a version cutover (on the router's node): every instance changing version drained, then
    all their ranks stopped, before any starts again.

    + instances: (instance, [(node, unit) of every rank, rank 0 first]) of each instance changing version; empty
      when this run is no cutover or this node is not the router's
    + change: the version change, as said in the output
    """
    if not instances:
        host.noop("no version cutover")
        return
    serving = common.serving_plan()
    yield FunctionCommand(
        _cutover_stop, (instances, serving.router.host, serving.cluster.router.drain_timeout_secs), {}
    )


@operation(is_idempotent=False)
def cutover_served(instances: list[tuple[str, list[tuple[str, str]]]], change: str):
    """
    The last step of a version cutover (on the router's node): every instance healthy, back in the router, and the
    outage, from the drain to the first answer through the router, printed.

    + instances / change: as for cutover_stopped
    """
    if not instances:
        host.noop("no version cutover")
        return
    serving = common.serving_plan()
    health = {}
    for name, ranks in instances:
        spec = serving.server(ranks[0][0])
        health[name] = f"{spec.url}/health_generate"
    yield FunctionCommand(
        _cutover_serve,
        (instances, serving.router.host, health, serving.cluster.start_timeout, change),
        {},
    )


@operation(is_idempotent=False)
def instance_step(
    instance: str, role: str, ranks: list[tuple[str, str]], digest: str, kind: str, restart: bool, back_in: bool
):
    """
    One instance brought to its current inputs, as `pdfleet.restartplan.decide` said (runs on its rank-0 node).

    + instance / role: the instance and its role
    + ranks: (node, unit) of every rank, rank 0 first
    + digest: `pdfleet.render.instance_inputs` of the instance
    + kind: none, back-in, start, roll, outage, cutover (started: cutover_stopped stopped it, cutover_served
      waits for it) or refuse (a --dry run shows it; a real run never gets here);
      elsewhere on the nodes that are not the instance's rank 0 (every node calls every step: pyinfra keeps
      the order of steps across hosts only where one host has them all)
    + restart: for start: restart the ranks (their inputs changed) rather than start them
    + back_in: for start: then wait for health and put it back into the router (a rolling restart left it out)
    """
    if kind == "none":
        host.noop(f"{instance} runs its current inputs")
        return
    if kind == "elsewhere":
        host.noop(f"{instance}: decided and done by its rank-0 node ({ranks[0][0]})")
        return
    serving = common.serving_plan()
    cluster = serving.cluster
    spec = serving.server(ranks[0][0])
    health_url = f"{spec.url}/health_generate"
    router = serving.router.host
    if kind == "refuse":
        yield StringCommand("false")  # --dry shows it as a change; a real run stopped before (restarts())
        return
    if kind == "cutover":
        yield FunctionCommand(_start, (ranks, instance, digest, False), {})
        return
    if kind == "start":
        yield FunctionCommand(_start, (ranks, instance, digest, restart), {})
        if back_in:
            yield FunctionCommand(_back_in, (instance, ranks, router, health_url, cluster.start_timeout), {})
        return
    if kind == "back-in":
        yield FunctionCommand(_back_in, (instance, ranks, router, health_url, cluster.start_timeout), {})
        return
    yield FunctionCommand(
        _roll,
        (
            instance,
            role,
            ranks,
            digest,
            router,
            health_url,
            cluster.start_timeout,
            cluster.router.drain_timeout_secs,
            kind == "outage",
        ),
        {},
    )


@deploy("Restart")
def restarts():
    """Every instance started or rolled in turn (see the module doc); the DeepGEMM copies in their place.

    pyinfra runs operations in an order that keeps each host's own sequence (a topological sort of them): an
    order across hosts holds only where one host has both operations. So every node calls every step, in the same
    order, and a node the step is not about does nothing in it (as the rolling reboots and the weights' waves do).
    """
    serving = common.serving_plan()
    cluster = serving.cluster
    node = common.node_name()
    compiling = [i for i in cluster.instances if serving.deep_gemm_source(i.head) is None]
    copying = [i for i in cluster.instances if i not in compiling]
    cutover, change = _cutover(serving) if node == serving.router.host else ([], "")
    cutover_stopped(
        name="version cutover: every instance changing version drained and stopped",
        instances=cutover,
        change=change,
    )
    mine = serving.server(node)
    peers = serving.deep_gemm_peers(node) if mine and serving.deep_gemm_source(node) is None else []
    cache_from_peer(
        name="DeepGEMM cache of a compiling node taken from a peer holding its key",
        cache=mine.deep_gemm_dir if mine else cluster.deep_gemm_cache,
        key_path=key_file(mine.instance) if mine else "",
        key_text=mine.deep_gemm_key if mine else "",
        peers=[(name, cluster.node(name).address) for name in peers],
        port=cluster.share_port,
    )
    for instance in host.loop(compiling):
        _instance_step(serving, instance)
    source = serving.deep_gemm_source(node)
    source_node = cluster.node(source) if source else None
    cache_copied(
        name="DeepGEMM caches copied from the compiling instances",
        cache=mine.deep_gemm_dir if mine else cluster.deep_gemm_cache,
        key_path=key_file(mine.instance) if mine else "",
        key_text=mine.deep_gemm_key if mine else "",
        source=source,
        address=source_node.address if source_node else "",
        port=cluster.share_port,
        timeout=cluster.precompile_timeout,
        compile_alone=mine is not None and len(serving.ranks(mine.instance)) == 1,
        silent_seconds=cluster.share_silent_timeout,
    )
    for instance in host.loop(copying):
        _instance_step(serving, instance)
    cutover_served(
        name="version cutover: every instance healthy and back in the router, the outage timed",
        instances=cutover,
        change=change,
    )
    if mine:
        old_caches_removed(
            name="DeepGEMM caches of older keys removed",
            root=cluster.deep_gemm_cache,
            current=mine.deep_gemm_dir.rsplit("/", 1)[1],
            keep=cluster.runtime.keep,
        )


def _cutover(serving) -> tuple[list[tuple[str, list[tuple[str, str]]]], str]:
    """The instances this run cuts over to the inventory's version (decided as their rank-0 nodes decide), and the
    change as said in the output ("SGLang 0.5.23 -> 0.5.6.post2")."""
    moving, running = [], set()
    for instance in serving.cluster.instances:
        step, _ = _step(serving, instance)
        if step.kind == "cutover":
            ranks = serving.ranks(instance.name)
            moving.append((instance.name, [(s.host, s.unit) for s in ranks]))
            running.add(_connected(ranks[0].host).get_fact(AppliedVersion, instance=instance.name))
    return moving, f"SGLang {', '.join(sorted(v for v in running if v))} -> {serving.cluster.sglang_version}"


def _instance_step(serving, instance) -> None:
    """Rank 0's node reads every rank's state, decides (pdfleet.restartplan) and acts; the others do nothing.
    One call site for every node: pyinfra tells operations apart by the lines calling them."""
    ranks = serving.ranks(instance.name)
    step, digest = _decision(serving, instance) if ranks[0].host == common.node_name() else (None, "")
    instance_step(
        name=f"{instance.name}: running its current inputs, instances in turn",
        instance=instance.name,
        role=instance.role,
        ranks=[(s.host, s.unit) for s in ranks],
        digest=digest,
        kind=step.kind if step else "elsewhere",
        restart=step.restart if step else False,
        back_in=step.back_in if step else False,
    )


def _step(serving, instance) -> tuple[Step, str]:
    """What this run does to the instance and the digest of its inputs, from the facts of its nodes and the
    router's membership (the same answer on every node that asks)."""
    ranks = serving.ranks(instance.name)
    cluster = serving.cluster
    drained = _connected(serving.router.host).get_fact(RouterMembership)
    digest = instance_inputs(common.rendered_files(), serving, instance.name)
    running = _connected(ranks[0].host).get_fact(AppliedVersion, instance=instance.name)
    allowed = allowed_outages()
    return decide(
        instance=instance.name,
        role=instance.role,
        digest=digest,
        digests=[_connected(s.host).get_fact(AppliedInputs, instance=instance.name) for s in ranks],
        states=[_connected(s.host).get_fact(SystemdUnitState, unit=s.unit) for s in ranks],
        siblings=sum(1 for i in cluster.instances if i.role == instance.role and i.name != instance.name),
        allowed=bool({instance.name, "all"} & allowed),
        drained_by_rolling=(drained.get(instance.name) or {}).get("by") == "rolling",
        running_version=running,
        version=cluster.sglang_version,
        cutover_allowed="all" in allowed,
    ), digest


def _decision(serving, instance) -> tuple[Step, str]:
    """What this run does to the instance (on its rank-0 node), said in pyinfra's output; refused before any
    change when it is an outage nobody allowed."""
    step, digest = _step(serving, instance)
    ranks = serving.ranks(instance.name)
    cluster = serving.cluster
    running = _connected(ranks[0].host).get_fact(AppliedVersion, instance=instance.name)
    if step.kind == "refuse":
        where = f"{cluster.source}: instance '{instance.name}' ({', '.join(s.host for s in ranks)})"
        if running and running != cluster.sglang_version:
            message = (
                f"{where}: serves SGLang {running}, the inventory says {cluster.sglang_version}: prefill and decode "
                "of different versions cannot pair, so changing one instance while the others serve fails the "
                "requests it takes. Nothing was changed. In a maintenance window, re-run with --data "
                "pdfleet_allow_outage=all (every instance stops, then all start on the new version; the deploy "
                "times the outage)"
            )
        else:
            message = (
                f"{where}: its inputs changed and it serves, and it is the only {instance.role} instance: restarting "
                f"it is an outage. Nothing was changed. Re-run with --data pdfleet_allow_outage={instance.name} to "
                "restart it (the deploy times the outage), or keep the change for a maintenance window"
            )
        if not common.dry_run():
            raise DeployError(message)
        logger.warning(f"{host.print_prefix}Restart | {message}")
    elif step.kind != "none":
        logger.info(f"{host.print_prefix}Restart | {instance.name}: {step.label}")
    return step, digest
