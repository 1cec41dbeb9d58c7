"""The monitoring plan from the inventory: targets and their labels, the Prometheus configuration (checked by the real
promtool, the rendered rules beside it), which host holds which file, and the inventory's monitoring knobs refused
with a clear message."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pdfleet import monitoringplan as mon
from pdfleet.cluster import load_cluster
from pdfleet.errors import InventoryError
from pdfleet.render import render
from pdfleet.serving import plan

ROOT = Path(__file__).resolve().parent.parent
PROMTOOL = ROOT / ".cache/monitoring-tools/usr/bin/promtool"


def promtool() -> Path:
    if not PROMTOOL.exists():
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(f"{PROMTOOL} missing: run .ci/install-monitoring-tools.sh")
        pytest.skip("promtool not extracted (.ci/install-monitoring-tools.sh)")
    return PROMTOOL


def edited(tmp_path: Path, change) -> Path:
    doc = yaml.safe_load((ROOT / "inventories/prod.yaml").read_text())
    change(doc)
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_every_rank_and_exporter_is_a_target_labelled_with_the_inventorys_names():
    cluster = load_cluster(ROOT / "inventories/prod.yaml")
    found = mon.targets(cluster)
    by_job: dict[str, list[mon.Target]] = {}
    for target in found:
        by_job.setdefault(target.job, []).append(target)
    # 2 prefills of one node + a decode of two nodes: 4 ranks; 4 nodes with two exporters each; router; itself
    assert {job: len(items) for job, items in by_job.items()} == {
        "sglang": 4,
        "smg": 1,
        "node": 4,
        "dcgm": 4,
        "prometheus": 1,
    }
    decode_1 = next(t for t in by_job["sglang"] if t.labels["node"] == "decode-1")
    assert decode_1.address == "10.10.0.14:8055"
    assert decode_1.labels == {
        "cluster": cluster.name,
        "node": "decode-1",
        "role": "decode",
        "instance": "decode",
        "rank": "1",
    }
    router = by_job["smg"][0]
    assert (router.address, router.labels["role"], router.labels["instance"]) == (
        "10.10.0.11:29000",
        "router",
        "router",
    )
    assert by_job["prometheus"][0].address == "10.10.0.11:9090"  # the router's node by default


def test_a_spare_is_labelled_spare_and_an_ipv6_address_gets_brackets(tmp_path):
    def change(doc):
        # addresses of one family (a cluster mixing IPv4 and IPv6 is refused): every node's moves to IPv6
        for node in doc["nodes"]:
            node["address"] = node["address"].replace("10.10.0.", "fd00:10::")
        doc["nodes"].append({"name": "spare-0", "address": "fd00:10::15"})

    cluster = load_cluster(edited(tmp_path, change))
    spare = [t for t in mon.targets(cluster) if t.labels["node"] == "spare-0"]
    assert {t.job for t in spare} == {"node", "dcgm"}
    assert {t.address for t in spare} == {"[fd00:10::15]:9100", "[fd00:10::15]:9400"}
    assert spare[0].labels == {"cluster": cluster.name, "node": "spare-0", "role": "spare", "instance": "spare-0"}


def test_the_rendered_configuration_and_rules_pass_promtool(tmp_path):
    tool = promtool()
    for inventory in ("prod", "sandbox"):
        cluster = load_cluster(ROOT / f"inventories/{inventory}.yaml")
        files = render(plan(cluster))[cluster.monitoring_node]
        root = tmp_path / inventory
        for path in (mon.PROMETHEUS_CONFIG, mon.RULES_FILE, *(f"{mon.TARGETS_DIR}/{job}.json" for job in mon.JOBS)):
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            # the configuration names absolute paths on the host: point them into this folder
            target.write_text(files[path].content.replace("/etc/prometheus/", f"{root}/etc/prometheus/"))
        done = subprocess.run(
            [str(tool), "check", "config", str(root / mon.PROMETHEUS_CONFIG.lstrip("/"))],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 rule files found" in done.stdout and "SUCCESS" in done.stdout


def test_the_monitoring_node_holds_prometheus_and_grafana_and_every_node_its_exporters(tmp_path):
    cluster = load_cluster(ROOT / "inventories/prod.yaml")
    files = render(plan(cluster))
    home = files["prefill-0"]
    for path in (mon.PROMETHEUS_CONFIG, mon.RULES_FILE, mon.GRAFANA_INI, mon.GRAFANA_DATASOURCES, mon.GRAFANA_SOURCES):
        assert path in home
    assert sum(path.startswith(mon.DASHBOARDS_DIR) for path in home) == 3
    for node in ("prefill-1", "decode-0", "decode-1"):
        assert not any(path.startswith(("/etc/prometheus", "/etc/grafana")) for path in files[node])
    for node in files:
        assert (
            'ARGS="--web.listen-address=:9100 --collector.infiniband"'
            in files[node][mon.NODE_EXPORTER_DEFAULTS].content
        )
        drop_in = files[node][mon.DCGM_DROP_IN].content
        argv = "/usr/bin/dcgm-exporter -f /etc/dcgm-exporter/pdfleet-counters.csv -a :9400 -c 15000"
        assert f"ExecStart=\nExecStart={argv}\n" in drop_in
    targets = json.loads(home[f"{mon.TARGETS_DIR}/sglang.json"].content)
    assert [group["targets"] for group in targets] == [
        ["10.10.0.11:8055"],
        ["10.10.0.12:8055"],
        ["10.10.0.13:8055"],
        ["10.10.0.14:8055"],
    ]

    def move_and_switch_off(doc):
        doc["monitoring"] = {"node": "decode-1"}

    moved = render(plan(load_cluster(edited(tmp_path, move_and_switch_off))))
    assert mon.PROMETHEUS_CONFIG in moved["decode-1"] and mon.PROMETHEUS_CONFIG not in moved["prefill-0"]

    def off(doc):
        doc["monitoring"] = {"enabled": False}

    quiet = render(plan(load_cluster(edited(tmp_path, off))))
    monitoring_paths = {mon.NODE_EXPORTER_DEFAULTS, mon.DCGM_COUNTERS, mon.PROMETHEUS_CONFIG, mon.MONITORING_PINS}
    assert not any(monitoring_paths & set(paths) for paths in quiet.values())


@pytest.mark.parametrize(
    ("monitoring", "field", "found", "expected"),
    [
        ({"node": "prefil-0"}, "node", "'prefil-0'", "a node listed under nodes: prefill-0, prefill-1"),
        ({"node_exporter_port": 8055}, "node_exporter_port", "port 8055 on node", "a port no other service"),
        (
            {"grafana_port": 8000},
            "grafana_port",
            "port 8000 on node 'prefill-0', already used by router port",
            "a port",
        ),
        ({"dcgm_exporter": "container"}, "dcgm_exporter_image", "nothing", "an image pinned by digest"),
        ({"dcgm_exporter": "docker"}, "dcgm_exporter", "'docker'", "package or container"),
        ({"alerts": {"gpu_temp_c": 200}}, "alerts.gpu_temp_c", "200", "an integer from 30 to 120"),
        (
            {"scrape_interval": 15},
            "scrape_interval",
            "an unknown field",
            "'scrape_interval_secs' (the known field spelt most like it)",
        ),
    ],
)
def test_bad_monitoring_knobs_are_refused_with_file_field_found_and_expected(
    tmp_path, monitoring, field, found, expected
):
    def change(doc):
        doc["monitoring"] = monitoring

    with pytest.raises(InventoryError) as raised:
        load_cluster(edited(tmp_path, change))
    text = str(raised.value)
    line = next((line for line in text.splitlines() if field in line), text)
    assert "prod.yaml" in line and found in line and expected in line, text
