"""deploys/pd.py from fresh sandbox hosts: host layer, runtime (uv and the pinned wheel sets from the image's
package index), verified units, the real smg router, then the health gate through it (a chat completion and a
tool call answered by the stand-in engine); a second run and a --dry run with nothing to change; a killed server
brought back by systemd; a failing instance named by the gate with its journal.

The weights role is not written yet: the model directory is made by the test, as a staged checkpoint would be."""

from __future__ import annotations

import json
import time

import pytest

from tests.sandbox.conftest import on_host, pdfleet, pyinfra

HOSTS = ["prefill-0", "prefill-1", "decode-0", "decode-1"]
MODEL = "/models/DeepSeek-V3.2"
RESULTS: dict[str, object] = {}


@pytest.fixture(scope="module")
def cluster(sandbox):
    pdfleet("sandbox", "down")
    pdfleet("sandbox", "up")
    for host in HOSTS:
        on_host(host, f"mkdir -p {MODEL}")
    yield
    print("\npd.py figures:", json.dumps(RESULTS, indent=1))
    pdfleet("sandbox", "down")
    pdfleet("sandbox", "up")


def run_pd(*extra: str, inventory: str = "inventories/sandbox.py"):
    return pyinfra("-y", "--json", *extra, inventory, "deploys/pd.py", timeout=900)


def test_fresh_hosts_to_a_verified_endpoint(cluster):
    started = time.monotonic()
    result = run_pd()
    RESULTS["fresh converge seconds"] = round(time.monotonic() - started, 1)
    assert result.returncode == 0, result.stderr[-4000:]
    RESULTS["fresh converge totals"] = json.loads(result.stdout)["results"]["totals"]
    assert "health gate | router http://10.77.0.11:8000: chat completion and tool call answered" in result.stderr
    for instance in ("prefill-0", "prefill-1", "decode"):
        assert f"health gate | {instance}: healthy" in result.stderr
    assert on_host("decode-1", "systemctl is-enabled sglang-decode.service").stdout.strip() == "enabled"
    packages = on_host("decode-0", "/opt/pdfleet/sglang/bin/python3 -m pip --version || true").stdout
    assert "pip" not in packages  # a uv venv: no pip inside, the wheel set only
    listed = on_host("decode-0", "/opt/pdfleet/uv/bin/uv pip list --python /opt/pdfleet/sglang/bin/python3").stdout
    assert "sglang" in listed and "0.5.23" in listed and "mooncake-transfer-engine 0.3.13.post1" in listed


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
    assert [op["name"] for op in plan if op["hosts_with_change"]] == []
    RESULTS["dry run conditional operations"] = sum(bool(op["hosts_with_conditional_change"]) for op in plan)


def test_a_killed_server_is_brought_back_by_systemd(cluster):
    before = on_host("prefill-1", "systemctl show -p MainPID --value sglang-prefill-1.service").stdout.strip()
    on_host("prefill-1", "systemctl kill -s KILL sglang-prefill-1.service")
    deadline = time.monotonic() + 120
    while True:
        state = on_host("prefill-1", "systemctl is-active sglang-prefill-1.service", check=False).stdout.strip()
        pid = on_host("prefill-1", "systemctl show -p MainPID --value sglang-prefill-1.service").stdout.strip()
        if state == "active" and pid not in (before, "0"):
            break
        assert time.monotonic() < deadline, f"not back: {state} {pid}"
        time.sleep(2)
    restarts = on_host("prefill-1", "systemctl show -p NRestarts --value sglang-prefill-1.service").stdout.strip()
    assert restarts == "1"


def test_a_failing_instance_is_named_by_the_gate_with_its_journal(cluster):
    on_host("prefill-1", f"mv {MODEL} {MODEL}.away && systemctl restart --no-block sglang-prefill-1.service")
    try:
        result = run_pd()
        assert result.returncode != 0
        assert "health gate: instance 'prefill-1' (prefill-1) did not become healthy" in result.stderr
        assert f"--model-path {MODEL} does not exist" in result.stderr  # from its journal
    finally:
        on_host("prefill-1", f"mv {MODEL}.away {MODEL} && systemctl restart --no-block sglang-prefill-1.service")
