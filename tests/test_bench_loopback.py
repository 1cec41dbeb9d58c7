"""`pdfleet bench`'s plumbing end to end on loopback: the real client, the real router, stand-in engines.

pdfleet's prod topology of stand-in engines (2 prefills, a 2-node decode) and the real smg router with pdfleet's
own arguments run on 127.0.0.1 (tests/test_standin_sglang.py's fixtures); the bench client is the exact pinned set
the router's node gets (.cache/parsers/bench-venv, built by .ci/install-parsers.sh from pdfleet/benchclient.py),
with a real tokenizer (pdfleet/sandbox/benchdata.py, loaded by the client's transformers) and a small ShareGPT
file. Every scenario runs scaled down through the plan's own command line (the runner, the environment,
bench_serving's argv), executed by roles/bench.py's scenario step through pyinfra's @local connector, as on the
node over SSH.
Then the results are read back as `pdfleet bench` reads them: the table, results.json and chart.png.

Nothing leaves the machine: the client is offline (HF_*_OFFLINE, every dataset a path) and any HTTP to another
address would go to a dead proxy on 127.0.0.1:9.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.context import ctx_host, ctx_state

from pdfleet import bench, benchplan
from pdfleet.inventory import load
from pdfleet.sandbox import benchdata
from pdfleet.serving import plan as serving_plan
from roles.bench import _scenario
from tests.test_standin_sglang import (  # noqa: F401  (fixtures: the stand-in wheel, prod's engines on loopback)
    LOOPBACK,
    PARSERS,
    PROD,
    events,
    free_port,
    http,
    prod_cluster,
    replace_values,
    standin,
    start_router,
    stop,
    wait_http,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH_PYTHON = PARSERS / "bench-venv/bin/python"
RUNNER = ROOT / "pdfleet/benchrun.py"
SCALE = 0.016  # sharegpt 16, medium 8, long 8, very-long 2, generation-heavy 2, short 16 prompts

pytestmark = pytest.mark.parsers


def _need(path: Path, what: str) -> None:
    if not path.exists():
        message = f"{path} is missing: run .ci/install-parsers.sh ({what})"
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(message)
        pytest.skip(message)


# The router's client key in these tests (smg --api-key): a scenario that does not send it gets 401 only.
BENCH_KEY = "bench-loopback-key-0123456789abcdef"


@pytest.fixture(scope="module")
def router(prod_cluster, standin):  # noqa: F811
    """The real smg router in PD mode with pdfleet's arguments, the stand-ins registered as the membership agent
    registers them; yields its port once every worker is healthy."""
    smg = standin["smg"]
    _need(smg, "the smg router")
    proc, port, _ = start_router(prod_cluster, smg, "bench-router", key=BENCH_KEY)
    try:
        yield port
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """The model directory with the generated tokenizer, and a small ShareGPT file."""
    root = tmp_path_factory.mktemp("bench-inputs")
    benchdata.write_tokenizer(root / "model")
    sharegpt = benchdata.write_sharegpt(root / "sharegpt.json", conversations=40)
    return {"model": root / "model", "sharegpt": sharegpt}


def _local_host():
    state = State(Inventory((["@local"], {})), Config())
    connect_all(state)
    return state, state.inventory.get_host("@local")


def _run(bench_plan: benchplan.BenchPlan, out: Path, monkeypatch) -> list[benchplan.Outcome]:
    """Every scenario of the plan through roles/bench.py's scenario step on @local; the outcomes read back."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # anything not on loopback fails at once
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    state, host = _local_host()
    text = bench_plan.to_json()
    with ctx_state.use(state), ctx_host.use(host):
        for index in range(len(bench_plan.runs)):
            assert _scenario(state, host, text, index, str(out)) is True
    return bench.outcomes(bench_plan, out)


def _plan(cluster, router_port: int, model: Path, tmp: Path, **options) -> tuple:
    """The plan for `cluster` with its router on the test's port and model.path the generated tokenizer; the
    client, runner and state directory where this machine has them."""
    cluster = dataclasses.replace(
        cluster,
        router=dataclasses.replace(cluster.router, port=router_port),
        model=dataclasses.replace(cluster.model, path=str(model)),
    )
    serving = serving_plan(cluster)
    opts = benchplan.options(prompts_scale=SCALE, **options)
    made = benchplan.plan(cluster, serving, opts, "test-run", python=str(BENCH_PYTHON), runner=str(RUNNER),
                          state_dir=str(tmp / "node-state"))  # fmt: skip
    # the router takes only this key: the runner hands it to bench_serving from a 0600 file, as on the node
    key_file = tmp / "api-key"
    key_file.write_text(BENCH_KEY + "\n")
    key_file.chmod(0o600)
    assert made.key_file
    made = dataclasses.replace(made, key_file=str(key_file))
    return cluster, serving, made


