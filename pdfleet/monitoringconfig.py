"""Monitoring (`monitoring:` in the inventory, optional): exporters on every node, Prometheus and Grafana on one.
Every knob has a default; the comment beside it says what it does. docs/monitoring.md lists them again with what
is scraped and each alert."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pdfleet.reader import Section

DCGM_EXPORTER_KINDS = ("package", "container")
GRAFANA_SOURCES = ("grafana-repo", "os-archive")
_VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+~:-]*$")
_DIGEST_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Alerting:
    """Thresholds of the alert rules (pdfleet/alerts.py)."""

    down_for_secs: int
    queue_reqs: int
    queue_for_secs: int
    gpu_temp_c: int
    disk_free_percent: int


@dataclass(frozen=True)
class Monitoring:
    enabled: bool
    node: str | None  # None: the router's node
    scrape_interval_secs: int
    evaluation_interval_secs: int
    retention_days: int
    prometheus_port: int
    grafana_port: int
    node_exporter_port: int
    dcgm_exporter_port: int
    dcgm_exporter: str
    dcgm_exporter_version: str
    dcgm_exporter_image: str | None
    dcgm_collect_interval_ms: int
    prometheus_version: str | None
    node_exporter_version: str | None
    grafana_version: str
    grafana_source: str
    alerts: Alerting


def read_monitoring_config(top: Section, node_names: tuple[str, ...]) -> Monitoring:
    m = top.section("monitoring", "monitoring")
    node = m.string("node", None)  # node running Prometheus and Grafana; unset: the router's node
    if node is not None and node_names and node not in node_names:
        m.error("node", repr(node), f"a node listed under nodes: {', '.join(node_names)}")
    version = {"check": lambda v: bool(_VERSION_RE.match(v)), "expected": "an exact package version"}
    kind = m.get(  # package: NVIDIA's datacenter-gpu-manager-exporter deb; container: the pinned image
        "dcgm_exporter", str, "package", expected="package or container", check=DCGM_EXPORTER_KINDS.__contains__
    )
    image = m.string("dcgm_exporter_image", None)  # kind container: nvcr.io/nvidia/k8s/dcgm-exporter@sha256:<64 hex>
    if kind == "container":
        if image is None:
            m.error("dcgm_exporter_image", "nothing", "an image pinned by digest (name@sha256:<64 hex>)")
        elif not _DIGEST_RE.match(image):
            m.error("dcgm_exporter_image", repr(image), "an image pinned by digest: name@sha256:<64 hex>, not a tag")
    a = m.section("alerts")
    alerts = Alerting(
        # an instance, a rank, the router or a router worker missing this long pages (an exporter: a ticket)
        down_for_secs=a.integer("down_for_secs", 60, lo=1, hi=86400),
        # requests waiting in an instance's queues (all its schedulers) that mean it is backed up
        queue_reqs=a.integer("queue_reqs", 256, lo=1),
        # seconds an instance's queues stay above queue_reqs before it pages
        queue_for_secs=a.integer("queue_for_secs", 300, lo=1, hi=86400),
        # GPU temperature, degrees C, that pages (H200 slows down near 87 C)
        gpu_temp_c=a.integer("gpu_temp_c", 85, lo=30, hi=120),
        # free space left on the filesystem holding model.path, percent, that pages
        disk_free_percent=a.integer("disk_free_percent", 10, lo=1, hi=90),
    )
    a.finish()
    config = Monitoring(
        enabled=m.boolean("enabled", True),  # off: no exporter, Prometheus or Grafana is installed or changed
        node=node,
        scrape_interval_secs=m.integer("scrape_interval_secs", 15, lo=1, hi=3600),  # seconds between scrapes
        evaluation_interval_secs=m.integer("evaluation_interval_secs", 15, lo=1, hi=3600),  # between rule passes
        retention_days=m.integer("retention_days", 15, lo=1, hi=3650),  # days of samples Prometheus keeps
        prometheus_port=m.port("prometheus_port", 9090),  # Prometheus' web UI and API on the monitoring node
        grafana_port=m.port("grafana_port", 3000),  # Grafana on the monitoring node
        node_exporter_port=m.port("node_exporter_port", 9100),  # prometheus-node-exporter on every node
        dcgm_exporter_port=m.port("dcgm_exporter_port", 9400),  # NVIDIA's DCGM exporter on every GPU node
        dcgm_exporter=kind,
        # datacenter-gpu-manager-exporter from NVIDIA's CUDA repository, pinned and held (pairs with DCGM 4.x)
        dcgm_exporter_version=m.string("dcgm_exporter_version", "4.6.0-1", **version),
        dcgm_exporter_image=image,
        dcgm_collect_interval_ms=m.integer("dcgm_collect_interval_ms", 15000, lo=100),  # DCGM sampling period
        # the distribution's prometheus package at this version; unset: the version it has, then held there
        prometheus_version=m.string("prometheus_version", None, **version),
        # the distribution's prometheus-node-exporter at this version; unset: the version it has, then held there
        node_exporter_version=m.string("node_exporter_version", None, **version),
        grafana_version=m.string("grafana_version", "12.3.0", **version),  # Grafana's apt repository, pinned, held
        # grafana-repo: Grafana's apt repository and key; os-archive: the sources the host already has (a mirror)
        grafana_source=m.get(
            "grafana_source",
            str,
            "grafana-repo",
            expected="grafana-repo or os-archive",
            check=GRAFANA_SOURCES.__contains__,
        ),
        alerts=alerts,
    )
    m.finish()
    return config
