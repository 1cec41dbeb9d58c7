"""`pdfleet bench` without a cluster: the published figures, the plan (every command line also parsed by
bench_serving 0.5.6.post2's own parser), results read back, the table, the JSON, the chart, the progress view, the
runner, the client's role on @fake hosts, the pinned set and the generated tokenizer. The whole path through the
real router: tests/test_bench_loopback.py."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

# imported at collection, before any test starts a thread: pyinfra_cli monkey-patches with gevent when imported
from pyinfra_cli.util import load_deploy_file

from pdfleet import bench, benchclient, benchplan, benchrun
from pdfleet.cli import main
from pdfleet.inventory import load
from pdfleet.runtimeplan import normalize
from pdfleet.sandbox import benchdata
from pdfleet.serving import plan as serving_plan
from roles.bench import BenchInputs, bench_client, inputs_problem
from tests.fakehosts import ROOT, converge

PROD = ROOT / "inventories/prod.py"
SANDBOX = ROOT / "inventories/sandbox.yaml"
BENCH_PYTHON = ROOT / ".cache/parsers/bench-venv/bin/python"
ISSUE_16 = {
    "sharegpt": 8968.32,
    "medium": 27712.54,
    "long": 20545.67,
    "very-long": 20045.18,
    "generation-heavy": 3703.98,
}
# A record bench_serving 0.5.6.post2 wrote through the real router and the stand-ins (8 prompts of 2000/100; the
# request rate as it writes it, `Infinity`), with a server_info that carries a key.
RECORD = (
    '{"tag": "medium", "backend": "sglang-oai-chat", "dataset_name": "random-ids", "request_rate": Infinity, '
    '"max_concurrency": null, "sharegpt_output_len": null, "random_input_len": 2000, "random_output_len": 100, '
    '"random_range_ratio": 1.0, "server_info": {"version": "0.5.23", "disaggregation_mode": "prefill", '
    '"tp_size": 8, "dp_size": 8, "api_key": "sk-secret", "admin_api_key": null}, "duration": 0.07919133700488601, '
    '"completed": 8, "total_input_tokens": 16000, "total_input_text_tokens": 16000, "total_input_vision_tokens": 0, '
    '"total_output_tokens": 800, "total_output_tokens_retokenized": 312, "request_throughput": 101.02115083000064, '
    '"input_throughput": 202042.30166000128, "output_throughput": 10102.115083000062, '
    '"total_throughput": 212144.41674300132, "mean_e2e_latency_ms": 21.692473499570042, '
    '"median_e2e_latency_ms": 22.915064000699203, "std_e2e_latency_ms": 3.377942533627703, '
    '"p99_e2e_latency_ms": 26.733993201196427, "mean_ttft_ms": 20.91210499747831, '
    '"median_ttft_ms": 20.963565999409184, "std_ttft_ms": 3.474923640855602, "p99_ttft_ms": 26.558668919606134, '
    '"mean_tpot_ms": 0.007882510122138716, "median_tpot_ms": 0.001995540368064975, '
    '"std_tpot_ms": 0.015708941716251854, "p99_tpot_ms": 0.04612594982109389, "mean_itl_ms": 0.06320943793980405, '
    '"median_itl_ms": 0.013941011275164783, "std_itl_ms": 0.47697782399944993, "p95_itl_ms": 0.01717274426482618, '
    '"p99_itl_ms": 0.25642591135691456, "concurrency": 2.191398637275857, "accept_length": null, '
    '"max_output_tokens_per_s": 104.0, "max_concurrent_requests": 8}'
)


def _plan(inventory=PROD, run_id="20261207-120000", **options):
    cluster = load(inventory)
    serving = serving_plan(cluster)
    return cluster, serving, benchplan.plan(cluster, serving, benchplan.options(**options), run_id)


def _value(argv, flag):
    return argv[argv.index(flag) + 1]


def _strict(constant):
    raise ValueError(f"not strict JSON: {constant}")


def _need_bench_venv():
    if not BENCH_PYTHON.exists():
        message = f"{BENCH_PYTHON} is missing: run .ci/install-parsers.sh"
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(message)
        pytest.skip(message)


# -- the published figures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", benchplan.SCENARIOS, ids=lambda s: s.name)
def test_published_figures_agree_with_their_own_totals(scenario):
    """Copied by hand from the page's result blocks: each total is (input + output) / duration, each output rate
    output / duration, each request rate completed / duration (the page rounds to 2 decimals)."""
    p = scenario.published
    assert p.total_throughput == pytest.approx((p.input_tokens + p.output_tokens) / p.duration_s, rel=2e-3)
    assert p.output_throughput == pytest.approx(p.output_tokens / p.duration_s, rel=2e-3)
    assert p.request_throughput == pytest.approx(p.completed / p.duration_s, rel=5e-3, abs=0.006)  # 2 decimals
    for latency in (p.ttft, p.tpot, p.itl):
        assert 0 < latency.p50 <= latency.p99
    if scenario.dataset == "random":  # fixed lengths: exact multiples
        assert p.input_tokens == p.completed * scenario.input_len
        assert p.output_tokens == p.completed * scenario.output_len


def test_the_default_scenarios_are_issue_16s_with_its_figures():
    assert tuple(ISSUE_16) == benchplan.DEFAULT_SCENARIOS
    assert {n: benchplan.BY_NAME[n].published.total_throughput for n in ISSUE_16} == ISSUE_16
    prompts = {n: benchplan.BY_NAME[n].prompts for n in ISSUE_16}
    assert prompts == {"sharegpt": 1000, "medium": 500, "long": 500, "very-long": 100, "generation-heavy": 100}


# -- options and the plan ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenarios": "medium,huge"}, "--scenarios: found huge, expected names from sharegpt, medium"),
        ({"scenarios": ","}, "--scenarios: found ','"),
        ({"prompts_scale": 0}, "--num-prompts-scale: found 0, expected a number in (0, 1]"),
        ({"prompts_scale": 2}, "--num-prompts-scale: found 2"),
        ({"dataset_path": "data/sharegpt.json"}, "--dataset-path: found 'data/sharegpt.json', expected an absolute"),
        ({"random_prompts": "text"}, "--random-prompts: found 'text', expected one of ids, sharegpt"),
    ],
)
def test_options_refuse_what_cannot_work(kwargs, message):
    with pytest.raises(benchplan.BenchError) as error:
        benchplan.options(**kwargs)
    assert str(error.value).startswith(message)


def test_the_plan_runs_each_scenario_against_the_routers_local_url():
    cluster, serving, made = _plan()
    assert made.node == cluster.router.node == "prefill-0"
    assert made.router_url == f"http://127.0.0.1:{cluster.router.port}"
    assert made.dataset_path == benchclient.DATASET and made.tokenizer == cluster.model.path
    assert [r.name for r in made.runs] == list(ISSUE_16)
    for run in made.runs:
        argv = list(run.argv)
        scenario = benchplan.BY_NAME[run.name]
        assert argv[:3] == [f"{benchclient.VENV}/bin/python3", "-m", "sglang.bench_serving"]
        assert _value(argv, "--backend") == "sglang-oai-chat"
        assert _value(argv, "--base-url") == made.router_url
        assert _value(argv, "--model") == _value(argv, "--tokenizer") == cluster.model.path
        assert _value(argv, "--served-model-name") == cluster.model.served_name
        assert _value(argv, "--num-prompts") == str(scenario.prompts) == str(run.prompts)
        assert _value(argv, "--request-rate") == "inf" and "--max-concurrency" not in argv
        assert _value(argv, "--seed") == "42"
        assert _value(argv, "--output-file") == run.jsonl == f"{made.run_dir}/{run.name}.jsonl"
        assert made.run_dir == f"{benchclient.STATE_DIR}/runs/20261207-120000"
        assert _value(argv, "--tag") == run.name
        if scenario.dataset == "random":
            assert _value(argv, "--dataset-name") == "random-ids" and "--dataset-path" not in argv
            assert _value(argv, "--random-input-len") == str(scenario.input_len)
            assert _value(argv, "--random-output-len") == str(scenario.output_len)
            assert _value(argv, "--random-range-ratio") == "1"
            assert "--disable-ignore-eos" not in argv
        else:
            assert _value(argv, "--dataset-name") == "sharegpt"
            assert _value(argv, "--dataset-path") == benchclient.DATASET
            assert _value(argv, "--sharegpt-context-len") == "2048" and "--disable-ignore-eos" in argv
    command = made.command(made.runs[1])
    # the API key: a path on the router's node, which the runner hands to the client as OPENAI_API_KEY
    assert command[:9] == [made.python, benchclient.RUNNER, "--log", made.runs[1].log, "--fresh",
                           made.runs[1].jsonl, "--key-file", "/etc/pdfleet/keys/api-key", "--"]  # fmt: skip
    assert command[9] == "env" and "HF_HUB_OFFLINE=1" in command and "HF_DATASETS_OFFLINE=1" in command
    assert command[-len(made.runs[1].argv) :] == list(made.runs[1].argv)


def test_scaled_and_text_prompts():
    _, _, made = _plan(scenarios="medium,short,very-long", prompts_scale=0.01, random_prompts="sharegpt",
                       dataset_path="/data/sg.json")  # fmt: skip
    assert [r.prompts for r in made.runs] == [5, 10, 1]  # never 0
    assert made.dataset_path == "/data/sg.json"
    for run in made.runs:
        assert _value(list(run.argv), "--dataset-name") == "random"
        assert _value(list(run.argv), "--dataset-path") == "/data/sg.json"  # never downloaded
    _, _, made = _plan(scenarios="medium")
    assert made.dataset_path is None  # token-id prompts read no file


def test_the_plan_survives_its_json_file():
    _, _, made = _plan(scenarios="all", prompts_scale=0.5)
    assert benchplan.BenchPlan.from_json(made.to_json()) == made


@pytest.mark.parsers
def test_every_command_line_parses_with_bench_servings_own_parser():
    """bench_serving builds its parser in its `__main__` block: that block runs here with run_benchmark replaced,
    so each argv goes through the real 0.5.6.post2 parser and the namespace it makes comes back."""
    _need_bench_venv()
    cases, expected = [], []
    for inventory in (PROD, SANDBOX):
        for random_prompts in ("ids", "sharegpt"):
            _, _, made = _plan(inventory, scenarios="all", random_prompts=random_prompts)
            for run in made.runs:
                cases.append(list(run.argv[3:]))
                expected.append(run)
    cases.append(["--dataset-name", "random-tokens"])  # what the parser refuses comes back refused
    script = """
