"""The alert and recording rules (pdfleet/alerts.py), checked by Prometheus' own promtool.

`promtool check rules` takes the file rendered from each inventory; `promtool test rules` runs the unit tests of
tests/promtool/*.yml against the rules rendered from inventories/prod.yaml (written beside them in a temporary
folder): every alert fires when it should and stays silent when it should not, with series in both pinned SGLang
versions' names where they differ. promtool comes from Debian's `prometheus` package, extracted (not installed) by
.ci/install-monitoring-tools.sh; without it these tests skip locally and fail in CI (PDFLEET_REQUIRE_PARSERS=1).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pdfleet import alerts
from pdfleet.cluster import load_cluster
from pdfleet.monitoringconfig import Alerting

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".cache/monitoring-tools/usr/bin"
UNIT_TESTS = ROOT / "tests/promtool"
DOCS = ROOT / alerts.DOCS
INVENTORIES = ("prod", "sandbox")
# The thresholds tests/promtool/*.yml are written for (inventories/prod.yaml's).
UNIT_TEST_LIMITS = Alerting(down_for_secs=60, queue_reqs=256, queue_for_secs=300, gpu_temp_c=85, disk_free_percent=10)
UNIT_TEST_SCRAPE_SECS = 15


def monitoring_tool(name: str) -> Path:
    """A binary of .cache/monitoring-tools (promtool, prometheus-node-exporter): skip when missing, unless CI."""
    path = TOOLS / name
    if not path.exists():
        message = f"{path} is missing: run .ci/install-monitoring-tools.sh"
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def cluster(name: str = "prod"):
    return load_cluster(ROOT / f"inventories/{name}.yaml")


def without_annotations(text: str) -> str:
    """The rules file with every alert's annotations dropped: the behaviour tests compare labels only (promtool
    compares annotations whole when an alert fires, so annotations.yml checks them once, on the full file)."""
    document = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return yaml.safe_dump(document, sort_keys=False)


def render_beside_unit_tests(folder: Path) -> Path:
    """tests/promtool/*.yml copied to folder, with the rules they name rendered from inventories/prod.yaml."""
    text = alerts.rules_yaml(cluster("prod"))
    (folder / "pdfleet.rules.yml").write_text(text)
    (folder / "pdfleet.rules.noannotations.yml").write_text(without_annotations(text))
    for test in UNIT_TESTS.glob("*.yml"):
        shutil.copy(test, folder / test.name)
    return folder


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(monitoring_tool("promtool")), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


# ---- promtool ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_promtool_checks_the_rendered_rules(tmp_path, inventory):
    path = tmp_path / "pdfleet.rules.yml"
    path.write_text(alerts.rules_yaml(cluster(inventory)))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = len(alerts.recording_rules(cluster(inventory))) + len(alerts.alerts(cluster(inventory)))
    assert f"SUCCESS: {rules} rules found" in result.stdout


@pytest.mark.parametrize("test_file", sorted(p.name for p in UNIT_TESTS.glob("*.yml")))
def test_promtool_unit_tests_pass(tmp_path, test_file):
    folder = render_beside_unit_tests(tmp_path)
    result = promtool("test", "rules", test_file, cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_are_written_for_prods_thresholds():
    """The unit tests' times and values assume these thresholds: a change in prod.yaml must change them too."""
    prod = cluster("prod")
    assert prod.monitoring.alerts == UNIT_TEST_LIMITS
    assert prod.monitoring.scrape_interval_secs == UNIT_TEST_SCRAPE_SECS


def _unit_test_cases() -> list[dict]:
    cases = []
    for path in sorted(UNIT_TESTS.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        for test in document["tests"]:
            cases += test.get("alert_rule_test", [])
    return cases


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not():
    cases = _unit_test_cases()
    for alert in alerts.alerts(cluster("prod")):
        mine = [case for case in cases if case["alertname"] == alert.name]
        assert any(case["exp_alerts"] for case in mine), f"{alert.name}: no unit test where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{alert.name}: no unit test where it stays silent"


def test_unit_tests_name_only_alerts_that_exist():
    names = {alert.name for alert in alerts.alerts(cluster("prod"))}
    assert {case["alertname"] for case in _unit_test_cases()} <= names


# ---- the rules as data ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_rules_text_is_deterministic_and_names_each_alert_once(inventory):
    assert alerts.rules_yaml(cluster(inventory)) == alerts.rules_yaml(cluster(inventory))
    names = [alert.name for alert in alerts.alerts(cluster(inventory))]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"Pdfleet[A-Z][A-Za-z]+", name) for name in names)


def test_every_alert_has_a_severity_summary_description_and_runbook():
    document = alerts.rules_document(cluster("prod"))
    rules = [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(rules) == len(alerts.alerts(cluster("prod")))
    for rule in rules:
        assert rule["labels"]["severity"] in ("page", "ticket", alerts.SEVERITY_BY_ROLE), rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, rule["alert"]
        assert "First:" in annotations["description"], f"{rule['alert']}: say what to do first"
        assert annotations["runbook"] == f"docs/monitoring.md#{rule['alert'].lower()}"


def test_every_runbook_link_has_its_section_in_the_docs():
    """docs/monitoring.md has a `## PdfleetX` heading per alert (GitHub's anchor: #pdfleetx), each saying what it
    means, what to check first and what to do."""
    text = DOCS.read_text()
    headings = re.findall(r"^## (\S+)$", text, re.M)
    for alert in alerts.alerts(cluster("prod")):
        assert alert.name in headings, f"{DOCS.name} has no section `## {alert.name}`"
        section = text.split(f"\n## {alert.name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means**", "**Check first**", "**Do**"):
            assert part in section, f"{alert.name}: its section has no {part}"


def test_for_durations_come_from_the_inventory(tmp_path):
    """Changed thresholds reach the rules: every `for:` and threshold the inventory sets."""
    text = (ROOT / "inventories/prod.yaml").read_text()
    assert not re.search(r"^monitoring:", text, re.M), "prod.yaml sets monitoring: now; merge the alerts below into it"
    text += "\nmonitoring:\n  alerts:\n    down_for_secs: 90\n    queue_reqs: 17\n"
    (tmp_path / "custom.yaml").write_text(text)
    custom = {alert.name: alert for alert in alerts.alerts(load_cluster(tmp_path / "custom.yaml"))}
    assert custom["PdfleetInstanceDown"].for_secs == 90
    assert custom["PdfleetRouterWorkerNotReady"].for_secs == 90
    assert custom["PdfleetRequestQueueHigh"].expr.endswith("> 17")
    assert custom["PdfleetRequestQueueHigh"].for_secs == 300
    document = alerts.rules_document(load_cluster(tmp_path / "custom.yaml"))
    down = next(r for g in document["groups"] for r in g["rules"] if r.get("alert") == "PdfleetInstanceDown")
    assert down["for"] == "90s"


def test_weights_mountpoints_are_root_and_every_directory_to_the_model():
    prod = cluster("prod")
    assert prod.model.path == "/models/DeepSeek-V3.2"
    assert alerts.weights_mountpoints(prod) == ["/", "/models", "/models/DeepSeek-V3.2"]
    # a regex matcher of exactly these: the dot escaped for PromQL's string and RE2
    assert alerts.promql_regex(["/", "/models/DeepSeek-V3.2"]) == "/|/models/DeepSeek-V3\\\\.2"


def test_hca_alert_watches_each_nodes_own_hcas():
    """decode-0/1 skip mlx5_3 and mlx5_4 (storage) in prod.yaml: their state must not page."""
    expr = next(a.expr for a in alerts.alerts(cluster("prod")) if a.name == "PdfleetHcaPortDown")
    assert 'node=~"decode-0|decode-1", device=~"mlx5_0|mlx5_1|mlx5_2|mlx5_5|mlx5_6|mlx5_7|mlx5_8|mlx5_9"' in expr
    assert 'node=~"prefill-0|prefill-1", device=~"mlx5_0|mlx5_1|mlx5_2|mlx5_3|mlx5_4|mlx5_5|mlx5_6|mlx5_7"' in expr


def test_durations_read_like_prometheus_ones():
    assert [alerts.duration(s) for s in (4, 60, 90, 300, 3600, 5400, 14400)] == [
        "4s",
        "1m",
        "90s",
        "5m",
        "1h",
        "90m",
        "4h",
    ]
