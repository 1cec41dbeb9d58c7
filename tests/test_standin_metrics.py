"""The stand-in sglang engine's /metrics: the real metric families of each pinned SGLang version.

Each version's stand-in runs pdfleet's own prod command lines on loopback (a prefill and both ranks of the two-node
decode, with --enable-metrics), answers a few requests, and its /metrics is parsed and checked:
- the label sets and the names that differ between 0.5.6.post2 and 0.5.23 (engine_type "unified" vs the PD mode,
  the prefill bootstrap queue's rename, the kv_transfer_* gauges that became histograms, is_streaming);
- one series per scheduler and DP rank, split between the two decode nodes; the tokenizer's families only on rank 0;
- counts that grow with the requests answered, refused requests counted as aborted, a decode that cannot reach the
  prefill's bootstrap server counting a bootstrap failure;
- with the real wheels in .cache/parsers (.ci/install-parsers.sh; skipped without them unless
  PDFLEET_REQUIRE_PARSERS=1): every `sglang:` family served exists in that version's own source with the same type,
  help text, gauge multiprocess mode, extra labels and literal buckets; the base label sets are the real ones; and
  the real launch_dummy_health_check_server mounts /metrics, as the stand-in's node rank >= 1 does.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_parsers import _need  # noqa: E402
from test_standin_sglang import LOOPBACK, PROD, _launch, http, sites, stop, wait_http  # noqa: E402,F401

from pdfleet.inventory import load  # noqa: E402
from pdfleet.serving import plan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PARSERS = ROOT / ".cache/parsers"
VERSIONS = ("0.5.6.post2", "0.5.23")


# ---------------------------------------------------------------------------------------------------------------
# the exposition text


def parse(text: str) -> dict[str, dict]:
    """{family: {"type", "help", "samples": [(name, {labels}, value)]}}, with prometheus_client's parser when it is
    installed, else a small one for the text format (what this stand-in writes)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return _parse_small(text)
    return {
        f.name: {
            "type": f.type,
            "help": f.documentation,
            "samples": [(s.name, dict(s.labels), s.value) for s in f.samples],
        }
        for f in text_string_to_metric_families(text)
    }


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def _parse_small(text: str) -> dict[str, dict]:
    families: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[len("# HELP ") :].partition(" ")
            current = families.setdefault(name, {"type": "untyped", "help": "", "samples": []})
            current["help"] = doc.replace("\\n", "\n").replace("\\\\", "\\")
        elif line.startswith("# TYPE "):
            name, _, kind = line[len("# TYPE ") :].partition(" ")
            current = families.setdefault(name, {"type": kind, "help": "", "samples": []})
            current["type"] = kind
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            labels = {}
            body = match.group(3) or ""
            position = 0
            while position < len(body):
                label = _LABEL.match(body, position)
                assert label, f"bad labels in {line!r}"
                labels[label.group(1)] = label.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                position = label.end()
            value = match.group(4)
            number = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(value)
            assert current is not None, f"sample before any family: {line!r}"
            current["samples"].append((match.group(1), labels, float(value) if number is None else number))
    return families


def sample(families: dict, name: str, **labels) -> float:
    """The one sample `name` whose labels include `labels` (summed over the rest, e.g. the DP ranks)."""
    family = name
    for suffix in ("_total", "_count", "_sum", "_bucket"):
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            family = name[: -len(suffix)]
    found = [v for n, lab, v in families[family]["samples"] if n == name and labels.items() <= lab.items()]
    assert found, f"no {name}{labels} in /metrics"
    return sum(found)


def label_sets(families: dict, name: str) -> list[dict]:
    return [lab for n, lab, _v in families[name]["samples"] if n in (name, name + "_total", name + "_count")]


# ---------------------------------------------------------------------------------------------------------------
# the stand-in running pdfleet's prod command lines


def scrape(port: int) -> dict:
    status, body = http("GET", port, "/metrics")
    assert status == 200, body
    return parse(body.decode())


