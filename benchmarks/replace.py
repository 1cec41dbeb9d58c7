"""Node replacement on the sandbox, under a bounded open-loop load through the real router: prefill-1's network is
cut (the node is dead to the cluster) and `pdfleet replace-node` puts the spare in its place. Prints what the
clients saw and the time from the command to the spare serving in the router, split by phase.

    .venv/bin/python benchmarks/replace.py [--rate 20] [--json]

Phases come from the converge's own progress (pyinfra's "Starting operation" lines, timed as they are printed):
host layer (Base, NVIDIA, DeepEP, RDMA, Tuning, Reboot), runtime, weights, units (Units, Router), DeepGEMM cache
copy, start (the restart steps and the health gate); "pdfleet" is the rest: validation, drain, retire, inventory,
pyinfra connecting and reading facts, the undrain. The spare is a hot spare (host layer, runtime and weights
converged with the cluster, as the inventory's spares are), so what it still needs is units, cache and start.

Needs the sandbox up (`pdfleet sandbox up`: its four serving hosts and the spare, spare-0); replaces in a copy of the
sandbox inventory, and leaves the sandbox as `pdfleet sandbox up` makes it: five fresh hosts.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.faults import BIN, SandboxCluster, pyinfra, ssh  # noqa: E402
from pdfleet.loadgen import summarize  # noqa: E402

SPARE = {"name": "spare-0", "address": "10.77.0.15"}
HUB_LOG = ROOT / ".cache/sandbox/hub/requests.jsonl"
STANDIN_LOG = "/var/log/sglang-standin/launch.jsonl"
PHASES = (
    ("host layer", ("Base |", "NVIDIA |", "DeepEP |", "RDMA |", "Tuning |", "Reboot |")),
    ("runtime", ("Runtime |", "Container |")),
    ("weights", ("Weights |",)),
    ("units", ("Units |", "Router |")),
    ("DeepGEMM cache", ("Restart | DeepGEMM",)),
    ("start", ("Restart |", "Health gate |")),
)


def spare_inventory(work: Path) -> Path:
    """A copy of the sandbox inventory (its spare included), as its text (comments and layout kept, as a person's
    inventory has them) with its relative paths made absolute: the replacement rewrites the copy, never the
    repository's."""
    text = (ROOT / "inventories/sandbox.yaml").read_text()
    text = re.sub(r"(:\s+)\.\./\.cache/", lambda m: f"{m.group(1)}{ROOT}/.cache/", text)
    spare = f"  - name: {SPARE['name']}\n    address: {SPARE['address']}\n"
    assert spare in text, f"inventories/sandbox.yaml: no spare {SPARE['name']} at {SPARE['address']}"
    directory = work / "spare"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sandbox.yaml").write_text(text)
    (directory / "sandbox.py").write_text((ROOT / "inventories/sandbox.py").read_text())
    return directory / "sandbox.py"


def hub_requests() -> int:
    """Every request the stand-in hub was sent, by any node (its own log)."""
    lines = HUB_LOG.read_text().splitlines() if HUB_LOG.exists() else []
    return sum(1 for line in lines if line.strip())


def compiles(nodes: list[str]) -> dict[str, int]:
    """Per node: how many times compile_deep_gemm started (the stand-in engine's own log)."""
    counts = {}
    for node in nodes:
        text = ssh(node, f"cat {STANDIN_LOG} 2>/dev/null || true", check=False)
        counts[node] = sum(json.loads(line)["event"] == "compile" for line in text.splitlines() if line.strip())
    return counts


def phase_of(operation: str) -> str:
    for phase, prefixes in PHASES:
        if operation.startswith(prefixes):
            return phase
    return "pdfleet"


