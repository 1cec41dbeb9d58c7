"""An SGLang version change on the serving sandbox, through `deploys/pd.py`, under a bounded open-loop load through
the router: refused while it would pair two versions; the new runtime installed beside the serving one ahead of the
window (`deploys/prepare.py`: nothing restarts); then in its window (`--data pdfleet_allow_outage=all`) the cutover
0.5.23 -> 0.5.6.post2 and the rollback to 0.5.23, each timed as the clients saw it (failed requests, the longest
time without an answer) and as the deploy printed it, against the floor of merely restarting every instance (all
stopped, all started, ready in the router; without load) in the same run. The rollback installs nothing (the old
set's files untouched) and compiles nothing (the stand-in engine's log).

    .venv/bin/python benchmarks/upgrade.py [--rate 10] [--json]

Needs the sandbox up (`pdfleet sandbox up`); converges it first and leaves it on the sandbox inventory (0.5.23).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.faults import AUTH, SandboxCluster, pdfleet, pyinfra, ssh  # noqa: E402
from benchmarks.replace import compiles  # noqa: E402
from pdfleet.bluegreen import limits  # noqa: E402
from pdfleet.inventory import load  # noqa: E402
from pdfleet.loadgen import summarize  # noqa: E402
from pdfleet.runtimeplan import serving_venv  # noqa: E402

OTHER_VERSION = "0.5.6.post2"  # the sandbox's index holds both stand-ins (pdfleet/sandbox/wheels.py)
WINDOW = ("--data", "pdfleet_allow_outage=all")


def on_version(sandbox: SandboxCluster, work: Path, version: str) -> Path:
    """A copy of the sandbox inventory on SGLang `version`."""
    return sandbox.inventory_with(work / f"sglang-{version}", lambda doc: doc["sglang"].update(version=version))


def serving_versions(sandbox: SandboxCluster) -> dict[str, str]:
    """Instance -> the version its rank 0 reports (/server_info)."""
    found = {}
    for instance in sandbox.cluster.instances:
        spec = sandbox.serving.ranks(instance.name)[0]
        url = f"http://{spec.address}:{spec.http_port}/server_info"
        text = ssh(spec.host, f"curl -s --max-time 5 {AUTH}{url}", check=False)
        try:
            found[instance.name] = json.loads(text)["version"]
        except (ValueError, KeyError):
            found[instance.name] = "no answer"
    return found


def restart_everything(sandbox: SandboxCluster) -> None:
    """The floor: every rank stopped, every rank started, every instance ready in the router again."""
    servers = sandbox.serving.servers
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(lambda s: ssh(s.host, f"systemctl stop {s.unit}"), servers))
        list(pool.map(lambda s: ssh(s.host, f"systemctl reset-failed {s.unit} 2>/dev/null; systemctl start {s.unit}"),
                      servers))  # fmt: skip
    sandbox.wait_ready(timeout=180)


def under_load(sandbox: SandboxCluster, rate: float, action) -> dict:
    """What the clients saw while `action()` ran, and what it returned."""
    with sandbox.load(rate) as load:
        time.sleep(3)
        t0 = time.monotonic()
        outcome = action()
        took = time.monotonic() - t0
        time.sleep(3)
    return {"took_s": round(took, 1), **summarize(load.results, since=t0 - 1), "outcome": outcome}


# What the deploy prints at the end of a cutover (roles/restarts.cutover_message).
REPORTED = re.compile(r"OUTAGE of the endpoint: ([0-9.]+) s from the drain to the first answer")


def converge(inventory: Path, *extra: str, deploy: str = "deploys/pd.py") -> dict:
    result = pyinfra(str(inventory), deploy, *extra, timeout=1200)
    reported = REPORTED.findall(result.stdout + result.stderr)
    return {
        "exit": result.returncode,
        "reported_outage_s": float(reported[-1]) if reported else None,
        "stderr_tail": result.stderr.splitlines()[-40:],
    }


def main_pids(sandbox: SandboxCluster) -> dict[str, str]:
    return {
        s.unit + "@" + s.host: ssh(s.host, f"systemctl show -p MainPID --value {s.unit}")
        for s in sandbox.serving.servers
    }


def wheel_sets(sandbox: SandboxCluster) -> dict[str, list[str]]:
    """Per serving node: the wheel sets on disk (runtime.venvs)."""
    venvs = sandbox.cluster.runtime.venvs
    return {
        s.host: sorted(
            p.rsplit("/", 1)[-1]
            for p in ssh(s.host, f"ls -1d {venvs}/sglang-* 2>/dev/null || true", check=False).split()
        )
        for s in sandbox.serving.servers
    }


def set_fingerprint(sandbox: SandboxCluster, inventory: Path) -> dict[str, str]:
    """Per serving node: the inode and change time of the inventory's set's SGLang dist-info: a reinstall changes
    them."""
    venv = serving_venv(load(inventory))
    command = f"stat -c '%i %Z' {venv}/lib/python3*/site-packages/sglang-*.dist-info 2>/dev/null || echo missing"
    return {s.host: ssh(s.host, command, check=False).strip() for s in sandbox.serving.servers}


def prepare(sandbox: SandboxCluster, target: Path) -> dict:
    """deploys/prepare.py on the new version while the old one serves: what it restarted and left on disk."""
    before = main_pids(sandbox)
    outcome = converge(target, deploy="deploys/prepare.py")
    after = main_pids(sandbox)
    return {**outcome, "restarted": sorted(u for u in before if before[u] != after[u]), "sets": wheel_sets(sandbox)}


def in_window(sandbox: SandboxCluster, inventory: Path) -> dict:
    """The window's converge, with what it compiled on each node."""
    nodes = sorted({s.host for s in sandbox.serving.servers})
    before = compiles(nodes)
    outcome = converge(inventory, *WINDOW)
    return {**outcome, "compiles": {n: c - before.get(n, 0) for n, c in compiles(nodes).items()}}


