"""pdfleet-router-members (pdfleet/onhost/router_members.py): the router's worker list kept equal to the rendered
membership, and drains that wait for the engine's own queues.

The decision (`plan`) and the load parsing on their own; then the real thing on loopback: the real smg router,
three stand-in engines (pdfleet/sandbox/standins/sglang), the agent as the router's node runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pdfleet.inventory import load
from pdfleet.onhost import router_members as agent
from pdfleet.render import members_file
from pdfleet.serving import plan
from tests.test_standin_sglang import LOOPBACK, PARSERS, clean_env, free_port, http, start, stop, wait_http

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "pdfleet/onhost/router_members.py"
STANDIN = ROOT / "pdfleet/sandbox/standins/sglang"


def members(drained=None) -> dict:
    serving = plan(load(ROOT / "inventories/prod.py"))
    return json.loads(members_file(serving, drained).content)


def registered(url: str, status: str = "ready", spec: dict | None = None, worker_id: str = "id") -> dict:
    labels = {agent.LABEL_SPEC: agent.spec_digest(spec)} if spec is not None else {}
    return {"id": worker_id, "url": url, "status": status, "labels": labels}


# What the router adds to a PD request (a prefill refuses one without a bootstrap room, as SGLang does).
PD_FIELDS = {"bootstrap_host": "2.2.2.2", "bootstrap_port": 8998, "bootstrap_room": 7}
P0, P1, D = "http://10.10.0.11:8055", "http://10.10.0.12:8055", "http://10.10.0.13:8055"


def specs(doc: dict) -> dict[str, dict]:
    return {w["spec"]["url"]: w["spec"] for w in doc["workers"]}


# ----- the decision -----


def test_an_empty_router_gets_every_healthy_worker_with_its_labels():
    doc = members()
    actions = agent.plan(doc, [], {}, healthy=lambda url: url != P1, now=100.0)
    assert [(a[0], a[1]) for a in actions] == [("add", P0), ("add", D)]  # prefill-1's engine does not answer yet
    body = actions[0][2]
    assert body["labels"] == {"pdfleet.instance": "prefill-0", "pdfleet.spec": agent.spec_digest(specs(doc)[P0])}
    assert body["resilience"] == {"cb_failure_threshold": 1, "cb_timeout_secs": 5} and body["bootstrap_port"] == 8998


def test_a_converged_router_needs_nothing_and_a_registration_in_progress_is_not_repeated():
    doc = members()
    current = [registered(url, spec=spec) for url, spec in specs(doc).items()]
    assert agent.plan(doc, current, {}, healthy=lambda url: True, now=100.0) == []
    grace = agent.REGISTRATION_GRACE
    just_now = {D: 100.0 - grace / 2}  # POSTed, not listed yet: smg is still registering it
    assert agent.plan(doc, current[:2], just_now, healthy=lambda url: True, now=100.0) == []
    lost = {D: 100.0 - grace - 1}  # POSTed, still not listed after the grace: smg dropped it, POST again
    assert agent.plan(doc, current[:2], lost, healthy=lambda url: True, now=100.0)[0][:2] == ("add", D)


def test_drained_failed_foreign_and_respecified_workers_are_removed():
    doc = members({"prefill-1": {"by": "operator", "reason": "x", "since": "t"}})
    current = [
        registered(P0, status="failed", spec=specs(doc)[P0], worker_id="a"),
        registered(P1, spec=specs(doc)[P1], worker_id="b"),
        registered(D, status="not_ready", spec={"url": D, "worker_type": "decode"}, worker_id="c"),  # older spec
        registered("http://10.10.0.99:8055", worker_id="d"),
    ]
    actions = agent.plan(doc, current, {}, healthy=lambda url: True, now=100.0)
    assert [(a[0], a[1], a[3]) for a in actions] == [
        ("delete", "a", "failed (smg never probes a failed worker again)"),
        ("delete", "b", "drained"),
        ("delete", "c", "registered with another spec"),
        ("delete", "d", "not in the membership"),
    ]


def test_a_changed_spec_re_registers_one_worker_of_a_role_at_a_time_while_the_others_serve():
    doc = members()
    old = {url: {**spec, "resilience": {"cb_failure_threshold": 9}} for url, spec in specs(doc).items()}
    current = [registered(url, spec=spec, worker_id=url[-7:-5]) for url, spec in old.items()]
    actions = agent.plan(doc, current, {}, healthy=lambda url: True, now=100.0)
    # prefill-0 first (prefill-1 serves meanwhile); the decode, alone in its role, keeps its old spec while it
    # serves (taking it out would stop the endpoint): it gets the new one when registered again after a restart.
    assert [(a[0], a[2]) for a in actions] == [("delete", P0)]
    current[0]["status"] = "draining"
    assert agent.plan(doc, current, {}, healthy=lambda url: True, now=100.0) == []  # prefill-1 waits its turn


def test_a_worker_still_draining_is_re_added_only_once_smg_forgot_it():
    doc = members()
    current = [registered(url, spec=spec) for url, spec in specs(doc).items()]
    current[1]["status"] = "draining"
    assert agent.plan(doc, current, {}, healthy=lambda url: True, now=100.0) == []


def test_in_flight_reads_both_load_endpoints():
    assert agent.in_flight({"loads": [{"num_running_reqs": 2, "num_waiting_reqs": 1}, {"num_running_reqs": 3}]}) == 6
    assert agent.in_flight([{"num_reqs": 4, "num_waiting_reqs": 2}, {"num_reqs": 1, "num_waiting_reqs": 0}]) == 5
    with pytest.raises(ValueError):
        agent.in_flight({"detail": "Not Found"})


def test_an_engine_of_the_other_version_is_read_at_its_own_load_endpoint():
    """A drain before a version change: the membership names the new version's load endpoint, the engine still
    runs the old one. Read at the other endpoint, not waited for until the drain's bound."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class OldEngine(BaseHTTPRequestHandler):  # 0.5.6.post2: /get_load only
        def do_GET(self):  # noqa: N802
            body = b'[{"dp_rank": 0, "num_reqs": 3, "num_waiting_reqs": 1}]' if self.path == "/get_load" else b"{}"
            self.send_response(200 if self.path == "/get_load" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), OldEngine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://{LOOPBACK}:{server.server_address[1]}"
        assert agent.engine_in_flight(url, "/v1/loads") == 3
        assert agent.engine_in_flight(url, "/get_load") == 3
    finally:
        server.shutdown()
        server.server_close()
    assert agent.engine_in_flight(url, "/v1/loads") is None  # nothing answers


