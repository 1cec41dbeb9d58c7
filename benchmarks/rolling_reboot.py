"""A driver bump on the serving sandbox, through `deploys/host.py`, under a bounded open-loop load through the real
router: each instance drained before its hosts reboot and put back after its health gate, the decode's two nodes
in one wave (with the outage switch: it is the only decode instance). Prints what the clients saw in each wave.

    .venv/bin/python benchmarks/rolling_reboot.py [--rate 10] [--json]

Needs the sandbox up (`pdfleet sandbox up`); converges it (`deploys/pd.py`) first, and leaves it as
`pdfleet sandbox up` makes it: four fresh hosts (the driver bump is not undone in place).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.faults import BIN, INVENTORY, SandboxCluster, pyinfra  # noqa: E402
from benchmarks.replace import Command  # noqa: E402
from pdfleet.loadgen import summarize  # noqa: E402

BUMPED_DRIVER = "580.165.02"  # the sandbox's second driver set (docs/sandbox.md)
OUT_LINE = re.compile(r"Reboot \| (\S+): draining before its reboot")
BACK_LINE = re.compile(r"Reboot \| (\S+): back in the router, ([\d.]+) s after its drain")
OUTAGE_LINE = re.compile(r"OUTAGE of the (\w+) role: ([\d.]+) s")


def bumped_inventory(sandbox: SandboxCluster, work: Path) -> Path:
    return sandbox.inventory_with(
        work / "bump", lambda doc: doc["host"].setdefault("nvidia", {}).update(driver_version=BUMPED_DRIVER)
    )


def waves(lines: list[tuple[float, str]]) -> dict[str, tuple[float, float | None]]:
    """Per instance: (seconds after the command's start when its drain began, when it was back), from the output."""
    found: dict[str, list] = {}
    for t, line in lines:
        if match := OUT_LINE.search(line):
            found.setdefault(match.group(1), [t, None])
        elif match := BACK_LINE.search(line):
            found.setdefault(match.group(1), [None, None])[1] = t
    return {name: (a, b) for name, (a, b) in found.items()}


def driver_bump_under_load(sandbox: SandboxCluster, rate: float, work: Path) -> dict:
    inventory = bumped_inventory(sandbox, work)
    with sandbox.load(rate) as load:
        time.sleep(3)
        command = Command(str(BIN / "pyinfra"), "-y", str(inventory), "deploys/host.py",
                          "--data", "pdfleet_allow_outage=decode")  # fmt: skip
        t0 = command.t0
        code = command.wait(timeout=1800)
        took = time.monotonic() - t0
        time.sleep(3)
    per_wave = {}
    for instance, (out, back) in waves(command.lines).items():
        if out is None or back is None:
            per_wave[instance] = {"out_s": out, "back_s": back}
            continue
        seen = summarize(load.results, since=t0 + out, until=t0 + back)
        per_wave[instance] = {"out_s": round(out, 1), "back_s": round(back, 1), **seen}
    outages = [f"{m.group(1)} {m.group(2)} s" for _, line in command.lines if (m := OUTAGE_LINE.search(line))]
    return {
        "scenario": f"driver bump to {BUMPED_DRIVER} (deploys/host.py, decode outage allowed)",
        **summarize(load.results, since=t0),
        "exit": code,
        "deploy_s": round(took, 1),
        "waves": per_wave,
        "reported_outages": outages,
        "output_tail": command.text.splitlines()[-30:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second of the open-loop load")
    parser.add_argument("--latency-ms", type=int, default=200, help="each stand-in engine's time per request")
    parser.add_argument("--json", action="store_true", help="the row as JSON too")
    args = parser.parse_args()
    sandbox = SandboxCluster(INVENTORY)
    converge = pyinfra(str(INVENTORY), "deploys/pd.py")
    if converge.returncode != 0:
        sys.exit(f"the converge before the bump failed:\n{converge.stderr[-3000:]}")
    sandbox.set_latency(args.latency_ms)
    try:
        with tempfile.TemporaryDirectory(prefix="pdfleet-reboot-") as work:
            row = driver_bump_under_load(sandbox, args.rate, Path(work))
    finally:
        for step in (("down",), ("up",)):
            subprocess.run([str(BIN / "pdfleet"), "sandbox", *step], cwd=ROOT, capture_output=True, check=False)
    print(f"driver bump under {args.rate:g} chat completions/s through the router: exit {row['exit']}, "
          f"{row['deploy_s']} s, {row['requests']} requests, {row['failed']} failed, longest without an answer "
          f"{row['longest_gap_s']} s")  # fmt: skip
    for instance, wave in row["waves"].items():
        print(f"  {instance}: out at {wave.get('out_s')} s, back at {wave.get('back_s')} s; "
              f"failed {wave.get('failed')} of {wave.get('requests')}, longest without an answer "
              f"{wave.get('longest_gap_s')} s")  # fmt: skip
    print(f"  outages reported: {', '.join(row['reported_outages']) or 'none'}")
    if args.json:
        print(json.dumps({k: v for k, v in row.items() if k != "output_tail"}, indent=1))


if __name__ == "__main__":
    main()
