"""What clients of the endpoint see when something fails or changes: the fault scenarios on the sandbox, under a
bounded open-loop load of chat completions through the real router (pdfleet/loadgen.py), in one table.

    sudo python benchmarks/faults.py [--rate 20] [--only kill,cut,roll,drain,decode]

Needs the sandbox up (`pdfleet sandbox up`); it converges the cluster first with deploys/pd.py, gives the stand-in
engines a latency (so requests are in flight when something breaks: --latency-ms, default 200) and restores it at
the end. Scenarios (tests/sandbox/test_faults.py asserts their bounds):

    kill    systemctl kill -s KILL sglang-prefill-1; systemd brings it back (RestartSec), the router takes it back
    cut     prefill-1's network down for --cut-seconds (its veth on the sandbox bridge), then up again
    roll    an env value of both prefill instances changed and applied by deploys/pd.py: restarted one at a time
    drain   pdfleet drain / undrain of prefill-1
    decode  an env value of the decode changed: refused without the outage switch, then applied with it
    rank    rank 1 of the decode killed: the peer watch takes rank 0 down, systemd brings the instance back whole (an
            outage: the decode is the last of its role)

Columns: requests sent during the scenario, failed (non-200 or no answer), requests in flight on the instance when
the fault hit (its engine's own count), the longest time without a successful answer, and for kill and cut when
the router stopped routing to the instance and took it back (seconds after the fault / after its return).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pdfleet.apikeys import CURL_HEADER, read_api_keys  # noqa: E402
from pdfleet.inventory import load  # noqa: E402
from pdfleet.loadgen import OpenLoad, summarize  # noqa: E402, F401  (summarize: for the tests too)
from pdfleet.sandbox.paths import RELATIVE_PATHS  # noqa: E402
from pdfleet.serving import plan  # noqa: E402

BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventories/sandbox.py"
VETH_PREFIX = "vpdfsb"  # pdfleet.sandbox.paths: the host end of each sandbox host's link, by its inventory index
KNOBS = "/etc/sglang-standin"


def ssh(host: str, command: str, check: bool = True, inventory: Path | None = None) -> str:
    """COMMAND on a sandbox host; INVENTORY names hosts beyond the repository's (a spare)."""
    where = ["-i", str(inventory)] if inventory else []
    result = subprocess.run(
        [str(BIN / "pdfleet"), "sandbox", "ssh", *where, host, command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{host}: {command}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def pyinfra(*args: str, timeout: float = 900, yes: bool = True) -> subprocess.CompletedProcess:
    """The pyinfra CLI from the checkout; `yes=False` for --dry runs that must print their change detection."""
    return subprocess.run(
        [str(BIN / "pyinfra"), *(("-y",) if yes else ()), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def pdfleet(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "pdfleet"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


# curl's header file on every node with API keys (pdfleet/apikeys.py); harmless where it is absent only with keys off
AUTH = f"-H @{CURL_HEADER} "


class SandboxCluster:
    """The sandbox cluster as the scenarios see it: its router, its engines, their load, the router's view."""

    def __init__(self, inventory: Path = INVENTORY, same_prompt: bool = False):
        self.inventory = inventory
        self.same_prompt = same_prompt
        self.cluster = load(inventory)
        self.serving = plan(self.cluster)
        self.router_url = self.serving.router.url
        self.router_node = self.serving.router.host
        self.model = self.cluster.model.served_name
        # the router's client key (security.api_keys: the sandbox's ../.cache/sandbox/keys files), None when off
        keys = read_api_keys(self.cluster)
        self.client_key = keys.client if keys else None

    def view(self) -> dict[str, str]:
        """The router's workers: instance -> status (ready, not_ready, failed, draining)."""
        text = ssh(self.router_node, f"curl -s --max-time 5 {AUTH}{self.serving.router.local_url}/workers", check=False)
        try:
            return {w["labels"].get("pdfleet.instance"): w["status"] for w in json.loads(text)["workers"]}
        except (ValueError, KeyError):
            return {}

    def in_flight(self, instance: str) -> int | None:
        spec = self.serving.ranks(instance)[0]
        text = ssh(
            spec.host, f"curl -s --max-time 5 {AUTH}http://{spec.address}:{spec.http_port}/v1/loads", check=False
        )
        try:
            return sum(x["num_running_reqs"] + x["num_waiting_reqs"] for x in json.loads(text)["loads"])
        except (ValueError, KeyError):
            return None

    def requests_total(self, instance: str) -> float:
        """Requests the instance's rank 0 has taken since its start (SGLang's sglang:num_requests_total)."""
        spec = self.serving.ranks(instance)[0]
        text = ssh(spec.host, f"curl -s --max-time 5 http://{spec.address}:{spec.http_port}/metrics", check=False)
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("sglang:num_requests_total")
        )

    def busiest(self, role: str) -> str:
        """The instance of `role` that took the most requests over the last 2 s."""
        names = [i.name for i in self.cluster.instances if i.role == role]
        before = {name: self.requests_total(name) for name in names}
        time.sleep(2)
        return max(names, key=lambda name: self.requests_total(name) - before[name])

    def veth(self, node: str) -> str:
        return f"{VETH_PREFIX}{[n.name for n in self.cluster.nodes].index(node)}"

    def load(self, rate: float) -> OpenLoad:
        return OpenLoad(
            self.router_url, self.model, rate=rate, timeout=60, same_prompt=self.same_prompt, key=self.client_key
        )

    def inventory_with(self, directory: Path, change) -> Path:
        """A copy of the sandbox inventory with `change(doc)` applied (same file name: rendered headers match)."""
        doc = yaml.safe_load(self.inventory.with_suffix(".yaml").read_text())
        for section, key in RELATIVE_PATHS:
            doc[section][key] = str((self.inventory.parent / doc[section][key]).resolve())
        change(doc)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "sandbox.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        (directory / "sandbox.py").write_text(self.inventory.read_text())
        return directory / "sandbox.py"

    def set_latency(self, milliseconds: int) -> None:
        """The stand-in engines' latency per request (a knob of the image), applied by restarting every engine: all
        ranks at once, each restart waited for (its unit is active once /health answers), then the router."""
        for spec in self.serving.servers:
            ssh(spec.host, f"mkdir -p {KNOBS} && echo {milliseconds} > {KNOBS}/latency-ms")
        # Every rank stopped, then every rank started (a multi-node instance restarts as one); reset-failed: the
        # scenarios' kills count against the units' start limit (StartLimitBurst).
        with ThreadPoolExecutor(max_workers=len(self.serving.servers)) as pool:
            list(pool.map(lambda spec: ssh(spec.host, f"systemctl stop {spec.unit}"), self.serving.servers))
            start = "systemctl reset-failed {0} 2>/dev/null; systemctl start {0}"
            list(pool.map(lambda spec: ssh(spec.host, start.format(spec.unit)), self.serving.servers))
        self.wait_ready(timeout=180)

    def wait_ready(self, timeout: float = 120) -> float:
        started = time.monotonic()
        wanted = {w.instance for w in self.serving.router.workers}
        while True:
            view = self.view()
            if {name for name, status in view.items() if status == "ready"} == wanted:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the router does not list every instance ready after {timeout:.0f} s: {view}")
            time.sleep(1)


def _watch(sandbox: SandboxCluster, instance: str, t0: float, until, timeout: float) -> list[tuple[float, str]]:
    """The router's status of `instance` over time (seconds after t0), until `until()` or timeout."""
    marks: list[tuple[float, str]] = []
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(marks):
        status = sandbox.view().get(instance, "gone")
        if status != last:
            marks.append((round(time.monotonic() - t0, 1), status))
            last = status
        time.sleep(0.5)
    return marks


OUT = ("not_ready", "failed", "gone", "draining")


def _first(marks, statuses, after: float = 0.0) -> float | None:
    return next((t for t, s in marks if s in statuses and t >= after), None)


def _back(marks, after: float = 0.0) -> float | None:
    """When the router listed the instance ready again, after it had been out (and after `after`)."""
    out = _first(marks, OUT)
    return None if out is None else _first(marks, ("ready",), after=max(out, after))


# ----- the scenarios: each returns its row -----


def kill_prefill(sandbox: SandboxCluster, rate: float, instance: str = "busiest") -> dict:
    """kill -9 of a prefill's server: by default the one taking the most requests (with one prompt for every
    request, cache-aware routing sends them all to one prefill: the case that black-holed the endpoint)."""
    with sandbox.load(rate) as load:
        time.sleep(3)
        if instance == "busiest":
            instance = sandbox.busiest("prefill")
        spec = sandbox.serving.ranks(instance)[0]
        in_flight = sandbox.in_flight(instance)
        t0 = time.monotonic()
        ssh(spec.host, f"systemctl kill -s KILL {spec.unit}")
        marks = _watch(sandbox, instance, t0, lambda m: _back(m) is not None, 180)
        time.sleep(3)
    return {
        "scenario": f"kill -9 {instance}",
        **summarize(load.results, since=t0 - 1),
        "in_flight_at_fault": in_flight,
        "router_out_s": _first(marks, OUT),
        "router_back_s": _back(marks),
        "router_view": marks,
    }


def cut_prefill_network(sandbox: SandboxCluster, rate: float, seconds: float, node: str = "prefill-1") -> dict:
    instance = sandbox.cluster.placement(node)[0].name
    veth = sandbox.veth(node)
    with sandbox.load(rate) as load:
        time.sleep(5)
        in_flight = sandbox.in_flight(instance)
        t0 = time.monotonic()
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)
        try:
            marks = _watch(sandbox, instance, t0, lambda m: False, seconds)
        finally:
            subprocess.run(["ip", "link", "set", veth, "up"], check=True)
        returned = time.monotonic() - t0
        marks += _watch(sandbox, instance, t0, lambda m: _back(m, after=returned) is not None, 60)
        time.sleep(3)
    back = _back(marks, after=returned)
    return {
        "scenario": f"{node} network cut {seconds:.0f} s",
        **summarize(load.results, since=t0 - 1),
        "in_flight_at_fault": in_flight,
        "router_out_s": _first(marks, OUT),
        "router_back_s": round(back - returned, 1) if back is not None else None,
        "router_view": marks,
    }


def restart_times(sandbox: SandboxCluster, instance: str, since: int) -> list[tuple[float, float]]:
    """(stop asked, active again) of the instance's rank-0 unit since `since` (epoch s), from its journal."""
    spec = sandbox.serving.ranks(instance)[0]
    lines = ssh(spec.host, f"journalctl -u {spec.unit} _PID=1 --since @{since} -o json --no-pager").splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    stops = [int(e["__REALTIME_TIMESTAMP"]) / 1e6 for e in entries if str(e.get("MESSAGE", "")).startswith("Stopping")]
    starts = [int(e["__REALTIME_TIMESTAMP"]) / 1e6 for e in entries if str(e.get("MESSAGE", "")).startswith("Started")]
    return [(stop, next((s for s in starts if s > stop), float("nan"))) for stop in stops]


def back_to_the_inventory(sandbox: SandboxCluster, outage: str = "") -> None:
    """The instances back on the sandbox inventory's own inputs after a scenario changed them, so that the next
    scenario starts from the cluster the inventory describes (a later change would otherwise restart these too)."""
    switch = ("--data", f"pdfleet_allow_outage={outage}") if outage else ()
    result = pyinfra(*switch, str(sandbox.inventory), "deploys/pd.py")
    if result.returncode != 0:
        raise RuntimeError(f"deploys/pd.py back to {sandbox.inventory} failed:\n{result.stderr[-3000:]}")


def roll_prefills(sandbox: SandboxCluster, rate: float, work: Path) -> dict:
    stamp = str(time.time())

    def change(doc):
        for item in doc["instances"]:
            if item["role"] == "prefill":
                item.setdefault("env", {})["PDFLEET_FAULTS_ROLL"] = stamp.replace(".", "")

    inventory = sandbox.inventory_with(work / "roll", change)
    since = int(time.time()) - 1
    with sandbox.load(rate) as load:
        time.sleep(3)
        t0 = time.monotonic()
        result = pyinfra(str(inventory), "deploys/pd.py")
        took = time.monotonic() - t0
        time.sleep(3)
    if result.returncode != 0:
        raise RuntimeError(f"deploys/pd.py failed:\n{result.stderr[-3000:]}")
    windows = {name: restart_times(sandbox, name, since) for name in ("prefill-0", "prefill-1")}
    back_to_the_inventory(sandbox)
    return {
        "scenario": "env change of both prefills (pd.py)",
        **summarize(load.results, since=t0),
        "in_flight_at_fault": None,
        "deploy_s": round(took, 1),
        "restarts": {name: [(round(a, 2), round(b, 2)) for a, b in w] for name, w in windows.items()},
        "one_after_the_other": all(len(w) == 1 for w in windows.values())
        and windows["prefill-0"][0][1] < windows["prefill-1"][0][0],
    }


def drain_undrain(sandbox: SandboxCluster, rate: float, instance: str = "prefill-1") -> dict:
    with sandbox.load(rate) as load:
        time.sleep(3)
        in_flight = sandbox.in_flight(instance)
        t0 = time.monotonic()
        drained = pdfleet("drain", str(sandbox.inventory), instance, "--reason", "fault scenario")
        out_view = sandbox.view().get(instance, "gone")
        shown = pdfleet("status", str(sandbox.inventory), "--json")
        undrained = pdfleet("undrain", str(sandbox.inventory), instance)
        took = time.monotonic() - t0
        time.sleep(3)
    for step in (drained, undrained):
        if step.returncode != 0:
            raise RuntimeError(f"{' '.join(step.args[1:3])} failed:\n{step.stdout[-2000:]}{step.stderr[-2000:]}")
    return {
        "scenario": f"drain and undrain {instance}",
        **summarize(load.results, since=t0),
        "in_flight_at_fault": in_flight,
        "while_drained": out_view,
        "drain_undrain_s": round(took, 1),
        "drain_output": drained.stdout.strip().splitlines()[-3:],
        "status_exit": shown.returncode,
        "status_while_drained": next(
            (r for r in json.loads(shown.stdout or "{}").get("instances", []) if r["instance"] == instance), None
        ),
    }


def decode_outage(sandbox: SandboxCluster, rate: float, work: Path) -> dict:
    stamp = str(time.time()).replace(".", "")

    def change(doc):
        [decode] = [i for i in doc["instances"] if i["role"] == "decode"]
        decode.setdefault("env", {})["PDFLEET_FAULTS_DECODE"] = stamp

    inventory = sandbox.inventory_with(work / "decode", change)
    decode = sandbox.serving.ranks("decode")[0]
    env_before = ssh(decode.host, f"cat {decode.env_file}")
    refused = pyinfra(str(inventory), "deploys/pd.py")
    unchanged = ssh(decode.host, f"cat {decode.env_file}") == env_before
    with sandbox.load(rate) as load:
        time.sleep(3)
        t0 = time.monotonic()
        applied = pyinfra("--data", "pdfleet_allow_outage=decode", str(inventory), "deploys/pd.py")
        took = time.monotonic() - t0
        time.sleep(3)
    if applied.returncode != 0:
        raise RuntimeError(f"deploys/pd.py with the outage switch failed:\n{applied.stderr[-3000:]}")
    reported = [line.split("Restart | ", 1)[1] for line in applied.stderr.splitlines() if "OUTAGE of the" in line]
    back_to_the_inventory(sandbox, outage="decode")
    return {
        "scenario": "env change of the decode (the last of its role)",
        **summarize(load.results, since=t0),
        "in_flight_at_fault": None,
        "refused_without_switch": refused.returncode != 0 and "pdfleet_allow_outage=decode" in refused.stderr,
        "nothing_changed_when_refused": unchanged,
        "outage_reported": reported,
        "deploy_s": round(took, 1),
    }


def kill_decode_rank(sandbox: SandboxCluster, rate: float, node: str = "decode-1") -> dict:
    """Rank 1 of the decode killed: rank 0 would wait in its collectives (sglang #3099; the stand-in hangs the same
    way); its peer watch takes it down too, and systemd brings both ranks back together. The decode is the last of
    its role: the clients see an outage, measured."""
    instance = sandbox.cluster.placement(node)[0].name
    ranks = sandbox.serving.ranks(instance)
    head = ranks[0]
    victim = next(s for s in ranks if s.host == node)

    def main_pid() -> str:
        return ssh(head.host, f"systemctl show -p MainPID --value {head.unit}").strip()

    before = main_pid()  # rank 0's process: it is down once this one is gone
    since = int(time.time())
    with sandbox.load(rate) as load:
        time.sleep(3)
        t0 = time.monotonic()
        ssh(node, f"systemctl kill -s KILL {victim.unit}")
        rank0_down = None
        while time.monotonic() - t0 < 120:
            if main_pid() != before:
                rank0_down = round(time.monotonic() - t0, 1)
                break
            time.sleep(0.5)
        marks = _watch(sandbox, instance, t0, lambda m: _back(m) is not None, 180)
        time.sleep(3)
    return {
        "scenario": f"kill -9 {instance} rank {victim.rank} ({node})",
        **summarize(load.results, since=t0 - 1),
        "in_flight_at_fault": None,
        "rank0_down_s": rank0_down,
        "router_out_s": _first(marks, OUT),
        "router_back_s": _back(marks),
        "router_view": marks,
        "rank0_watch": ssh(
            head.host, f"journalctl -u {head.peer_watch_unit} --since @{since} -o cat --no-pager", check=False
        ).splitlines()[-6:],
    }


SCENARIOS = ("kill", "cut", "roll", "drain", "decode", "rank")


def run(
    only=SCENARIOS,
    rate: float = 20.0,
    latency_ms: int = 200,
    cut_seconds: float = 60.0,
    inventory: Path = INVENTORY,
    same_prompt: bool = False,
) -> list[dict]:
    sandbox = SandboxCluster(inventory, same_prompt)
    converge = pyinfra(str(sandbox.inventory), "deploys/pd.py")
    if converge.returncode != 0:
        raise RuntimeError(f"the converge before the scenarios failed:\n{converge.stderr[-3000:]}")
    sandbox.set_latency(latency_ms)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="pdfleet-faults-") as work:
            for name in only:
                sandbox.wait_ready(timeout=180)
                if name == "kill":
                    rows.append(kill_prefill(sandbox, rate))
                elif name == "cut":
                    rows.append(cut_prefill_network(sandbox, rate, cut_seconds))
                elif name == "roll":
                    rows.append(roll_prefills(sandbox, rate, Path(work)))
                elif name == "drain":
                    rows.append(drain_undrain(sandbox, rate))
                elif name == "decode":
                    rows.append(decode_outage(sandbox, rate, Path(work)))
                elif name == "rank":
                    rows.append(kill_decode_rank(sandbox, rate))
    finally:
        try:
            sandbox.set_latency(0)
        except RuntimeError as error:  # the rows measured so far are still worth printing
            print(f"warning: restoring the engines' latency failed: {error}", file=sys.stderr)
        # Back to the inventory's own inputs (the scenarios changed env values).
        pyinfra("--data", "pdfleet_allow_outage=all", str(sandbox.inventory), "deploys/pd.py")
    return rows


def table(rows: list[dict]) -> str:
    head = ("scenario", "requests", "failed", "in flight at fault", "longest without answer", "router out", "back")

    def cell(value, suffix=""):
        return "-" if value is None else f"{value}{suffix}"

    lines = [head]
    for row in rows:
        lines.append(
            (
                row["scenario"],
                str(row["requests"]),
                str(row["failed"]),
                cell(row.get("in_flight_at_fault")),
                cell(row["longest_gap_s"], " s"),
                cell(row.get("router_out_s"), " s"),
                cell(row.get("router_back_s"), " s"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second of the open-loop load")
    parser.add_argument("--latency-ms", type=int, default=200, help="each stand-in engine's time per request")
    parser.add_argument("--cut-seconds", type=float, default=60.0, help="how long the network cut lasts")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"scenarios, of {','.join(SCENARIOS)}")
    parser.add_argument("--json", action="store_true", help="the rows as JSON too")
    parser.add_argument(
        "--inventory", type=Path, default=INVENTORY, help="a copy of the sandbox inventory (other router knobs)"
    )
    parser.add_argument(
        "--same-prompt",
        action="store_true",
        help="one prompt for every request (cache-aware routing keeps it on one prefill)",
    )
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    rows = run(only, args.rate, args.latency_ms, args.cut_seconds, args.inventory.resolve(), args.same_prompt)
    print(f"faults under an open-loop load of {args.rate:g} chat completions/s through the router (stand-in "
          f"engines at {args.latency_ms} ms per request):")  # fmt: skip
    print(table(rows))
    for row in rows:
        extra = {k: v for k, v in row.items() if k not in ("requests", "failed", "codes", "scenario")}
        print(f"  {row['scenario']}: codes {row['codes'] or '-'}; {json.dumps(extra)}")
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
