#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/dcgm-exporter (package datacenter-gpu-manager-exporter, 4.4.1-4.6.0).

Serves what NVIDIA's dcgm-exporter serves (NVIDIA/dcgm-exporter at tag 4.4.1-4.6.0: pkg/cmd/app.go,
internal/pkg/server/server.go, internal/pkg/rendermetrics/render_metrics.go, internal/pkg/collector/gpu_collector.go):
  GET /metrics   for each field of the counters file (CSV `FIELD, gauge|counter|label, help`; `#` comments), its
                 `# HELP` / `# TYPE` and one sample per GPU, labels gpu, UUID (uuid with -o), pci_bus_id, device
                 (nvidiaN), modelName, Hostname (unless -n; NODE_NAME or the host name, the host engine's host with
                 -r), then the fields of type `label` (DCGM_FI_DRIVER_VERSION, ...) sorted, then err_code / err_msg on
                 DCGM_FI_DEV_XID_ERRORS; integers as %d, doubles as %f, as the Go code formats them
  GET /health    "KO" (sic: the real handler writes that), GET / the small HTML page
Values come from the installed driver's captured nvidia-smi XML (temperatures, power, clocks, memory, utilisation,
PCIe replays, ECC and remapped rows; error counters 0); a field with no value there reads 0; the total energy
counter is synthesised (average power x time since boot).

Flags and environment (urfave/cli, like the real one): -f/--collectors FILE (DCGM_EXPORTER_COLLECTORS, default
/etc/dcgm-exporter/default-counters.csv), -a/--address [HOST]:PORT (DCGM_EXPORTER_LISTEN, default :9400),
-c/--collect-interval MS (DCGM_EXPORTER_INTERVAL, 30000; every scrape reads fresh values here), -r/
--remote-hostengine-info HOST:PORT (DCGM_REMOTE_HOSTENGINE_INFO), -n/--no-hostname, -o/--use-old-namespace,
--rbmn/--replace-blanks-in-model-name, -v/--version, -h/--help. Other real flags fail with a "pdfleet sandbox
stand-in" message (exit 1).

