"""deploys/pd.py from fresh sandbox hosts to a verified endpoint, and the changes a cluster lives through.

- Fresh: host layer, runtime (uv, pinned wheel sets from the image's index), the weights over the "WAN" once (the
  stand-in hub's log: every file fetched once, by the seed; the token never sent to the CDN) and copied by the
  other nodes from a peer, DeepGEMM compiled once per key (the stand-in's log: prefill-0 and both decode ranks
  compile, prefill-1 copies), verified units, the real smg router, the health gate (chat completion, tool call).
- A second run and a --dry run: nothing to change.
- The firewall: from an address outside the cluster only the router's port answers; rules that would shut
  pdfleet out are refused before any change, and rules that do are rolled back by the node itself.
- One environment value changed: --dry --diff shows that env file and the restart of the units reading it, on
  those nodes only; applying it restarts exactly those units.
- The model revision changed: staged again (once over the WAN), copied in waves from the seed (one copy per
  source: decode-1 copies from prefill-1), compiled again once per key, the cache copied.
- A killed server brought back by systemd; a failing instance named by the gate with its journal.
- A rebuilt node whose DeepGEMM source is down compiles its own cache after `share.silent_timeout`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pdfleet import firewallplan, monitoringplan
from pdfleet.apikeys import read_api_keys
from pdfleet.dashboards import dashboards
from pdfleet.inventory import load
from pdfleet.runtimeplan import serving_venv
from pdfleet.sandbox.hub import checkpoint
from pdfleet.sandbox.paths import BRIDGE
from pdfleet.serving import plan
from roles.prefetch import batch_script, cache_file, parse_batch
from tests.sandbox.conftest import ROOT, inventory_copy, on_host, pdfleet, pyinfra
from tests.test_firewall import PROBE

HOSTS = ["prefill-0", "prefill-1", "decode-0", "decode-1", "spare-0"]
SEED = "10.77.0.11"
MODEL = "/models/DeepSeek-V3.2"
CACHE = "/var/cache/pdfleet/deep_gemm"
HUB_LOG = ROOT / ".cache/sandbox/hub/requests.jsonl"
REVISION = "a7e62ac04ecb2c0a54d736dc46601c5606cf10a6"
NEW_REVISION = "5f1c2d3e4b5a69788796a5b4c3d2e1f001234567"
RESULTS: dict[str, object] = {}
INSTANCE_DOWN = "PdfleetInstanceDown"  # pdfleet/alerts.py


def key_dir(host: str, inventory: Path = ROOT / "inventories/sandbox.py") -> str:
    """The host's DeepGEMM cache for its key: one directory per key under CACHE (pdfleet.serving.deep_gemm_dir)."""
    return plan(load(inventory)).server(host).deep_gemm_dir


@pytest.fixture(scope="module")
def cluster(sandbox):
    pdfleet("sandbox", "down")
    pdfleet("sandbox", "up")
    yield
    print("\npd.py figures:", json.dumps(RESULTS, indent=1))
    pdfleet("sandbox", "down")
    pdfleet("sandbox", "up")


def inventory_with(tmp_path: Path, change) -> str:
    return str(inventory_copy(tmp_path, change))


def run_pd(*extra: str, inventory: str = "inventories/sandbox.py"):
    return pyinfra("-y", "--json", *extra, inventory, "deploys/pd.py", timeout=900)


def hub_requests(revision: str | None = None) -> list[dict]:
    lines = HUB_LOG.read_text().splitlines() if HUB_LOG.exists() else []
    records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if revision is None or r.get("revision") in (revision, None)]


def compile_runs() -> dict[str, int]:
    """Per host: how many times compile_deep_gemm started (the stand-in's own log)."""
    counts = {}
    for host in HOSTS:
        text = on_host(host, "cat /var/log/sglang-standin/launch.jsonl 2>/dev/null || true").stdout
        counts[host] = sum(json.loads(line)["event"] == "compile" for line in text.splitlines() if line.strip())
    return counts


