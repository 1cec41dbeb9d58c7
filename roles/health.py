"""The health gate, last step of deploys/pd.py: proves the endpoint serves, from the router's node.

It waits for each instance's /health (rank 0 of multi-node instances: a real one-token generation), then for the
router's /readiness, then sends one chat completion and one tool call through the router. A failure names the
instance, what it answered, and the last lines of its journal; the deploy fails. It changes nothing, so a converged
cluster reports no change; under --dry it does not run (there is nothing new to prove).
"""

from __future__ import annotations

import json
import shlex
import time

from pyinfra import host, logger, state
from pyinfra.api import OperationError, deploy, operation

from pdfleet.apikeys import CURL_HEADER
from pdfleet.serving import MEMBERS_UNIT, ROUTER_UNIT
from roles import common

# Seconds between two polls of a /health that does not answer yet.
POLL_INTERVAL = 5
# Journal lines shown for an instance that failed the gate.
JOURNAL_LINES = 30
# Seconds the router may take to report ready once every instance answers /health: the membership agent registers
# them within a pass or two and the router's own health checks follow. Longer means the router or the agent is stuck
# (an agent that cannot read the key retries forever while its unit stays active), so no point waiting the hour
# start_timeout gives weight loading.
ROUTER_READY_SECS = 120


def _curl(url: str, body: dict | None = None, timeout: int = 60) -> tuple[bool, str]:
    """(HTTP 200, the answer as "HTTP code: body") from the router's node."""
    command = ["curl", "-sS", "--max-time", str(timeout), "-o", "/dev/stdout", "-w", "\\n%{http_code}"]
    if common.serving_plan().router.key_args:
        # the API key from the router node's root-only header file: never on a command line
        command += ["-H", f"@{CURL_HEADER}"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    ok, output = host.run_shell_command(" ".join(shlex.quote(c) for c in [*command, url]), print_output=False)
    lines = output.stdout_lines
    code = lines[-1].strip() if lines else ""
    text = "\n".join(lines[:-1]) + "".join(output.stderr_lines)
    return ok and code == "200", f"HTTP {code or 'none'}: {text.strip()}"


def _journal(node: str, *units: str) -> str:
    other = state.inventory.get_host(node, None)
    if other is None or not other.connected:
        return f"(no journal: {node} is not part of this run)"
    _, output = other.run_shell_command(
        f"journalctl {' '.join('-u ' + shlex.quote(u) for u in units)} -n {JOURNAL_LINES} --no-pager -o cat",
        print_output=False,
    )
    return "\n".join(output.stdout_lines[-JOURNAL_LINES:])


def _unit_state(node: str, unit: str) -> str | None:
    """The unit's SubState on its node (running, start-post, auto-restart, failed ...), None if unknown."""
    other = state.inventory.get_host(node, None)
    if other is None or not other.connected:
        return None
    _, output = other.run_shell_command(f"systemctl show -p SubState --value {shlex.quote(unit)}", print_output=False)
    return "".join(output.stdout_lines).strip() or None


def _wait(url: str, deadline: float, node: str, units: tuple[str, ...]) -> tuple[bool, str]:
    """Poll url until it answers 200, the deadline passes, or a unit behind it failed (no point waiting then)."""
    while True:
        ok, answer = _curl(url, timeout=10)
        if ok or time.monotonic() > deadline:
            return ok, answer
        for unit in units:
            sub_state = _unit_state(node, unit)
            if sub_state in ("auto-restart", "failed"):
                return False, f"{answer}; {unit} is {sub_state}"
        time.sleep(POLL_INTERVAL)


def _ready_in_router(router: str) -> set[str]:
    """The workers the router reports ready (its own health checks), from the router's node; none if it does
    not answer."""
    ok, answer = _curl(f"{router}/workers", timeout=5)
    try:
        workers = json.loads(answer.split(": ", 1)[1])["workers"] if ok else []
    except (ValueError, KeyError, IndexError, TypeError):
        workers = []
    return {w.get("url") for w in workers if w.get("status") == "ready"}


def _healthy_now(urls: list[str]) -> set[str]:
    """The URLs that answer 200 now, asked in parallel from the router's node."""
    probes = " ".join(
        f"( code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {shlex.quote(url)}); echo \"$code {url}\" ) &"
        for url in urls
    )
    if not urls:
        return set()
    _, output = host.run_shell_command(f"{probes} wait", print_output=False)
    return {line.split(" ", 1)[1] for line in output.stdout_lines if line.startswith("200 ")}


@operation()
def gate(timeout: int):
    """
    Check every instance, the router, a chat completion and a tool call; fail the deploy naming what failed.

    + timeout: seconds an instance may take to answer /health (weight loading and warm-up)
    """
    if not state.is_executing:
        host.noop("health gate: runs after a real converge")
        return
    serving = common.serving_plan()
    cluster = common.cluster()
    deadline = time.monotonic() + timeout
    heads = [spec for spec in serving.servers if spec.serves_api]
    # The router probes every worker's /health every few seconds: the workers it reports ready are healthy. SGLang's
    # /health runs a one-token generation (about a second): the others are asked at once, and only those not
    # healthy yet are waited for, one by one.
    urls = [spec.url for spec in heads]
    healthy = _ready_in_router(serving.router.local_url) & set(urls)
    healthy |= {url.removesuffix("/health") for url in _healthy_now([f"{u}/health" for u in urls if u not in healthy])}
    for spec in heads:
        url = f"{spec.url}/health"
        if url.removesuffix("/health") in healthy:
            logger.info(f"{host.print_prefix}health gate | {spec.instance}: healthy")
            continue
        ok, answer = _wait(url, deadline, spec.host, (spec.precompile_unit, spec.unit))
        if not ok:
            raise OperationError(
                f"health gate: instance '{spec.instance}' ({spec.host}) did not become healthy at {url}: {answer}\n"
                f"last lines of {spec.precompile_unit} and {spec.unit} on {spec.host}:\n"
                f"{_journal(spec.host, spec.precompile_unit, spec.unit)}"
            )
        logger.info(f"{host.print_prefix}health gate | {spec.instance}: healthy")
    router = serving.router.url
    router_deadline = min(deadline, time.monotonic() + ROUTER_READY_SECS)
    ok, answer = _wait(f"{router}/readiness", router_deadline, serving.router.host, (ROUTER_UNIT, MEMBERS_UNIT))
    if not ok:
        raise OperationError(
            f"health gate: the router at {router} is not ready {ROUTER_READY_SECS} s after every instance answered "
            f"/health: {answer}\nlast lines of {ROUTER_UNIT} and {MEMBERS_UNIT} on {serving.router.host}:\n"
            f"{_journal(serving.router.host, ROUTER_UNIT, MEMBERS_UNIT)}"
        )
    chat = {
        "model": cluster.model.served_name,
        "messages": [{"role": "user", "content": "Say OK."}],
        "max_tokens": 8,
    }
    ok, answer = _curl(f"{router}/v1/chat/completions", chat)
    if not ok:
        raise OperationError(f"health gate: a chat completion through the router failed: {answer[:1000]}")
    tool = {
        **chat,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "required",
        "max_tokens": 64,
    }
    ok, answer = _curl(f"{router}/v1/chat/completions", tool)
    calls = []
    if ok:
        try:
            calls = json.loads(answer.split(": ", 1)[1])["choices"][0]["message"].get("tool_calls") or []
        except (ValueError, KeyError, IndexError, TypeError):
            calls = []
    if not calls:
        raise OperationError(f"health gate: a tool call through the router returned no tool call: {answer[:1000]}")
    logger.info(f"{host.print_prefix}health gate | router {router}: chat completion and tool call answered")
    yield from ()  # a check, not a change: no command for the host


@deploy("Health gate")
def health_gate():
    if common.serving_plan().router.host != common.node_name():
        return
    gate(
        name="instances healthy, router ready, a chat completion and a tool call",
        timeout=common.cluster().start_timeout,
    )