@pytest.fixture(scope="module", params=VERSIONS)
def pd(request, sites, tmp_path_factory):  # noqa: F811
    """One version's prefill-0 and both decode ranks on loopback (rank 1 alone: rendezvous off), --enable-metrics."""
    version = request.param
    tmp = tmp_path_factory.mktemp(f"metrics-{version}")
    serving = plan(load(PROD).with_sglang_version(version))
    specs = {"prefill": serving.ranks("prefill-0")[0], "decode": serving.ranks("decode")[0],
             "decode-1": serving.ranks("decode")[1]}  # fmt: skip
    procs, ports = [], {}
    try:
        for name, spec in specs.items():
            if "--enable-metrics" not in spec.server_args:
                spec = dataclasses.replace(spec, server_args=(*spec.server_args, "--enable-metrics"))
            proc, values = _launch(sites[version], spec, tmp, tmp / "standin.jsonl", name)
            procs.append(proc)
            ports[name] = {"port": int(values["--port"])}
            if "--disaggregation-bootstrap-port" in values:
                ports[name]["bootstrap"] = int(values["--disaggregation-bootstrap-port"])
            wait_http(ports[name]["port"], "/health", procs)
        yield {"version": version, "legacy": version == "0.5.6.post2", "ports": ports, "specs": specs}
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_label_sets_and_names_of_each_version(pd):
    legacy, ports = pd["legacy"], pd["ports"]
    prefill, decode, decode1 = (scrape(ports[n]["port"]) for n in ("prefill", "decode", "decode-1"))
    base = {"model_name", "engine_type", "tp_rank", "pp_rank", "dp_rank"} | (set() if legacy else {"moe_ep_rank"})
    for role, families in (("prefill", prefill), ("decode", decode)):
        running = label_sets(families, "sglang:num_running_reqs")
        assert {frozenset(lab) for lab in running} == {frozenset(base)}
        assert {lab["engine_type"] for lab in running} == {"unified" if legacy else role}
        assert {lab["model_name"] for lab in running} == {"DeepSeek-V3.2"}
        assert sorted(int(lab["dp_rank"]) for lab in running) == list(range(8))  # DP attention: every scheduler
        assert all(lab["tp_rank"] == lab["dp_rank"] for lab in running)
        if not legacy:
            assert all(lab["moe_ep_rank"] == lab["tp_rank"] for lab in running)  # DeepEP: ep_size = tp_size
        requests = label_sets(families, "sglang:num_requests")
        if legacy:
            assert requests == [{"model_name": "DeepSeek-V3.2"}]
        else:
            assert {lab["is_streaming"] for lab in requests} == {"true", "false"}
            assert {lab["engine_type"] for lab in requests} == {role}
        retracted = label_sets(families, "sglang:num_retracted_reqs")
        assert all("pid" in lab for lab in retracted)  # multiprocess mode "all"

    for families in (prefill, decode, decode1):
        queue = "sglang:num_prefill_prealloc_queue_reqs" if legacy else "sglang:num_prefill_bootstrap_queue_reqs"
        gone = "sglang:num_prefill_bootstrap_queue_reqs" if legacy else "sglang:num_prefill_prealloc_queue_reqs"
        assert queue in families and gone not in families
        for name in ("sglang:num_prefill_inflight_queue_reqs", "sglang:num_decode_prealloc_queue_reqs",
                     "sglang:num_decode_transfer_queue_reqs"):  # fmt: skip
            assert families[name]["type"] == "gauge"
        for name in ("sglang:num_bootstrap_failed_reqs", "sglang:num_transfer_failed_reqs"):
            assert families[name]["type"] == "counter"
        for name in ("sglang:kv_transfer_latency_ms", "sglang:kv_transfer_speed_gb_s"):
            assert families[name]["type"] == ("gauge" if legacy else "histogram")

    # The second decode node: its own schedulers (DP ranks 8..15), no tokenizer (SGLang runs none on rank >= 1).
    ranks = sorted(int(lab["dp_rank"]) for lab in label_sets(decode1, "sglang:num_running_reqs"))
    assert ranks == list(range(8, 16))
    assert "sglang:num_requests" not in decode1 and "sglang:time_to_first_token_seconds" not in decode1


