"""Monitoring: the node exporter and NVIDIA's DCGM exporter on every node, Prometheus and Grafana on the monitoring
node (monitoring.node, else the router's), every file from the render (pdfleet/monitoringplan.py).

Packages are pinned in /etc/apt/preferences.d/pdfleet-monitoring.pref and held like the driver set (roles/packages.py).
Prometheus' configuration and rules are checked by the installed `promtool` before they replace the running ones,
as units are by `systemd-analyze verify`; a change reloads Prometheus (its targets are discovered from files and
need nothing). Nothing here restarts an engine or the router.
"""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.facts.files import Sha1File
from pyinfra.operations import files, systemd

from pdfleet import monitoringplan as mon
from roles import common, packages
from roles.unitfiles import rendered_unit

# Where a Prometheus file waits for promtool's check before it is installed.
STAGING_DIR = "/var/lib/pdfleet/prometheus"


@operation()
def checked_file(path: str, content: str, check: str):
    """
    Install a file only after a checker accepted it (staged beside, checked, then moved into place).

    + path: where the file goes
    + content: its text
    + check: the checking command (`promtool check rules`), given the staged file as its last argument
    """
    if host.get_fact(Sha1File, path=path) == hashlib.sha1(content.encode()).hexdigest():
        host.noop(f"{path} is current")
        return
    staged = f"{STAGING_DIR}/{path.rsplit('/', 1)[-1]}"
    yield from files.put._inner(src=StringIO(content), dest=staged, mode="0644", create_remote_dir=True)
    yield StringCommand(*check.split(), staged)
    yield from files.directory._inner(path=path.rsplit("/", 1)[0], mode="0755")
    yield StringCommand("install", "-m", "0644", staged, path)


def _service(unit: str, what: str, reads: tuple) -> None:
    systemd.service(name=f"{what} enabled and running", service=unit, enabled=True, running=True)
    systemd.service(name=f"{what} restarted after a change", service=unit, restarted=True, _if=common.changed(*reads))


def _exporters(cluster) -> None:
    pins = common.put_rendered(mon.MONITORING_PINS, name="packages pinned")
    node_exporter = packages.held_set(
        name="Node exporter | installed and held",
        pins=mon.held(cluster, ("prometheus-node-exporter",)),
        label="prometheus-node-exporter",
    )
    args = common.put_rendered(mon.NODE_EXPORTER_DEFAULTS, name="Node exporter | arguments")
    _service("prometheus-node-exporter", "Node exporter |", (node_exporter, args, pins))

    counters = common.put_rendered(mon.DCGM_COUNTERS, name="DCGM exporter | counters")
    if cluster.monitoring.dcgm_exporter == "package":
        exporter = packages.held_set(
            name="DCGM exporter | installed and held",
            pins=mon.held(cluster, ("datacenter-gpu-manager-exporter",)),
            label=f"datacenter-gpu-manager-exporter {cluster.monitoring.dcgm_exporter_version}",
        )
        drop_in = common.put_rendered(mon.DCGM_DROP_IN, name="DCGM exporter | pdfleet's arguments")
        systemd.daemon_reload(name="DCGM exporter | reload units", _if=drop_in.did_change)
        _service(mon.DCGM_UNIT, "DCGM exporter |", (exporter, drop_in, counters))
    else:
        unit = rendered_unit(mon.DCGM_CONTAINER_UNIT, name="DCGM exporter | unit verified and installed")
        systemd.daemon_reload(name="DCGM exporter | reload units", _if=unit.did_change)
        _service(mon.DCGM_CONTAINER_UNIT, "DCGM exporter |", (unit, counters))


def _prometheus(cluster) -> None:
    installed = packages.held_set(
        name="Prometheus | installed and held", pins=mon.held(cluster, ("prometheus",)), label="prometheus"
    )
    rules = checked_file(
        name="Prometheus | rules checked and installed",
        path=mon.RULES_FILE,
        content=common.rendered(mon.RULES_FILE).content,
        check="promtool check rules",
    )
    # file-based discovery rereads the targets by itself: no reload for them
    for job in mon.JOBS:
        common.put_rendered(f"{mon.TARGETS_DIR}/{job}.json", name=f"Prometheus | {job} targets", create_remote_dir=True)
    config = checked_file(
        name="Prometheus | configuration checked and installed",
        path=mon.PROMETHEUS_CONFIG,
        content=common.rendered(mon.PROMETHEUS_CONFIG).content,
        check="promtool check config",  # the rules above included
    )
    args = common.put_rendered(mon.PROMETHEUS_DEFAULTS, name="Prometheus | arguments")
    systemd.service(name="Prometheus | enabled and running", service="prometheus", enabled=True, running=True)
    # new arguments need a restart; configuration and rules only a reload (no gap in the samples)
    systemd.service(
        name="Prometheus | restarted after new arguments",
        service="prometheus",
        restarted=True,
        _if=common.changed(installed, args),
    )
    systemd.service(
        name="Prometheus | configuration reloaded",
        service="prometheus",
        reloaded=True,
        _if=lambda: (rules.did_change() or config.did_change()) and not (installed.did_change() or args.did_change()),
    )


def _grafana(cluster) -> None:
    if cluster.monitoring.grafana_source == "grafana-repo":
        packages.vendor_repository("Grafana", f"{mon.GRAFANA_REPO}/gpg.key", mon.GRAFANA_KEY, mon.GRAFANA_SOURCES)
    installed = packages.held_set(
        name="Grafana | installed and held",
        pins=mon.held(cluster, ("grafana",)),
        label=f"grafana {cluster.monitoring.grafana_version}",
    )
    reads = [
        common.put_rendered(mon.GRAFANA_INI, name="Grafana | settings"),
        common.put_rendered(mon.GRAFANA_DATASOURCES, name="Grafana | Prometheus data source"),
        common.put_rendered(mon.GRAFANA_PROVIDERS, name="Grafana | dashboard provider"),
    ]
    files.directory(name="Grafana | dashboards directory", path=mon.DASHBOARDS_DIR, mode="0755")
    wanted = sorted(p for p in common.rendered_files()[common.node_name()] if p.startswith(mon.DASHBOARDS_DIR + "/"))
    for path in wanted:
        reads.append(common.put_rendered(path, name=f"Grafana | dashboard {path.rsplit('/', 1)[-1]}"))
    _service("grafana-server", "Grafana |", (installed, *reads))


@deploy("Monitoring")
def monitoring():
    cluster = common.cluster()
    if not cluster.monitoring.enabled:
        host.noop("monitoring is off (monitoring.enabled: false)")
        return
    _exporters(cluster)
    if common.node_name() == cluster.monitoring_node:
        _prometheus(cluster)
        _grafana(cluster)