def test_every_scenario_through_the_router(router, inputs, prod_cluster, tmp_path, monkeypatch):  # noqa: F811
    _need(BENCH_PYTHON, "the bench client")
    log = prod_cluster["log"]
    before = len(events(log, "request"))
    cluster, serving, made = _plan(load(PROD), router, inputs["model"], tmp_path, scenarios="all",
                                   dataset_path=str(inputs["sharegpt"]))  # fmt: skip
    assert made.router_url == f"http://127.0.0.1:{router}" and len(made.runs) == 6
    out = tmp_path / "run"
    found = _run(made, out, monkeypatch)

    sent = 0
    for o in found:
        scenario, record, figures = o.scenario, o.record, o.figures
        log_text = (out / "raw" / f"{o.run.name}.log").read_text()
        assert o.status == "done", (o.run.name, o.error, log_text[-2000:])
        assert o.exit_status == 0 and figures.completed == o.run.prompts == benchplan.scaled_prompts(scenario, SCALE)
        assert record["tag"] == o.run.name and record["backend"] == "sglang-oai-chat"
        assert record["request_rate"] == "inf" and record["max_concurrency"] is None
        if scenario.dataset == "random":
            assert record["dataset_name"] == "random-ids" and record["random_range_ratio"] == 1.0
            # fixed lengths: every prompt exactly input_len tokens, every answer counted at output_len
            assert figures.input_tokens == o.run.prompts * scenario.input_len
            assert figures.output_tokens == o.run.prompts * scenario.output_len
        else:
            assert record["dataset_name"] == "sharegpt" and figures.input_tokens > o.run.prompts * 2
        assert figures.total_throughput > figures.output_throughput > 0 and figures.duration_s > 0
        assert figures.ttft.p50 > 0 and figures.ttft.p99 >= figures.ttft.p50
        assert record["total_output_tokens_retokenized"] > 0  # the answers came back as text
        # the client's own lines streamed back, the runner's exit mark last
        assert "Serving Benchmark Result" in log_text and "Downloading" not in log_text
        sent += o.run.prompts + 1  # and its warm-up request
    # every request went the PD way through the router: a prefill and the decode, one bootstrap room each
    requests = events(log, "request")[before:]
    decode = [r for r in requests if r["role"] == "decode" and r["path"] == "/v1/chat/completions"]
    prefill = [r for r in requests if r["role"] == "prefill" and r["path"] == "/v1/chat/completions"]
    assert len(decode) == sent and all(r["status"] == 200 and r["stream"] for r in decode)
    deadline = time.monotonic() + 5
    while len(prefill) < sent and time.monotonic() < deadline:  # the prefill legs may log after the answers
        time.sleep(0.1)
        prefill = [r for r in events(log, "request")[before:] if r["role"] == "prefill"]
    assert {r["bootstrap_room"] for r in decode} == {r["bootstrap_room"] for r in prefill}

    # the stand-in answers a few words whatever the length asked: the table says the output is nominal
    assert any("retokenizes" in note for o in found for note in o.notes)
    text = bench.report(cluster, serving, made, out, found)
    for o in found:
        assert o.run.name in text
    assert "8,968.32" in text and "27,712.54" in text and "what differed:" in text
    assert sum(" this run " in line for line in text.splitlines()) == 6
    document = json.loads((out / "results.json").read_text(), parse_constant=_strict)
    assert [s["name"] for s in document["scenarios"]] == [r.name for r in made.runs]
    assert all(s["status"] == "done" and s["measured"]["completed"] == s["prompts"] for s in document["scenarios"])
    assert document["scenarios"][0]["server_info"]["disaggregation_mode"] == "prefill"  # the router's answer
    assert (out / "table.txt").read_text() == text.split("\nno chart")[0]
    png = (out / "chart.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_random_prompts_from_sharegpt_text_read_the_given_file(router, inputs, tmp_path, monkeypatch):
    """SGLang's own `random` dataset samples its text from ShareGPT: with the path given it never downloads."""
    _need(BENCH_PYTHON, "the bench client")
    _, _, made = _plan(load(PROD), router, inputs["model"], tmp_path, scenarios="medium,short",
                       dataset_path=str(inputs["sharegpt"]), random_prompts="sharegpt")  # fmt: skip
    assert made.dataset_path == str(inputs["sharegpt"])
    found = _run(made, tmp_path / "run", monkeypatch)
    for o in found:
        assert o.status == "done" and o.record["dataset_name"] == "random", o.error
        assert o.figures.input_tokens == o.run.prompts * o.scenario.input_len


def test_a_scenario_that_cannot_run_is_recorded_and_the_next_one_runs(router, inputs, tmp_path, monkeypatch):
    _need(BENCH_PYTHON, "the bench client")
    _, _, made = _plan(load(PROD), router, inputs["model"], tmp_path, scenarios="sharegpt,very-long",
                       dataset_path=str(tmp_path / "absent.json"))  # fmt: skip
    found = _run(made, tmp_path / "run", monkeypatch)
    assert found[0].status == "failed" and found[0].exit_status not in (0, None)
    assert "absent.json" in found[0].error or "No such file" in found[0].error, found[0].error
    assert found[1].status == "done"


def test_a_broken_dataset_fails_without_a_download(router, inputs, tmp_path):
    """bench_serving's `random` fetches ShareGPT from the hub when its file is not valid JSON: the client's
    environment sends anything but the router to a dead proxy, so the scenario fails at once instead."""
    _need(BENCH_PYTHON, "the bench client")
    broken = tmp_path / "broken.json"
    broken.write_text("[{not json")
    _, _, made = _plan(load(PROD), router, inputs["model"], tmp_path, scenarios="medium", dataset_path=str(broken),
                       random_prompts="sharegpt")  # fmt: skip
    state, host = _local_host()
    with ctx_state.use(state), ctx_host.use(host):
        _scenario(state, host, made.to_json(), 0, str(tmp_path / "run"))  # the plan's environment alone
    [found] = bench.outcomes(made, tmp_path / "run")
    log = (tmp_path / "run/raw/medium.log").read_text()
    assert found.status == "failed" and "Downloading from https://huggingface.co/" in log
    assert "127.0.0.1', port=9" in log or "Connection refused" in log or "ProxyError" in log, log[-1500:]


def _strict(constant: str):
    raise ValueError(f"not strict JSON: {constant}")