def main_pids() -> dict[str, str]:
    pids = {}
    for host in HOSTS:
        units = ["sglang-decode.service" if host.startswith("decode") else f"sglang-{host}.service"]
        if host == "prefill-0":
            units.append("pdfleet-router.service")
        for unit in units:
            pids[f"{host} {unit}"] = on_host(host, f"systemctl show -p MainPID --value {unit}").stdout.strip()
    return pids


def changed_operations(plan: list[dict]) -> dict[str, list[str]]:
    return {op["name"]: sorted(op["hosts_with_change"]) for op in plan if op["hosts_with_change"]}


def test_fresh_hosts_to_a_verified_endpoint(cluster):
    hub_before = len(hub_requests())
    started = time.monotonic()
    result = run_pd()
    RESULTS["fresh converge seconds"] = round(time.monotonic() - started, 1)
    assert result.returncode == 0, result.stderr[-4000:]
    RESULTS["fresh converge totals"] = json.loads(result.stdout)["results"]["totals"]
    assert "health gate | router http://10.77.0.11:8000: chat completion and tool call answered" in result.stderr
    for instance in ("prefill-0", "prefill-1", "decode"):
        assert f"health gate | {instance}: healthy" in result.stderr
    assert on_host("decode-1", "systemctl is-enabled sglang-decode.service").stdout.strip() == "enabled"
    venv = serving_venv(load(ROOT / "inventories/sandbox.py"))  # the wheel set's own venv under runtime.venvs
    listed = on_host("decode-0", f"/opt/pdfleet/uv/bin/uv pip list --python {venv}/bin/python3").stdout
    assert "sglang" in listed and "0.5.23" in listed and "mooncake-transfer-engine 0.3.13.post1" in listed

    # The WAN once: every file of the checkpoint came from the hub exactly once, to the seed.
    requests = hub_requests()[hub_before:]
    downloads = [r for r in requests if r["kind"] in ("resolve", "cdn") and r["method"] == "GET"]
    stamp = json.loads(on_host("decode-1", f"cat {MODEL}/.pdfleet/verified.json").stdout)
    assert {r["client"] for r in requests} == {SEED}
    fetched = sorted(r["file"] for r in downloads if r["kind"] == "resolve")
    assert fetched == sorted(stamp["files"]), "each file asked of the hub once"
    assert not any(r["auth"] for r in requests if r["kind"] == "cdn"), "the token went to the CDN"
    RESULTS["hub: files fetched, all by the seed"] = len(fetched)
    for host in HOSTS:
        assert json.loads(on_host(host, f"cat {MODEL}/.pdfleet/verified.json").stdout)["files"] == stamp["files"]

    # DeepGEMM once per key: prefill-0 for both prefills, the decode ranks together; prefill-1 copied.
    runs = compile_runs()
    RESULTS["compile runs per host (fresh)"] = runs
    assert runs == {"prefill-0": 1, "prefill-1": 0, "decode-0": 1, "decode-1": 1, "spare-0": 0}  # a spare serves none
    listing = f"cd {CACHE} && find . -type f | sort"
    assert on_host("prefill-1", listing).stdout == on_host("prefill-0", listing).stdout
    assert (
        on_host(
            "prefill-1", f"cmp {key_dir('prefill-1')}/pdfleet.key /etc/pdfleet/prefill-1.deepgemm-key", check=False
        ).returncode
        == 0
    )


def test_second_run_and_dry_run_change_nothing(cluster):
    second = run_pd()
    assert second.returncode == 0, second.stderr[-4000:]
    results = json.loads(second.stdout)["results"]
    RESULTS["second run totals"] = results["totals"]
    changed = [op["name"] for op in results["operations"] if op["success"]]
    assert results["totals"]["success"] == 0, (changed, second.stderr[-3000:])
    dry = pyinfra("--dry", "--json", "inventories/sandbox.py", "deploys/pd.py")
    assert dry.returncode == 0, dry.stderr[-3000:]
    plan = json.loads(dry.stdout)["plan"]
    assert changed_operations(plan) == {}
    RESULTS["dry run conditional operations"] = sum(bool(op["hosts_with_conditional_change"]) for op in plan)


OUTSIDE = "10.77.0.200"  # in client_cidrs, neither a node nor in admin_cidrs (inventories/sandbox.yaml)


