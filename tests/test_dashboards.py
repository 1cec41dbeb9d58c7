"""The Grafana dashboards (pdfleet/dashboards.py), the DCGM counters file (pdfleet/dcgmcounters.py), and every metric
name that a dashboard query, an alert or a recording rule (pdfleet/alerts.py) reads.

Structure: valid, deterministic JSON; unique panel ids; panels that do not overlap on Grafana's grid; the provisioned
data source on every query. Syntax: every query goes through Prometheus' own parser (promtool, one throwaway
recording rule per query). Names: each metric a query names exists in the real programs, read from the real sources:

- SGLang: the metric declarations (`Counter/Gauge/Histogram(name="sglang:...")`) of the installed wheels
  .cache/parsers/sglang-0.5.6.post2 and .cache/parsers/sglang-0.5.23 (.ci/install-parsers.sh), with
  prometheus_client's suffixes (counters `_total`, histograms `_bucket/_sum/_count`). A name in neither version
  fails; a name in one version only must come with its other-version spelling in the same expression, or be listed
  in ONE_VERSION_ONLY with the reason.
- smg: the strings of the router's binary (smg 1.13.0's smg_rs*.so in .cache/parsers/smg-venv).
- node exporter: Debian's prometheus-node-exporter (.ci/install-monitoring-tools.sh), started on 127.0.0.1 with a
  made-up /sys/class/infiniband (one HCA, in the kernel's file formats), and scraped.
- DCGM: the counters file pdfleet renders; recording rules: their own names; Prometheus: `up`.

Without those programs the tests that need them skip locally and fail in CI (PDFLEET_REQUIRE_PARSERS=1).
"""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from functools import cache
from pathlib import Path

import pytest
import yaml

from pdfleet import alerts, dcgmcounters
from pdfleet.dashboards import VARIABLES, dashboards
from pdfleet.monitoringplan import DATASOURCE_UID, grafana_datasources
from tests.test_alerts import INVENTORIES, cluster, monitoring_tool, promtool

