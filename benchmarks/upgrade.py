"""An SGLang version change on the serving sandbox, through `deploys/pd.py`, under a bounded open-loop load through
the router: refused while it would pair two versions, then in its window (`--data pdfleet_allow_outage=all`)
0.5.23 -> 0.5.6.post2 and the rollback to 0.5.23, each timed as the clients saw it (failed requests, the longest
time without an answer) against the floor of merely restarting every instance (all stopped, all started, ready
in the router; without load) in the same run.

    .venv/bin/python benchmarks/upgrade.py [--rate 10] [--json]

Needs the sandbox up (`pdfleet sandbox up`); converges it first and leaves it on the sandbox inventory (0.5.23).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.faults import SandboxCluster, pyinfra, ssh  # noqa: E402
from pdfleet.loadgen import summarize  # noqa: E402

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
        text = ssh(spec.host, f"curl -s --max-time 5 http://{spec.address}:{spec.http_port}/server_info", check=False)
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


def converge(inventory: Path, *extra: str) -> dict:
    result = pyinfra(str(inventory), "deploys/pd.py", *extra, timeout=1200)
    return {"exit": result.returncode, "stderr_tail": result.stderr.splitlines()[-40:]}


def upgrade_and_rollback(sandbox: SandboxCluster, rate: float, work: Path, other: str = OTHER_VERSION) -> dict:
    ready = converge(sandbox.inventory)
    if ready["exit"] != 0:
        raise RuntimeError("the converge on the sandbox inventory failed:\n" + "\n".join(ready["stderr_tail"]))
    sandbox.wait_ready(timeout=180)
    current = sandbox.cluster.sglang_version
    target = on_version(sandbox, work, other)
    rows: dict[str, dict] = {}
    rows["refused"] = under_load(sandbox, rate, lambda: converge(target))
    # The floor without load: stopped without a drain, a serving engine keeps taking the router's requests and
    # its SIGTERM drain does not end (the cutover drains each instance out of the router first).
    started = time.monotonic()
    restart_everything(sandbox)
    rows["restart floor"] = {
        "took_s": round(time.monotonic() - started, 1),
        "outcome": "every rank stopped, started, ready",
    }
    rows[f"cutover {current} -> {other}"] = under_load(sandbox, rate, lambda: converge(target, *WINDOW))
    rows["versions after the cutover"] = {"outcome": serving_versions(sandbox)}
    rows[f"rollback {other} -> {current}"] = under_load(sandbox, rate, lambda: converge(sandbox.inventory, *WINDOW))
    rows["versions after the rollback"] = {"outcome": serving_versions(sandbox)}
    floor = rows["restart floor"]["took_s"] or float("nan")
    for name in (f"cutover {current} -> {other}", f"rollback {other} -> {current}"):
        rows[name]["downtime_over_floor"] = round(rows[name]["longest_gap_s"] / floor, 2)
    rows["router_view"] = {"outcome": sandbox.view()}
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second through the router")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    sandbox = SandboxCluster()
    with tempfile.TemporaryDirectory(prefix="pdfleet-upgrade-") as work:
        rows = upgrade_and_rollback(sandbox, args.rate, Path(work))
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    for name, row in rows.items():
        if "requests" not in row:
            print(f"{name}: {row['outcome']}" + (f" in {row['took_s']} s" if "took_s" in row else ""))
            continue
        exit_code = row["outcome"]["exit"] if isinstance(row["outcome"], dict) else 0
        ratio = f", {row['downtime_over_floor']}x the floor" if "downtime_over_floor" in row else ""
        print(f"{name}: exit {exit_code}, {row['took_s']} s; failed {row['failed']} of {row['requests']} "
              f"{row['codes']}; longest without an answer {row['longest_gap_s']} s{ratio}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
