"""What a no-op converge costs against merely connecting: median wall time of `pyinfra -y INVENTORY DEPLOY` on a
converged cluster against the floor `pyinfra -y INVENTORY exec -- true`, alternating in one run, and their ratio;
also the same no-op with every fact read live (`--data pdfleet_fact_prefetch=0`, roles/prefetch.py off).

Needs the sandbox up and converged (the first, converging run is not timed; it must succeed).

    python benchmarks/converge.py [--runs 5] [--deploy deploys/pd.py] [--inventory inventories/sandbox.py]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYINFRA = str(Path(sys.executable).parent / "pyinfra")


def timed(*args: str) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [PYINFRA, "-y", *args], cwd=ROOT, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    took = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"pyinfra {' '.join(args)} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed pairs (no-op converge, floor), alternating")
    parser.add_argument("--deploy", default="deploys/pd.py")
    parser.add_argument("--inventory", default="inventories/sandbox.py")
    args = parser.parse_args()
    timed(args.inventory, args.deploy)  # converge first: what follows must be no-ops
    noop, live, floor = [], [], []
    for _ in range(args.runs):
        noop.append(timed(args.inventory, args.deploy))
        live.append(timed("--data", "pdfleet_fact_prefetch=0", args.inventory, args.deploy))
        floor.append(timed(args.inventory, "exec", "--", "true"))
    n, lv, f = statistics.median(noop), statistics.median(live), statistics.median(floor)

    def show(what: str, times: list[float], median: float) -> None:
        print(f"{what}: median {median:.2f} s ({', '.join(f'{t:.2f}' for t in times)})")

    show(f"no-op {args.deploy}", noop, n)
    show(f"no-op {args.deploy}, facts read live", live, lv)
    show("floor exec -- true", floor, f)
    print(f"ratio no-op / floor: {n / f:.2f} (goal: at most 2.5); facts read live: {lv / f:.2f}")
    print(f"{args.runs} rounds in one run, each: no-op, no-op with live facts, floor")


if __name__ == "__main__":
    main()
