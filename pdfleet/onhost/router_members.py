#!/usr/bin/python3
"""pdfleet-router-members: keep the PD router's worker list equal to the membership pdfleet rendered.

Runs on the router's node, installed by roles/router.py as /usr/local/lib/pdfleet/pdfleet-router-members.py, with
the membership file /etc/pdfleet/router-members.json (pdfleet.render.members_text):

    {"router": "http://127.0.0.1:8000", "interval_secs": 2, "drain_timeout_secs": 300,
     "workers": [{"instance": "prefill-0", "role": "prefill", "load_path": "/v1/loads",
                  "spec": {"url": ..., "worker_type": "prefill", "bootstrap_port": 8998, "resilience": {...}}}],
     "drained": {"prefill-1": {"by": "operator", "reason": "...", "since": "2026-12-06T03:12:00Z"}}}

    pdfleet-router-members.py run FILE                 the service: one pass every interval_secs, forever
    pdfleet-router-members.py drain FILE INSTANCE [--by operator|rolling] [--reason TEXT] [--timeout S]
    pdfleet-router-members.py undrain FILE INSTANCE [--by operator|rolling] [--timeout S]
    pdfleet-router-members.py show FILE                the membership and the router's view, as JSON

With API keys (`key_file` in the file, pdfleet/apikeys.py) every call to the router and to an engine carries
`Authorization: Bearer <key>`, and each worker is registered with the key as its `api_key` (smg sends it on its
health checks and its own calls to the engine). The key is read from `key_file`, a root-only file (the
service runs as root without capabilities; drain, undrain and show as root); it is never logged.

A pass: every worker of the file that is not drained and whose engine answers /health is registered with
`POST /workers` (its spec, labelled with the instance and a digest of the spec); a registered worker that is
drained, unknown, failed (smg's terminal state) or registered with another spec is removed with
`DELETE /workers/{id}` (smg stops routing to it at once, lets its requests finish, and forgets it after its drain
settle time). The router keeps no state that this cannot rebuild: a restarted router is filled within a pass.

`drain` records the instance as drained (the file is rewritten atomically, under a lock), applies it at once,
waits until the router no longer routes to it, then until the engine's own queues are empty (running and waiting
requests, from the SGLang version's load endpoint), each within --timeout: exit 0 when drained, 3 when the bound
was hit (the instance stays out of the router). `undrain` removes the record (only one made `--by` the same
party), applies it and waits until the router reports the worker ready: exit 0, or 3 after --timeout.

Standard library only: it runs with the node's python3, beside the router's own virtual environment.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

# Seconds after a POST during which the worker counts as being registered (smg probes it and reads its server
# info, well under a second). A POST that smg loses is made again after it: one sent while a just-started router
# runs its initial worker job is dropped (seen with smg 1.13.0); a repeated POST still in progress answers 409.
REGISTRATION_GRACE = 3.0
# Seconds one HTTP call to the router or an engine may take.
HTTP_TIMEOUT = 5.0
# Seconds between two looks while waiting (drain, undrain).
POLL = 0.5
EXIT_TIMEOUT = 3
LABEL_INSTANCE = "pdfleet.instance"
LABEL_SPEC = "pdfleet.spec"
# smg's worker states that still take requests, or will once their probes pass.
ROUTABLE = ("ready",)
# The API key, once read (load_key); None without API keys.
API_KEY: str | None = None


def log(message: str) -> None:
    print(f"pdfleet-router-members: {message}", flush=True)


# ----- the membership file -----


def read_members(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        members = json.load(handle)
    members.setdefault("drained", {})
    load_key(members)
    return members


def write_members(path: str, members: dict) -> None:
    """Atomically: a reader (the service, a converge's fact) sees the old file or the new one."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(members_json(members))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def members_json(members: dict) -> str:
    """The file's text: pdfleet.render writes the same bytes for the same membership."""
    return json.dumps(members, indent=2, sort_keys=True) + "\n"


@contextlib.contextmanager
def locked(path: str):
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def spec_digest(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def labelled(worker: dict) -> dict:
    """The POST body: the spec, labelled with its instance and its digest (smg keeps labels and reports them)."""
    spec = dict(worker["spec"])
    spec["labels"] = {
        **spec.get("labels", {}),
        LABEL_INSTANCE: worker["instance"],
        LABEL_SPEC: spec_digest(worker["spec"]),
    }
    return spec


# ----- the decision (pure) -----


def plan(members: dict, registered: list[dict], pending: dict[str, float], healthy, now: float) -> list[tuple]:
    """What one pass does: ("delete", id, url, why) and ("add", url, body) actions.

    + members: the membership file
    + registered: the router's `GET /workers` list
    + pending: url -> when it was last POSTed (a registration in progress is not repeated)
    + healthy: url -> whether the engine answers /health now (asked only for workers about to be added)
    + now: the time, as pending's
    """
    wanted = {w["spec"]["url"]: w for w in members["workers"] if w["instance"] not in members["drained"]}
    known = {w["spec"]["url"]: w for w in members["workers"]}
    status_of = {w.get("url"): w.get("status") for w in registered}
    actions: list[tuple] = []
    respecified_roles: set[str] = set()
    for worker in registered:
        url, status = worker.get("url"), worker.get("status")
        if status == "draining":
            continue  # on its way out: re-added once smg has forgotten it (to_register skips what is listed)
        if url not in wanted:
            why = "drained" if url in known else "not in the membership"
            actions.append(("delete", worker["id"], url, why))
            continue
        if status == "failed":
            actions.append(("delete", worker["id"], url, "failed (smg never probes a failed worker again)"))
            continue
        if worker.get("labels", {}).get(LABEL_SPEC) != spec_digest(wanted[url]["spec"]):
            # Registered again with its new spec, one worker of a role at a time and only while the role's other
            # workers serve: a changed setting must not take a whole role out. The only worker of its role keeps
            # its old spec while it serves; it takes the new one when it is registered again (its next restart).
            role = wanted[url]["role"]
            others = [u for u, w in wanted.items() if w["role"] == role and u != url]
            serving_others = others and all(status_of.get(u) == "ready" for u in others)
            if role not in respecified_roles and (serving_others or status != "ready"):
                respecified_roles.add(role)
                actions.append(("delete", worker["id"], url, "registered with another spec"))
    for url in to_register(members, registered, pending, now):
        if healthy(url):
            actions.append(("add", url, labelled(wanted[url])))
    return actions


def to_register(members: dict, registered: list[dict], pending: dict[str, float], now: float) -> list[str]:
    """The workers a pass adds if their engine is healthy: in the membership, not drained, not listed by the router
    in any state, no registration of theirs in progress."""
    listed = {w.get("url") for w in registered}
    return [
        w["spec"]["url"]
        for w in members["workers"]
        if w["instance"] not in members["drained"]
        and w["spec"]["url"] not in listed
        and now - pending.get(w["spec"]["url"], -1e9) >= REGISTRATION_GRACE
    ]


def in_flight(body) -> int:
    """Requests an engine still holds, from its load endpoint: /v1/loads (SGLang 0.5.23: running + waiting per
    DP rank) or /get_load (0.5.6.post2: num_reqs, which counts the waiting ones too)."""
    if isinstance(body, dict) and isinstance(body.get("loads"), list):
        return sum(int(x.get("num_running_reqs", 0)) + int(x.get("num_waiting_reqs", 0)) for x in body["loads"])
    if isinstance(body, list):
        return sum(int(x.get("num_reqs", 0)) for x in body)
    raise ValueError(f"not a load report: {str(body)[:200]}")


# Every load endpoint an engine may have. The membership names its version's; an engine still running another
# version (drained before its restart onto the new one) answers the other one.
LOAD_PATHS = ("/v1/loads", "/get_load")


def engine_in_flight(url: str, load_path: str) -> int | None:
    """Requests the engine still holds, from its own load endpoint (the membership's first, then the other);
    None when it answers neither."""
    for path in (load_path, *(p for p in LOAD_PATHS if p != load_path)):
        try:
            code, body = http("GET", f"{url}{path}")
            if code == 200:
                return in_flight(body)
        except (OSError, ValueError):
            return None
    return None


# ----- HTTP -----


def load_key(members: dict) -> str | None:
    """The API key in the file the membership names (its `key_file`); None when
    the membership has no key_file (API keys off). Raises OSError when the key cannot be read."""
    global API_KEY
    path = members.get("key_file")
    if not path:
        API_KEY = None
        return None
    with open(path, encoding="utf-8") as file:
        key = file.read().strip()
    if not key:
        raise OSError(f"the API key file {path} is empty")
    API_KEY = key
    return key


def http(method: str, url: str, body: dict | None = None, timeout: float = HTTP_TIMEOUT):
    """(status, parsed JSON or text); raises OSError when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if API_KEY:
        request.add_header("Authorization", f"Bearer {API_KEY}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def registered_workers(router: str) -> list[dict]:
    status, body = http("GET", f"{router}/workers")
    if status != 200 or not isinstance(body, dict):
        raise OSError(f"GET {router}/workers answered {status}")
    return body.get("workers", [])


def engine_healthy(url: str) -> bool:
    try:
        return http("GET", f"{url}/health")[0] == 200
    except OSError:
        return False


def apply(members: dict, pending: dict[str, float]) -> list[tuple]:
    """One pass against the router; returns the actions taken (logged)."""
    load_key(members)  # also here: tests and callers may hand over a membership not read by read_members
    router = members["router"]
    registered = registered_workers(router)
    for worker in registered:  # registered: that POST is done (a restarted router has none, and gets them again)
        pending.pop(worker.get("url"), None)
    # The engines about to be registered are asked in parallel: each /health of SGLang runs a generation (about a
    # second on the sandbox's stand-ins), and a restarted router waits for every one of them.
    now = time.monotonic()
    candidates = to_register(members, registered, pending, now)
    with ThreadPoolExecutor(max_workers=max(1, len(candidates))) as pool:
        verdicts = dict(zip(candidates, pool.map(engine_healthy, candidates), strict=True))
    actions = plan(members, registered, pending, verdicts.__getitem__, now)
    for action in actions:
        if action[0] == "delete":
            _, worker_id, url, why = action
            status, body = http("DELETE", f"{router}/workers/{worker_id}")
            log(f"removed {url} ({why}): {status}")
        else:
            _, url, body = action
            # the key goes to the router only, never into the actions (they are logged and tested)
            status, answer = http("POST", f"{router}/workers", {**body, "api_key": API_KEY} if API_KEY else body)
            pending[url] = time.monotonic()
            if status not in (202, 409):
                log(f"adding {url} failed: {status} {str(answer)[:300]}")
            else:
                log(f"added {url} ({body['worker_type']}, instance {body['labels'][LABEL_INSTANCE]}): {status}")
    return actions


# ----- commands -----


def run(path: str) -> int:
    pending: dict[str, float] = {}
    last_error = None
    while True:
        interval = 2
        try:
            members = read_members(path)
            interval = members.get("interval_secs", 2)
            apply(members, pending)
            if last_error:
                log("the router answers again")
            last_error = None
        except (OSError, ValueError, KeyError) as error:
            message = f"{type(error).__name__}: {error}"
            if message != last_error:
                log(f"pass failed, retrying every {interval} s: {message}")
            last_error = message
        time.sleep(interval)


def _instance(members: dict, name: str) -> dict:
    for worker in members["workers"]:
        if worker["instance"] == name:
            return worker
    names = ", ".join(w["instance"] for w in members["workers"])
    raise SystemExit(f"pdfleet-router-members: no instance {name!r} in the membership (instances: {names})")


def _router_status(router: str, url: str) -> str | None:
    for worker in registered_workers(router):
        if worker.get("url") == url:
            return worker.get("status")
    return None


def drain(path: str, name: str, by: str, reason: str, timeout: float) -> int:
    started = time.monotonic()
    with locked(path):
        members = read_members(path)
        worker = _instance(members, name)
        previous = members["drained"].get(name)
        if previous and previous["by"] != by:
            log(f"{name} is already drained by {previous['by']} ({previous.get('reason', '')}); waiting for it")
        else:
            members["drained"][name] = {
                "by": by,
                "reason": reason,
                "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            write_members(path, members)
    router, url = members["router"], worker["spec"]["url"]
    apply(members, {})
    deadline = started + timeout
    while (status := _router_status(router, url)) in ROUTABLE:
        if time.monotonic() > deadline:
            log(f"{name}: the router still routes to {url} ({status}) after {timeout:.0f} s")
            return EXIT_TIMEOUT
        time.sleep(POLL)
    log(f"{name}: out of the router ({status or 'gone'}) after {time.monotonic() - started:.1f} s")
    count = None
    while True:
        count = engine_in_flight(url, worker["load_path"])
        if count == 0:
            log(f"{name}: no request in flight, drained in {time.monotonic() - started:.1f} s")
            return 0
        if count is None and not engine_healthy(url):
            log(f"{name}: the engine does not answer; nothing more to wait for ({time.monotonic() - started:.1f} s)")
            return 0
        if time.monotonic() > deadline:
            log(
                f"{name}: {count} request(s) still in flight after {timeout:.0f} s (router.drain_timeout_secs); "
                "it stays out of the router"
            )
            return EXIT_TIMEOUT
        time.sleep(POLL)


def undrain(path: str, name: str, by: str, timeout: float) -> int:
    started = time.monotonic()
    with locked(path):
        members = read_members(path)
        worker = _instance(members, name)
        record = members["drained"].get(name)
        if record and by not in ("any", record["by"]):
            log(f"{name} stays drained: {record['by']} drained it ({record.get('reason', '')})")
            return 0
        if record:
            del members["drained"][name]
            write_members(path, members)
    router, url = members["router"], worker["spec"]["url"]
    deadline = started + timeout
    pending: dict[str, float] = {}
    while True:
        with contextlib.suppress(OSError):
            if _router_status(router, url) == "ready":
                log(f"{name}: ready in the router after {time.monotonic() - started:.1f} s")
                return 0
            apply(members, pending)
        if time.monotonic() > deadline:
            log(f"{name}: not ready in the router after {timeout:.0f} s (is {url}/health answering?)")
            return EXIT_TIMEOUT
        time.sleep(POLL)


def show(path: str) -> int:
    members = read_members(path)
    try:
        registered = registered_workers(members["router"])
        error = None
    except OSError as exc:
        registered, error = [], str(exc)
    view = {
        w.get("url"): {"status": w.get("status"), "healthy": w.get("is_healthy"), "id": w.get("id")} for w in registered
    }
    out = {
        "router": members["router"],
        "router_error": error,
        "workers": [
            {
                "instance": w["instance"],
                "role": w["role"],
                "url": w["spec"]["url"],
                "drained": members["drained"].get(w["instance"]),
                "router": view.get(w["spec"]["url"]),
            }
            for w in members["workers"]
        ],
    }
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pdfleet-router-members", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run").add_argument("file")
    sub.add_parser("show").add_argument("file")
    for name in ("drain", "undrain"):
        command = sub.add_parser(name)
        command.add_argument("file")
        command.add_argument("instance")
        command.add_argument("--by", default="operator", help="who drains: operator (pdfleet drain) or rolling")
        command.add_argument("--timeout", type=float, help="seconds (default: the file's drain_timeout_secs)")
        if name == "drain":
            command.add_argument("--reason", default="", help="why, shown by pdfleet status")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.file)
    if args.command == "show":
        return show(args.file)
    timeout = args.timeout if args.timeout is not None else read_members(args.file).get("drain_timeout_secs", 300)
    if args.command == "drain":
        return drain(args.file, args.instance, args.by, args.reason, timeout)
    return undrain(args.file, args.instance, args.by, timeout)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