import ast, json, sys
import sglang.bench_serving as bs
tree = ast.parse(open(bs.__file__).read())
block = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
code = compile(ast.Module(body=block.body, type_ignores=[]), bs.__file__, "exec")
found = []
namespace = dict(vars(bs), run_benchmark=lambda args: found.append(vars(args)))
out = []
for argv in json.load(sys.stdin):
    sys.argv = ["bench_serving", *argv]
    found.clear()
    try:
        exec(code, namespace)
        plain = (str, int, float, bool, type(None))
        out.append({k: v if isinstance(v, plain) else str(v) for k, v in found[0].items()})
    except SystemExit as stop:
        out.append({"exit": stop.code})
print(json.dumps(out))
"""
    result = subprocess.run(
        [str(BENCH_PYTHON), "-c", script], input=json.dumps(cases), capture_output=True, text=True, timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed[-1] == {"exit": 2} and "invalid choice: 'random-tokens'" in result.stderr
    for run, args in zip(expected, parsed[:-1], strict=True):
        scenario = benchplan.BY_NAME[run.name]
        assert args["backend"] == "sglang-oai-chat" and args["num_prompts"] == run.prompts
        assert args["request_rate"] == float("inf") and args["max_concurrency"] is None and args["seed"] == 42
        assert args["output_file"] == run.jsonl and args["tag"] == run.name
        if scenario.dataset == "random":
            assert args["random_range_ratio"] == 1.0 and args["random_input_len"] == scenario.input_len
            assert args["disable_ignore_eos"] is False
        else:
            assert args["dataset_name"] == "sharegpt" and args["disable_ignore_eos"] is True
            assert args["sharegpt_context_len"] == 2048


# -- results -------------------------------------------------------------------------------------------------------


def _medium_outcome(record: str = RECORD, exit_status=0):
    _, _, made = _plan(scenarios="medium", prompts_scale=0.016)
    return made, benchplan.outcome(made.runs[0], record + "\n", exit_status, 3.2)


def test_a_record_reads_back_as_figures_with_its_secrets_redacted():
    made, found = _medium_outcome()
    assert found.status == "done" and found.figures.completed == 8 == made.runs[0].prompts
    assert found.figures.total_throughput == pytest.approx(212144.41674300132)
    assert found.figures.ttft == benchplan.Latency(20.91210499747831, 20.963565999409184, 26.558668919606134)
    assert found.ratio == pytest.approx(212144.41674300132 / 27712.54)
    assert found.record["server_info"]["api_key"] == "<redacted>"
    assert found.record["server_info"]["admin_api_key"] is None and found.record["request_rate"] == "inf"
    notes = " ".join(found.notes)
    assert "8 of the published 500 prompts: ratio not comparable" in notes
    assert "counted 800, the answers' text retokenizes to 312" in notes


def test_failed_requests_and_missing_records():
    record = json.loads(RECORD.replace("Infinity", '"inf"'))
    made, partial = _medium_outcome(json.dumps({**record, "completed": 6}))
    assert partial.status == "incomplete" and "2 of 8 requests failed" in partial.notes
    failed = benchplan.outcome(made.runs[0], "", 1, 2.0, "ValueError: Warmup failed")
    assert failed.status == "failed" and failed.figures is None and failed.ratio is None
    assert benchplan.outcome(made.runs[0], None, None, None).status == "not run"
    text = benchplan.table([partial, failed])
    assert "6/8" in text and "medium: failed: ValueError: Warmup failed" in text


def test_the_table_the_document_and_the_chart(tmp_path):
    cluster, serving, made = _plan(scenarios="medium", prompts_scale=0.016)
    found = [benchplan.outcome(made.runs[0], RECORD, 0, 3.2)]
    differences = benchplan.setup_differences(cluster, serving, made)
    assert made.gpus == 32
    text = benchplan.table(found, differences, made.gpus)
    lines = text.splitlines()
    header = "SCENARIO OK TOTAL TOK/S RATIO PER GPU OUT TOK/S TTFT P50 TTFT P99 TPOT P50 TPOT P99 ITL P50 ITL P99"
    assert lines[0].split() == header.split(" ")
    assert lines[1].split()[:7] == ["medium", "this", "run", "8/8", "212,144.42", "7.66x", "1.91x"]
    assert lines[2].split() == ["published", "500/500", "27,712.54", "1,319.64", "18,939.9", "32,138.1", "189.2",
                                "350.0", "55.0", "219.7"]  # fmt: skip
    assert benchplan.SOURCE["url"] in text and "what differed:" in text and "x 8 published GPUs / 32" in text
    document = benchplan.document(made, found, differences)
    again = json.loads(json.dumps(document), parse_constant=_strict)  # strict JSON: no Infinity
    entry = again["scenarios"][0]
    assert entry["measured"]["total_throughput"] == pytest.approx(212144.41674300132)
    assert entry["published"]["total_throughput"] == 27712.54 and entry["prompts"] == 8
    assert entry["ratio_per_gpu"] == pytest.approx(entry["ratio_total_throughput"] / 4)
    assert entry["server_info"] == {"version": "0.5.23", "disaggregation_mode": "prefill", "tp_size": 8, "dp_size": 8}
    assert "sk-secret" not in json.dumps(document)
    assert again["setup"][0] == {"item": "hardware", "published": "8 x H200 SXM, one node",
                                 "this_run": "32 x H200 on 4 nodes"}  # fmt: skip
    pytest.importorskip("matplotlib")
    benchplan.chart(found, tmp_path / "chart.png", "test")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_matplotlib_no_chart_and_a_clear_message(tmp_path, monkeypatch):
    _, _, made = _plan(scenarios="medium")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(benchplan.ChartUnavailable, match=r"pip install 'pdfleet\[bench\]'"):
        benchplan.chart([benchplan.outcome(made.runs[0], RECORD, 0, 1.0)], tmp_path / "c.png", "t")
    assert not (tmp_path / "c.png").exists()


def test_what_differed_from_the_published_setup():
    cluster, serving, made = _plan(prompts_scale=0.01)
    ours = {item: this for item, _, this in benchplan.setup_differences(cluster, serving, made)}
    assert ours["hardware"] == "32 x H200 on 4 nodes"
    assert ours["serving"].startswith("PD, SGLang 0.5.23: prefill-0 (prefill, TP8 DP8, 1 node)")
    assert "decode (decode, TP16 DP16, 2 nodes)" in ours["serving"] and "MTP EAGLE" in ours["serving"]
    assert ours["entry point"].startswith("smg 1.13.0 PD router on prefill-0")
    assert ours["client"].startswith("SGLang `sglang.bench_serving` 0.5.6.post2")
    assert ours["prompts"].startswith("scaled: sharegpt 10/1000, medium 5/500")
    _, _, full = _plan()
    assert {i: t for i, _, t in benchplan.setup_differences(cluster, serving, full)}["prompts"].startswith("as pub")


# -- what the command shows and writes ------------------------------------------------------------------------------


def test_progress_shows_each_scenario_and_the_clients_lines_with_their_times():
    shown, now = [], [100.0]
    progress = bench.Progress(echo=shown.append, clock=lambda: now[0])
    feed = [
        "--> Starting operation: Bench client | apt",
        "--> Starting operation: bench medium (1/2) ",
        "    [prefill-0] Bench | [1/2] medium: started: Medium Prompt, 2000 in / 100 out, 500 prompts at once",
        "[prefill-0] @@bench None of PyTorch, TensorFlow >= 2.0, or Flax have been found. Models won't be ...",
        "[prefill-0] @@bench #Input tokens: 1000000",
        "[prefill-0] @@bench " + "x" * 300,
        "[prefill-0] @@bench-exit 0",
        "    [prefill-0] Bench | [1/2] medium: finished after 65.0 s",
        "--> pyinfra error in deploys/bench.py line 30: missing or empty on prefill-0: /x",
    ]
    for line in feed:
        now[0] += 65.0 if "finished" in line else 1.0
        progress.line(line + "\n")
    assert shown.pop(0) == "[00:01] Bench client | apt"  # the installation's steps, as pyinfra starts them
    assert shown[0] == "[00:03] [1/2 medium 00:00] started: Medium Prompt, 2000 in / 100 out, 500 prompts at once"
    assert shown[1] == "[00:05] [1/2 medium 00:02]   #Input tokens: 1000000"  # transformers' note not shown
    assert shown[2].endswith("x" * 197 + "...") and len(shown) == 4
    assert shown[3] == "[01:12] [1/2 medium 01:09] finished after 65.0 s"
    assert progress.scenario is None and progress.errors == ["missing or empty on prefill-0: /x"]


def test_dry_prints_every_command_and_contacts_nothing(tmp_path):
    result = CliRunner().invoke(main, ["bench", str(PROD), "--dry", "--scenarios", "sharegpt,very-long"])
    assert result.exit_code == 0, result.output
    assert "cluster prod: 2 scenario(s) on prefill-0, against http://127.0.0.1:8000" in result.output
    assert "[2/2] very-long: Very Long Prompt, 32000 in / 100 out, 100 prompts at once" in result.output
    assert "--dataset-name random-ids --random-input-len 32000 --random-output-len 100 --random-range-ratio 1" in (
        result.output
    )
    assert "the ShareGPT file /var/lib/pdfleet/bench/ShareGPT_V3_unfiltered_cleaned_split.json" in result.output
    assert result.output.rstrip().endswith("(--dry: nothing was contacted)")
    refused = CliRunner().invoke(main, ["bench", str(PROD), "--scenarios", "medium,huge"])
    assert refused.exit_code == 2 and "--scenarios: found huge" in refused.output
    refused = CliRunner().invoke(main, ["bench", str(PROD), "--scenarios", "medium", "--upload-dataset", __file__])
    assert refused.exit_code == 2 and "no chosen scenario reads the ShareGPT file" in refused.output


def test_outcomes_and_report_from_a_run_directory(tmp_path):
    cluster, serving, made = _plan(scenarios="medium,long", prompts_scale=0.016)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "medium.jsonl").write_text(RECORD + "\n")
    (raw / "medium.status.json").write_text(json.dumps({"exit_status": 0, "seconds": 3.2, "error": ""}))
    found = bench.outcomes(made, tmp_path)
    assert [o.status for o in found] == ["done", "not run"]
    text = bench.report(cluster, serving, made, tmp_path, found)
    assert (tmp_path / "table.txt").read_text() in text
    assert json.loads((tmp_path / "results.json").read_text())["scenarios"][1]["status"] == "not run"


# -- the runner ------------------------------------------------------------------------------------------------------


def test_the_runner_turns_progress_bars_into_lines_and_keeps_the_exit_status(tmp_path, monkeypatch):
    child = (
        "import sys, time\n"
        "print('#Input tokens: 16000', flush=True)\n"
        "for i in range(1, 6):\n"
        "    sys.stderr.write(f'\\r {i * 20}%|##| {i}/5 [00:0{i}<00:00, 1.0it/s]'); sys.stderr.flush()\n"
        "    time.sleep(0.05)\n"
        "sys.stderr.write('\\n'); print('Successful requests: 5'); sys.exit(3)\n"
    )
    jsonl = tmp_path / "old.jsonl"
    jsonl.write_text('{"stale": 1}\n')
    out = io.StringIO()
    status = benchrun.run([sys.executable, "-c", child], str(tmp_path / "logs/x.log"), str(jsonl), out=out)
    lines = out.getvalue().splitlines()
    assert status == 3 and lines[-1] == "@@bench-exit 3" and not jsonl.exists()
    assert lines[0] == "@@bench #Input tokens: 16000"
    bars = [line for line in lines if "it/s]" in line]
    # the first bar is shown, the ones within PROGRESS_EVERY are held, the last one (100%) always
    assert bars[0].startswith("@@bench 20%|") and bars[-1].startswith("@@bench 100%|") and len(bars) == 2
    assert lines[-2] == "@@bench Successful requests: 5"
    assert (tmp_path / "logs/x.log").read_text().count("it/s]") == 5  # the log keeps every one
    missing = io.StringIO()
    assert benchrun.run(["/nonexistent/python"], str(tmp_path / "y.log"), None, out=missing) == 127
    assert missing.getvalue().splitlines()[-1] == "@@bench-exit 127"


# -- the client on the router's node ---------------------------------------------------------------------------------

VENV_FACT = f"test -x {benchclient.VENV}/bin/python3"


def _dist_infos(wheels: dict[str, str]) -> list[str]:
    return ["venv", *(f"{name.replace('-', '_')}-{version}.dist-info" for name, version in wheels.items())]


def test_the_client_installs_into_its_own_venv_from_the_inventorys_index():
    runs = converge(bench_client, {"prefill-0": {}}, inventory_yaml=SANDBOX)
    run = runs["prefill-0"]
    assert run.ran(f"uv venv --quiet --python /usr/bin/python3 {benchclient.VENV}")
    sync = next(c for c in run.commands if "uv pip sync" in c)
    assert f"--python {benchclient.VENV}/bin/python3" in sync
    assert "--index-url file:///srv/pdfleet-pypi/simple" in sync and sync.endswith(benchclient.REQUIREMENTS)
    assert not [c for c in run.commands if "uv pip install" in c]  # nothing resolved on the node
    assert run.changes("bench runner") and run.changes("bench client requirement list")


def test_a_synced_client_is_left_alone_and_a_differing_one_synced():
    converged = {VENV_FACT: _dist_infos(benchclient.WHEELS)}
    run = converge(bench_client, {"prefill-0": converged}, dry=True)["prefill-0"]
    assert not [name for name, change in run.will_change.items() if "pinned wheels" in name and change]
    stale = {VENV_FACT: _dist_infos({**benchclient.WHEELS, "transformers": "5.23.0", "torch": "2.9.1"})}
    run = converge(bench_client, {"prefill-0": stale})["prefill-0"]
    sync = next(c for c in run.commands if "uv pip sync" in c)
    assert "--index-url" not in sync  # prod: the default index
    assert not run.ran("uv venv")  # the venv is there: synced in place, what is not listed removed


def test_the_inputs_check_names_what_is_missing():
    _, _, made = _plan()
    ready = BenchInputs().process(["200"])
    assert ready == {"readiness": "200", "missing": []} and inputs_problem(made, ready) is None
    silent = BenchInputs().process(["000"])
    assert "answers /readiness with no answer, expected 200" in inputs_problem(made, silent)
    assert "HTTP 503" in inputs_problem(made, BenchInputs().process(["503"]))
    missing = BenchInputs().process(
        ["200", f"missing {made.dataset_path}", "missing /models/DeepSeek-V3.2/tokenizer.json"]
    )
    problem = inputs_problem(made, missing)
    assert problem.startswith(f"missing or empty on prefill-0: {made.dataset_path}, /models/DeepSeek-V3.2/tok")
    assert "--upload-dataset" in problem and "converge deploys/pd.py first" in problem
    command = BenchInputs().command(url=made.router_url, paths=(made.dataset_path,)).get_raw_value()
    assert f"{made.router_url}/readiness" in command and f"[ -s {made.dataset_path} ]" in command


# -- the pinned set and the generated inputs ------------------------------------------------------------------------


def test_the_pinned_set_is_one_list_of_exact_versions():
    assert benchclient.WHEELS["sglang"] == benchclient.CLIENT_VERSION == "0.5.6.post2"
    assert benchclient.WHEELS["transformers"] == "4.57.1"  # SGLang 0.5.6.post2's own pin
    assert all(name == normalize(name) for name in benchclient.WHEELS)
    assert "torch" not in benchclient.WHEELS
    printed = subprocess.run([sys.executable, str(ROOT / "pdfleet/benchclient.py")], capture_output=True, text=True)
    assert printed.stdout.splitlines() == benchclient.requirements() and len(benchclient.requirements()) == 61


@pytest.mark.parsers
def test_the_test_client_is_the_pinned_set():
    """.cache/parsers/bench-venv holds exactly the wheels nodes get (plus the venv's own pip)."""
    _need_bench_venv()
    listing = subprocess.run(
        [str(BENCH_PYTHON), "-c", "import importlib.metadata as m; "
         "print('\\n'.join(f'{d.metadata[\"Name\"]}=={d.version}' for d in m.distributions()))"],
        capture_output=True, text=True, timeout=60, cwd="/",  # not the checkout: its pdfleet.egg-info
    )  # fmt: skip
    found = {normalize(line.split("==")[0]): line.split("==")[1] for line in listing.stdout.split()}
    found.pop("pip", None)
    found.pop("setuptools", None)
    assert found == benchclient.WHEELS


def test_the_generated_inputs_are_deterministic(tmp_path):
    files = benchdata.tokenizer_files()
    assert files == benchdata.tokenizer_files() and set(files) == {"tokenizer.json", "tokenizer_config.json"}
    tokenizer = json.loads(files["tokenizer.json"])
    vocab = tokenizer["model"]["vocab"]
    assert vocab[benchdata.BOS] == 0 and vocab[benchdata.EOS] == 1 and vocab["Ġ"] < 260
    assert len(vocab) + 2 <= benchdata.VOCAB_SIZE and len(tokenizer["model"]["merges"]) > 800
    config = json.loads(files["tokenizer_config.json"])
    assert config["tokenizer_class"] == "LlamaTokenizerFast" and config["bos_token"] == benchdata.BOS
    rows = json.loads(benchdata.sharegpt_json(30))
    assert len(rows) == 30 and benchdata.sharegpt_json(30) == json.dumps(rows, indent=2).encode() + b"\n"
    assert all(r["conversations"][0]["from"] == "human" and r["conversations"][1]["from"] == "gpt" for r in rows)
    written = benchdata.write_tokenizer(tmp_path / "tok")
    assert sorted(p.name for p in written) == ["tokenizer.json", "tokenizer_config.json"]


@pytest.mark.parsers
def test_the_clients_transformers_loads_the_tokenizer_and_keeps_the_spaces(tmp_path):
    """DeepSeek's shape (LlamaTokenizerFast over a byte-level BPE) with the client's pinned transformers: text comes
    back as it went in, BOS first, so token counts mean what they say."""
    _need_bench_venv()
    benchdata.write_tokenizer(tmp_path / "tok")
    probe = (
        "import sys; from transformers import AutoTokenizer\n"
        "t = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "s = 'Hello world, the router and 2025 prefill tokens!\\nA second line.'\n"
        "ids = t.encode(s)\n"
        "print(type(t).__name__, ids[0], t.decode(ids, skip_special_tokens=True) == s, len(ids) < len(s) / 2)\n"
    )
    result = subprocess.run([str(BENCH_PYTHON), "-c", probe, str(tmp_path / "tok")], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-4:] == ["LlamaTokenizerFast", "0", "True", "True"]


def test_the_runner_file_the_role_puts_is_the_module():
    from roles.bench import RUNNER_SOURCE

    assert RUNNER_SOURCE == ROOT / "pdfleet/benchrun.py" and Path(RUNNER_SOURCE).read_text().startswith('"""Runs')


# -- deploys/bench.py through real pyinfra (@fake hosts) -------------------------------------------------------------


def _load_deploy(tmp_path, made, readiness: str, missing: tuple[str, ...] = ()):
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all
    from pyinfra.context import ctx_state

    from pdfleet.cluster import load_cluster
    from pdfleet.inventory import host_data

    plan_file = tmp_path / "plan.json"
    plan_file.write_text(made.to_json())
    yaml = ROOT / "inventories/prod.yaml"
    cluster = load_cluster(yaml)
    answers = {"/readiness": [readiness, *(f"missing {p}" for p in missing)]}  # one fact, one command
    hosts = [
        (f"@fake/{name}", {**host_data(cluster, name, yaml), "fake_delay": 0, "fake_delay_jitter": 0,
                           "fake_responses": answers, "pdfleet_bench_plan": str(plan_file)})
        for name in ("prefill-0", "decode-0")
    ]  # fmt: skip
    state = State(Inventory((hosts, {})), Config())
    with ctx_state.use(state):
        connect_all(state)
        load_deploy_file(state, str(ROOT / "deploys/bench.py"))
    return state


def test_the_deploy_installs_then_runs_each_scenario_on_the_routers_node_only(tmp_path):
    _, _, made = _plan(scenarios="medium,long", prompts_scale=0.1)
    state = _load_deploy(tmp_path, made, "200")
    names = [state.op_meta[op].names.copy().pop() for op in state.get_op_order()]
    assert names[-2:] == ["bench medium (1/2)", "bench long (2/2)"]
    assert any("bench client: sglang.bench_serving 0.5.6.post2" in n for n in names)
    for host in state.inventory:
        ops = [op for op in state.get_op_order() if state.ops[host].get(op)]
        assert bool(ops) == (host.data.pdfleet_node == "prefill-0")


@pytest.mark.parametrize(
    ("readiness", "missing", "message"),
    [
        ("503", (), "answers /readiness with HTTP 503, expected 200"),
        ("200", ("/var/lib/pdfleet/bench/ShareGPT_V3_unfiltered_cleaned_split.json",), "--upload-dataset"),
    ],
)
def test_the_deploy_stops_before_anything_when_the_router_or_an_input_is_missing(tmp_path, readiness, missing, message):
    from pyinfra.api import DeployError

    _, _, made = _plan(scenarios="sharegpt")
    with pytest.raises(DeployError, match=re.escape(message)):
        _load_deploy(tmp_path, made, readiness, missing)


# -- docs/bench.md -------------------------------------------------------------------------------------------------


def test_the_docs_hold_the_published_figures_as_the_code_does():
    page = (ROOT / "docs/bench.md").read_text()
    marker = "<!-- generated: pdfleet.benchplan.published_markdown() -->\n"
    start = page.index(marker) + len(marker)
    assert page[start : page.index("<!-- end generated -->")] == benchplan.published_markdown()


def test_every_bench_command_of_the_docs_runs_dry(tmp_path, monkeypatch):
    """Each `pdfleet bench ...` line of docs/bench.md, with --dry: its options exist and are accepted."""
    page = (ROOT / "docs/bench.md").read_text()
    commands = [line.strip().split("  #")[0] for line in page.splitlines() if line.startswith("    pdfleet bench ")]
    assert len(commands) >= 4
    monkeypatch.chdir(tmp_path)
    for name in ("ShareGPT_V3_unfiltered_cleaned_split.json", "sharegpt.json"):
        (tmp_path / name).write_text("[]")
    for command in commands:
        args = [a.replace("/tmp/", str(tmp_path) + "/") for a in command.split()[1:]]
        args = [str(ROOT / a) if a.startswith("inventories/") else a for a in args]
        result = CliRunner().invoke(main, [*args, *([] if "--dry" in args else ["--dry"])])
        assert result.exit_code == 0, (command, result.output)


# -- the command's glue, pyinfra replaced by a scripted run ---------------------------------------------------------


class _ScriptedPyinfra:
    """Stands in for `python -m pyinfra ... deploys/bench.py`: writes what the deploy writes, prints what it prints."""

    runs: list = []

    def __init__(self, command, **kwargs):
        self.command, self.env = command, kwargs["env"]
        _ScriptedPyinfra.runs.append(self)
        plan_file = Path(next(a.split("=", 1)[1] for a in command if a.startswith("pdfleet_bench_plan=")))
        made = benchplan.BenchPlan.from_json(plan_file.read_text())
        lines, self.returncode = self.script(made, plan_file.parent)
        self.stdout = iter(line + "\n" for line in lines)

    @staticmethod
    def script(made, out):
        raw = out / "raw"
        raw.mkdir()
        (raw / "medium.jsonl").write_text(RECORD + "\n")
        (raw / "medium.status.json").write_text(json.dumps({"exit_status": 0, "seconds": 3.2, "error": ""}))
        return [
            "--> Starting operation: bench medium (1/1)",
            "    [prefill-0] Bench | [1/1] medium: started: Medium Prompt, 2000 in / 100 out, 8 prompts at once",
            "[prefill-0] @@bench Successful requests:                     8",
            "[prefill-0] @@bench-exit 0",
            "    [prefill-0] Bench | [1/1] medium: finished after 3.2 s",
        ], 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_command_runs_the_deploy_on_the_routers_node_and_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.subprocess, "Popen", _ScriptedPyinfra)
    _ScriptedPyinfra.runs = []
    out = tmp_path / "run"
    args = ["bench", str(PROD), "--scenarios", "medium", "--num-prompts-scale", "0.016", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    [run] = _ScriptedPyinfra.runs
    assert run.command[1:5] == ["-m", "pyinfra", "-y", str(ROOT / "inventories/prod.py")]
    assert run.command[5:8] == [str(ROOT / "deploys/bench.py"), "--limit", "prefill-0"]
    assert f"pdfleet_bench_plan={out.resolve()}/plan.json" in run.command and run.env["PYTHONUNBUFFERED"] == "1"
    assert "[1/1 medium 00:00] started: Medium Prompt" in result.output
    assert "Successful requests:                     8" in result.output
    assert any(line.startswith("medium") and "this run" in line and "8/8" in line for line in result.output.split("\n"))
    assert "written in" in result.output and (out / "results.json").exists() and (out / "table.txt").exists()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "exists and is not empty" in again.output


def test_a_run_refused_on_the_node_says_why_and_fails(tmp_path, monkeypatch):
    class Refused(_ScriptedPyinfra):
        @staticmethod
        def script(made, out):
            error = "--> pyinfra error in deploys/bench.py line 31: the router at http://127.0.0.1:8000 on prefill-0"
            return [error + " answers /readiness with no answer, expected 200"], 1

    monkeypatch.setattr(bench.subprocess, "Popen", Refused)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["bench", str(PROD), "--scenarios", "medium", "--out", str(out)])
    assert result.exit_code == 1
    assert "bench stopped before any scenario ran: the router at http://127.0.0.1:8000 on prefill-0" in result.output
    assert "by hand: pyinfra -y" in result.output and (out / "pyinfra.log").exists()
    assert not (out / "results.json").exists()