def test_counts_grow_with_the_requests_answered(pd):
    legacy, ports = pd["legacy"], pd["ports"]
    # 0.5.6.post2 does not split by is_streaming: its counts include the streamed chat below (1 prompt token, 6 out).
    streaming = {} if legacy else {"is_streaming": "false"}
    streamed = 1 if legacy else 0
    before = scrape(ports["decode"]["port"])
    prefill_before = scrape(ports["prefill"]["port"])
    bootstrap = {"bootstrap_host": LOOPBACK, "bootstrap_port": ports["prefill"]["bootstrap"], "bootstrap_room": 11}
    for room in (1, 2, 3):
        body = {"text": "one two three four", "sampling_params": {"max_new_tokens": 5}, **bootstrap,
                "bootstrap_room": room}  # fmt: skip
        assert http("POST", ports["prefill"]["port"], "/generate", body)[0] == 200
        assert http("POST", ports["decode"]["port"], "/generate", body)[0] == 200
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": True, **bootstrap}
    assert http("POST", ports["decode"]["port"], "/v1/chat/completions", chat)[0] == 200
    refused = http("POST", ports["decode"]["port"], "/generate", {"text": "no room"})  # PD without bootstrap_room
    assert refused[0] == 400
    after = scrape(ports["decode"]["port"])
    prefill_after = scrape(ports["prefill"]["port"])

    def grew(families_before, families_after, name, **labels):
        return sample(families_after, name, **labels) - sample(families_before, name, **labels)

    assert grew(before, after, "sglang:num_requests_total", **streaming) == 3 + streamed
    assert grew(before, after, "sglang:generation_tokens_total", **streaming) == 15 + 6 * streamed
    assert grew(before, after, "sglang:prompt_tokens_total", **streaming) == 12 + streamed
    assert grew(before, after, "sglang:time_to_first_token_seconds_count", **streaming) == 3 + streamed
    assert grew(before, after, "sglang:e2e_request_latency_seconds_count", **streaming) == 3 + streamed
    if not legacy:
        assert grew(before, after, "sglang:num_requests_total", is_streaming="true") == 1
        assert grew(before, after, "sglang:request_time_per_output_token_seconds_count") == 4
    assert grew(before, after, "sglang:inter_token_latency_seconds_count") == 5  # the streamed chat: 6 tokens
    assert grew(before, after, "sglang:num_aborted_requests_total") == 1
    assert grew(before, after, "sglang:queue_time_seconds_count") == 4
    inf = [v for n, lab, v in after["sglang:e2e_request_latency_seconds"]["samples"] if lab.get("le") == "+Inf"]
    assert sum(inf) == sample(after, "sglang:e2e_request_latency_seconds_count")
    # A PD prefill answers but never observes TTFT (tokenizer_manager.collect_metrics).
    assert grew(prefill_before, prefill_after, "sglang:num_requests_total", **streaming) == 3
    assert grew(prefill_before, prefill_after, "sglang:time_to_first_token_seconds_count", **streaming) == 0
    if not pd["legacy"]:
        assert grew(prefill_before, prefill_after, "sglang:kv_transfer_latency_ms_count") == 3

    # A decode that cannot reach the prefill's bootstrap server: the request fails, a bootstrap failure is counted.
    dead = {"text": "x", "bootstrap_host": LOOPBACK, "bootstrap_port": 9, "bootstrap_room": 5}
    assert http("POST", ports["decode"]["port"], "/generate", dead, timeout=30)[0] == 500
    failed = scrape(ports["decode"]["port"])
    assert grew(after, failed, "sglang:num_bootstrap_failed_reqs_total") == 1


# ---------------------------------------------------------------------------------------------------------------
# against the real wheels

_KINDS = {"Gauge": "gauge", "Counter": "counter", "Histogram": "histogram", "Summary": "summary"}


def real_families(site: Path) -> dict[str, dict]:
    """Every `sglang:` metric the wheel's source creates: {name: {type, help, mode, extra labels, buckets}}."""
    found: dict[str, dict] = {}
    for path in sorted((site / "sglang").rglob("*.py")):
        text = path.read_text(errors="replace")
        if "sglang:" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            kind = _KINDS.get(called.removeprefix("_Prom"))
            keywords = {k.arg: k.value for k in node.keywords}
            name = keywords.get("name") or (node.args[0] if node.args else None)
            if kind is None or not (isinstance(name, ast.Constant) and str(name.value).startswith("sglang:")):
                continue
            doc = keywords.get("documentation") or (node.args[1] if len(node.args) > 1 else None)
            mode = keywords.get("multiprocess_mode")
            labels = keywords.get("labelnames")
            extra = [c.value for c in ast.walk(labels) if isinstance(c, ast.Constant)] if labels is not None else []
            try:
                buckets = ast.literal_eval(keywords["buckets"]) if "buckets" in keywords else None
            except ValueError:
                buckets = None  # computed (a variable or a call)
            found[name.value] = {
                "type": kind,
                "help": doc.value if isinstance(doc, ast.Constant) else None,
                "mode": mode.value if isinstance(mode, ast.Constant) else "all",
                "extra": set(extra),
                "buckets": buckets,
                "file": path.relative_to(site).as_posix(),
            }
    return found