def phases(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds per phase: each stretch between two "Starting operation" lines goes to the first one's phase; the
    rest of the command's time is pdfleet's own."""
    starts = [
        (t, line.split("Starting operation:", 1)[1].strip()) for t, line in lines if "Starting operation:" in line
    ]
    out = {phase: 0.0 for phase, _ in PHASES}
    ends = [t for t, line in lines if "--> Results:" in line or "--> Disconnecting" in line]
    for (t, name), nxt in zip(starts, [*(t for t, _ in starts[1:]), ends[-1] if ends else None], strict=True):
        if nxt is not None and phase_of(name) != "pdfleet":
            out[phase_of(name)] += nxt - t
    out = {k: round(v, 1) for k, v in out.items()}
    out["pdfleet"] = round(total - sum(out.values()), 1)
    return out


class Command:
    """A command run in the background, each line of its output kept with when it came."""

    def __init__(self, *args: str):
        self.lines: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self.process = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic() - self.t0, line.rstrip("\n")))

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def replace_dead_prefill(sandbox: SandboxCluster, rate: float, old: str = "prefill-1", new: str = "spare-0") -> dict:
    """Cut OLD's network, replace it by NEW under load; the row: clients, phases, downloads, compiles."""
    instance = sandbox.cluster.placement(old)[0].name
    nodes = [n.name for n in sandbox.cluster.nodes if n.name != old]
    hub_before, compiles_before = hub_requests(), compiles(nodes)
    veth = sandbox.veth(old)
    with sandbox.load(rate) as load:
        time.sleep(5)
        in_flight = sandbox.in_flight(instance)
        t0 = time.monotonic()
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)
        command = Command(str(BIN / "pdfleet"), "replace-node", str(sandbox.inventory), old, new, "--yes")
        code = command.wait(timeout=1200)
        took = time.monotonic() - t0
        time.sleep(3)
    serving = SandboxCluster(sandbox.inventory)  # the inventory as the command left it
    view = serving.view()
    return {
        "scenario": f"{old} cut off, replaced by {new}",
        **summarize(load.results, since=t0 - 1),
        "in_flight_at_fault": in_flight,
        "exit": code,
        "replace_s": round(took, 1),
        "phases_s": phases(command.lines, took),
        "router_view": view,
        "served_by": serving.serving.ranks(instance)[0].host,
        "hub_requests": hub_requests() - hub_before,
        "compiles": {n: c - compiles_before.get(n, 0) for n, c in compiles(nodes).items()},
        "output_tail": command.text.splitlines()[-25:],
    }


def cluster_with_spare(inventory: Path, latency_ms: int = 200) -> SandboxCluster:
    """The hosts of INVENTORY (spare_inventory's) started and converged, each engine taking LATENCY_MS."""
    up = subprocess.run([str(BIN / "pdfleet"), "sandbox", "up", "-i", str(inventory)], cwd=ROOT, check=False)
    if up.returncode != 0:
        raise RuntimeError(f"pdfleet sandbox up -i {inventory} failed")
    converge = pyinfra(str(inventory), "deploys/pd.py")
    if converge.returncode != 0:
        raise RuntimeError(f"the converge before the replacement failed:\n{converge.stderr[-3000:]}")
    sandbox = SandboxCluster(inventory)
    sandbox.set_latency(latency_ms)
    return sandbox


def fresh_sandbox(spare_inventory: Path) -> None:
    """The sandbox as its own inventory describes it, fresh: every host down, all five up again."""
    for args in (("down", "-i", str(spare_inventory)), ("up",)):
        done = subprocess.run([str(BIN / "pdfleet"), "sandbox", *args], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pdfleet sandbox {' '.join(args)} failed:\n{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second of the open-loop load")
    parser.add_argument("--latency-ms", type=int, default=200, help="each stand-in engine's time per request")
    parser.add_argument("--json", action="store_true", help="the row as JSON too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pdfleet-replace-") as work:
        inventory = spare_inventory(Path(work))
        try:
            sandbox = cluster_with_spare(inventory, args.latency_ms)
        except RuntimeError as error:
            sys.exit(str(error))
        try:
            row = replace_dead_prefill(sandbox, args.rate)
        finally:
            subprocess.run(["ip", "link", "set", sandbox.veth("prefill-1"), "up"], check=False)
            fresh_sandbox(inventory)
    print(
        f"{row['scenario']}: exit {row['exit']}, {row['requests']} requests, {row['failed']} failed "
        f"(in flight at the cut: {row['in_flight_at_fault']}), longest without an answer {row['longest_gap_s']} s "
        f"(from {row['longest_gap_from_s']} s after the cut), slowest answer {row['slowest_s']} s "
        f"(sent {row['slowest_sent_s']} s after the cut)"
    )
    print(f"command to serving: {row['replace_s']} s; hub requests {row['hub_requests']}; compiles {row['compiles']}")
    for phase, seconds in row["phases_s"].items():
        print(f"  {phase:<15} {seconds:>7.1f} s")
    if args.json:
        print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