@pytest.fixture
def outside():
    """A network namespace on the sandbox bridge at OUTSIDE: a client that is not part of the cluster."""
    name = f"pdfsb-outside-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        veth = f"pdfsbo{os.getpid() % 100000}"
        subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name], check=True)
        subprocess.run(["ip", "link", "set", veth, "master", BRIDGE, "up"], check=True)
        for command in (["link", "set", "lo", "up"], ["link", "set", "eth0", "up"]):
            subprocess.run(["ip", "-n", name, *command], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", f"{OUTSIDE}/24", "dev", "eth0"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)  # its veth goes with it


def probe_from(namespace: str | None, jobs: list[tuple[str, str, int]]) -> list[bool]:
    """Whether a new TCP connection from each (source, target, port) is accepted (1.5 s each, all at once)."""
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    out = subprocess.run(
        [*prefix, sys.executable, "-c", PROBE, json.dumps(jobs)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return json.loads(out)


def test_the_firewall_lets_clients_reach_the_router_only_and_the_cluster_everything(cluster, outside):
    sandbox = load(ROOT / "inventories/sandbox.py")
    for host in HOSTS:
        assert "policy drop" in on_host(host, "nft list table inet pdfleet").stdout
    nodes = {node.name: node.address for node in sandbox.nodes}
    ports = {host: [p for p, _ in firewallplan.claimed_ports(sandbox, host)] + [22] for host in HOSTS}
    jobs = [(OUTSIDE, nodes[host], port) for host in HOSTS for port in ports[host]]
    seen = dict(zip(jobs, probe_from(outside, jobs), strict=True))
    opened = sorted(f"{target}:{port}" for (_, target, port), ok in seen.items() if ok)
    assert opened == ["10.77.0.11:8000"], "from outside the cluster only the router's client port answers"
    RESULTS["firewall: ports probed from outside, open"] = [len(jobs), opened]
    # From outside, through the router (every rank behind it talks to the others through the rules): a client
    # without the key is refused by the router, with the client key it gets its answer.
    key = read_api_keys(sandbox).client
    chat = json.dumps({"model": "DeepSeek-V3.2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})

    def status_from_outside(*header: str) -> str:
        answer = subprocess.run(
            ["ip", "netns", "exec", outside, "curl", "-sS", "-m", "60", "-o", "/dev/null", "-w", "%{http_code}",
             "http://10.77.0.11:8000/v1/chat/completions", "-H", "Content-Type: application/json", *header, "-d", chat],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return answer.stdout or answer.stderr

    without, wrong = status_from_outside(), status_from_outside("-H", "Authorization: Bearer not-the-client-key-0123")
    with_key = status_from_outside("-H", f"Authorization: Bearer {key}")
    RESULTS["firewall: chat from outside, HTTP status without key / wrong key / client key"] = [
        without,
        wrong,
        with_key,
    ]
    assert (without, wrong, with_key) == ("401", "401", "200")


def test_rules_that_would_shut_pdfleet_out_are_refused_before_any_change(cluster, tmp_path):
    before = on_host("spare-0", "nft list table inet pdfleet; sha1sum /etc/pdfleet/firewall.nft").stdout

    def foreign_admins(doc):
        doc["security"]["admin_cidrs"] = ["192.0.2.0/24"]

    result = pyinfra("-y", "--limit", "spare-0", inventory_with(tmp_path, foreign_admins), "deploys/host.py")
    assert result.returncode != 0
    assert "this SSH session comes from 10.77.0.1, which the new rules would not admit" in result.stderr
    assert on_host("spare-0", "nft list table inet pdfleet; sha1sum /etc/pdfleet/firewall.nft").stdout == before


def test_rules_that_lock_pdfleet_out_are_rolled_back_by_the_node_itself(cluster):
    """The safety net's own commands (pdfleet.firewallplan), with a ruleset that drops this machine: new
    connections fail at once, and the node's timer puts the rules file and table back."""
    confirm_secs = 15
    host, address = "spare-0", "10.77.0.15"
    state = "nft list table inet pdfleet; sha1sum /etc/pdfleet/firewall.nft"
    before = on_host(host, state).stdout
    locked = on_host(host, f"cat {firewallplan.RULES_FILE}").stdout.replace("10.77.0.1 }", "192.0.2.1 }")
    assert locked != on_host(host, f"cat {firewallplan.RULES_FILE}").stdout
    script = (
        f"{firewallplan.arm_command(confirm_secs)} && cat > {firewallplan.RULES_FILE} <<'EOF'\n{locked}EOF\n"
        f"{firewallplan.apply_command()}"
    )
    applied = on_host(host, script)
    started = time.monotonic()
    assert applied.returncode == 0
    assert probe_from(None, [("10.77.0.1", address, 22)]) == [False], "the new rules shut this machine out"
    while not probe_from(None, [("10.77.0.1", address, 22)])[0]:
        assert time.monotonic() - started < confirm_secs + 20, "the node did not roll back"
    back_after = round(time.monotonic() - started, 1)
    RESULTS["firewall: locked out, then rolled back by the node after seconds"] = back_after
    assert confirm_secs - 3 <= back_after <= confirm_secs + 10
    assert on_host(host, state).stdout == before, "the rules file and the live table are as they were"
    journal = on_host(host, "journalctl -u pdfleet-firewall-rollback --no-pager -o cat").stdout
    assert "the previous rules are back" in journal


def test_switching_the_firewall_off_opens_the_node_and_on_again_closes_it(cluster, tmp_path, outside):
    host, address = "spare-0", "10.77.0.15"
    leftovers = f"ls {firewallplan.RULES_FILE} {firewallplan.ROLLBACK_SCRIPT} /etc/systemd/system/{firewallplan.UNIT}"
    rules_before = on_host(host, f"sha1sum {firewallplan.RULES_FILE}").stdout
    assert probe_from(outside, [(OUTSIDE, address, 22)]) == [False]

    def firewall_off(doc):
        doc["security"]["firewall"] = False

    off = pyinfra("-y", "--limit", host, inventory_with(tmp_path, firewall_off), "deploys/host.py")
    assert off.returncode == 0, off.stderr[-3000:]
    assert on_host(host, "nft list table inet pdfleet", check=False).returncode != 0
    assert on_host(host, leftovers, check=False).stdout == ""
    assert on_host(host, f"systemctl is-enabled {firewallplan.UNIT}", check=False).stdout.strip() != "enabled"
    assert probe_from(outside, [(OUTSIDE, address, 22)]) == [True], "off: nothing but other tables filters"
    on = pyinfra("-y", "--limit", host, "inventories/sandbox.py", "deploys/host.py")
    assert on.returncode == 0, on.stderr[-3000:]
    assert on_host(host, f"sha1sum {firewallplan.RULES_FILE}").stdout == rules_before
    assert on_host(host, f"systemctl is-enabled {firewallplan.UNIT}").stdout.strip() == "enabled"
    assert probe_from(outside, [(OUTSIDE, address, 22)]) == [False], "on again: closed to outsiders"


def test_the_fact_batch_answers_as_each_command_alone_on_a_converged_host(cluster):
    """roles/prefetch.py runs many file and unit reads as one sha1sum, stat and systemctl show: on a real host
    every answer equals the command's own answer (each run in its own subshell)."""
    commands = json.loads(cache_file("sandbox", "decode-0", "pd").read_text())
    grouped = on_host("decode-0", batch_script(commands))
    alone = on_host("decode-0", batch_script(commands, group=False))
    fast = parse_batch(commands, grouped.stdout.splitlines())
    slow = parse_batch(commands, alone.stdout.splitlines())
    assert set(fast) == set(slow) == set(commands)
    for command in commands:
        assert (fast[command][0], fast[command][1].stdout_lines) == (slow[command][0], slow[command][1].stdout_lines)
    shows = sum("systemctl show" in command for command in commands)
    assert shows >= 5 and grouped.stdout.count("@@pdfleet-prefetch group show") <= 2
    RESULTS["fact batch: commands, of them systemctl show"] = [len(commands), shows]


def test_one_env_value_of_the_decode_is_refused_then_applied_with_the_outage_switch(cluster, tmp_path):
    """The decode is the only decode instance: restarting it is an outage. --dry says so, a real run refuses before
    any change, and with --data pdfleet_allow_outage=decode it restarts both ranks and reports the outage."""

    def change(doc):
        [decode] = [i for i in doc["instances"] if i["name"] == "decode"]
        decode.setdefault("env", {})["MC_TE_METRIC"] = "true"

    inventory = inventory_with(tmp_path, change)
    dry = pyinfra("--dry", "--diff", "--json", inventory, "deploys/pd.py")
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = changed_operations(json.loads(dry.stdout)["plan"])
    RESULTS["env change: operations with a change in --dry"] = planned
    assert planned == {
        "Units | serving environment": ["decode-0", "decode-1"],
        "Restart | decode: running its current inputs, instances in turn": ["decode-0"],
    }
    assert "it is the only decode instance: restarting it is an outage" in dry.stderr
    shown = pyinfra("--dry", "--diff", inventory, "deploys/pd.py")
    assert shown.returncode == 0, shown.stderr[-3000:]
    diff_lines = [line.strip() for line in (shown.stdout + shown.stderr).splitlines() if line.strip().startswith("+")]
    RESULTS["env change: lines added in --diff"] = diff_lines
    assert any(line.endswith("MC_TE_METRIC=true") for line in diff_lines), diff_lines

    before = main_pids()
    env_before = on_host("decode-0", "cat /etc/pdfleet/decode.env").stdout
    refused = run_pd(inventory=inventory)
    assert refused.returncode != 0
    assert "--data pdfleet_allow_outage=decode" in refused.stderr and "Nothing was changed" in refused.stderr
    assert main_pids() == before and on_host("decode-0", "cat /etc/pdfleet/decode.env").stdout == env_before

    result = run_pd("--data", "pdfleet_allow_outage=decode", inventory=inventory)
    assert result.returncode == 0, result.stderr[-4000:]
    after = main_pids()
    restarted = sorted(name for name in before if before[name] != after[name])
    RESULTS["env change: units restarted"] = restarted
    assert restarted == ["decode-0 sglang-decode.service", "decode-1 sglang-decode.service"]
    outage = [line for line in result.stderr.splitlines() if "OUTAGE of the decode role" in line]
    RESULTS["env change: outage reported"] = outage
    assert len(outage) == 1
    env = on_host("decode-1", "cat /proc/$(systemctl show -p MainPID --value sglang-decode.service)/environ")
    assert "MC_TE_METRIC=true" in env.stdout.replace("\0", "\n")
    again = run_pd(inventory=inventory)
    assert json.loads(again.stdout)["results"]["totals"]["success"] == 0


def share_clients(host: str, since: int) -> set[str]:
    """The addresses that copied `host`'s weights since `since`: rsyncd's own log lines in the journal, for the
    whole module ("rsync on weights/ from ... (ADDRESS)"; reading a stamp names the stamp's file instead)."""
    log = on_host(host, f"journalctl -u pdfleet-share.service --since @{since} -o cat --no-pager").stdout
    copies = [line for line in log.splitlines() if line.startswith("rsync on weights/ from ")]
    return {line.rsplit("(", 1)[1].rstrip(")") for line in copies}


def test_a_new_revision_is_staged_once_and_compiled_once_per_key(cluster, tmp_path):
    def new_revision_one_copy_per_source(doc):
        doc["model"]["revision"] = NEW_REVISION
        # Waves: prefill-1 from the seed, then decode-0 from the seed and decode-1 from prefill-1.
        doc.setdefault("share", {})["copies_per_source"] = 1

    inventory = inventory_with(tmp_path, new_revision_one_copy_per_source)
    since = int(on_host("prefill-0", "date +%s").stdout)
    hub_before = len(hub_requests())
    compiled_before = compile_runs()
    started = time.monotonic()
    # Every instance restarts on the new revision: the prefills in turn, the decode (the last of its role) with the
    # outage switch.
    result = run_pd("--data", "pdfleet_allow_outage=decode", inventory=inventory)
    RESULTS["revision change seconds"] = round(time.monotonic() - started, 1)
    assert result.returncode == 0, result.stderr[-4000:]
    requests = hub_requests()[hub_before:]
    assert {r["client"] for r in requests} == {SEED}
    fetched = sorted(r["file"] for r in requests if r["kind"] == "resolve" and r["method"] == "GET")
    stamp = json.loads(on_host("prefill-1", f"cat {MODEL}/.pdfleet/verified.json").stdout)
    assert stamp["revision"] == NEW_REVISION
    # Only what differs between the two revisions crossed the WAN, each file once (the stand-in hub's checkpoint).
    old, new = (checkpoint("deepseek-ai/DeepSeek-V3.2", rev) for rev in (REVISION, NEW_REVISION))
    assert fetched == sorted(name for name in new if old.get(name) != new[name])
    assert sorted(stamp["files"]) == sorted(new)
    # Each copy came from its wave's source: no node's share served more than one copy in a wave.
    clients = {host: share_clients(host, since) for host in HOSTS}
    RESULTS["revision change: weights copies served per node"] = {host: sorted(c) for host, c in clients.items()}
    assert clients == {"prefill-0": {"10.77.0.12", "10.77.0.13", "10.77.0.15"}, "prefill-1": {"10.77.0.14"},
                       "decode-0": set(), "decode-1": set(), "spare-0": set()}  # fmt: skip
    runs = compile_runs()
    new_runs = {host: runs[host] - compiled_before[host] for host in HOSTS}
    RESULTS["revision change: hub files fetched"] = len(fetched)
    RESULTS["revision change: compile runs per host"] = new_runs
    assert new_runs == {"prefill-0": 1, "prefill-1": 0, "decode-0": 1, "decode-1": 1, "spare-0": 0}
    key = on_host("prefill-1", "cat /etc/pdfleet/prefill-1.deepgemm-key").stdout
    assert NEW_REVISION in key
    assert on_host("prefill-1", f"cat {key_dir('prefill-1', inventory)}/pdfleet.key").stdout == key
    # the previous key's cache stays beside it (runtime.keep 2): going back compiles nothing
    assert on_host("prefill-1", f"cat {key_dir('prefill-1')}/pdfleet.key", check=False).stdout.strip()
    for instance in ("prefill-0", "prefill-1", "decode"):
        assert f"health gate | {instance}: healthy" in result.stderr


def test_a_killed_server_is_brought_back_by_systemd(cluster):
    before = on_host("prefill-1", "systemctl show -p MainPID --value sglang-prefill-1.service").stdout.strip()
    restarts_before = int(on_host("prefill-1", "systemctl show -p NRestarts --value sglang-prefill-1.service").stdout)
    on_host("prefill-1", "systemctl kill -s KILL sglang-prefill-1.service")
    deadline = time.monotonic() + 120
    while True:
        state = on_host("prefill-1", "systemctl is-active sglang-prefill-1.service", check=False).stdout.strip()
        pid = on_host("prefill-1", "systemctl show -p MainPID --value sglang-prefill-1.service").stdout.strip()
        if state == "active" and pid not in (before, "0"):
            break
        assert time.monotonic() < deadline, f"not back: {state} {pid}"
        time.sleep(2)
    restarts = int(on_host("prefill-1", "systemctl show -p NRestarts --value sglang-prefill-1.service").stdout)
    assert restarts == restarts_before + 1


PROMETHEUS = "http://10.77.0.11:9090"  # monitoring.node defaults to the router's node, prefill-0
GRAFANA = "http://10.77.0.11:3000"


def get_json(url: str, timeout: float = 5, auth: str | None = None):
    request = urllib.request.Request(url)
    if auth:  # Grafana's first-start administrator (admin:admin until changed: docs/monitoring.md)
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def firing(alertname: str) -> list[dict]:
    alerts = get_json(f"{PROMETHEUS}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def test_prometheus_scrapes_every_target_with_the_inventory_labels_and_grafana_has_the_dashboards(cluster):
    """The real Prometheus (Debian's) on prefill-0 scrapes the real router, the stand-in engines (the pinned
    version's metric names), the real node exporter and the stand-in DCGM exporter on every node."""
    cluster_model = load(ROOT / "inventories/sandbox.py")
    expected = {(t.job, t.labels["node"]) for t in monitoringplan.targets(cluster_model)}
    deadline = time.monotonic() + 60
    while True:
        active = get_json(f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]
        health = {(t["labels"]["job"], t["labels"]["node"]): t["health"] for t in active}
        if set(health) == expected and set(health.values()) == {"up"}:
            break
        assert time.monotonic() < deadline, {k: v for k, v in health.items() if v != "up"} or set(health) ^ expected
        time.sleep(1)
    RESULTS["prometheus: targets up"] = len(health)
    decode_1 = next(t["labels"] for t in active if t["labels"]["job"] == "sglang" and t["labels"]["node"] == "decode-1")
    assert {k: decode_1[k] for k in ("cluster", "instance", "role", "rank")} == {
        "cluster": "sandbox",
        "instance": "decode",
        "role": "decode",
        "rank": "1",
    }
    query = urllib.parse.quote("count by (instance, role) (sglang:num_running_reqs)")
    series = get_json(f"{PROMETHEUS}/api/v1/query?query={query}")["data"]["result"]
    # one series per DP rank, each from the node its scheduler runs on: 8 per prefill, 8 + 8 for the decode
    assert {(s["metric"]["instance"], s["metric"]["role"], s["value"][1]) for s in series} == {
        ("prefill-0", "prefill", "8"),
        ("prefill-1", "prefill", "8"),
        ("decode", "decode", "16"),
    }
    rules = get_json(f"{PROMETHEUS}/api/v1/rules")["data"]["groups"]
    RESULTS["prometheus: rules loaded"] = sum(len(g["rules"]) for g in rules)
    assert get_json(f"{GRAFANA}/api/health")["database"] == "ok"
    found = get_json(f"{GRAFANA}/api/search", auth="admin:admin")
    titles = sorted(d["uid"] for d in found if d["type"] == "dash-db")
    assert titles == sorted(json.loads(text)["uid"] for text in dashboards(cluster_model).values())


def test_an_alert_fires_when_a_server_is_killed_and_clears_when_systemd_brings_it_back(cluster):
    assert not firing(INSTANCE_DOWN)
    on_host("prefill-1", "systemctl kill -s KILL sglang-prefill-1.service")
    killed = time.monotonic()
    deadline = killed + 60
    while not (alerts := firing(INSTANCE_DOWN)):
        assert time.monotonic() < deadline, "no alert while prefill-1 was down"
        time.sleep(1)
    RESULTS["alert: fired after seconds"] = round(time.monotonic() - killed, 1)
    assert [(a["labels"]["instance"], a["labels"]["role"]) for a in alerts] == [("prefill-1", "prefill")]
    deadline = time.monotonic() + 180  # systemd's RestartSec=30, the start, then a scrape and a rule pass
    while firing(INSTANCE_DOWN):
        assert time.monotonic() < deadline, "the alert did not clear"
        time.sleep(1)
    RESULTS["alert: cleared after seconds (RestartSec=30 included)"] = round(time.monotonic() - killed, 1)
    # the alert clears with the first good scrape; the unit is "active" once its start check saw /health answer
    deadline = time.monotonic() + 120
    while (
        state := on_host("prefill-1", "systemctl is-active sglang-prefill-1.service", check=False).stdout.strip()
    ) != "active":
        assert time.monotonic() < deadline and state == "activating", state
        time.sleep(1)


def test_pdfleet_bench_runs_every_scenario_through_the_router_from_the_routers_node(cluster, tmp_path):
    """The plumbing of `pdfleet bench` (not the numbers: the engines are stand-ins): the real, pinned
    sglang.bench_serving installed on prefill-0 from the index, each scenario scaled down through the real router,
    the sandbox's real tokenizer (under model.path), the table, the records and the chart back here."""
    from pdfleet.sandbox.benchdata import main as benchdata

    sharegpt = tmp_path / "sharegpt.json"
    benchdata(["sharegpt", str(sharegpt), "300"])
    out = tmp_path / "run"
    started = time.monotonic()
    run = pdfleet(
        "bench", "inventories/sandbox.py", "--num-prompts-scale", "0.01", "--upload-dataset", str(sharegpt),
        "--out", str(out), timeout=900, check=False,
    )  # fmt: skip
    RESULTS["bench: five scaled scenarios, seconds"] = round(time.monotonic() - started, 1)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "[5/5 generation-heavy" in run.stdout and "published" in run.stdout
    results = json.loads((out / "results.json").read_text())
    done = {s["name"]: (s["status"], s["measured"]["completed"], s["prompts"]) for s in results["scenarios"]}
    assert done == {
        "sharegpt": ("done", 10, 10),
        "medium": ("done", 5, 5),
        "long": ("done", 5, 5),
        "very-long": ("done", 1, 1),
        "generation-heavy": ("done", 1, 1),
    }
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_instance_is_named_by_the_gate_with_its_journal(cluster, tmp_path):
    def misconfigure(doc):
        [prefill] = [i for i in doc["instances"] if i["name"] == "prefill-1"]
        prefill["extra_args"] = ["--model-path", "/models/elsewhere"]  # appended: the last one wins

    # The earlier tests left the cluster on another revision: the decode (the last of its role) rolls back too.
    result = run_pd("--data", "pdfleet_allow_outage=decode", inventory=inventory_with(tmp_path, misconfigure))
    assert result.returncode != 0
    # Its rolling restart stops at it: out of the router, named with its journal; prefill-0 keeps serving.
    assert "prefill-1: sglang-prefill-1.service on prefill-1 is auto-restart after its restart" in result.stderr
    assert "it stays out of the router" in result.stderr
    assert "--model-path /models/elsewhere does not exist" in result.stderr  # from its journal
    restored = run_pd("--data", "pdfleet_allow_outage=decode")
    assert restored.returncode == 0, restored.stderr[-3000:]
    # Started again with the inventory's inputs, then back into the router, which it had been taken out of.
    assert "Restart | prefill-1: ready in the router" in restored.stderr


def test_a_node_whose_compiling_peer_is_down_compiles_its_own_cache(cluster, tmp_path):
    """prefill-1 rebuilt (no cache, never started) while prefill-0, whose cache it copies, is down: its share is
    stopped, so it refuses connections. The copy gives up after share.silent_timeout and prefill-1 compiles."""
    inventory = inventory_with(tmp_path, lambda doc: doc.setdefault("share", {}).update(silent_timeout=5))
    on_host("prefill-0", "systemctl stop pdfleet-share.service")
    try:
        on_host("prefill-1", f"systemctl stop sglang-prefill-1.service && rm -rf {CACHE}/* /var/lib/pdfleet/applied/*")
        compiled_before = compile_runs()
        started = time.monotonic()
        result = run_pd("--limit", "prefill-1", inventory=inventory)
        RESULTS["copy source down: seconds"] = round(time.monotonic() - started, 1)
        assert result.returncode == 0, result.stderr[-4000:]
        assert (
            "DeepGEMM | the DeepGEMM cache's source prefill-0 (10.77.0.11:8730) did not answer for 5 s; "
            "this node compiles its own cache when its server starts" in result.stderr
        )
        key = on_host("prefill-1", "cat /etc/pdfleet/prefill-1.deepgemm-key").stdout
        deadline = time.monotonic() + 120
        while on_host("prefill-1", f"cat {key_dir('prefill-1', inventory)}/pdfleet.key", check=False).stdout != key:
            assert time.monotonic() < deadline, "prefill-1 did not compile its own cache"
            time.sleep(2)
        runs = compile_runs()
        assert {host: runs[host] - compiled_before[host] for host in HOSTS} == {
            "prefill-0": 0,
            "prefill-1": 1,
            "decode-0": 0,
            "decode-1": 0,
            "spare-0": 0,
        }
        assert "this node compiles its own cache" in on_host("prefill-1", "journalctl -t pdfleet -n 20").stdout
    finally:
        on_host("prefill-0", "systemctl start pdfleet-share.service")
    # With prefill-0 back, a plain run finds the cluster converged and healthy (prefill-1's own cache is current).
    restored = run_pd()
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert json.loads(restored.stdout)["results"]["totals"]["error"] == 0
