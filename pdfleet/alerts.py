"""Prometheus' rules for a cluster: recording rules that give one pdfleet series per instance whichever pinned SGLang
version serves it, and the alerts, each with a section of docs/monitoring.md (its `runbook` annotation).

Pure: `rules_yaml(cluster)` is the text of /etc/prometheus/rules/pdfleet.rules.yml (pdfleet.monitoringplan.RULES_FILE),
deterministic. Thresholds come from the inventory (`monitoring.alerts`, pdfleet/monitoringconfig.py), the weights'
filesystem from `model.path`, the HCAs from each node's `hcas`, the router's workers from the serving plan.

What the expressions rely on (the scrape contract of pdfleet.monitoringplan): jobs `sglang` (every rank's HTTP port),
`smg` (the router's metrics port), `node`, `dcgm`, `prometheus`; every target labelled `cluster`, `node`, `role`
(prefill / decode / spare / router / monitoring), `instance` (the inventory's instance name, the node's name for a
spare, `router`), `rank` (serving nodes only). Per-instance figures sum over `node`, `rank` and SGLang's own `dp_rank`
(`--enable-metrics-for-all-schedulers` gives one series per DP scheduler).

Both pinned SGLang versions at once (blue/green): SGLang 0.5.12 renamed `sglang:num_prefill_prealloc_queue_reqs` to
`sglang:num_prefill_bootstrap_queue_reqs`, and 0.5.10 turned the `sglang:kv_transfer_*` gauges into histograms. The
recording rules below read either spelling (`a or b`) into one `pdfleet:*` series, and the dashboards read those.

Counters that SGLang and smg create at their first increment (`sglang:num_transfer_failed_reqs_total`,
`sglang:num_bootstrap_failed_reqs_total`, `smg_pd_*_failures_total`: a labelled prometheus_client child or a
metrics-rs counter appears with the value 1) are read with `_fresh_increase`: `increase()` cannot see the step from
"no series" to 1, so a series that did not exist one window ago counts with its whole value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import yaml

from pdfleet.cluster import Cluster
from pdfleet.monitoringplan import DCGM_CONTAINER_UNIT, DCGM_UNIT
from pdfleet.serving import ROUTER_UNIT, plan, unit_name

DOCS = "docs/monitoring.md"
PER_INSTANCE = "cluster, role, instance"
# Label template: a hardware alert on a spare node (in no instance) is a ticket, on a serving node a page.
SEVERITY_BY_ROLE = '{{ if eq $labels.role "spare" }}ticket{{ else }}page{{ end }}'
# Infiniband port states (node_exporter's infiniband collector, from /sys/class/infiniband/*/ports/*/state and
# phys_state): state_id 4 = ACTIVE, physical_state_id 5 = LinkUp.
IB_STATE_ACTIVE = 4
IB_PHYS_LINK_UP = 5
# Fixed durations the inventory has no knob for (docs/monitoring.md says why each).
GPU_TEMP_FOR_SECS = 120  # a short spike under load is normal; two minutes above the threshold is not
DISK_LOW_FOR_SECS = 300
DISK_PREDICT_WINDOW = "6h"  # long enough that a weights download (hundreds of GB in an hour) does not dominate
DISK_PREDICT_HORIZON_SECS = 4 * 3600
DISK_PREDICT_FOR_SECS = 1800
EXPORTER_JOBS = ("node", "dcgm")
NVLINK_ERROR_FIELDS = (
    ("crc_flit", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"),
    ("crc_data", "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL"),
    ("replay", "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"),
    ("recovery", "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"),
)
# The KV transfer figures SGLang reports: gauges (last transfer) in 0.5.6.post2, histograms from 0.5.10.
KV_TRANSFER_FIELDS = ("latency_ms", "speed_gb_s", "bootstrap_ms", "alloc_ms")
# The PD queues: (label value, expression over both pinned versions' names).
PD_QUEUES = (
    (
        "prefill_bootstrap",
        "sglang:num_prefill_bootstrap_queue_reqs{{{sel}}} or sglang:num_prefill_prealloc_queue_reqs{{{sel}}}",
    ),
    ("prefill_inflight", "sglang:num_prefill_inflight_queue_reqs{{{sel}}}"),
    ("decode_prealloc", "sglang:num_decode_prealloc_queue_reqs{{{sel}}}"),
    ("decode_transfer", "sglang:num_decode_transfer_queue_reqs{{{sel}}}"),
)


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str  # page, ticket, or SEVERITY_BY_ROLE
    summary: str
    description: str
    expr: str
    for_secs: int

    @property
    def anchor(self) -> str:
        """The heading's anchor in docs/monitoring.md (`## PdfleetX` -> `#pdfleetx`)."""
        return self.name.lower()


