"""Grafana dashboards, kept as code: the PD overview, the GPUs, the nodes and their fabric.

Pure: `dashboards(cluster)` gives {file name: JSON text} for pdfleet.monitoringplan.DASHBOARDS_DIR, deterministic
(sorted keys, panel ids and positions assigned in order, fixed uids), Grafana 11/12 (schemaVersion 39; Grafana
migrates it on load). Built from the small helpers below rather than a Grafana SDK: a dashboard is a list of rows
and panels, a panel a title, its queries and a unit.

Every query names the provisioned data source (uid `pdfleet-prometheus`) and filters on the template variables
cluster, role, instance and node: the target labels pdfleet gives every series (pdfleet.monitoringplan). Series
that the two pinned SGLang versions spell differently are read through the recording rules of pdfleet/alerts.py
(`pdfleet:*`) or with both spellings in one expression (`a or b`); docs/monitoring.md lists them.
tests/test_dashboards.py checks that every metric named here exists in the real programs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pdfleet.alerts import promql_regex, weights_mountpoints
from pdfleet.cluster import Cluster
from pdfleet.monitoringplan import DATASOURCE_UID

SCHEMA_VERSION = 39  # Grafana 11.0's; Grafana 11.x and 12.x load it (and migrate it in memory)
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
RATE = "$__rate_interval"
WIDTH = 24  # Grafana's grid
TAG = "pdfleet"
# What a variable filters: every series carries these labels (the prometheus and router targets too).
VARIABLES = ("cluster", "role", "instance", "node")
# Query of each variable: its values among the targets that the variables before it leave.
_VARIABLE_LABELS = {"cluster": "Cluster", "role": "Role", "instance": "Instance", "node": "Node"}


@dataclass(frozen=True)
class Row:
    title: str


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str = "short"
    description: str = ""
    width: int = 12
    height: int = 8
    kind: str = "timeseries"
    min: float | None = None
    max: float | None = None
    threshold: float | None = None  # a red line (timeseries) or colour step (stat) at this value
    mappings: tuple[tuple[str, str], ...] = ()  # (value, text)
    stack: bool = False
    extra: dict = field(default_factory=dict, hash=False)


def _selector(job: str | None, labels=VARIABLES, extra: str = "") -> str:
    parts = [f'job="{job}"'] if job else []
    parts += [f'{label}=~"${label}"' for label in labels]
    if extra:
        parts.append(extra)
    return ", ".join(parts)


def _variables(job: str) -> list[dict]:
    out = []
    before: list[str] = []
    for name in VARIABLES:
        matchers = ", ".join([f'job="{job}"', *(f'{b}=~"${b}"' for b in before)])
        query = f"label_values(up{{{matchers}}}, {name})"
        out.append(
            {
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "datasource": DATASOURCE,
                "definition": query,
                "hide": 0,
                "includeAll": True,
                "label": _VARIABLE_LABELS[name],
                "multi": True,
                "name": name,
                "options": [],
                "query": {"query": query, "refId": f"pdfleet-{name}"},
                "refresh": 2,
                "regex": "",
                "skipUrlSync": False,
                "sort": 1,
                "type": "query",
            }
        )
        before.append(name)
    return out


def _panel_json(panel: Panel, panel_id: int, grid: dict) -> dict:
    defaults: dict = {"unit": panel.unit, "mappings": []}
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    steps = [{"color": "green", "value": None}]
    if panel.threshold is not None:
        steps.append({"color": "red", "value": panel.threshold})
    defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    if panel.mappings:
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {value: {"text": text, "index": i} for i, (value, text) in enumerate(panel.mappings)},
            }
        ]
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 10 if not panel.stack else 40,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if panel.stack else "none"},
            "thresholdsStyle": {"mode": "line" if panel.threshold is not None else "off"},
        }
        options = {
            "legend": {
                "calcs": ["lastNotNull", "max"],
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:  # stat
        options = {
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name",
        }
    targets = [
        {
            "datasource": DATASOURCE,
            "editorMode": "code",
            "expr": expr,
            "legendFormat": legend,
            "range": True,
            "refId": chr(ord("A") + i),
        }
        for i, (expr, legend) in enumerate(panel.targets)
    ]
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": {**defaults, **panel.extra}, "overrides": []},
        "gridPos": grid,
        "id": panel_id,
        "options": options,
        "targets": targets,
        "title": panel.title,
        "type": panel.kind,
    }


def _dashboard(uid: str, title: str, description: str, job: str, items: list[Row | Panel]) -> dict:
    panels = []
    x = y = 0
    row_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += row_height
            x, row_height = 0, 0
            panels.append(
                {
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                    "id": panel_id,
                    "panels": [],
                    "title": item.title,
                    "type": "row",
                }
            )
            y += 1
            continue
        if x + item.width > WIDTH:
            y += row_height
            x, row_height = 0, 0
        panels.append(_panel_json(item, panel_id, {"h": item.height, "w": item.width, "x": x, "y": y}))
        x += item.width
        row_height = max(row_height, item.height)
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": [TAG],
                "targetBlank": False,
                "title": "pdfleet",
                "type": "dashboards",
            }
        ],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG],
        "templating": {"list": _variables(job)},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def _quantiles(metric: str, sel: str, by: str = "role, instance", legend: str = "{{instance}}") -> tuple:
    return tuple(
        (
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}[{RATE}])))",
            f"{legend} p{int(q * 100)}",
        )
        for q in (0.5, 0.99)
    )


def pd_overview(cluster: Cluster) -> dict:
    s = _selector("sglang")
    rec = _selector(None, ("cluster", "role", "instance"))  # recorded per instance: no node label
    router = _selector("smg", ("cluster",))
    by = "role, instance"
    who = "{{instance}} ({{role}})"
    limits = cluster.monitoring.alerts
    workers = "worker_instance, worker_role"

    def named(metric: str) -> str:
        """A router series per worker, with the inventory's instance name joined on (the URL where unknown)."""
        return (
            f"{metric}{{{router}}} * on (worker) group_left ({workers}) pdfleet:router_worker:info"
            f" or on (worker) {metric}{{{router}}}"
        )

    items: list[Row | Panel] = [
        Row("Traffic"),
        Panel(
            "Requests finished",
            ((f"sum by ({by}) (rate(sglang:num_requests_total{{{s}}}[{RATE}]))", who),),
            unit="reqps",
            description="Requests each instance finished per second (every PD request passes one prefill and one "
            "decode instance, so each role counts it once).",
        ),
        Panel(
            "Token throughput",
            (
                (f"sum by ({by}) (rate(sglang:prompt_tokens_total{{{s}}}[{RATE}]))", "{{instance}} prompt"),
                (f"sum by ({by}) (rate(sglang:generation_tokens_total{{{s}}}[{RATE}]))", "{{instance}} generated"),
            ),
            unit="suffix: tok/s",
            description="Prompt tokens (prefill's work) and generated tokens (decode's) per second, per instance.",
        ),
        Panel(
            "Aborted requests",
            ((f"sum by ({by}) (rate(sglang:num_aborted_requests_total{{{s}}}[{RATE}]))", who),),
            unit="reqps",
            description="Requests the engines aborted per second (client gone, timeout, or a PD failure).",
        ),
        Panel(
            "Engine generation throughput",
            ((f"sum by ({by}) (sglang:gen_throughput{{{s}}})", who),),
            unit="suffix: tok/s",
            description="The schedulers' own decode throughput gauge, summed over DP ranks.",
        ),
        Row("Latency"),
        Panel(
            "Time to first token",
            _quantiles("sglang:time_to_first_token_seconds", s),
            unit="s",
            description="TTFT p50 and p99 from the engines' histograms, per instance. The router does not measure "
            "it in HTTP PD mode; the decode's TTFT includes the prefill and the KV transfer.",
        ),
        Panel(
            "Inter-token latency",
            _quantiles("sglang:inter_token_latency_seconds", s),
            unit="s",
            description="ITL p50 and p99 (time between two streamed tokens), per instance: decode's figure.",
        ),
        Panel(
            "End-to-end request latency",
            _quantiles("sglang:e2e_request_latency_seconds", s),
            unit="s",
            description="Request latency p50 and p99 as each engine saw it.",
        ),
        Panel(
            "Queue time",
            _quantiles("sglang:queue_time_seconds", s),
            unit="s",
            description="Time requests waited in the scheduler's queue before running, p50 and p99.",
        ),
        Row("Schedulers"),
        Panel(
            "Running requests",
            ((f"sum by ({by}) (sglang:num_running_reqs{{{s}}})", who),),
            description="Requests in the running batch, summed over the instance's DP schedulers.",
        ),
        Panel(
            "Queued requests",
            ((f"sum by ({by}) (sglang:num_queue_reqs{{{s}}})", who),),
            threshold=limits.queue_reqs,
            description=f"Requests waiting for a batch, summed over the instance's DP schedulers. Above "
            f"{limits.queue_reqs} for {limits.queue_for_secs}s: PdfleetRequestQueueHigh.",
        ),
        Panel(
            "KV cache usage",
            ((f"max by ({by}) (sglang:token_usage{{{s}}})", who),),
            unit="percentunit",
            min=0,
            max=1,
            description="The fullest DP scheduler's KV cache (token pool) usage.",
        ),
        Panel(
            "Retracted requests",
            ((f"sum by ({by}) (sglang:num_retracted_reqs{{{s}}})", who),),
            description="Requests decode took out of the batch for lack of KV space (they run again later).",
        ),
        Row("PD queues"),
        Panel(
            "Prefill queues",
            ((f'pdfleet:pd_queue_reqs:sum{{{rec}, queue=~"prefill_.*"}}', "{{instance}} {{queue}}"),),
            threshold=limits.queue_reqs,
            description="prefill_bootstrap: waiting for the decode to connect and allocate (SGLang 0.5.6's "
            "prealloc queue, renamed bootstrap in 0.5.12); prefill_inflight: computed, KV being sent.",
        ),
        Panel(
            "Decode queues",
            ((f'pdfleet:pd_queue_reqs:sum{{{rec}, queue=~"decode_.*"}}', "{{instance}} {{queue}}"),),
            threshold=limits.queue_reqs,
            description="decode_prealloc: waiting for free KV space on the decode; decode_transfer: KV cache "
            "arriving from the prefill.",
        ),
        Row("KV transfer"),
        Panel(
            "KV transfer latency",
            (
                (f"pdfleet:kv_transfer_latency_ms:mean{{{rec}}}", "{{instance}} mean"),
                (
                    f"histogram_quantile(0.99, sum by (le, {by}) "
                    f"(rate(sglang:kv_transfer_latency_ms_bucket{{{s}}}[{RATE}])))"
                    f" or max by ({by}) (sglang:kv_transfer_latency_ms{{{s}}})",
                    "{{instance}} p99",
                ),
            ),
            unit="ms",
            description="Mean over the window (SGLang >= 0.5.10 histograms) or the last transfer's value (0.5.6's "
            "gauge); the p99 line is the histogram's on 0.5.23 and the highest DP rank's last value on 0.5.6.",
        ),
        Panel(
            "KV transfer speed",
            ((f"pdfleet:kv_transfer_speed_gb_s:mean{{{rec}}}", "{{instance}}"),),
            unit="GBs",
            description="Mean transfer speed (0.5.23: over the window; 0.5.6: the last transfer's).",
        ),
        Panel(
            "KV bootstrap and allocation time",
            (
                (f"pdfleet:kv_transfer_bootstrap_ms:mean{{{rec}}}", "{{instance}} bootstrap"),
                (f"pdfleet:kv_transfer_alloc_ms:mean{{{rec}}}", "{{instance}} alloc"),
            ),
            unit="ms",
            description="Mean time to bootstrap a transfer and to wait for KV allocation on the decode.",
        ),
        Panel(
            "Transfer and bootstrap failures",
            (
                (
                    f"sum by ({by}) (rate(sglang:num_transfer_failed_reqs_total{{{s}}}[{RATE}]))",
                    "{{instance}} transfer",
                ),
                (
                    f"sum by ({by}) (rate(sglang:num_bootstrap_failed_reqs_total{{{s}}}[{RATE}]))",
                    "{{instance}} bootstrap",
                ),
                (
                    f"sum by ({by}) (rate(sglang:num_prefill_retries_total{{{s}}}[{RATE}]))",
                    "{{instance}} prefill retries",
                ),
                (f"sum(rate(smg_pd_kv_transfer_failures_total{{{router}}}[{RATE}]))", "router: KV transfer"),
                (f"sum(rate(smg_pd_bootstrap_failures_total{{{router}}}[{RATE}]))", "router: bootstrap"),
            ),
            unit="reqps",
            description="Failed requests per second, as the engines and the router counted them, and the "
            "prefills' retries (SGLang 0.5.8 and newer; none on 0.5.6.post2). Alerts: PdfleetKVTransferFailures, "
            "PdfleetBootstrapFailures.",
        ),
        Row("Router"),
        Panel(
            "Router requests",
            ((f"sum by (endpoint) (rate(smg_router_requests_total{{{router}}}[{RATE}]))", "{{endpoint}}"),),
            unit="reqps",
            description="Requests the router routed per second, by endpoint.",
        ),
        Panel(
            "Router errors",
            (
                (f"sum by (error_type) (rate(smg_router_request_errors_total{{{router}}}[{RATE}]))", "{{error_type}}"),
                (
                    f'sum by (status_code) (rate(smg_http_responses_total{{{router}, status_code!~"2.."}}[{RATE}]))',
                    "HTTP {{status_code}}",
                ),
            ),
            unit="reqps",
            description="Router errors by type, and the responses it answered with a status other than 2xx.",
        ),
        Panel(
            "Router request duration",
            _quantiles("smg_router_request_duration_seconds", router, by="endpoint", legend="{{endpoint}}"),
            unit="s",
            description="Time the router held requests, p50 and p99, by endpoint.",
        ),
        Panel(
            "Router worker health",
            ((named("smg_worker_health"), "{{worker_instance}} {{worker}}"),),
            min=0,
            max=1,
            mappings=(("1", "ready"), ("0", "not ready")),
            description="1: the router's health checks pass and it routes to the worker. A worker the router "
            "removed (drained, or failed and taken out by pdfleet-router-members) has no series.",
        ),
        Panel(
            "Router circuit breakers",
            ((named("smg_worker_cb_state"), "{{worker_instance}} {{worker}}"),),
            min=0,
            max=2,
            mappings=(("0", "closed"), ("1", "open"), ("2", "half open")),
            description="Each worker's circuit breaker: 0 closed (routed to), 1 open (skipped), 2 half open.",
        ),
        Panel(
            "Router active requests per worker",
            ((named("smg_worker_requests_active"), "{{worker_instance}} {{worker}}"),),
            description="Requests the router has in flight on each worker.",
        ),
    ]
    return _dashboard(
        "pdfleet-pd-overview",
        f"pdfleet: PD overview ({cluster.name})",
        "Throughput, latency, queues and KV transfer per SGLang instance and role; the PD router.",
        "sglang",
        items,
    )


