"""The DCGM exporter's counters file: which DCGM fields it reads and exports, one Prometheus metric each (the metric
is named after the field, e.g. DCGM_FI_DEV_GPU_TEMP, labelled gpu, UUID, pci_bus_id, device, modelName, Hostname).

Pure: `counters_csv()` is the text of pdfleet.monitoringplan.DCGM_COUNTERS, in the format of dcgm-exporter's
etc/default-counters.csv (`# comment` lines; `DCGM_FIELD, gauge|counter|label, help`). It holds NVIDIA's default set,
as shipped, plus the fields pdfleet's alerts (pdfleet/alerts.py) and dashboards (pdfleet/dashboards.py) read that
the default leaves out (commented out there, or absent). tests/test_dashboards.py checks that every DCGM metric a
query names is in this file, and that each added field is used.

Field names were checked against DCGM's dcgm_fields.h as go-dcgm carries it (NVIDIA/go-dcgm @ 0b1e78b1ccea, the
version dcgm-exporter 4.6.0 builds with: pkg/dcgm/const_fields.go).
"""

from __future__ import annotations

# NVIDIA's default set: NVIDIA/dcgm-exporter etc/default-counters.csv at tag 4.4.1-4.6.0 (commit 13ad457b; DCGM 4.4.1,
# exporter 4.6.0, the inventory's default `monitoring.dcgm_exporter_version`). The same fields at 4.5.3-4.8.2; only
# the commented-out violation counters' help changed there ("in us" became "in ns", which dcgm_fields.h says).
DEFAULT = (
    ("Clocks", None),
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    ("Temperature", None),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("Power", None),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("PCIE", None),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries."),
    ("Utilization (the sample period varies depending on the product)", None),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %)."),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %)."),
    ("Errors and violations", None),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    ("Memory usage", None),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB)."),
    ("NVLink", None),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter", "Total number of NVLink bandwidth counters for all lanes."),
    ("VGPU License status", None),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status"),
    ("Remapped rows", None),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors"),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors"),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed"),
    ("Static configuration information. These appear as labels on the other metrics", None),
    ("DCGM_FI_DRIVER_VERSION", "label", "Driver Version"),
    ("Datacenter Profiling (DCP) metrics; supported on NVIDIA datacenter Volta GPUs and newer", None),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active."),
    (
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "gauge",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
    ),
    (
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "gauge",
        "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in "
        "bytes per second.",
    ),
    (
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "gauge",
        "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in "
        "bytes per second.",
    ),
)

# pdfleet's additions: each is read by an alert or a dashboard panel (the reader is named beside it).
EXTRA = (
    ("ECC (PdfleetGpuEccDoubleBit; GPUs dashboard)", None),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors."),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors."),
    ("Row remapping (PdfleetGpuRowRemapPending)", None),
    ("DCGM_FI_DEV_ROW_REMAP_PENDING", "gauge", "Whether remapping of rows is pending (a GPU reset applies it)."),
    ("Violations (PdfleetGpuThermalThrottling; GPUs dashboard)", None),
    ("DCGM_FI_DEV_THERMAL_VIOLATION", "counter", "Throttling duration due to thermal constraints (in ns)."),
    ("DCGM_FI_DEV_POWER_VIOLATION", "counter", "Throttling duration due to power constraints (in ns)."),
    ("NVLink errors (PdfleetNvlinkErrors; GPUs dashboard)", None),
    ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink flow-control CRC errors."),
    ("DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink data CRC errors."),
    ("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink retries."),
    ("DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink recovery errors."),
    ("NVLink traffic, per direction (GPUs dashboard)", None),
    ("DCGM_FI_PROF_NVLINK_TX_BYTES", "gauge", "The rate of NVLink tx data - header and payload - in B/s."),
    ("DCGM_FI_PROF_NVLINK_RX_BYTES", "gauge", "The rate of NVLink rx data - header and payload - in B/s."),
    ("Utilisation and power (GPUs dashboard)", None),
    ("DCGM_FI_PROF_SM_ACTIVE", "gauge", "The ratio of cycles an SM has at least 1 warp assigned."),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Current power limit for the device (in W)."),
)


def fields(rows=DEFAULT + EXTRA) -> dict[str, str]:
    """{DCGM field: its Prometheus type} of the counters file."""
    return {row[0]: row[1] for row in rows if row[1] is not None}


def counters_csv() -> str:
    """The file's text. dcgm-exporter reads it with Go's encoding/csv (comment '#') and wants exactly three fields
    on every line: a help text may hold neither a comma nor a double quote."""
    for row in DEFAULT + EXTRA:
        if row[1] is not None and ("," in row[2] or '"' in row[2]):
            raise ValueError(f"{row[0]}: a help text with a comma or a quote breaks dcgm-exporter's CSV reader")
    lines = [
        "# Managed by pdfleet (pdfleet/dcgmcounters.py): the DCGM exporter's counters file.",
        "# Format",
        "# If line starts with a '#' it is considered a comment",
        "# DCGM FIELD, Prometheus metric type, help message",
        "#",
        "# NVIDIA's default set comes from NVIDIA/dcgm-exporter etc/default-counters.csv",
        "# at tag 4.4.1-4.6.0 (commit 13ad457b); pdfleet adds the fields its alerts and dashboards read.",
    ]
    for title, rows in (
        ("NVIDIA's default set", DEFAULT),
        ("Added by pdfleet: read by its alerts and dashboards", EXTRA),
    ):
        lines += ["", f"# ==== {title} ===="]
        for row in rows:
            if row[1] is None:
                lines += ["", f"# {row[0]}"]
            else:
                lines.append(f"{row[0]}, {row[1]}, {row[2]}")
    return "\n".join(lines) + "\n"
