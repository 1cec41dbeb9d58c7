"""What monitoring scrapes and how, from the inventory: Prometheus' targets (file-based discovery) labelled with what
pdfleet knows and the metrics do not say, its configuration, the exporters' arguments, Grafana's provisioning.

Pure: `pdfleet.render` turns these into files (every node: the node exporter's arguments and the DCGM exporter's
counters and unit; the monitoring node: Prometheus and Grafana), roles/monitoring.py puts them on the hosts.

Every target carries `cluster`, `node`, `role` (prefill / decode, `spare` for a node in no instance, `router`,
`monitoring`), `instance` (the SGLang instance a node serves in, the node's name for a spare, `router`) and `rank`
(the node's rank in its instance). `instance` replaces Prometheus' host:port on purpose: alerts and dashboards
speak the inventory's names. SGLang 0.5.6's own `engine_type` label is always "unified"; `role` is pdfleet's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from pdfleet.cluster import Cluster
from pdfleet.hostplan import Pin
from pdfleet.netaddr import host_port

PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
PROMETHEUS_DEFAULTS = "/etc/default/prometheus"  # Debian/Ubuntu's unit reads $ARGS from it
RULES_FILE = "/etc/prometheus/rules/pdfleet.rules.yml"
TARGETS_DIR = "/etc/prometheus/targets"
NODE_EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter"
DCGM_COUNTERS = "/etc/dcgm-exporter/pdfleet-counters.csv"
DCGM_UNIT = "nvidia-dcgm-exporter.service"  # NVIDIA's package's unit
DCGM_DROP_IN = f"/etc/systemd/system/{DCGM_UNIT}.d/pdfleet.conf"
DCGM_CONTAINER_UNIT = "pdfleet-dcgm-exporter.service"
GRAFANA_INI = "/etc/grafana/grafana.ini"
GRAFANA_DATASOURCES = "/etc/grafana/provisioning/datasources/pdfleet.yaml"
GRAFANA_PROVIDERS = "/etc/grafana/provisioning/dashboards/pdfleet.yaml"
DASHBOARDS_DIR = "/var/lib/grafana/dashboards/pdfleet"
DATASOURCE_UID = "pdfleet-prometheus"  # the dashboards name it (pdfleet/dashboards.py)
MONITORING_PINS = "/etc/apt/preferences.d/pdfleet-monitoring.pref"
GRAFANA_SOURCES = "/etc/apt/sources.list.d/pdfleet-grafana.list"
GRAFANA_KEY = "/etc/apt/keyrings/pdfleet-grafana.asc"
GRAFANA_REPO = "https://apt.grafana.com"  # Grafana's apt repository (stable main); its key is at /gpg.key
# Jobs, in the order prometheus.yml lists them.
JOBS = ("sglang", "smg", "node", "dcgm", "prometheus")


@dataclass(frozen=True)
class Target:
    job: str
    address: str  # host:port
    labels: dict


def _node_labels(cluster: Cluster, node: str) -> dict:
    placement = cluster.placement(node)
    if placement is None:
        return {"cluster": cluster.name, "node": node, "role": "spare", "instance": node}
    instance, rank = placement
    return {"cluster": cluster.name, "node": node, "role": instance.role, "instance": instance.name, "rank": str(rank)}


def targets(cluster: Cluster) -> list[Target]:
    """Every scrape target of the cluster, with its labels, in a stable order."""
    monitoring = cluster.monitoring
    found: list[Target] = []
    for instance in cluster.instances:
        # every rank: rank 0 serves the API and its schedulers' metrics; the other ranks' health stub serves
        # /metrics too (launch_dummy_health_check_server with --enable-metrics), so `up` says each rank is alive
        for member in instance.members:
            address = host_port(cluster.node(member.node).address, instance.ports.http)
            found.append(Target("sglang", address, _node_labels(cluster, member.node)))
    router = cluster.router
    found.append(
        Target(
            "smg",
            host_port(cluster.node(router.node).address, router.prometheus_port),
            {"cluster": cluster.name, "node": router.node, "role": "router", "instance": "router"},
        )
    )
    for node in cluster.nodes:
        labels = _node_labels(cluster, node.name)
        found.append(Target("node", host_port(node.address, monitoring.node_exporter_port), labels))
        found.append(Target("dcgm", host_port(node.address, monitoring.dcgm_exporter_port), labels))
    home = cluster.monitoring_node
    found.append(
        Target(
            "prometheus",
            host_port(cluster.node(home).address, monitoring.prometheus_port),
            {"cluster": cluster.name, "node": home, "role": "monitoring", "instance": "prometheus"},
        )
    )
    return found


def targets_file(cluster: Cluster, job: str) -> str:
    """One job's file-based discovery file: a JSON list of {targets, labels}, one group per target."""
    groups = [{"labels": t.labels, "targets": [t.address]} for t in targets(cluster) if t.job == job]
    return json.dumps(groups, indent=2, sort_keys=True) + "\n"