def gpus(cluster: Cluster) -> dict:
    g = _selector("dcgm")
    by = "cluster, node, gpu"
    gpu = "{{node}} GPU {{gpu}}"
    items: list[Row | Panel] = [
        Row("Utilisation"),
        Panel(
            "GPU utilisation",
            ((f"DCGM_FI_DEV_GPU_UTIL{{{g}}}", gpu),),
            unit="percent",
            min=0,
            max=100,
            description="Time a kernel ran (NVML's utilisation): 100% does not mean the SMs are busy.",
        ),
        Panel(
            "SM active",
            ((f"DCGM_FI_PROF_SM_ACTIVE{{{g}}}", gpu),),
            unit="percentunit",
            min=0,
            max=1,
            description="Cycles with at least one warp on an SM (DCGM profiling).",
        ),
        Panel(
            "Tensor pipe active",
            ((f"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{{g}}}", gpu),),
            unit="percentunit",
            min=0,
            max=1,
        ),
        Panel(
            "Memory interface active",
            ((f"DCGM_FI_PROF_DRAM_ACTIVE{{{g}}}", gpu),),
            unit="percentunit",
            min=0,
            max=1,
            description="Cycles the HBM interface sends or receives (decode is memory-bound: expect it high).",
        ),
        Row("Memory"),
        Panel(
            "Framebuffer used",
            ((f"DCGM_FI_DEV_FB_USED{{{g}}}", gpu),),
            unit="mbytes",
            description="GPU memory in use (MiB): SGLang takes most of it for the KV cache at start.",
        ),
        Panel(
            "Framebuffer used share",
            (
                (
                    f"DCGM_FI_DEV_FB_USED{{{g}}} / (DCGM_FI_DEV_FB_USED{{{g}}} + DCGM_FI_DEV_FB_FREE{{{g}}}"
                    f" + DCGM_FI_DEV_FB_RESERVED{{{g}}})",
                    gpu,
                ),
            ),
            unit="percentunit",
            min=0,
            max=1,
        ),
        Row("Power and temperature"),
        Panel(
            "Power draw",
            (
                (f"DCGM_FI_DEV_POWER_USAGE{{{g}}}", gpu),
                (f"max by (cluster, node) (DCGM_FI_DEV_POWER_MGMT_LIMIT{{{g}}})", "{{node}} limit"),
            ),
            unit="watt",
        ),
        Panel(
            "Temperature",
            (
                (f"DCGM_FI_DEV_GPU_TEMP{{{g}}}", gpu),
                (f"DCGM_FI_DEV_MEMORY_TEMP{{{g}}}", "{{node}} GPU {{gpu}} memory"),
            ),
            unit="celsius",
            threshold=cluster.monitoring.alerts.gpu_temp_c,
            description=f"Above {cluster.monitoring.alerts.gpu_temp_c} C for two minutes: PdfleetGpuTemperatureHigh.",
        ),
        Panel(
            "Time throttled",
            (
                (f"rate(DCGM_FI_DEV_THERMAL_VIOLATION{{{g}}}[{RATE}]) / 1e9", "{{node}} GPU {{gpu}} thermal"),
                (f"rate(DCGM_FI_DEV_POWER_VIOLATION{{{g}}}[{RATE}]) / 1e9", "{{node}} GPU {{gpu}} power"),
            ),
            unit="percentunit",
            min=0,
            description="Share of time the GPU was slowed down for heat or power (DCGM counts ns of violation).",
        ),
        Row("Errors"),
        Panel(
            "Last Xid",
            ((f"DCGM_FI_DEV_XID_ERRORS{{{g}}} > 0", gpu),),
            kind="stat",
            threshold=1,
            width=8,
            description="The last Xid error of each GPU that had one (empty: none). PdfleetGpuXid.",
        ),
        Panel(
            "ECC errors",
            (
                (f"increase(DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{{{g}}}[{RATE}])", "{{node}} GPU {{gpu}} single-bit"),
                (f"increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{g}}}[{RATE}])", "{{node}} GPU {{gpu}} double-bit"),
            ),
            width=8,
            description="Volatile ECC errors per interval. Double-bit: PdfleetGpuEccDoubleBit.",
        ),
        Panel(
            "Row remapping",
            (
                (f"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS{{{g}}}", "{{node}} GPU {{gpu}} correctable"),
                (f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{g}}}", "{{node}} GPU {{gpu}} uncorrectable"),
                (f"DCGM_FI_DEV_ROW_REMAP_PENDING{{{g}}}", "{{node}} GPU {{gpu}} pending"),
                (f"DCGM_FI_DEV_ROW_REMAP_FAILURE{{{g}}}", "{{node}} GPU {{gpu}} failed"),
            ),
            width=8,
            description="Rows remapped so far, and whether a remap waits for a reset or failed.",
        ),
        Row("NVLink and PCIe"),
        Panel(
            "NVLink traffic",
            (
                (f"sum by ({by}) (DCGM_FI_PROF_NVLINK_TX_BYTES{{{g}}})", "{{node}} GPU {{gpu}} tx"),
                (f"sum by ({by}) (DCGM_FI_PROF_NVLINK_RX_BYTES{{{g}}})", "{{node}} GPU {{gpu}} rx"),
            ),
            unit="Bps",
            description="NVLink bytes per second, header and payload (DCGM profiling).",
        ),
        Panel(
            "NVLink bandwidth counter",
            ((f"rate(DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL{{{g}}}[{RATE}])", gpu),),
            description="The rate of DCGM's NVLink bandwidth counter, all lanes (NVIDIA's default field; DCGM "
            "states no unit for it).",
        ),
        Panel(
            "NVLink errors",
            tuple(
                (f"increase({name}{{{g}}}[{RATE}])", f"{{{{node}}}} GPU {{{{gpu}}}} {label}")
                for label, name in (
                    ("crc flit", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"),
                    ("crc data", "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL"),
                    ("replay", "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"),
                    ("recovery", "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"),
                )
            ),
            description="NVLink errors per interval. PdfleetNvlinkErrors.",
        ),
        Panel(
            "PCIe traffic and replays",
            (
                (f"DCGM_FI_PROF_PCIE_TX_BYTES{{{g}}}", "{{node}} GPU {{gpu}} tx"),
                (f"DCGM_FI_PROF_PCIE_RX_BYTES{{{g}}}", "{{node}} GPU {{gpu}} rx"),
                (f"rate(DCGM_FI_DEV_PCIE_REPLAY_COUNTER{{{g}}}[{RATE}])", "{{node}} GPU {{gpu}} replays/s"),
            ),
            unit="Bps",
            description="PCIe bytes per second each way (GPUDirect RDMA to the HCAs goes here), and PCIe replays.",
        ),
    ]
    return _dashboard(
        "pdfleet-gpus",
        f"pdfleet: GPUs ({cluster.name})",
        "Every GPU of the cluster from NVIDIA's DCGM exporter: utilisation, memory, power, heat, errors, NVLink.",
        "dcgm",
        items,
    )


