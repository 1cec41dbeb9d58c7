"""What a cold bring-up's reboots cost as the cluster grows: `deploys/host.py` on fresh sandbox hosts (every host
reboots once: driver set, nouveau blacklist), timed for the sandbox's 5 nodes rebooting one at a time
(`host.reboot.parallel: 1`, what every host did before pdfleet/rebootplan.py), the same 5 with the default (hosts
serving nothing reboot together) and 8 nodes with the default (the sandbox's five and three more spares), in one
run; medians of `--runs`.

    .venv/bin/python benchmarks/bringup.py [--runs 1] [--json]

Needs nothing up; leaves the sandbox as `pdfleet sandbox up` makes it: five fresh hosts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.faults import BIN, INVENTORY, SandboxCluster  # noqa: E402

EXTRA = [(f"spare-{i}", f"10.77.0.{15 + i}") for i in range(1, 4)]  # spare-0 is the sandbox's own


def inventory(work: Path, name: str, parallel: int | None, extra: list[tuple[str, str]]) -> Path:
    def change(doc):
        doc["nodes"] += [{"name": node, "address": address} for node, address in extra]
        if parallel is not None:
            doc["host"].setdefault("reboot", {})["parallel"] = parallel

    return SandboxCluster(INVENTORY).inventory_with(work / name, change)


def sandbox(*args: str) -> None:
    done = subprocess.run([str(BIN / "pdfleet"), "sandbox", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pdfleet sandbox {' '.join(args)} failed:\n{done.stderr[-2000:]}")


def fresh_host_layer(path: Path) -> float:
    """Every host of the inventory made anew, then deploys/host.py from bare: its wall time."""
    sandbox("down", "-i", str(path))
    sandbox("up", "-i", str(path))
    started = time.monotonic()
    run = subprocess.run([str(BIN / "pyinfra"), "-y", str(path), "deploys/host.py"], cwd=ROOT, capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    took = time.monotonic() - started
    if run.returncode != 0:
        raise RuntimeError(f"deploys/host.py on {path} failed:\n{run.stderr[-3000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="bring-ups of each case (medians)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"5 nodes, one at a time": [], "5 nodes, together": [], "8 nodes, together": []}
    with tempfile.TemporaryDirectory(prefix="pdfleet-bringup-") as work:
        cases = {
            "5 nodes, one at a time": inventory(Path(work), "serial", 1, []),
            "5 nodes, together": inventory(Path(work), "five", None, []),
            "8 nodes, together": inventory(Path(work), "eight", None, EXTRA),
        }
        try:
            for _ in range(args.runs):
                for case, path in cases.items():
                    times[case].append(fresh_host_layer(path))
                    print(f"  {case}: {times[case][-1]:.1f} s", flush=True)
        finally:
            sandbox("down", "-i", str(cases["8 nodes, together"]))
            sandbox("up")
    medians = {case: statistics.median(t) for case, t in times.items()}
    print("deploys/host.py from fresh hosts (every host reboots once), medians:")
    for case, seconds in medians.items():
        print(f"  {case:<24} {seconds:6.1f} s")
    base = medians["5 nodes, together"]
    print(f"  ratio one at a time / together (5 nodes): {medians['5 nodes, one at a time'] / base:.2f}")
    print(f"  ratio 8 nodes / 5 nodes (together):       {medians['8 nodes, together'] / base:.2f}")
    if args.json:
        print(json.dumps({"runs": args.runs, "seconds": times, "medians": medians}, indent=1))


if __name__ == "__main__":
    main()