def prometheus_config(cluster: Cluster) -> str:
    monitoring = cluster.monitoring
    jobs = []
    for job in JOBS:
        config = {
            "job_name": job,
            "file_sd_configs": [{"files": [f"{TARGETS_DIR}/{job}.json"], "refresh_interval": "30s"}],
        }
        jobs.append(config)
    document = {
        "global": {
            "scrape_interval": f"{monitoring.scrape_interval_secs}s",
            "scrape_timeout": f"{max(1, min(10, monitoring.scrape_interval_secs))}s",
            "evaluation_interval": f"{monitoring.evaluation_interval_secs}s",
            "external_labels": {"cluster": cluster.name},
        },
        "rule_files": [RULES_FILE],
        "scrape_configs": jobs,
    }
    header = f"# Managed by pdfleet from {cluster.source.rsplit('/', 1)[-1]} (cluster {cluster.name}).\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def prometheus_args(cluster: Cluster) -> list[str]:
    monitoring = cluster.monitoring
    return [
        f"--config.file={PROMETHEUS_CONFIG}",
        f"--storage.tsdb.retention.time={monitoring.retention_days}d",
        f"--web.listen-address=:{monitoring.prometheus_port}",
    ]


def node_exporter_args(cluster: Cluster) -> list[str]:
    return [
        f"--web.listen-address=:{cluster.monitoring.node_exporter_port}",
        "--collector.infiniband",  # HCA port state, rate, bytes and errors (on by default; said for the reader)
    ]


def dcgm_exporter_argv(cluster: Cluster, counters: str = DCGM_COUNTERS) -> list[str]:
    monitoring = cluster.monitoring
    return [
        "-f",
        counters,
        "-a",
        f":{monitoring.dcgm_exporter_port}",
        "-c",
        str(monitoring.dcgm_collect_interval_ms),
    ]


def dcgm_container_argv(cluster: Cluster, docker: str) -> list[str]:
    """The DCGM exporter's container: pdfleet's counters file mounted over the image's default one (NVIDIA's
    documented way), the port published, the sampling period by environment."""
    monitoring = cluster.monitoring
    return [
        docker,
        "run",
        "--rm",
        "--name",
        "pdfleet-dcgm-exporter",
        "--gpus",
        "all",
        "--cap-add",
        "SYS_ADMIN",
        "-p",
        f"{monitoring.dcgm_exporter_port}:9400",
        "-v",
        f"{DCGM_COUNTERS}:/etc/dcgm-exporter/default-counters.csv:ro",
        "-e",
        f"DCGM_EXPORTER_INTERVAL={monitoring.dcgm_collect_interval_ms}",
        str(monitoring.dcgm_exporter_image),
    ]


def monitoring_pins(cluster: Cluster) -> list[Pin]:
    """The monitoring packages pinned in apt's preferences: the DCGM exporter and Grafana always, Prometheus and the
    node exporter when the inventory names a version (otherwise the distribution's, held where it was installed)."""
    monitoring = cluster.monitoring
    pins = []
    if monitoring.dcgm_exporter == "package":
        pins.append(Pin("datacenter-gpu-manager-exporter", f"{_upstream(monitoring.dcgm_exporter_version)}*"))
    if monitoring.prometheus_version:
        pins.append(Pin("prometheus", monitoring.prometheus_version))
    if monitoring.node_exporter_version:
        pins.append(Pin("prometheus-node-exporter", monitoring.node_exporter_version))
    pins.append(Pin("grafana", f"{monitoring.grafana_version}*"))
    return pins


def held(cluster: Cluster, names: tuple[str, ...]) -> list[Pin]:
    """The pins of these packages: the preferences' pattern where pinned, any version ('*') where not."""
    pinned = {pin.name: pin for pin in monitoring_pins(cluster)}
    return [pinned.get(name, Pin(name, "*")) for name in names]


def _upstream(version: str) -> str:
    return version.rsplit("-", 1)[0] if "-" in version else version


def grafana_ini(cluster: Cluster) -> str:
    monitoring = cluster.monitoring
    return "\n".join(
        [
            f"; Managed by pdfleet from {cluster.source.rsplit('/', 1)[-1]} (cluster {cluster.name}).",
            "; Grafana reads its defaults first; only what pdfleet sets is here.",
            "[server]",
            f"http_port = {monitoring.grafana_port}",
            "",
            "[paths]",
            "provisioning = /etc/grafana/provisioning",
            "",
            "[analytics]",
            "reporting_enabled = false",
            "check_for_updates = false",
            "check_for_plugin_updates = false",
            "",
            "[users]",
            "allow_sign_up = false",
            "",
        ]
    )


def grafana_datasources(cluster: Cluster) -> str:
    document = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": f"http://localhost:{cluster.monitoring.prometheus_port}",
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": f"{cluster.monitoring.scrape_interval_secs}s"},
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def grafana_providers(cluster: Cluster) -> str:
    document = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "pdfleet",
                "folder": "pdfleet",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,  # the repository holds the dashboards: a change there, not in the UI
                "options": {"path": DASHBOARDS_DIR},
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)