def nodes_fabric(cluster: Cluster) -> dict:
    n = _selector("node")
    ib = "{{node}} {{device}}:{{port}}"
    mounts = f'mountpoint=~"{promql_regex(weights_mountpoints(cluster))}", fstype!="tmpfs"'
    fs = _selector("node", extra=mounts)
    nics = _selector("node", extra='device!~"lo|veth.*|docker.*|br-.*|virbr.*"')
    limit = cluster.monitoring.alerts.disk_free_percent
    roce = (
        "node_exporter 1.11.0 and newer read the HCAs' hw_counters; older ones (Debian 12's 1.5.0) show nothing here."
    )
    items: list[Row | Panel] = [
        Row("Host"),
        Panel(
            "CPU busy",
            ((f'1 - avg by (cluster, node) (rate(node_cpu_seconds_total{{{n}, mode="idle"}}[{RATE}]))', "{{node}}"),),
            unit="percentunit",
            min=0,
            max=1,
        ),
        Panel(
            "Memory used",
            ((f"1 - node_memory_MemAvailable_bytes{{{n}}} / node_memory_MemTotal_bytes{{{n}}}", "{{node}}"),),
            unit="percentunit",
            min=0,
            max=1,
        ),
        Panel(
            f"Free space where {cluster.model.path} lives",
            (
                (
                    f"100 * node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}",
                    "{{node}} {{mountpoint}}",
                ),
            ),
            unit="percent",
            min=0,
            max=100,
            threshold=limit,
            description=f"Free space of / and of every mount point on the way to {cluster.model.path}. Below "
            f"{limit}%: PdfleetWeightsDiskLow.",
        ),
        Panel(
            "Disk throughput",
            (
                (f"sum by (cluster, node) (rate(node_disk_read_bytes_total{{{n}}}[{RATE}]))", "{{node}} read"),
                (f"sum by (cluster, node) (rate(node_disk_written_bytes_total{{{n}}}[{RATE}]))", "{{node}} written"),
            ),
            unit="Bps",
            description="Weights load at start reads here; a copy between peers writes.",
        ),
        Panel(
            "Network (Ethernet) receive",
            ((f"rate(node_network_receive_bytes_total{{{nics}}}[{RATE}])", "{{node}} {{device}}"),),
            unit="Bps",
        ),
        Panel(
            "Network (Ethernet) transmit",
            ((f"rate(node_network_transmit_bytes_total{{{nics}}}[{RATE}])", "{{node}} {{device}}"),),
            unit="Bps",
        ),
        Row("InfiniBand / RoCE ports"),
        Panel(
            "Port state",
            (
                (f"node_infiniband_state_id{{{n}}}", f"{ib} state"),
                (f"node_infiniband_physical_state_id{{{n}}}", f"{ib} physical"),
            ),
            min=0,
            mappings=(("1", "down"), ("2", "init"), ("3", "armed"), ("4", "active"), ("5", "active defer / LinkUp")),
            description="state 4 = ACTIVE and physical state 5 = LinkUp on every HCA the inventory lists; "
            "anything else for a minute: PdfleetHcaPortDown.",
        ),
        Panel(
            "Port rate",
            ((f"node_infiniband_rate_bytes_per_second{{{n}}}", ib),),
            unit="Bps",
            description="The link's signalling rate (400 Gb/s NDR = 50 GB/s).",
        ),
        Panel(
            "Port receive",
            ((f"rate(node_infiniband_port_data_received_bytes_total{{{n}}}[{RATE}])", ib),),
            unit="Bps",
            description="KV caches (Mooncake) and DeepEP traffic arriving on each port.",
        ),
        Panel(
            "Port transmit",
            ((f"rate(node_infiniband_port_data_transmitted_bytes_total{{{n}}}[{RATE}])", ib),),
            unit="Bps",
        ),
        Panel(
            "Port errors",
            tuple(
                (f"increase(node_infiniband_{name}{{{n}}}[{RATE}])", f"{ib} {label}")
                for label, name in (
                    ("rcv errors", "port_errors_received_total"),
                    ("symbol", "symbol_error_total"),
                    ("link downed", "link_downed_total"),
                    ("link recovery", "link_error_recovery_total"),
                    ("rcv discards", "port_discards_received_total"),
                    ("xmit discards", "port_discards_transmitted_total"),
                )
            ),
            description="Errors per interval on each port: symbol errors and link recoveries point at a cable or "
            "transceiver; discards at congestion.",
        ),
        Panel(
            "Port transmit wait",
            ((f"rate(node_infiniband_port_transmit_wait_total{{{n}}}[{RATE}])", ib),),
            description="Ticks with data to send and no credit to send it: congestion towards the switch.",
        ),
        Row("RoCE congestion (ECN)"),
        Panel(
            "ECN-marked RoCE packets received",
            ((f"rate(node_infiniband_np_ecn_marked_roce_packets_received_total{{{n}}}[{RATE}])", ib),),
            unit="pps",
            description="Packets the switches marked for congestion, seen at the receiver (notification point). "
            + roce,
        ),
        Panel(
            "CNPs sent and handled",
            (
                (f"rate(node_infiniband_np_cnp_packets_sent_total{{{n}}}[{RATE}])", f"{ib} sent"),
                (f"rate(node_infiniband_rp_cnp_packets_handled_total{{{n}}}[{RATE}])", f"{ib} handled"),
            ),
            unit="pps",
            description="Congestion notification packets the receivers sent and the senders (reaction points) "
            "slowed down for. " + roce,
        ),
    ]
    return _dashboard(
        "pdfleet-nodes-fabric",
        f"pdfleet: nodes and fabric ({cluster.name})",
        "CPU, memory, the weights' disk, Ethernet, and the InfiniBand / RoCE ports of every node.",
        "node",
        items,
    )


BUILDERS = {
    "pdfleet-pd-overview.json": pd_overview,
    "pdfleet-gpus.json": gpus,
    "pdfleet-nodes-fabric.json": nodes_fabric,
}


def dashboards(cluster: Cluster) -> dict[str, str]:
    """{file name: JSON text} of every dashboard, for pdfleet.monitoringplan.DASHBOARDS_DIR."""
    return {name: json.dumps(build(cluster), indent=2, sort_keys=True) + "\n" for name, build in BUILDERS.items()}