Like the real one, it runs DCGM embedded by default (no nv-hostengine needed, the driver is: no driver or a
driver/library version mismatch fails NVML's initialisation, exit 1); with -r it connects to nv-hostengine and fails
without one ("error connecting to nv-hostengine: Host engine connection invalid/disconnected", exit 1), and exits
when the host engine goes away while it runs ("Could not retrieve metrics"), as the real collector does.

Faults for tests: $PDFLEET_STANDIN_ROOT/run/pdfleet-standin/dcgm-faults.json, read at every scrape, e.g.
{"xid": {"3": 79}, "temp": {"*": 91}, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": {"0": 2}}: per field (a DCGM field name or
an alias below), per GPU index ("*" for all), the value to report instead. A file that does not parse is ignored.
"""

import contextlib
import datetime
import json
import os
import signal
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standin_lib import NVIDIA_DATA, ask, installed_driver_version, loaded_driver_version, read_text

VERSION = "@@DCGM_VERSION@@-@@EXPORTER_VERSION@@"
FAULTS = "/run/pdfleet-standin/dcgm-faults.json"
ALIASES = {
    "xid": "DCGM_FI_DEV_XID_ERRORS",
    "temp": "DCGM_FI_DEV_GPU_TEMP",
    "memory_temp": "DCGM_FI_DEV_MEMORY_TEMP",
    "power": "DCGM_FI_DEV_POWER_USAGE",
    "util": "DCGM_FI_DEV_GPU_UTIL",
    "ecc_dbe": "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "ecc_sbe": "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "row_remap_failure": "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "nvlink_crc": "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
}
# Where a field's value is in the nvidia-smi XML (under <gpu>); a list is summed.
XML_FIELDS = {
    "DCGM_FI_DEV_SM_CLOCK": "clocks/sm_clock",
    "DCGM_FI_DEV_MEM_CLOCK": "clocks/mem_clock",
    "DCGM_FI_DEV_VIDEO_CLOCK": "clocks/video_clock",
    "DCGM_FI_DEV_MAX_SM_CLOCK": "max_clocks/sm_clock",
    "DCGM_FI_DEV_MAX_MEM_CLOCK": "max_clocks/mem_clock",
    "DCGM_FI_DEV_GPU_TEMP": "temperature/gpu_temp",
    "DCGM_FI_DEV_MEMORY_TEMP": "temperature/memory_temp",
    "DCGM_FI_DEV_POWER_USAGE": "gpu_power_readings/average_power_draw",
    "DCGM_FI_DEV_POWER_USAGE_INSTANT": "gpu_power_readings/instant_power_draw",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": "gpu_power_readings/current_power_limit",
    "DCGM_FI_DEV_ENFORCED_POWER_LIMIT": "gpu_power_readings/current_power_limit",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "pci/replay_counter",
    "DCGM_FI_DEV_GPU_UTIL": "utilization/gpu_util",
    "DCGM_FI_DEV_MEM_COPY_UTIL": "utilization/memory_util",
    "DCGM_FI_DEV_ENC_UTIL": "utilization/encoder_util",
    "DCGM_FI_DEV_DEC_UTIL": "utilization/decoder_util",
    "DCGM_FI_DEV_FB_TOTAL": "fb_memory_usage/total",
    "DCGM_FI_DEV_FB_FREE": "fb_memory_usage/free",
    "DCGM_FI_DEV_FB_USED": "fb_memory_usage/used",
    "DCGM_FI_DEV_FB_RESERVED": "fb_memory_usage/reserved",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "remapped_rows/remapped_row_corr",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "remapped_rows/remapped_row_unc",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": "remapped_rows/remapped_row_failure",
    "DCGM_FI_DEV_ROW_REMAP_PENDING": "remapped_rows/remapped_row_pending",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": ["ecc_errors/volatile/sram_correctable", "ecc_errors/volatile/dram_correctable"],
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ["ecc_errors/volatile/sram_uncorrectable_parity",
                                      "ecc_errors/volatile/sram_uncorrectable_secded",
                                      "ecc_errors/volatile/dram_uncorrectable"],
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": ["ecc_errors/aggregate/sram_correctable", "ecc_errors/aggregate/dram_correctable"],
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": ["ecc_errors/aggregate/sram_uncorrectable_parity",
                                      "ecc_errors/aggregate/sram_uncorrectable_secded",
                                      "ecc_errors/aggregate/dram_uncorrectable"],
    "DCGM_FI_DEV_POWER_VIOLATION": "clocks_event_reasons_counters/clocks_event_reasons_counters_sw_power_cap",
    "DCGM_FI_DEV_THERMAL_VIOLATION": "clocks_event_reasons_counters/clocks_event_reasons_counters_hw_therm_slowdown",
    "DCGM_FI_DEV_SYNC_BOOST_VIOLATION": "clocks_event_reasons_counters/clocks_event_reasons_counters_sync_boost",
    "DCGM_FI_PROF_PCIE_TX_BYTES": "pci/tx_util",
    "DCGM_FI_PROF_PCIE_RX_BYTES": "pci/rx_util",
}  # fmt: skip
# Ratios DCGM's profiling module reports, from nvidia-smi's utilisation percentages.
RATIOS = {"DCGM_FI_PROF_GR_ENGINE_ACTIVE": "utilization/gpu_util", "DCGM_FI_PROF_SM_ACTIVE": "utilization/gpu_util",
          "DCGM_FI_PROF_DRAM_ACTIVE": "utilization/memory_util"}  # fmt: skip
# Fields of type `label`: their value becomes a label of every metric.
LABEL_FIELDS = {"DCGM_FI_DEV_SERIAL": "serial", "DCGM_FI_DEV_VBIOS_VERSION": "vbios_version",
                "DCGM_FI_DEV_BRAND": "product_brand", "DCGM_FI_DEV_NAME": "product_name",
                "DCGM_FI_DEV_UUID": "uuid", "DCGM_FI_DEV_PCI_BUSID": "pci/pci_bus_id",
                "DCGM_FI_DEV_INFOROM_IMAGE_VER": "inforom_version/img_version"}  # fmt: skip
DOUBLE_FIELDS = {"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_POWER_USAGE_INSTANT", "DCGM_FI_DEV_POWER_MGMT_LIMIT",
                 "DCGM_FI_DEV_POWER_MGMT_LIMIT_MIN", "DCGM_FI_DEV_POWER_MGMT_LIMIT_MAX",
                 "DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", "DCGM_FI_DEV_ENFORCED_POWER_LIMIT"}  # fmt: skip
EXPORTER_FIELDS = {"DCGM_EXP_XID_ERRORS_COUNT", "DCGM_EXP_CLOCK_EVENTS_COUNT", "DCGM_EXP_GPU_HEALTH_STATUS",
                   "DCGM_EXP_P2P_STATUS"}  # fmt: skip
PROM_TYPES = {"gauge", "counter", "histogram", "summary", "label"}
# internal/pkg/collector/xid_errors.go (a few; the rest read "Unknown Error" here)
XID_TEXT = {0: "No Error", 13: "Graphics Engine Exception", 31: "GPU memory page fault", 43: "GPU stopped processing",
            45: "Preemptive cleanup, due to previous errors -- Most likely to see when running multiple cuda",
            48: "Double Bit ECC Error", 61: "Internal micro-controller breakpoint/warning",
            62: "Internal micro-controller halt", 63: "ECC page retirement or row remapping recording event",
            64: "ECC page retirement or row remapper recording failure", 74: "NVLINK Error",
            79: "GPU has fallen off the bus", 92: "High single-bit ECC error rate", 94: "Contained ECC error",
            95: "Uncontained ECC error", 119: "GSP RPC Timeout", 120: "GSP Error", 140: "Unrecovered ECC Error",
            143: "GPU Initialization Failure"}  # fmt: skip
# Real flags the stand-in does not simulate: (names, takes a value)
REAL_ONLY = [
    (("-k", "--kubernetes"), False), (("-p", "--cpu-devices"), True), (("-m", "--configmap-data"), True),
    (("--kubernetes-enable-pod-labels",), False), (("--kubernetes-enable-pod-uid",), False),
    (("--kubernetes-gpu-id-type",), True), (("--kubernetes-pod-label-allowlist-regex",), True),
    (("-d", "--devices"), True), (("-s", "--switch-devices"), True), (("--fake-gpus",), False),
    (("--web-config-file",), True), (("-x", "--xid-count-window-size"), True), (("--debug",), False),
    (("--clock-events-count-window-size",), True), (("--enable-dcgm-log",), False), (("--dcgm-log-level",), True),
    (("--log-format",), True), (("--pod-resources-kubelet-socket",), True), (("--hpc-job-mapping-dir",), True),
    (("--nvidia-resource-names",), True), (("--kubernetes-virtual-gpus",), False), (("--dump-enabled",), False),
    (("--dump-directory",), True), (("--dump-retention",), True), (("--dump-compression",), False),
    (("--kubernetes-enable-dra",), False), (("--disable-startup-validate",), False),
    (("--web-systemd-socket",), False),
]  # fmt: skip


def log(level, msg, **attrs):
    """Go's log/slog text handler, as dcgm-exporter configures it (stderr)."""

    def quote(value):
        value = str(value)
        if value == "" or any(c in value for c in ' ="\\\n\t'):
            return json.dumps(value)
        return value

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    text = f"time={now} level={level} msg={quote(msg)}" + "".join(f" {k}={quote(v)}" for k, v in attrs.items())
    print(text, file=sys.stderr, flush=True)


def fail(message):
    log("ERROR", message)
    sys.exit(1)


def number(text):
    """'37 C', '87.98 W', '1160 KB/s', 'Yes' -> a number; None when there is none."""
    if text is None:
        return None
    text = text.strip()
    if text in ("Yes", "No"):
        return 1 if text == "Yes" else 0
    parts = text.split()
    if not parts:
        return None
    try:
        value = float(parts[0])
    except ValueError:
        return None
    if len(parts) > 1 and parts[1] == "KB/s":
        value *= 1024
    return value


class Options:
    collectors = os.environ.get("DCGM_EXPORTER_COLLECTORS", "/etc/dcgm-exporter/default-counters.csv")
    address = os.environ.get("DCGM_EXPORTER_LISTEN", ":9400")
    interval = os.environ.get("DCGM_EXPORTER_INTERVAL", "30000")
    remote = os.environ.get("DCGM_REMOTE_HOSTENGINE_INFO")
    no_hostname = os.environ.get("DCGM_EXPORTER_NO_HOSTNAME", "").lower() in ("1", "true")
    old_namespace = os.environ.get("DCGM_EXPORTER_USE_OLD_NAMESPACE", "").lower() in ("1", "true")
    replace_blanks = os.environ.get("DCGM_EXPORTER_REPLACE_BLANKS_IN_MODEL_NAME", "").lower() in ("1", "true")


def parse_args(argv):
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            print(f"Incorrect Usage: unexpected argument {arg}", file=sys.stderr)
            sys.exit(1)
        name, eq, inline = arg.partition("=")
        if name.startswith("--") and len(name) == 3:
            name = name[1:]  # Go's flag package takes --f as -f
        if name.startswith("-") and not name.startswith("--") and len(name) > 2:
            name = "-" + name  # and -collectors as --collectors

        def value(name=name, eq=eq, inline=inline):
            nonlocal i
            if eq:
                return inline
            i += 1
            if i >= len(argv):
                print(f"Incorrect Usage: flag needs an argument: {name}", file=sys.stderr)
                sys.exit(1)
            return argv[i]

        if name in ("-f", "--collectors"):
            opts.collectors = value()
        elif name in ("-a", "--address"):
            opts.address = value()
        elif name in ("-c", "--collect-interval"):
            opts.interval = value()
        elif name in ("-r", "--remote-hostengine-info"):
            opts.remote = value()
        elif name in ("-n", "--no-hostname"):
            opts.no_hostname = True
        elif name in ("-o", "--use-old-namespace"):
            opts.old_namespace = True
        elif name in ("--rbmn", "--replace-blanks-in-model-name"):
            opts.replace_blanks = True
        elif name in ("-v", "--version"):
            print(f"dcgm-exporter version {VERSION}")
            sys.exit(0)
        elif name in ("-h", "--help"):
            print(
                f"NAME:\n   dcgm-exporter - Generates GPU metrics in the prometheus format\n\nVERSION:\n   {VERSION}\n"
                "\npdfleet sandbox stand-in: see /usr/share/doc/datacenter-gpu-manager-exporter/README.pdfleet-standin"
            )
            sys.exit(0)
        else:
            for names, _takes_value in REAL_ONLY:
                if name in names:
                    print(f"dcgm-exporter (pdfleet sandbox stand-in): {names[-1]} is not simulated", file=sys.stderr)
                    sys.exit(1)
            print(f"Incorrect Usage: flag provided but not defined: {name}", file=sys.stderr)
            sys.exit(1)
        i += 1
    try:
        int(opts.interval)
    except ValueError:
        print(f'Incorrect Usage: invalid value "{opts.interval}" for flag -c: parse error', file=sys.stderr)
        sys.exit(1)
    return opts


def read_counters(path):
    """counters.ReadCSVFile + ExtractCounters: [(field, type, help)]."""
    text = read_text(path)
    if text is None:
        log("ERROR", f"Could not read metrics file '{path}'; err: open {path}: no such file or directory")
        fail(f"open {path}: no such file or directory")
    counters = []
    for number_, line in enumerate(line for line in text.splitlines() if line.strip() and not line.startswith("#")):
        record = [field.strip(" ") for field in line.split(",")]
        if len(record) != 3:
            fail(f"malformed CSV record; err: failed to parse line {number_} (`[{' '.join(record)}]`), "
                 "expected 3 fields")  # fmt: skip
        name, kind, help_text = record
        if not name.startswith("DCGM_FI_") and name not in EXPORTER_FIELDS:
            fail(f"could not find DCGM field; err: unknown ExporterCounter field '{name}'")
        if kind not in PROM_TYPES:
            fail(f"could not find Prometheus metric type '{kind}'")
        if name in EXPORTER_FIELDS:
            log("WARN", f"pdfleet sandbox stand-in: {name} is not simulated; not collecting it")
            continue
        counters.append((name, kind, help_text))
    return counters


def load_gpus():
    text = read_text(f"{NVIDIA_DATA}/nvidia-smi-q.xml")
    root = ET.fromstring(text.split("\n", 2)[2])
    return root.findall("gpu")


def faults():
    text = read_text(FAULTS)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        log("WARN", f"pdfleet sandbox stand-in: {FAULTS} does not parse; ignored")
        return {}
    return {ALIASES.get(k, k): v for k, v in data.items() if isinstance(v, dict)}


def boot_time():
    uptime = read_text("/proc/uptime")
    with contextlib.suppress(ValueError, AttributeError, IndexError):
        return time.time() - float(uptime.split()[0])
    return time.time()


class Exporter:
    def __init__(self, opts, counters, gpus, driver, hostname):
        self.opts = opts
        self.counters = counters
        self.gpus = gpus
        self.driver = driver
        self.hostname = hostname
        self.booted = boot_time()

    def value(self, gpu, index, field, injected):
        override = injected.get(field, {})
        for key in (str(index), "*"):
            if key in override:
                return override[key]
        if field == "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION":
            watts = number(gpu.findtext("gpu_power_readings/average_power_draw")) or 0
            return int(watts * (time.time() - self.booted) * 1000)
        if field in RATIOS:
            return (number(gpu.findtext(RATIOS[field])) or 0) / 100.0
        where = XML_FIELDS.get(field)
        if where is None:
            return 0
        paths = where if isinstance(where, list) else [where]
        return sum(number(gpu.findtext(path)) or 0 for path in paths)

    def render(self):
        injected = faults()
        labels = {}
        for field, kind, _help in self.counters:
            if kind == "label":
                labels[field] = None
        lines = []
        for field, kind, help_text in self.counters:
            if kind == "label":
                continue
            lines += [f"# HELP {field} {help_text}", f"# TYPE {field} {kind}"]
            for index, gpu in enumerate(self.gpus):
                value = self.value(gpu, index, field, injected)
                double = field in DOUBLE_FIELDS or (field.startswith("DCGM_FI_PROF_") and not field.endswith("_BYTES"))
                text = f"{float(value):f}" if double else f"{int(value)}"
                model = gpu.findtext("product_name") or ""
                if self.opts.replace_blanks:
                    model = "-".join(model.split())
                pairs = [("gpu", str(index)), ("uuid" if self.opts.old_namespace else "UUID", gpu.findtext("uuid")),
                         ("pci_bus_id", gpu.findtext("pci/pci_bus_id")), ("device", f"nvidia{index}"),
                         ("modelName", model)]  # fmt: skip
                if self.hostname:
                    pairs.append(("Hostname", self.hostname))
                for name in sorted(labels):
                    if name == "DCGM_FI_DRIVER_VERSION":
                        pairs.append((name, self.driver))
                    else:
                        pairs.append((name, gpu.findtext(LABEL_FIELDS.get(name, "")) or ""))
                if field == "DCGM_FI_DEV_XID_ERRORS":
                    code = int(value)
                    pairs += [("err_code", str(code)), ("err_msg", XID_TEXT.get(code, "Unknown Error"))]
                rendered = ",".join(f'{k}="{v}"' for k, v in pairs)
                lines.append(f"{field}{{{rendered}}} {text}")
        return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    server_version = "Go-http-client"
    sys_version = ""

    def log_message(self, format, *args):
        return

    def _send(self, status, body, content_type="text/plain; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        exporter = self.server.exporter
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            if exporter.opts.remote and not self.server.hostengine_alive():
                log("ERROR", "Could not retrieve metrics: Host engine connection invalid/disconnected")
                os._exit(1)
            self._send(200, exporter.render().encode())
        elif path == "/health":
            self._send(200, b"KO")
        elif path == "/":
            page = (b"<html>\n\t\t\t<head><title>GPU Exporter</title></head>\n\t\t\t<body>\n\t\t\t<h1>GPU Exporter</h1>"
                    b'\n\t\t\t<p><a href="./metrics">Metrics</a></p>\n\t\t\t</body>\n\t\t\t</html>')  # fmt: skip
            self._send(200, page, "text/html; charset=utf-8")
        else:
            self._send(404, b"404 page not found\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def listen(address):
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    port = int(port)
    families = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")] if not host else [
        (socket.AF_INET6 if ":" in host else socket.AF_INET, host)]  # fmt: skip
    error = None
    for family, bind in families:
        try:
            Server.address_family = family
            server = Server((bind, port), Handler, bind_and_activate=False)
            if family == socket.AF_INET6 and bind == "::":
                server.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            server.server_bind()
            server.server_activate()
            shown = f"[{bind}]:{port}" if family == socket.AF_INET6 else f"{bind}:{port}"
            return server, shown
        except OSError as exc:
            error = exc
            with contextlib.suppress(NameError, OSError):
                server.server_close()
    reason = "address already in use" if getattr(error, "errno", None) == 98 else str(error)
    log("ERROR", "Failed to Listen and Server HTTP server.", error=f"listen tcp {address}: bind: {reason}")
    sys.exit(1)


def main(argv):
    opts = parse_args(argv)
    log("INFO", "Starting dcgm-exporter", Version=VERSION)
    hostengine = None
    if opts.remote:
        log("INFO", f"Attempting to connect to remote hostengine at {opts.remote}")
        host, _, port = opts.remote.rpartition(":")
        host = host.strip("[]") or "localhost"
        hostengine = ("tcp", "127.0.0.1" if host == "localhost" else host, int(port or 5555))
        if ask(hostengine, "hello") is None:
            fail("error connecting to nv-hostengine: Host engine connection invalid/disconnected")
    else:
        log("INFO", "Attempting to initialize DCGM.")
    log("INFO", "Initialized DCGM Fields module.")
    log("INFO", "Attempting to initialize NVML library.")
    installed = installed_driver_version()
    if installed is None or read_text(f"{NVIDIA_DATA}/nvidia-smi-q.xml") is None:
        fail("Cannot init NVML library; err: ERROR_LIBRARY_NOT_FOUND")
    driver = loaded_driver_version()
    if driver != installed:
        fail("Cannot init NVML library; err: Driver/library version mismatch")
    log("INFO", "DCGM successfully initialized!")
    log("INFO", "NVML provider successfully initialized!")
    log("INFO", f"Falling back to metric file '{opts.collectors}'")
    counters = read_counters(opts.collectors)
    gpus = load_gpus()
    if opts.no_hostname:
        hostname = ""
    elif opts.remote:  # hostname.parseRemoteHostname: the host part of -r
        hostname = opts.remote.rpartition(":")[0].strip("[]") or opts.remote
    else:
        hostname = os.environ.get("NODE_NAME") or socket.gethostname()
    exporter = Exporter(opts, counters, gpus, driver, hostname)
    server, shown = listen(opts.address)
    server.exporter = exporter
    server.hostengine_alive = lambda: ask(hostengine, "hello") is not None
    log("INFO", "Starting webserver")
    log("INFO", "Listening on", address=shown)
    log("INFO", "TLS is disabled.", http2="false", address=shown)

    def stop(signum, _frame):
        log("INFO", "Received signal", signal={signal.SIGTERM: "terminated", signal.SIGINT: "interrupt"}[signum])
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