def test_the_agent_writes_the_bytes_the_render_writes():
    """A converge after a drain and an undrain finds the file it would write: no change."""
    drained = {"prefill-1": {"by": "operator", "reason": "disk", "since": "2026-12-06T03:00:00Z"}}
    assert (
        agent.members_json(members(drained)) == members_file(plan(load(ROOT / "inventories/prod.py")), drained).content
    )


# ----- the real router on loopback -----

SMG = PARSERS / "smg-venv/bin/smg"


@pytest.fixture
def cluster(tmp_path):
    """Two prefill and one decode stand-in engines, the real smg router with pdfleet's arguments, the membership."""
    if not SMG.exists():
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(f"{SMG} missing: run .ci/install-parsers.sh")
        pytest.skip("smg is not installed (.ci/install-parsers.sh)")
    log = tmp_path / "engines.jsonl"
    env = clean_env(PYTHONPATH=str(STANDIN), SGLANG_STANDIN_LOG=str(log), SGLANG_STANDIN_HEALTH_GENERATE_SECONDS="0")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "deepseek_v32", "max_position_embeddings": 4096}))
    procs, workers = [], []
    for name, role in (("prefill-0", "prefill"), ("prefill-1", "prefill"), ("decode", "decode")):
        port, bootstrap = free_port(), free_port()
        argv = [sys.executable, "-m", "sglang.launch_server", "--model-path", str(model), "--served-model-name",
                "DeepSeek-V3.2", "--host", LOOPBACK, "--port", str(port), "--disaggregation-mode", role]  # fmt: skip
        spec = {"url": f"http://{LOOPBACK}:{port}", "worker_type": role}
        if role == "prefill":
            argv += ["--disaggregation-bootstrap-port", str(bootstrap)]
            spec["bootstrap_port"] = bootstrap
        threshold = 1 if role == "prefill" else 1_000_000_000
        spec["resilience"] = {"cb_failure_threshold": threshold, "cb_timeout_secs": 5}
        procs.append(start(argv, {**env, "SGLANG_STANDIN_LATENCY_MS": "1500" if name == "prefill-1" else "0"},
                           tmp_path, name))  # fmt: skip
        workers.append({"instance": name, "role": role, "load_path": "/v1/loads", "spec": spec})
    router_port = free_port()
    serving = plan(load(ROOT / "inventories/prod.py"))
    args = list(serving.router.router_args)
    values = {"--port": str(router_port), "--host": LOOPBACK, "--prometheus-host": LOOPBACK,
              "--prometheus-port": str(free_port())}  # fmt: skip
    args = [values.get(args[i - 1], a) if i else a for i, a in enumerate(args)]
    router = start([str(SMG), "launch", *args], env, tmp_path, "router")
    wait_http(router_port, "/workers", [router, *procs], timeout=30)
    doc = {"router": f"http://{LOOPBACK}:{router_port}", "interval_secs": 1, "drain_timeout_secs": 30,
           "workers": workers, "drained": {}}  # fmt: skip
    path = tmp_path / "router-members.json"
    path.write_text(agent.members_json(doc))
    service = start([sys.executable, str(AGENT), "run", str(path)], env, tmp_path, "agent")
    try:
        yield {"path": path, "port": router_port, "procs": procs, "router": router, "workers": workers,
               "env": env, "tmp": tmp_path, "service": service}  # fmt: skip
    finally:
        for proc in (service, router, *procs):
            stop(proc)