ROOT = Path(__file__).resolve().parent.parent
PARSERS = ROOT / ".cache/parsers"
SGLANG_VERSIONS = ("0.5.6.post2", "0.5.23")
FILES = ("pdfleet-gpus.json", "pdfleet-nodes-fabric.json", "pdfleet-pd-overview.json")
# The same metric under another name in the other pinned version (SGLang 0.5.12 renamed it).
RENAMED = {"sglang:num_prefill_prealloc_queue_reqs": "sglang:num_prefill_bootstrap_queue_reqs"}
# SGLang metrics read although one pinned version lacks them, and why that is fine.
ONE_VERSION_ONLY = {
    "sglang:num_prefill_retries_total": "added in SGLang 0.5.8: the prefill-retries line of the failures panel stays "
    "empty on 0.5.6.post2, which does not retry",
}
# Node exporter metrics that Debian's package does not have, and why the dashboards read them anyway.
NEWER_NODE_EXPORTER = {
    name: "the infiniband collector reads the HCAs' hw_counters (RoCE congestion) from node_exporter 1.11.0; "
    "Debian 12's 1.5.0 does not, so those panels stay empty until a newer exporter runs"
    for name in (
        "node_infiniband_np_ecn_marked_roce_packets_received_total",
        "node_infiniband_np_cnp_packets_sent_total",
        "node_infiniband_rp_cnp_packets_handled_total",
    )
}
BUILTIN = {"up": "gauge"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
KEYWORDS |= {"inf", "nan", "Inf", "NaN"}
RATE_FUNCTIONS = ("rate", "irate", "increase")


def _need(path: Path) -> Path:
    if not path.exists():
        message = f"{path} is missing: run .ci/install-parsers.sh"
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


# ---- PromQL, just enough to find metric names ----------------------------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (not functions, keywords, labels, strings or durations)."""
    text = re.sub(r"#[^\n]*", "", expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # 1e9, 5m
            continue
        if text[match.end() :].lstrip().startswith("(") or word in KEYWORDS:
            continue
        names.add(word)
    return names


def rated_names(expr: str) -> set[str]:
    """The metric names read inside rate(), irate() or increase()."""
    found = set()
    for match in re.finditer(r"\b(" + "|".join(RATE_FUNCTIONS) + r")\s*\(", expr):
        depth, start = 1, match.end()
        i = start
        while depth:
            depth += {"(": 1, ")": -1}.get(expr[i], 0)
            i += 1
        found |= metric_names(expr[start : i - 1])
    return found


def test_metric_name_extraction():
    expr = (
        "histogram_quantile(0.99, sum by (le, instance) "
        '(rate(sglang:ttft_bucket{job="x", a=~"b|c"}[$__rate_interval])))'
        " or max by (instance) (sglang:gauge) / 1e9 > 5 unless on (worker) group_left (w) other offset 5m"
        '\n# comment sglang:not_this\nand label_replace(x_total, "counter", "crc", "", "")'
    )
    assert metric_names(expr) == {"sglang:ttft_bucket", "sglang:gauge", "other", "x_total"}
    assert rated_names(expr) == {"sglang:ttft_bucket"}


# ---- what the dashboards and rules ask for -------------------------------------------------------------------------


def _variable_selector(query: str) -> str:
    match = re.fullmatch(r"label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)", query)
    assert match, query
    return match.group(1)


def dashboard_queries(inventory: str) -> list[tuple[str, str]]:
    """(where, expr) of every dashboard query: panel targets and the variables' series selectors."""
    found = []
    for name, text in dashboards(cluster(inventory)).items():
        document = json.loads(text)
        for panel in document["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{name}: {panel['title']} {target['refId']}", target["expr"]))
        for variable in document["templating"]["list"]:
            found.append((f"{name}: variable {variable['name']}", _variable_selector(variable["query"]["query"])))
    return found


def rule_queries(inventory: str) -> list[tuple[str, str]]:
    c = cluster(inventory)
    found = [(f"record {rule['record']}", rule["expr"]) for rule in alerts.recording_rules(c)]
    return found + [(f"alert {alert.name}", alert.expr) for alert in alerts.alerts(c)]


def every_query(inventory: str = "prod") -> list[tuple[str, str]]:
    return dashboard_queries(inventory) + rule_queries(inventory)


# ---- catalogs from the real programs --------------------------------------------------------------------------------


def _exposed(name: str, kind: str) -> dict[str, str]:
    """The series names prometheus_client exposes for a metric: {name: counter | gauge | histogram part}."""
    if kind == "Counter":
        base = name[: -len("_total")] if name.endswith("_total") else name
        return {f"{base}_total": "counter", f"{base}_created": "gauge"}
    if kind in ("Histogram", "GaugeHistogram"):
        parts = ("_bucket", "_sum", "_count") if kind == "Histogram" else ("_bucket", "_gsum", "_gcount")
        return {f"{name}{part}": "histogram" for part in parts} | {f"{name}_created": "gauge"}
    if kind == "Summary":
        return {f"{name}_sum": "histogram", f"{name}_count": "histogram"}
    return {name: "gauge"}


@cache
def sglang_declarations(version: str) -> dict[str, str]:
    """{metric: prometheus_client class} of every `name="sglang:..."` declaration in that SGLang's wheel."""
    root = _need(PARSERS / f"sglang-{version}" / "sglang")
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(errors="replace")
        if "sglang:" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg == "name" and isinstance(value, ast.Constant) and str(value.value).startswith("sglang:"):
                    found[value.value] = kind
    assert len(found) > 50, f"SGLang {version}: only {len(found)} metrics found in {root}"
    return found


@cache
def sglang_series(version: str) -> dict[str, tuple[str, str]]:
    """{series name: (metric, type)} that SGLang `version` exposes."""
    out = {}
    for metric, kind in sglang_declarations(version).items():
        for series, series_type in _exposed(metric, kind).items():
            out[series] = (metric, series_type)
    return out


def smg_binary() -> Path:
    found = sorted(PARSERS.glob("smg-venv/lib/python*/site-packages/smg/smg_rs*.so"))
    if not found:
        _need(PARSERS / "smg-venv/lib/python3.11/site-packages/smg/smg_rs.abi3.so")
    return found[0]


@cache
def smg_strings() -> bytes:
    return smg_binary().read_bytes()


def smg_type(name: str) -> str | None:
    """The metric's type if the router's binary names it: Rust keeps its string literals back to back, so a name
    counts when what follows it cannot continue it (a description starts with a capital, another name with smg_)."""
    data = smg_strings()
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    if base != name:
        if not base.endswith("_seconds"):  # smg's histograms are durations (metrics-rs `histogram!`)
            return None
        name, kind = base, "histogram"
    else:
        kind = "counter" if name.endswith("_total") else "gauge"
    if re.search(re.escape(name.encode()) + rb"(?:[^a-z0-9_]|smg_|$)", data):
        return kind
    return None


# The counters files mlx5 has under ports/<n>/counters (what procfs' sysfs reader knows).
INFINIBAND_COUNTERS = (
    "excessive_buffer_overrun_errors",
    "link_downed",
    "link_error_recovery",
    "local_link_integrity_errors",
    "multicast_rcv_packets",
    "multicast_xmit_packets",
    "port_rcv_constraint_errors",
    "port_rcv_data",
    "port_rcv_discards",
    "port_rcv_errors",
    "port_rcv_packets",
    "port_rcv_remote_physical_errors",
    "port_rcv_switch_relay_errors",
    "port_xmit_constraint_errors",
    "port_xmit_data",
    "port_xmit_discards",
    "port_xmit_packets",
    "port_xmit_wait",
    "symbol_error",
    "unicast_rcv_packets",
    "unicast_xmit_packets",
    "VL15_dropped",
)
# What mlx5 exposes under hw_counters for RoCE congestion control (read by node_exporter >= 1.11.0).
HW_COUNTERS = ("np_ecn_marked_roce_packets", "np_cnp_sent", "rp_cnp_handled")


def fake_sysfs(root: Path) -> Path:
    """A /sys with one HCA port, in the kernel's formats (drivers/infiniband/core/sysfs.c), ACTIVE and LinkUp."""
    device = root / "class/infiniband/mlx5_0"
    port = device / "ports/1"
    (port / "counters").mkdir(parents=True)
    (port / "hw_counters").mkdir()
    (device / "board_id").write_text("MT_0000000838\n")
    (device / "fw_ver").write_text("28.39.1002\n")
    (device / "hca_type").write_text("MT4129\n")
    (port / "state").write_text("4: ACTIVE\n")
    (port / "phys_state").write_text("5: LinkUp\n")
    (port / "rate").write_text("400 Gb/sec (4X NDR)\n")
    for counter in INFINIBAND_COUNTERS:
        (port / "counters" / counter).write_text("7\n")
    for counter in HW_COUNTERS:
        (port / "hw_counters" / counter).write_text("3\n")
    return root


@pytest.fixture(scope="module")
def node_exporter_series(tmp_path_factory) -> dict[str, str]:
    """{series name: type} that the real node exporter serves here, with a made-up HCA in its sysfs."""
    binary = monitoring_tool("prometheus-node-exporter")
    sysfs = fake_sysfs(tmp_path_factory.mktemp("sys"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(binary), f"--web.listen-address=127.0.0.1:{port}", f"--path.sysfs={sysfs}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    found = {}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if kind in ("histogram", "summary"):
            found |= {f"{name}{part}": "histogram" for part in ("_bucket", "_sum", "_count")}
        else:
            found[name] = kind
    assert "node_infiniband_state_id" in found, "the made-up HCA was not read"
    return found


def recorded() -> dict[str, str]:
    return {rule["record"]: "gauge" for rule in alerts.recording_rules(cluster("prod"))}


def metric_type(name: str, node_series: dict[str, str]) -> str | None:
    """The type of a series name in its source (None: no source has it)."""
    if name.startswith("sglang:"):
        types = {sglang_series(v)[name][1] for v in SGLANG_VERSIONS if name in sglang_series(v)}
        return types.pop() if len(types) == 1 else ("mixed" if types else None)
    if name.startswith("smg_"):
        return smg_type(name)
    if name.startswith("node_"):
        return node_series.get(name) or ("counter" if name in NEWER_NODE_EXPORTER else None)
    if name.startswith("DCGM_"):
        return dcgmcounters.fields().get(name)
    if name.startswith("pdfleet:"):
        return recorded().get(name)
    return BUILTIN.get(name)


# ---- structure -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_dashboards_are_deterministic_sorted_json(inventory):
    first, second = dashboards(cluster(inventory)), dashboards(cluster(inventory))
    assert first == second
    assert sorted(first) == list(FILES)
    for name, text in first.items():
        document = json.loads(text)
        assert text == json.dumps(document, indent=2, sort_keys=True) + "\n", name
        assert document["uid"] == name.removesuffix(".json")
        assert document["schemaVersion"] == 39 and document["id"] is None
        assert [v["name"] for v in document["templating"]["list"]] == list(VARIABLES)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_panels_have_unique_ids_and_do_not_overlap(inventory):
    for name, text in dashboards(cluster(inventory)).items():
        panels = json.loads(text)["panels"]
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), name
        cells: dict[tuple[int, int], str] = {}
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, (name, panel)
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = panel["title"]


def test_every_query_and_variable_uses_the_provisioned_data_source():
    assert yaml.safe_load(grafana_datasources(cluster("prod")))["datasources"][0]["uid"] == DATASOURCE_UID
    for name, text in dashboards(cluster("prod")).items():
        document = json.loads(text)
        for panel in document["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, (name, panel["title"])
        for variable in document["templating"]["list"]:
            assert variable["datasource"]["uid"] == DATASOURCE_UID, (name, variable["name"])


def test_every_panel_query_filters_on_the_cluster():
    for where, expr in dashboard_queries("prod"):
        if ": variable cluster" in where:
            continue
        selectors = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*\{([^}]*)\}", expr)
        assert selectors, f"{where}: no selector"
        for selector in selectors:
            if "job=" in selector or not selector.startswith("cluster"):
                assert 'cluster=~"$cluster"' in selector, f"{where}: {selector}"


# ---- syntax --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_dashboard_query_parses_with_promtool(tmp_path, inventory):
    """One throwaway recording rule per query (Grafana's $__rate_interval made a duration), checked by promtool."""
    queries = dashboard_queries(inventory)
    rules = [
        {"record": f"check:query_{i}", "expr": expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")}
        for i, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}, sort_keys=False))
    result = promtool("check", "rules", str(path))
    output = result.stdout + result.stderr
    for i, (where, _) in enumerate(queries):  # name the query promtool complains about
        assert f"rule {i + 1}:" not in output, f"{where}: {output}"
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# ---- names ---------------------------------------------------------------------------------------------------------


def test_every_metric_name_exists_in_its_program(node_exporter_series):
    missing = []
    for where, expr in every_query():
        for name in sorted(metric_names(expr)):
            if metric_type(name, node_exporter_series) is None:
                missing.append(f"{where}: {name}")
    assert not missing, "metrics no pinned program serves:\n" + "\n".join(missing)


def test_sglang_names_in_one_version_come_with_the_other_versions_spelling():
    """Both versions can serve at once (blue/green): a query must read the metric under both names, unless
    ONE_VERSION_ONLY says why it need not."""
    series = {v: sglang_series(v) for v in SGLANG_VERSIONS}

    def family(name: str, version: str) -> str:
        metric = series[version][name][0]
        return RENAMED.get(metric, metric)

    problems = []
    for where, expr in every_query():
        names = {n for n in metric_names(expr) if n.startswith("sglang:")}
        for name in sorted(names):
            versions = [v for v in SGLANG_VERSIONS if name in series[v]]
            if len(versions) != 1 or name in ONE_VERSION_ONLY:
                continue
            (version,) = versions
            (other,) = [v for v in SGLANG_VERSIONS if v != version]
            partners = {n for n in names if n in series[other] and n not in series[version]}
            if family(name, version) not in {family(n, other) for n in partners}:
                problems.append(f"{where}: {name} is only in SGLang {version}, and its {other} spelling is missing")
    assert not problems, "\n".join(problems)


def test_one_version_table_holds_only_names_in_exactly_one_version_that_a_query_reads():
    used = set().union(*(metric_names(expr) for _, expr in every_query()))
    for name in ONE_VERSION_ONLY:
        versions = [v for v in SGLANG_VERSIONS if name in sglang_series(v)]
        assert len(versions) == 1, (name, versions)
        assert name in used, f"{name} is in ONE_VERSION_ONLY but no query reads it"


def test_renamed_table_matches_the_wheels():
    for old, new in RENAMED.items():
        assert old in sglang_declarations("0.5.6.post2") and old not in sglang_declarations("0.5.23")
        assert new in sglang_declarations("0.5.23") and new not in sglang_declarations("0.5.6.post2")


def test_newer_node_exporter_names_are_really_missing_from_debians(node_exporter_series):
    """Those panels read counters Debian's node exporter does not serve even when the HCA has them (the made-up
    sysfs holds hw_counters): when the package catches up, the table must go."""
    used = set().union(*(metric_names(expr) for _, expr in every_query()))
    for name in NEWER_NODE_EXPORTER:
        assert name not in node_exporter_series, f"{name} is served now: drop it from NEWER_NODE_EXPORTER"
        assert name in used, f"{name} is in NEWER_NODE_EXPORTER but no query reads it"


def test_rate_and_increase_read_counters_only(node_exporter_series):
    problems = []
    for where, expr in every_query():
        for name in sorted(rated_names(expr)):
            kind = metric_type(name, node_exporter_series)
            if kind not in ("counter", "histogram"):
                problems.append(f"{where}: rate/increase of {name}, a {kind}")
    assert not problems, "\n".join(problems)


# ---- the DCGM counters file ----------------------------------------------------------------------------------------


def test_counters_file_reads_like_dcgm_exporter_reads_it():
    """Go's encoding/csv with '#' comments, exactly 3 fields a line (dcgm-exporter's ExtractCounters)."""
    text = dcgmcounters.counters_csv()
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    fields = {}
    for row in rows:
        parts = [part.strip() for part in row.split(",")]
        assert len(parts) == 3 and '"' not in row, row
        assert re.fullmatch(r"DCGM_FI_[A-Z0-9_]+", parts[0]) and parts[1] in ("gauge", "counter", "label"), row
        fields[parts[0]] = parts[1]
    assert fields == dcgmcounters.fields()
    assert len(fields) == len(rows), "a field is listed twice"


def test_counters_file_holds_nvidias_defaults_and_every_field_the_queries_read():
    fields = dcgmcounters.fields()
    assert set(dcgmcounters.fields(dcgmcounters.DEFAULT)) <= set(fields)
    assert len(dcgmcounters.fields(dcgmcounters.DEFAULT)) == 26  # NVIDIA's 4.4.1-4.6.0 default-counters.csv
    used = set().union(*(metric_names(expr) for _, expr in every_query()))
    assert {n for n in used if n.startswith("DCGM_")} <= set(fields)
    for name in dcgmcounters.fields(dcgmcounters.EXTRA):
        assert name in used, f"{name} is added to the counters file but no alert or dashboard reads it"


def test_a_help_text_with_a_comma_is_refused(monkeypatch):
    monkeypatch.setattr(dcgmcounters, "EXTRA", (("DCGM_FI_DEV_GPU_TEMP", "gauge", "a, b"),))
    with pytest.raises(ValueError, match="comma"):
        dcgmcounters.counters_csv()