def duration(secs: int) -> str:
    """Prometheus' duration text: the largest unit that divides exactly (60 -> 1m, 90 -> 90s)."""
    for unit, size in (("h", 3600), ("m", 60)):
        if secs and secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def rate_window(cluster: Cluster) -> int:
    """Seconds of samples a rate() reads: four scrapes at least, a minute at least."""
    return max(60, 4 * cluster.monitoring.scrape_interval_secs)


def recent_window(cluster: Cluster) -> int:
    """Seconds back a failure counter is looked at: five minutes, or a rate window if that is longer."""
    return max(300, rate_window(cluster))


# The labels that name one scrape target (pdfleet.monitoringplan gives every target these).
TARGET = "job, cluster, node, instance"


def _fresh_increase(metric: str, selector: str, window: str) -> str:
    """increase() that also counts a counter series born inside the window (its first sample is already > 0), but
    only on a target Prometheus already scraped a window ago: a new Prometheus, or a new target, does not take every
    counter it finds for new failures."""
    series = f"{metric}{{{selector}}}"
    return (
        f"increase({series}[{window}]) > 0\n  or\n  (({series} > 0 unless {series} offset {window})"
        f" and on ({TARGET}) (up offset {window}))"
    )


def promql_regex(values) -> str:
    """A PromQL regex matcher's text (inside double quotes) that matches exactly these values."""
    return "|".join(re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\\\1", v) for v in values)


def weights_mountpoints(cluster: Cluster) -> list[str]:
    """The mount points that can hold model.path: `/` and every directory above it, and the path itself."""
    path = PurePosixPath(cluster.model.path)
    return sorted({"/", *(str(p) for p in path.parents), str(path)})


def recording_rules(cluster: Cluster) -> list[dict]:
    window = duration(rate_window(cluster))
    sel = 'job="sglang"'
    rules: list[dict] = [
        {
            "record": "pdfleet:sglang_queue_reqs:sum",
            "expr": f"sum by ({PER_INSTANCE}) (sglang:num_queue_reqs{{{sel}}})",
        },
        {
            "record": "pdfleet:sglang_running_reqs:sum",
            "expr": f"sum by ({PER_INSTANCE}) (sglang:num_running_reqs{{{sel}}})",
        },
    ]
    for queue, expr in PD_QUEUES:
        rules.append(
            {
                "record": "pdfleet:pd_queue_reqs:sum",
                "expr": f"sum by ({PER_INSTANCE}) ({expr.format(sel=sel)})",
                "labels": {"queue": queue},
            }
        )
    for field in KV_TRANSFER_FIELDS:
        metric = f"sglang:kv_transfer_{field}"
        rules.append(
            {
                "record": f"pdfleet:kv_transfer_{field}:mean",
                "expr": (
                    "# 0.5.23 (histogram): the mean over the window; 0.5.6.post2 (gauge): the last transfer's value\n"
                    f"  sum by ({PER_INSTANCE}) (rate({metric}_sum{{{sel}}}[{window}]))\n"
                    f"/\n  sum by ({PER_INSTANCE}) (rate({metric}_count{{{sel}}}[{window}]))\n"
                    f"or\n  avg by ({PER_INSTANCE}) ({metric}{{{sel}}})"
                ),
            }
        )
    # The router names its workers by URL; this maps each URL of the inventory to its instance and role.
    for worker in plan(cluster).router.workers:
        rules.append(
            {
                "record": "pdfleet:router_worker:info",
                "expr": "vector(1)",
                "labels": {"worker": worker.url, "worker_instance": worker.instance, "worker_role": worker.role},
            }
        )
    return rules


def alerts(cluster: Cluster) -> list[Alert]:
    limits = cluster.monitoring.alerts
    down_for = duration(limits.down_for_secs)
    recent = duration(recent_window(cluster))
    queue_for = duration(limits.queue_for_secs)
    unit = unit_name("{{ $labels.instance }}")
    where = "{{ $labels.instance }} ({{ $labels.role }}) on node {{ $labels.node }}"
    gpu = "GPU {{ $labels.gpu }} of node {{ $labels.node }} ({{ $labels.instance }}, {{ $labels.role }})"
    mounts = promql_regex(weights_mountpoints(cluster))
    fs = f'job="node", mountpoint=~"{mounts}", fstype!="tmpfs"'
    free_percent = f"100 * node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}"
    worker_labels = "(worker_instance, worker_role)"
    found: list[Alert] = [
        Alert(
            "PdfleetInstanceDown",
            "page",
            "SGLang instance {{ $labels.instance }} is down",
            f"Rank 0 of {where} has not answered Prometheus for {down_for}: its API (and the router's requests to "
            f"it) is gone. First: `systemctl status {unit}` and `journalctl -u {unit} -n 200` on "
            "{{ $labels.node }}; then `pdfleet status INVENTORY` for the router's view.",
            'up{job="sglang", rank="0"} == 0',
            limits.down_for_secs,
        ),
        Alert(
            "PdfleetRankDown",
            "page",
            "Rank {{ $labels.rank }} of SGLang instance {{ $labels.instance }} is down",
            f"Rank {{{{ $labels.rank }}}} of {where} has not answered Prometheus for {down_for}. The instance's "
            "other ranks block on it (the collectives span every rank), so the whole instance stops serving. "
            f"First: `systemctl status {unit}` and `journalctl -u {unit} -n 200` on {{{{ $labels.node }}}}.",
            'up{job="sglang", rank=~"[1-9][0-9]*"} == 0',
            limits.down_for_secs,
        ),
        Alert(
            "PdfleetExporterDown",
            "ticket",
            "The {{ $labels.job }} exporter on node {{ $labels.node }} is down",
            f"Prometheus has not scraped the {{{{ $labels.job }}}} exporter of node {{{{ $labels.node }}}} for "
            f"{down_for}: the GPU or host alerts of that node cannot fire. First: on that node, `systemctl status "
            f"prometheus-node-exporter` (job node), or `systemctl status {DCGM_UNIT}` ({DCGM_CONTAINER_UNIT} for "
            "the container) and `systemctl status nvidia-dcgm` (job dcgm).",
            'up{job=~"' + "|".join(EXPORTER_JOBS) + '"} == 0',
            limits.down_for_secs,
        ),
        Alert(
            "PdfleetRouterDown",
            "page",
            "The PD router on {{ $labels.node }} is down",
            f"The router's metrics port on {{{{ $labels.node }}}} has not answered for {down_for}: clients "
            f"probably get nothing. First: `systemctl status {ROUTER_UNIT}` and `journalctl -u {ROUTER_UNIT} "
            "-n 200` on {{ $labels.node }}.",
            'up{job="smg"} == 0',
            limits.down_for_secs,
        ),
        Alert(
            "PdfleetRouterWorkerNotReady",
            "page",
            "The router holds {{ with $labels.worker_instance }}instance {{ . }}{{ else }}worker "
            "{{ $labels.worker }}{{ end }} as not ready",
            "The router's health checks of {{ $labels.worker }} ({{ with $labels.worker_instance }}instance {{ . }}"
            "{{ else }}a URL the inventory does not name: a blue/green copy?{{ end }}) have failed for "
            f"{down_for}, so it sends it no request. First: `curl -s {{{{ $labels.worker }}}}/health` from the "
            "router's node, then `pdfleet status INVENTORY`.",
            f'(smg_worker_health{{job="smg"}} == 0) * on (worker) group_left {worker_labels} '
            f'pdfleet:router_worker:info\nor on (worker)\n(smg_worker_health{{job="smg"}} == 0)',
            limits.down_for_secs,
        ),
        Alert(
            "PdfleetKVTransferFailures",
            "ticket",
            "KV cache transfers failed on {{ $labels.instance }}",
            f"{{{{ $value | humanize }}}} KV transfer failures in the last {recent} on {{{{ $labels.instance }}}} "
            "({{ $labels.role }}; `router` means the router saw them): each is a request that failed or was "
            "retried. First: the HCA and NVLink alerts of the nodes involved, then the engines' journals "
            f"(`journalctl -u {unit_name('<instance>')}`: Mooncake's lines).",
            "sum by ("
            + PER_INSTANCE
            + ") (\n  "
            + _fresh_increase("sglang:num_transfer_failed_reqs_total", 'job="sglang"', recent)
            + "\n)\nor\nsum by ("
            + PER_INSTANCE
            + ") (\n  "
            + _fresh_increase("smg_pd_kv_transfer_failures_total", 'job="smg"', recent)
            + "\n)",
            0,
        ),
        Alert(
            "PdfleetBootstrapFailures",
            "ticket",
            "PD bootstrap failed on {{ $labels.instance }}",
            f"{{{{ $value | humanize }}}} PD bootstrap failures in the last {recent} on {{{{ $labels.instance }}}} "
            "({{ $labels.role }}; `router` means the router saw them): a decode could not reach its prefill's "
            "bootstrap server. First: is the prefill instance up, and its bootstrap port reachable from the "
            "decode nodes?",
            "sum by ("
            + PER_INSTANCE
            + ") (\n  "
            + _fresh_increase("sglang:num_bootstrap_failed_reqs_total", 'job="sglang"', recent)
            + "\n)\nor\nsum by ("
            + PER_INSTANCE
            + ") (\n  "
            + _fresh_increase("smg_pd_bootstrap_failures_total", 'job="smg"', recent)
            + "\n)",
            0,
        ),
        Alert(
            "PdfleetRequestQueueHigh",
            "page",
            "{{ $value }} requests wait in the queues of {{ $labels.instance }}",
            f"The schedulers of {{{{ $labels.instance }}}} ({{{{ $labels.role }}}}) have held more than "
            f"{limits.queue_reqs} waiting requests for {queue_for}: latency grows for every user. First: the PD "
            "overview dashboard (is one instance or the whole role backed up?), then add capacity or shed load.",
            f"pdfleet:sglang_queue_reqs:sum > {limits.queue_reqs}",
            limits.queue_for_secs,
        ),
        Alert(
            "PdfleetPDQueueHigh",
            "page",
            "{{ $value }} requests wait in the {{ $labels.queue }} queue of {{ $labels.instance }}",
            f"The {{{{ $labels.queue }}}} queue of {{{{ $labels.instance }}}} ({{{{ $labels.role }}}}) has held "
            f"more than {limits.queue_reqs} requests for {queue_for}: KV caches are not moving between prefill "
            "and decode as fast as requests arrive. First: KV transfer and bootstrap failures, HCA ports, and "
            "the decode's KV cache usage (prealloc waits for free KV space).",
            f"pdfleet:pd_queue_reqs:sum > {limits.queue_reqs}",
            limits.queue_for_secs,
        ),
        Alert(
            "PdfleetGpuXid",
            SEVERITY_BY_ROLE,
            "Xid {{ $value }} on GPU {{ $labels.gpu }} of {{ $labels.node }}",
            f"{gpu} reported Xid {{{{ $value }}}} (DCGM keeps the last Xid until the exporter restarts). First: "
            "`journalctl -k | grep -i xid` on the node and NVIDIA's Xid catalogue; after Xid 48, 63, 64, 74, 79, 94, "
            "95 or 119 drain the instance and reset the GPU or reboot the node.",
            'DCGM_FI_DEV_XID_ERRORS{job="dcgm"} > 0',
            0,
        ),
        Alert(
            "PdfleetGpuEccDoubleBit",
            SEVERITY_BY_ROLE,
            "Uncorrectable ECC errors on GPU {{ $labels.gpu }} of {{ $labels.node }}",
            f"{gpu} counted {{{{ $value | humanize }}}} double-bit (uncorrectable) volatile ECC errors in the last "
            f"{recent}: the process that owned the memory is corrupted. First: drain the instance, then reset "
            "the GPU (a row remap needs it) and check DCGM_FI_DEV_ROW_REMAP_FAILURE.",
            f'increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{job="dcgm"}}[{recent}]) > 0',
            0,
        ),
        Alert(
            "PdfleetGpuRowRemapFailure",
            SEVERITY_BY_ROLE,
            "Row remapping failed on GPU {{ $labels.gpu }} of {{ $labels.node }}",
            f"{gpu} could not remap a bad memory row: it will keep failing. First: drain the instance and have the "
            "GPU replaced (RMA); until then keep the node out of service.",
            'DCGM_FI_DEV_ROW_REMAP_FAILURE{job="dcgm"} > 0',
            0,
        ),
        Alert(
            "PdfleetGpuRowRemapPending",
            "ticket",
            "A row remap waits for a reset of GPU {{ $labels.gpu }} of {{ $labels.node }}",
            f"{gpu} has a memory row remap pending: it takes effect at the next GPU reset. First: at the next "
            "window, drain the instance and reset the GPU (or reboot the node).",
            'DCGM_FI_DEV_ROW_REMAP_PENDING{job="dcgm"} > 0',
            0,
        ),
        Alert(
            "PdfleetGpuTemperatureHigh",
            SEVERITY_BY_ROLE,
            "GPU {{ $labels.gpu }} of {{ $labels.node }} is at {{ $value }} C",
            f"{gpu} has been above {limits.gpu_temp_c} C for {duration(GPU_TEMP_FOR_SECS)}; it slows down "
            "(thermal slowdown) soon after. First: the node's fans and inlet temperature (BMC), then the other "
            "GPUs of the node.",
            f'DCGM_FI_DEV_GPU_TEMP{{job="dcgm"}} > {limits.gpu_temp_c}',
            GPU_TEMP_FOR_SECS,
        ),
        Alert(
            "PdfleetGpuThermalThrottling",
            "ticket",
            "GPU {{ $labels.gpu }} of {{ $labels.node }} was slowed down for heat",
            f"{gpu} spent time thermally throttled in the last {recent}: its instance runs slower than its peers. "
            "First: cooling of the node (BMC sensors), then the GPU temperature panel.",
            f'increase(DCGM_FI_DEV_THERMAL_VIOLATION{{job="dcgm"}}[{recent}]) > 0',
            0,
        ),
        Alert(
            "PdfleetNvlinkErrors",
            "ticket",
            "NVLink {{ $labels.counter }} errors on GPU {{ $labels.gpu }} of {{ $labels.node }}",
            f"{gpu} counted {{{{ $value | humanize }}}} NVLink {{{{ $labels.counter }}}} errors in the last "
            f"{recent}. First: `nvidia-smi nvlink -e` on the node; rising recovery errors or a link down mean "
            "drain the instance and reset the GPUs or reboot (fabric manager restarts with it).",
            "\nor\n".join(
                f'label_replace(increase({field}{{job="dcgm"}}[{recent}]) > 0, "counter", "{name}", "", "")'
                for name, field in NVLINK_ERROR_FIELDS
            ),
            0,
        ),
        Alert(
            "PdfleetHcaPortDown",
            SEVERITY_BY_ROLE,
            "HCA {{ $labels.device }} port {{ $labels.port }} of {{ $labels.node }} is not active",
            f"Port {{{{ $labels.port }}}} of {{{{ $labels.device }}}} on {{{{ $labels.node }}}} "
            f"({{{{ $labels.instance }}}}) has not been ACTIVE / LinkUp for {down_for} (the value is the state "
            "or physical state id): KV transfers and DeepEP over it fail. First: `ibstat {{ $labels.device }}` "
            "and the cable / switch port; `pdfleet preflight INVENTORY` checks every HCA.",
            _hca_expr(cluster),
            limits.down_for_secs,
        ),
        Alert(
            "PdfleetWeightsDiskLow",
            SEVERITY_BY_ROLE,
            "{{ $value | humanize }}% free on {{ $labels.mountpoint }} of {{ $labels.node }}",
            f"The filesystem at {{{{ $labels.mountpoint }}}} on {{{{ $labels.node }}}} (holding "
            f"{cluster.model.path} or the system) has less than {limits.disk_free_percent}% free: a weights update "
            "or DeepGEMM cache cannot be written, logs may stop. First: `du -xsh` of the weights, the DeepGEMM "
            "cache and /var/log on it; old runtime sets go with `runtime.keep`.",
            f"{free_percent} < {limits.disk_free_percent}",
            DISK_LOW_FOR_SECS,
        ),
        Alert(
            "PdfleetWeightsDiskFillingUp",
            SEVERITY_BY_ROLE,
            "{{ $labels.mountpoint }} of {{ $labels.node }} fills up within 4 hours",
            f"At the rate of the last {DISK_PREDICT_WINDOW}, the filesystem at {{{{ $labels.mountpoint }}}} on "
            f"{{{{ $labels.node }}}} (holding {cluster.model.path} or the system) is full within 4 hours, and has "
            f"less than {2 * limits.disk_free_percent}% free now. First: what is writing there (`du -xsh`, a "
            "runaway log or core dumps?).",
            f"predict_linear(node_filesystem_avail_bytes{{{fs}}}[{DISK_PREDICT_WINDOW}], "
            f"{DISK_PREDICT_HORIZON_SECS}) < 0\n"
            f"and {free_percent} < {2 * limits.disk_free_percent}\n"
            f"and node_filesystem_readonly{{{fs}}} == 0",
            DISK_PREDICT_FOR_SECS,
        ),
    ]
    return found


def _hca_expr(cluster: Cluster) -> str:
    """Each node's own HCAs (the inventory's `hcas`), grouped by identical lists, state and physical state."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for node in cluster.nodes:
        groups.setdefault(tuple(node.hcas), []).append(node.name)
    parts = []
    for hcas, nodes in sorted(groups.items(), key=lambda item: item[1]):
        sel = f'job="node", node=~"{promql_regex(nodes)}", device=~"{promql_regex(hcas)}"'
        parts.append(f"node_infiniband_state_id{{{sel}}} != {IB_STATE_ACTIVE}")
        parts.append(f"node_infiniband_physical_state_id{{{sel}}} != {IB_PHYS_LINK_UP}")
    return "\nor\n".join(parts)


def _alert_rule(alert: Alert) -> dict:
    rule: dict = {"alert": alert.name, "expr": alert.expr}
    if alert.for_secs:
        rule["for"] = duration(alert.for_secs)
    rule["labels"] = {"severity": alert.severity}
    rule["annotations"] = {
        "summary": alert.summary,
        "description": alert.description,
        "runbook": f"{DOCS}#{alert.anchor}",
    }
    return rule


def rules_document(cluster: Cluster) -> dict:
    return {
        "groups": [
            {"name": "pdfleet.records", "rules": recording_rules(cluster)},
            {"name": "pdfleet.alerts", "rules": [_alert_rule(a) for a in alerts(cluster)]},
        ]
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the longer expressions) as literal blocks, so the file reads like hand-written rules."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def rules_yaml(cluster: Cluster) -> str:
    header = (
        f"# Managed by pdfleet from {cluster.source.rsplit('/', 1)[-1]} (cluster {cluster.name}): pdfleet/alerts.py.\n"
        f"# Each alert's runbook is a section of {DOCS}.\n"
    )
    body = yaml.dump(rules_document(cluster), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return header + body