def upgrade_and_rollback(sandbox: SandboxCluster, rate: float, work: Path, other: str = OTHER_VERSION) -> dict:
    ready = converge(sandbox.inventory)
    if ready["exit"] != 0:
        raise RuntimeError("the converge on the sandbox inventory failed:\n" + "\n".join(ready["stderr_tail"]))
    sandbox.wait_ready(timeout=180)
    current = sandbox.cluster.sglang_version
    target = on_version(sandbox, work, other)
    rows: dict[str, dict] = {}
    rows["refused"] = under_load(sandbox, rate, lambda: converge(target))
    rows["prepared ahead of the window"] = under_load(sandbox, rate, lambda: prepare(sandbox, target))
    old_set = set_fingerprint(sandbox, sandbox.inventory)
    # The floor without load: stopped without a drain, a serving engine keeps taking the router's requests and
    # its SIGTERM drain does not end (the cutover drains each instance out of the router first).
    started = time.monotonic()
    restart_everything(sandbox)
    rows["restart floor"] = {
        "took_s": round(time.monotonic() - started, 1),
        "outcome": "every rank stopped, started, ready",
    }
    rows[f"cutover {current} -> {other}"] = under_load(sandbox, rate, lambda: in_window(sandbox, target))
    rows["versions after the cutover"] = {"outcome": serving_versions(sandbox)}
    rows[f"rollback {other} -> {current}"] = under_load(sandbox, rate, lambda: in_window(sandbox, sandbox.inventory))
    rows["versions after the rollback"] = {"outcome": serving_versions(sandbox)}
    rows["old set untouched by the cutover and the rollback"] = {
        "outcome": old_set == set_fingerprint(sandbox, sandbox.inventory),
        "before": old_set,
    }
    floor = rows["restart floor"]["took_s"] or float("nan")
    for name in (f"cutover {current} -> {other}", f"rollback {other} -> {current}"):
        rows[name]["downtime_over_floor"] = round(rows[name]["longest_gap_s"] / floor, 2)
    rows["router_view"] = {"outcome": sandbox.view()}
    return rows


# Blue/green on the sandbox's four hosts: the serving set is prefill-0 (a prefill) and decode-0 (a one-node decode);
# prefill-1 and decode-1 are its spares.
BLUE_NODES = {"prefill-0": ["prefill-0"], "decode": ["decode-0"]}
SPARES = ("prefill-1", "decode-1")


def blue_set(doc: dict) -> None:
    doc["instances"] = [i for i in doc["instances"] if i["name"] in BLUE_NODES]
    for instance in doc["instances"]:
        instance["nodes"] = BLUE_NODES[instance["name"]]


