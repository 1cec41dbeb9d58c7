"""How long `pdfleet sandbox up` and `down` take: cached up (image current) and, with --cold, an image rebuild.

Runs `pdfleet sandbox down` / `up` as a person does, several times in one run, and reports medians. Leaves the
sandbox down. Needs root.

    python benchmarks/sandbox_up.py [--runs 5] [--cold N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PDFLEET = str(Path(sys.executable).parent / "pdfleet")


def timed(*args: str) -> float:
    started = time.monotonic()
    result = subprocess.run([PDFLEET, "sandbox", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"pdfleet sandbox {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cached up/down cycles")
    parser.add_argument("--cold", type=int, default=0, help="also time this many ups that rebuild the image")
    args = parser.parse_args()
    timed("down")
    cold = []
    for _ in range(args.cold):
        cold.append(timed("up", "--rebuild"))
        timed("down")
    timed("up")  # make sure the image is current before timing cached ups
    timed("down")
    ups, noops, downs = [], [], []
    for _ in range(args.runs):
        ups.append(timed("up"))
        noops.append(timed("up"))
        downs.append(timed("down"))
    print(f"sandbox, 4 hosts, {args.runs} runs (seconds):")
    print(f"  cached up   median {statistics.median(ups):6.2f}  runs {' '.join(f'{t:.2f}' for t in ups)}")
    print(f"  up when up  median {statistics.median(noops):6.2f}  runs {' '.join(f'{t:.2f}' for t in noops)}")
    print(f"  down        median {statistics.median(downs):6.2f}  runs {' '.join(f'{t:.2f}' for t in downs)}")
    if cold:
        print(f"  cold up     median {statistics.median(cold):6.2f}  runs {' '.join(f'{t:.1f}' for t in cold)}")


if __name__ == "__main__":
    main()
