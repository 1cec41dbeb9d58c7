"""A router upgrade (a new smg version) on the serving sandbox, through `deploys/pd.py`, under a bounded open-loop
load through the router: the router first converged on the earlier version, then on the inventory's. Prints what the
clients saw: requests in flight when the old router was asked to stop (its shutdown grace lets them finish) and how
many of them failed, the requests that failed while no router listened or none had its workers yet, the longest
time without an answer.

    .venv/bin/python benchmarks/router_upgrade.py [--rate 10] [--from 1.12.0] [--json]

Needs the sandbox up (`pdfleet sandbox up`); leaves the cluster converged on the sandbox inventory (router 1.13.0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.faults import SandboxCluster, pyinfra, ssh  # noqa: E402
from pdfleet.loadgen import summarize  # noqa: E402

EARLIER_SMG = "1.12.0"  # the sandbox's index holds it beside 1.13.0 (pdfleet/sandbox/image.py)
ENGINE_LATENCY_MS = 1500  # long requests, so that some are in flight when the old router stops


def router_on(sandbox: SandboxCluster, work: Path, version: str) -> Path:
    """A copy of the sandbox inventory whose router runs smg `version`."""
    return sandbox.inventory_with(work / f"smg-{version}", lambda doc: doc["router"].update(version=version))


def installed_router(sandbox: SandboxCluster) -> str:
    """The smg version in the router's venv, from its dist-info directory."""
    venv = sandbox.cluster.router.venv
    listing = ssh(sandbox.router_node, f"ls -d {venv}/lib/python3*/site-packages/smg-*.dist-info")
    return listing.strip().rsplit("/", 1)[1].removeprefix("smg-").removesuffix(".dist-info")


def router_stop_and_start(sandbox: SandboxCluster, since: int) -> tuple[float, float]:
    """(stop asked, started again) of the router's unit since `since`, epoch seconds, from its journal."""
    unit = "pdfleet-router.service"
    text = ssh(sandbox.router_node, f"journalctl -u {unit} _PID=1 --since @{since} -o json --no-pager")
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]

    def when(prefix: str) -> list[float]:
        return [int(e["__REALTIME_TIMESTAMP"]) / 1e6 for e in entries if str(e.get("MESSAGE", "")).startswith(prefix)]

    stops = when("Stopping")
    if not stops:
        raise RuntimeError(f"{sandbox.router_node}: {unit} was not restarted by the upgrade")
    started = [t for t in when("Started") if t > stops[0]]
    return stops[0], (started[0] if started else float("nan"))


def upgrade_under_load(sandbox: SandboxCluster, rate: float, work: Path, earlier: str = EARLIER_SMG) -> dict:
    before = pyinfra(str(router_on(sandbox, work, earlier)), "deploys/pd.py")
    if before.returncode != 0:
        raise RuntimeError(f"the converge on smg {earlier} failed:\n{before.stderr[-3000:]}")
    sandbox.set_latency(ENGINE_LATENCY_MS)
    sandbox.wait_ready(timeout=180)
    was = installed_router(sandbox)
    since = int(time.time())
    clock = time.time() - time.monotonic()  # load results are monotonic; the journal is wall-clock
    with sandbox.load(rate) as load:
        time.sleep(5)
        t0 = time.monotonic()
        upgrade = pyinfra(str(sandbox.inventory), "deploys/pd.py")
        took = time.monotonic() - t0
        time.sleep(5)
    sandbox.set_latency(0)
    stop, start = router_stop_and_start(sandbox, since)
    stop_m, start_m = stop - clock, start - clock
    in_flight = [r for r in load.results if r.sent < stop_m < r.done]
    return {
        "scenario": f"router smg {was} -> {installed_router(sandbox)} under {rate:g} req/s",
        "exit": upgrade.returncode,
        "converge_s": round(took, 1),
        **summarize(load.results, since=t0),
        "in_flight_at_stop": len(in_flight),
        "in_flight_failed": sum(1 for r in in_flight if r.status != 200),
        "stop_to_start_s": round(start - stop, 1),
        "failed_after_start": summarize(load.results, since=start_m)["failed"],
        "router_view": sandbox.view(),
        "output_tail": upgrade.stderr.splitlines()[-30:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second through the router")
    parser.add_argument("--from", dest="earlier", default=EARLIER_SMG, help="the smg version upgraded from")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    sandbox = SandboxCluster()
    with tempfile.TemporaryDirectory(prefix="pdfleet-router-upgrade-") as work:
        row = upgrade_under_load(sandbox, args.rate, Path(work), args.earlier)
    row.pop("output_tail")
    if args.json:
        print(json.dumps(row, indent=1))
    else:
        print(row["scenario"])
        print(f"  converge exit {row['exit']} in {row['converge_s']} s, the router stopped to started again in"
              f" {row['stop_to_start_s']} s")  # fmt: skip
        print(f"  requests {row['requests']}, failed {row['failed']} {row['codes']}, longest without an answer"
              f" {row['longest_gap_s']} s")  # fmt: skip
        print(f"  in flight at the stop {row['in_flight_at_stop']}, of them failed {row['in_flight_failed']}")
        print(f"  failed after the new router started: {row['failed_after_start']}; router view {row['router_view']}")
    return 0 if row["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
