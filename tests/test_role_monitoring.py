"""roles.monitoring on pyinfra's @fake connector: what a fresh node and the monitoring node get, promtool's check
before a Prometheus file is installed, a changed rule reloading Prometheus (never restarting it), a converged
node changing nothing, and monitoring switched off touching nothing."""

from __future__ import annotations

import re

import yaml

from pdfleet import monitoringplan as mon
from pdfleet.cluster import load_cluster
from pdfleet.render import render
from pdfleet.serving import plan
from roles.monitoring import monitoring
from tests.fakehosts import ROOT, converge, file_present


def present(path: str, content: str) -> dict:
    """file_present, with its checksum answer keyed to the exact path: /etc/default/prometheus is a prefix of
    /etc/default/prometheus-node-exporter, and plain keys match substrings."""
    answers = file_present(path, content)
    sha1 = answers.pop(f"sha1sum {path}")
    answers[re.compile(rf"sha1sum {re.escape(path)} ")] = sha1
    return answers


PROD = ROOT / "inventories/prod.yaml"
HOME = "prefill-0"  # the router's node: the monitoring node by default


def files_of(node: str, inventory=PROD) -> dict:
    return render(plan(load_cluster(inventory)))[node]


def running(*units: str) -> dict:
    answers = {}
    for unit in units:
        escaped = re.escape(unit)
        answers[re.compile(rf"systemctl show --all .*SubState {escaped}\.service")] = [
            f"Id={unit}.service",
            "SubState=running",
        ]
        answers[re.compile(rf"systemctl show --all .*UnitFileState {escaped}\.service")] = [
            f"Id={unit}.service",
            "UnitFileState=enabled",
        ]
    return answers


def converged(node: str, skip: tuple[str, ...] = ()) -> dict:
    """Answers of a node holding every rendered monitoring file (but `skip`), its packages installed and held and
    its services running."""
    wanted = files_of(node)
    answers: dict = {}
    singles = (
        mon.NODE_EXPORTER_DEFAULTS,
        mon.PROMETHEUS_DEFAULTS,
        mon.MONITORING_PINS,
        mon.DCGM_DROP_IN,
        mon.GRAFANA_SOURCES,
    )
    for path, rendered in wanted.items():
        ours = path.startswith(("/etc/prometheus", "/etc/grafana", "/var/lib/grafana", "/etc/dcgm-exporter"))
        if (ours or path in singles) and path not in skip:
            answers.update(present(path, rendered.content))
    if node == HOME:
        answers.update(present(mon.GRAFANA_KEY, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n"))
    packages = ["prometheus-node-exporter 1.5.0-1+b6", "datacenter-gpu-manager-exporter 4.6.0-1"]
    if node == HOME:
        packages += ["prometheus 2.42.0+ds-5+deb12u1", "grafana 12.3.0"]
    answers["dpkg -l"] = [f"hi  {p.split()[0]}  {p.split()[1]}  amd64  -" for p in packages]
    answers["apt-mark showhold"] = [p.split()[0] for p in packages]
    answers.update(running("prometheus-node-exporter", "nvidia-dcgm-exporter", "prometheus", "grafana-server"))
    return answers


def test_a_fresh_node_gets_its_exporters_and_the_monitoring_node_prometheus_checked_by_promtool_and_grafana():
    runs = converge(monitoring, {HOME: {}, "decode-0": {}})
    home, decode = runs[HOME], runs["decode-0"]
    for run in (home, decode):
        assert run.changes("Node exporter | installed and held") and run.changes("DCGM exporter | installed and held")
        assert run.ran("systemctl start nvidia-dcgm-exporter.service")
    assert not any("Prometheus" in name or "Grafana" in name for name in decode.will_change)
    assert not decode.ran("promtool")
    staged = "/var/lib/pdfleet/prometheus/pdfleet.rules.yml"
    check = next(i for i, c in enumerate(home.commands) if c == f"promtool check rules {staged}")
    install = next(i for i, c in enumerate(home.commands) if c == f"install -m 0644 {staged} {mon.RULES_FILE}")
    assert check < install, "a rules file reaches /etc/prometheus only after promtool accepted it"
    assert home.ran("promtool check config /var/lib/pdfleet/prometheus/prometheus.yml")
    assert home.ran("apt-get update") and home.ran("https://apt.grafana.com/gpg.key")
    assert home.ran("apt-mark hold grafana")


def test_a_converged_node_changes_nothing():
    runs = converge(monitoring, {HOME: converged(HOME), "decode-0": converged("decode-0")})
    for node, run in runs.items():
        changed = [name for name, change in run.changed.items() if change]
        assert changed == [], (node, changed)
        assert len(run.changed) >= 10 and not run.ran("systemctl reload") and not run.ran("systemctl restart")


def test_a_changed_rule_reloads_prometheus_and_restarts_nothing():
    run = converge(monitoring, {HOME: converged(HOME, skip=(mon.RULES_FILE,))})[HOME]
    assert run.changes("Prometheus | rules checked and installed")
    assert run.ran("systemctl reload prometheus")
    restarts = [c for c in run.commands if "systemctl restart" in c]
    assert restarts == []


def test_new_prometheus_arguments_restart_it_instead_of_reloading(tmp_path):
    run = converge(monitoring, {HOME: converged(HOME, skip=(mon.PROMETHEUS_DEFAULTS,))})[HOME]
    assert run.ran("systemctl restart prometheus") and not run.ran("systemctl reload prometheus")


def test_monitoring_off_touches_nothing(tmp_path):
    doc = yaml.safe_load(PROD.read_text())
    doc["monitoring"] = {"enabled": False}
    inventory = tmp_path / "prod.yaml"
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    run = converge(monitoring, {HOME: {}}, inventory_yaml=inventory)[HOME]
    assert [name for name, change in run.will_change.items() if change] == []
    assert not run.ran("apt-get") and not run.ran("promtool")