def real_label_dicts(site: Path) -> list[set[str]]:
    """The key sets of the label dicts the wheel builds (dict literals with a "model_name" key)."""
    sets = []
    for relative in ("sglang/srt/managers/scheduler_metrics_mixin.py", "sglang/srt/managers/tokenizer_manager.py",
                     "sglang/srt/observability/metrics_collector.py"):  # fmt: skip
        path = site / relative
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if "model_name" in keys:
                    sets.append(keys)
    return sets


@pytest.mark.parsers
def test_every_family_served_is_the_real_one(pd):
    site = PARSERS / f"sglang-{pd['version']}"
    _need(site)
    real = real_families(site)
    assert len(real) > 50, f"{site}: found only {len(real)} metric definitions"
    label_dicts = real_label_dicts(site)
    assert label_dicts, f"{site}: no metric label dict found"
    optional = {"dp_rank", "priority", "pid", "le"}
    served_any = False
    for node in ("prefill", "decode", "decode-1"):
        families = scrape(pd["ports"][node]["port"])
        for name, family in families.items():
            if not name.startswith("sglang:"):
                continue
            served_any = True
            full = name + "_total" if family["type"] == "counter" and name + "_total" in real else name
            assert full in real, f"{pd['version']}: {full} is not a metric of the real wheel"
            spec = real[full]
            assert family["type"] == spec["type"], f"{full}: {family['type']} here, {spec['type']} in {spec['file']}"
            if spec["help"] is not None:
                assert family["help"] == spec["help"], full
            for _sample, labels, _value in family["samples"]:
                names = set(labels)
                assert ("pid" in names) == (spec["type"] == "gauge" and spec["mode"] == "all"), (full, labels)
                extra = names & spec["extra"]
                base = names - extra - optional
                assert any(base == keys for keys in label_dicts), f"{full}: labels {sorted(base)} are not the real ones"
                assert extra == spec["extra"], (full, labels)
            if spec["buckets"] is not None:
                bounds = {float(lab["le"]) for _n, lab, _v in family["samples"] if "le" in lab}
                assert bounds == {float(b) for b in spec["buckets"]} | {math.inf}, full
    assert served_any


@pytest.mark.parsers
@pytest.mark.parametrize("version", VERSIONS)
def test_the_real_dummy_health_server_mounts_metrics(version):
    """Node rank >= 1 runs launch_dummy_health_check_server(host, port, enable_metrics): with --enable-metrics it
    mounts /metrics (add_prometheus_middleware), which the stand-in's HealthOnlyHandler mirrors."""
    site = PARSERS / f"sglang-{version}"
    _need(site)
    source = (site / "sglang/srt/utils/common.py").read_text()
    tree = ast.parse(source)
    function = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "launch_dummy_health_check_server"
    )
    body = ast.get_source_segment(source, function)
    assert [a.arg for a in function.args.args] == ["host", "port", "enable_metrics"]
    assert "if enable_metrics:" in body and "add_prometheus_middleware(app)" in body
    middleware = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "add_prometheus_middleware"
    )
    assert 'Mount("/metrics"' in ast.get_source_segment(source, middleware)


def test_the_parser_reads_what_the_stand_in_writes():
    """The fallback parser (used when prometheus_client is not installed) on the stand-in's own writer."""
    sys.path.insert(0, str(ROOT / "pdfleet/sandbox/standins/sglang"))
    try:
        from sglang import _metrics
    finally:
        sys.path.pop(0)
    assert [_metrics.float_to_go_string(v) for v in (0, 1, 0.1, 2400, 1100000, 1e6, math.inf)] == [
        "0.0", "1.0", "0.1", "2400.0", "1.1e+06", "1e+06", "+Inf",
    ]  # fmt: skip
    text = (
        '# HELP sglang:x A "quoted" help.\n# TYPE sglang:x counter\n'
        'sglang:x_total{model_name="a\\"b",engine_type="decode"} 3.0\n'
        "# HELP sglang:h H\n# TYPE sglang:h histogram\n"
        'sglang:h_bucket{le="0.1"} 1.0\nsglang:h_bucket{le="+Inf"} 2.0\nsglang:h_count 2.0\nsglang:h_sum 0.5\n'
    )
    parsed = _parse_small(text)
    assert parsed["sglang:x"]["samples"] == [("sglang:x_total", {"model_name": 'a"b', "engine_type": "decode"}, 3.0)]
    assert parsed["sglang:h"]["type"] == "histogram" and len(parsed["sglang:h"]["samples"]) == 4
    assert json.dumps(parsed)  # plain data