def blue_green(inventory: Path, version: str) -> dict:
    """`pdfleet blue-green INVENTORY --version VERSION --yes`: its exit, what it said, and its own total."""
    result = pdfleet("blue-green", str(inventory), "--version", version, "--yes", timeout=1800)
    done = [line for line in result.stderr.splitlines() if "] done | " in line]
    return {"exit": result.returncode, "done": done[-1].split("] done | ", 1)[1] if done else None,
            "stderr_tail": result.stderr.splitlines()[-40:]}  # fmt: skip


def blue_green_and_back(sandbox: SandboxCluster, rate: float, work: Path, other: str = OTHER_VERSION) -> dict:
    """The sandbox reshaped into one serving set and its spares, moved to `other` on the spares and back again,
    under load; then the sandbox inventory converged again (every instance restarted: the shape changes)."""
    current = sandbox.cluster.sglang_version
    blue = sandbox.inventory_with(work / "bluegreen", blue_set)
    rows: dict[str, dict] = {}
    try:
        # the spares: what the sandbox ran on them retired (a spare serves nothing)
        retired = pyinfra(str(sandbox.inventory), "deploys/retire.py", *limits(SPARES),
                          "--data", "pdfleet_retire_scope=instances")  # fmt: skip
        if retired.returncode != 0:
            raise RuntimeError("retiring the spares failed:\n" + retired.stderr[-3000:])
        shaped = converge(blue, "--data", "pdfleet_allow_outage=decode")
        if shaped["exit"] != 0:
            raise RuntimeError("the one-set inventory did not converge:\n" + "\n".join(shaped["stderr_tail"]))
        serving = SandboxCluster(blue)
        serving.wait_ready(timeout=180)
        nodes = sorted({*BLUE_NODES["prefill-0"], *BLUE_NODES["decode"], *SPARES})
        old_set = set_fingerprint(serving, blue)
        for name, version in ((f"blue/green {current} -> {other}", other), (f"blue/green back {other} -> {current}",
                                                                             current)):  # fmt: skip
            before = compiles(nodes)
            rows[name] = under_load(serving, rate, lambda v=version: blue_green(blue, v))
            rows[name]["outcome"]["compiles"] = {n: c - before.get(n, 0) for n, c in compiles(nodes).items()}
            rows[name]["outcome"]["serving_nodes"] = sorted({s.host for s in SandboxCluster(blue).serving.servers})
            rows[name]["outcome"]["versions"] = serving_versions(SandboxCluster(blue))
        rows["blue/green: the first set's runtime untouched by the round trip"] = {
            "outcome": old_set == set_fingerprint(serving, blue)
        }
        rows["blue/green: router view"] = {"outcome": SandboxCluster(blue).view()}
    finally:
        retired = pyinfra(str(blue), "deploys/retire.py", *limits(SPARES), "--data", "pdfleet_retire_scope=instances")
        restored = converge(sandbox.inventory, *WINDOW)
        rows["sandbox restored"] = {"outcome": {"exit": restored["exit"], "retire_exit": retired.returncode}}
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second through the router")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    sandbox = SandboxCluster()
    with tempfile.TemporaryDirectory(prefix="pdfleet-upgrade-") as work:
        rows = upgrade_and_rollback(sandbox, args.rate, Path(work))
        rows.update(blue_green_and_back(sandbox, args.rate, Path(work)))
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    for name, row in rows.items():
        if "requests" not in row:
            print(f"{name}: {row['outcome']}" + (f" in {row['took_s']} s" if "took_s" in row else ""))
            continue
        outcome = row["outcome"] if isinstance(row["outcome"], dict) else {}
        ratio = f", {row['downtime_over_floor']}x the floor" if "downtime_over_floor" in row else ""
        reported = f"; the deploy printed {outcome['reported_outage_s']} s" if outcome.get("reported_outage_s") else ""
        extra = "".join(f"; {k} {outcome[k]}" for k in ("restarted", "compiles") if k in outcome)
        gap = f"longest without an answer {row['longest_gap_s']} s"
        print(f"{name}: exit {outcome.get('exit', 0)}, {row['took_s']} s; failed {row['failed']} of {row['requests']} "
              f"{row['codes']}; {gap}{ratio}{reported}{extra}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