def router_view(port: int) -> dict[str, str]:
    status, body = http("GET", port, "/workers")
    assert status == 200
    return {w["labels"].get("pdfleet.instance"): w["status"] for w in json.loads(body)["workers"]}


def wait_view(port: int, wanted: dict, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (seen := router_view(port)) != wanted:
        assert time.monotonic() < deadline, f"router: {seen}, expected {wanted}"
        time.sleep(0.2)


def run_agent(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(AGENT), *args], capture_output=True, text=True, timeout=timeout)


def test_the_agent_fills_the_router_and_drains_after_the_requests_in_flight(cluster):
    port, path = cluster["port"], str(cluster["path"])
    everyone = {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"}
    wait_view(port, everyone)

    # A request in flight on prefill-1 (1.5 s): the drain takes it out of the router at once, then waits for it.
    prefill_1 = cluster["workers"][1]["spec"]["url"]
    body = {"model": "DeepSeek-V3.2", "text": "hello", "sampling_params": {"max_new_tokens": 2}, **PD_FIELDS}
    answer: dict = {}

    def direct():
        answer["r"] = http("POST", int(prefill_1.rsplit(":", 1)[1]), "/generate", body)

    thread = threading.Thread(target=direct)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    result = run_agent("drain", path, "prefill-1", "--reason", "disk replacement")
    took = time.monotonic() - started
    thread.join(10)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prefill-1: out of the router" in result.stdout and "no request in flight" in result.stdout
    assert 0.8 < took < 10  # it waited for the request, which then finished
    assert answer["r"][0] == 200
    assert router_view(port).get("prefill-1") in (None, "draining")
    assert json.loads(cluster["path"].read_text())["drained"]["prefill-1"]["reason"] == "disk replacement"

    # The service keeps it out; undrain puts it back, ready.
    time.sleep(2.5)
    assert router_view(port).get("prefill-1") in (None, "draining")
    result = run_agent("undrain", path, "prefill-1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prefill-1: ready in the router" in result.stdout
    assert router_view(port) == everyone
    assert json.loads(cluster["path"].read_text())["drained"] == {}


def test_a_rolling_undrain_leaves_an_operator_drain_alone_and_the_bound_is_reported(cluster):
    port, path = cluster["port"], str(cluster["path"])
    wait_view(port, {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"})
    assert run_agent("drain", path, "prefill-0", "--by", "operator").returncode == 0
    result = run_agent("undrain", path, "prefill-0", "--by", "rolling")
    assert result.returncode == 0 and "stays drained: operator drained it" in result.stdout
    assert json.loads(cluster["path"].read_text())["drained"]["prefill-0"]["by"] == "operator"

    # A drain bounded below the time a request takes: exit 3, and it says what is left.
    prefill_1 = int(cluster["workers"][1]["spec"]["url"].rsplit(":", 1)[1])
    body = {"model": "DeepSeek-V3.2", "text": "hello", "sampling_params": {"max_new_tokens": 2}, **PD_FIELDS}
    thread = threading.Thread(target=lambda: http("POST", prefill_1, "/generate", body))
    thread.start()
    time.sleep(0.3)
    result = run_agent("drain", path, "prefill-1", "--timeout", "0.5")
    thread.join(10)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "prefill-1: 1 request(s) still in flight after 0 s (router.drain_timeout_secs)" in result.stdout


def test_a_restarted_router_is_filled_again_by_the_service(cluster):
    port = cluster["port"]
    everyone = {"prefill-0": "ready", "prefill-1": "ready", "decode": "ready"}
    wait_view(port, everyone)
    router = cluster["router"]
    os.kill(router.pid, signal.SIGKILL)
    router.wait(5)
    again = start(router.args, cluster["env"], cluster["tmp"], "router-again")
    try:
        started = time.monotonic()
        wait_http(port, "/workers", [again], timeout=20)
        wait_view(port, everyone, timeout=20)
        assert time.monotonic() - started < 10
    finally:
        stop(again)
