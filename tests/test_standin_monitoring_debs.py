"""The monitoring stand-in packages: datacenter-gpu-manager-exporter (dcgm-exporter) and grafana.

Built with the other stand-ins (pdfleet.sandbox.debs), unpacked with `dpkg-deb -x` and run from the tree with
PDFLEET_STANDIN_ROOT, on 127.0.0.1 and free ports, every process ended by its own PID:
- dcgm-exporter serves the counters file's fields for the 8 GPUs of the captured node, with dcgm-exporter's labels
  and number formats and the captured values; faults injected through /run/pdfleet-standin/dcgm-faults.json show
  at the next scrape; its flags, environment variables and failures (no driver, no host engine with -r, a bad
  counters file, a port in use) behave as the real one's;
- grafana serves /api/health, provisions the data sources and dashboards of /etc/grafana/provisioning (a dashboard
  file that does not parse is logged and left out, the server goes on; a data source file that does not parse stops
  it), answers /api/search, /api/dashboards/uid and /api/datasources with basic auth or anonymous access, and reads
  new dashboard files while it runs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from http.client import HTTPConnection
from pathlib import Path

import pytest

from pdfleet.sandbox import debs as standin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_standin_metrics import parse  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "h200-8gpu-node"
DRIVER = standin.CAPTURED_DRIVER
UBUNTU = f"{DRIVER}-0ubuntu1"
LOOPBACK = "127.0.0.1"

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (package dpkg)")


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("debs")
    return {path.name: path for path in standin.build_standin_debs(out, FIXTURES)}


def extract(built: dict[str, Path], root: Path, *packages: str | tuple[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for item in packages:
        name, version = item if isinstance(item, tuple) else (item, None)
        package = next(p for p in standin.STANDIN_PACKAGES if p.name == name and version in (None, p.version))
        subprocess.run(["dpkg-deb", "-x", str(built[package.filename]), str(root)], check=True)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def env_for(root: Path, **extra: str) -> dict:
    return {"PATH": os.environ["PATH"], "PDFLEET_STANDIN_ROOT": str(root), "LC_ALL": "C.UTF-8", **extra}


def get(port: int, path: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    conn = HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        headers = {}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Daemon:
    """A server started from the tree; its output goes to a file; stopped by its own PID."""

    def __init__(self, argv: list[str], env: dict, log: Path):
        self.log = log
        with log.open("wb") as handle:
            self.proc = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_http(self, port: int, path: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.output()[-2000:]}"
            try:
                get(port, path)
                return
            except OSError:
                assert time.monotonic() < deadline, f"nothing on {port}: {self.output()[-2000:]}"
                time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def gpus() -> list[ET.Element]:
    return ET.fromstring((FIXTURES / "nvidia-smi-q.xml").read_text().split("\n", 2)[2]).findall("gpu")


def counters_file() -> list[tuple[str, str, str]]:
    rows = []
    for line in (standin.SOURCES / "dcgm/default-counters.csv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(tuple(part.strip() for part in line.split(",")))
    return rows


# ------------------------------------------------------------------------------------------------ dcgm-exporter


def test_exporter_package(built):
    path = built[f"datacenter-gpu-manager-exporter_{standin.DCGM_EXPORTER_VERSION}-1_amd64.deb"]
    field = lambda name: subprocess.run(  # noqa: E731
        ["dpkg-deb", "--field", str(path), name], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert field("Version") == "4.6.0-1"
    assert field("Depends").split(", ")[0] == "datacenter-gpu-manager-4-core (= 1:4.4.1-1)"
    unit = (standin.SOURCES / "dcgm/nvidia-dcgm-exporter.service").read_text()
    assert "Wants=nvidia-dcgm.service\nAfter=nvidia-dcgm.service\n" in unit
    assert "\nExecStart=/usr/bin/dcgm-exporter -f /etc/dcgm-exporter/default-counters.csv\n" in unit
    contents = subprocess.run(["dpkg-deb", "--contents", str(path)], capture_output=True, text=True, check=True)
    for item in ("./usr/bin/dcgm-exporter", "./etc/dcgm-exporter/default-counters.csv",
                 "./usr/lib/systemd/system/nvidia-dcgm-exporter.service"):  # fmt: skip
        assert any(line.endswith(" " + item) for line in contents.stdout.splitlines()), item
    conffiles = subprocess.run(["dpkg-deb", "--info", str(path), "conffiles"], capture_output=True, text=True)
    assert conffiles.stdout.split() == ["/etc/dcgm-exporter/default-counters.csv"]


@pytest.fixture
def exporter_root(built, tmp_path) -> Path:
    return extract(built, tmp_path / "root", ("nvidia-utils-580-server", UBUNTU), "datacenter-gpu-manager-4-core",
                   "datacenter-gpu-manager-exporter")  # fmt: skip


def start_exporter(root: Path, tmp_path: Path, *args: str, **env: str) -> tuple[Daemon, int]:
    port = free_port()
    daemon = Daemon([str(root / "usr/bin/dcgm-exporter"), "-a", f"{LOOPBACK}:{port}", *args], env_for(root, **env),
                    tmp_path / f"exporter-{port}.log")  # fmt: skip
    daemon.wait_http(port, "/health")
    return daemon, port


def scrape(port: int) -> tuple[str, dict]:
    status, body = get(port, "/metrics")
    assert status == 200, body
    return body.decode(), parse(body.decode())


def test_exporter_serves_the_captured_node(exporter_root, tmp_path):
    daemon, port = start_exporter(exporter_root, tmp_path, NODE_NAME="gpu-node-7")
    try:
        text, families = scrape(port)
        assert get(port, "/health") == (200, b"KO")
        assert b"<h1>GPU Exporter</h1>" in get(port, "/")[1]
    finally:
        assert daemon.stop() == 0
    collected = [row for row in counters_file() if row[1] != "label"]
    assert [f for f in families] == [name for name, _kind, _help in collected]  # the file's order
    for name, kind, help_text in collected:
        assert (families[name]["type"], families[name]["help"]) == (kind, help_text)
        assert len(families[name]["samples"]) == 8
    captured = gpus()
    for index, gpu in enumerate(captured):
        labels = {
            "gpu": str(index), "UUID": gpu.findtext("uuid"), "pci_bus_id": gpu.findtext("pci/pci_bus_id"),
            "device": f"nvidia{index}", "modelName": "NVIDIA H200", "Hostname": "gpu-node-7",
            "DCGM_FI_DRIVER_VERSION": DRIVER,
        }  # fmt: skip

        def value(name, labels=labels, index=index):
            [(found, lab)] = [(v, lab) for _n, lab, v in families[name]["samples"] if lab.get("gpu") == str(index)]
            assert {k: v for k, v in lab.items() if k not in ("err_code", "err_msg")} == labels
            return found

        def captured_number(path, gpu=gpu):
            return float(gpu.findtext(path).split()[0])

        assert value("DCGM_FI_DEV_GPU_TEMP") == captured_number("temperature/gpu_temp")
        assert value("DCGM_FI_DEV_MEMORY_TEMP") == captured_number("temperature/memory_temp")
        assert value("DCGM_FI_DEV_SM_CLOCK") == captured_number("clocks/sm_clock")
        assert value("DCGM_FI_DEV_MEM_CLOCK") == captured_number("clocks/mem_clock")
        assert value("DCGM_FI_DEV_FB_USED") == captured_number("fb_memory_usage/used")
        assert value("DCGM_FI_DEV_FB_FREE") == captured_number("fb_memory_usage/free")
        assert value("DCGM_FI_DEV_GPU_UTIL") == captured_number("utilization/gpu_util")
        assert value("DCGM_FI_DEV_POWER_USAGE") == captured_number("gpu_power_readings/average_power_draw")
        assert value("DCGM_FI_DEV_XID_ERRORS") == 0 and value("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS") == 0
        assert value("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") > 0
    # The query-gpu capture agrees on the identities.
    rows = [row.split(", ") for row in (FIXTURES / "nvidia-smi-query-gpu.csv").read_text().splitlines()]
    assert [lab["UUID"] for _n, lab, _v in families["DCGM_FI_DEV_GPU_TEMP"]["samples"]] == [r[2] for r in rows]
    # The exact text of dcgm-exporter's template: label order, %d for integers, %f for doubles, XID attributes.
    first = gpus()[0]
    head = (f'{{gpu="0",UUID="{first.findtext("uuid")}",pci_bus_id="00000000:00:06.0",device="nvidia0",'
            f'modelName="NVIDIA H200",Hostname="gpu-node-7",DCGM_FI_DRIVER_VERSION="{DRIVER}"')  # fmt: skip
    lines = text.splitlines()
    assert f"DCGM_FI_DEV_GPU_TEMP{head}}} 37" in lines
    assert f"DCGM_FI_DEV_POWER_USAGE{head}}} 87.980000" in lines
    assert f'DCGM_FI_DEV_XID_ERRORS{head},err_code="0",err_msg="No Error"}} 0' in lines
    assert f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{head}}} 0.000000" in lines
    assert lines[:2] == ["# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).",
                         "# TYPE DCGM_FI_DEV_SM_CLOCK gauge"]  # fmt: skip
    log = daemon.output()
    assert 'level=INFO msg="Starting dcgm-exporter" Version=4.4.1-4.6.0' in log
    assert f'msg="Listening on" address={LOOPBACK}:{port}' in log


def test_exporter_faults_show_at_the_next_scrape(exporter_root, tmp_path):
    daemon, port = start_exporter(exporter_root, tmp_path)
    faults = exporter_root / "run/pdfleet-standin/dcgm-faults.json"
    faults.parent.mkdir(parents=True, exist_ok=True)
    try:
        faults.write_text(json.dumps({"xid": {"3": 79}, "temp": {"*": 91}, "DCGM_FI_DEV_ROW_REMAP_FAILURE": {"5": 1}}))
        _text, families = scrape(port)
        xid = {lab["gpu"]: (lab["err_code"], lab["err_msg"], v) for _n, lab, v in
               families["DCGM_FI_DEV_XID_ERRORS"]["samples"]}  # fmt: skip
        assert xid["3"] == ("79", "GPU has fallen off the bus", 79.0)
        assert xid["2"] == ("0", "No Error", 0.0)
        assert {v for _n, _l, v in families["DCGM_FI_DEV_GPU_TEMP"]["samples"]} == {91.0}
        remap = {lab["gpu"]: v for _n, lab, v in families["DCGM_FI_DEV_ROW_REMAP_FAILURE"]["samples"]}
        assert remap["5"] == 1 and remap["4"] == 0
        faults.write_text("{not json")  # a half-written file: ignored
        _text, families = scrape(port)
        assert {v for _n, _l, v in families["DCGM_FI_DEV_XID_ERRORS"]["samples"]} == {0.0}
        faults.unlink()
        _text, families = scrape(port)
        assert [v for _n, _l, v in families["DCGM_FI_DEV_GPU_TEMP"]["samples"]][0] == 37.0
    finally:
        assert daemon.stop() == 0


def test_exporter_flags_and_environment(exporter_root, tmp_path):
    exporter = str(exporter_root / "usr/bin/dcgm-exporter")
    version = subprocess.run([exporter, "--version"], env=env_for(exporter_root), capture_output=True, text=True)
    assert version.stdout == "dcgm-exporter version 4.4.1-4.6.0\n"
    custom = exporter_root / "etc/dcgm-exporter/custom.csv"
    custom.write_text("# mine\nDCGM_FI_DEV_GPU_TEMP, gauge, GPU temperature (in C).\n\n"
                      "DCGM_FI_DEV_XID_ERRORS , gauge, Value of the last XID error encountered.\n")  # fmt: skip
    port = free_port()
    daemon = Daemon(
        [exporter, "--collectors=/etc/dcgm-exporter/custom.csv", "-n", "-o"],
        env_for(exporter_root, DCGM_EXPORTER_LISTEN=f"{LOOPBACK}:{port}"),
        tmp_path / "custom.log",
    )
    try:
        daemon.wait_http(port, "/metrics")
        _text, families = scrape(port)
    finally:
        assert daemon.stop() == 0
    assert list(families) == ["DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_XID_ERRORS"]
    labels = families["DCGM_FI_DEV_GPU_TEMP"]["samples"][0][1]
    assert "Hostname" not in labels and "uuid" in labels and "UUID" not in labels
    assert "DCGM_FI_DRIVER_VERSION" not in labels  # not in this counters file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "/etc/dcgm-exporter/nope.csv"], 'msg="open /etc/dcgm-exporter/nope.csv: no such file or directory"'),
        (
            ["-f", "/etc/dcgm-exporter/bad.csv"],
            "could not find DCGM field; err: unknown ExporterCounter field 'GPU_TEMP'",
        ),
        (["-f", "/etc/dcgm-exporter/badtype.csv"], "could not find Prometheus metric type 'meter'"),
        (["--bogus"], "Incorrect Usage: flag provided but not defined: --bogus"),
        (["-k"], "--kubernetes is not simulated"),
    ],
)
def test_exporter_refuses_what_the_real_one_refuses(exporter_root, args, message):
    (exporter_root / "etc/dcgm-exporter/bad.csv").write_text("GPU_TEMP, gauge, x\n")
    (exporter_root / "etc/dcgm-exporter/badtype.csv").write_text("DCGM_FI_DEV_GPU_TEMP, meter, x\n")
    result = subprocess.run([str(exporter_root / "usr/bin/dcgm-exporter"), "-a", f"{LOOPBACK}:{free_port()}", *args],
                            env=env_for(exporter_root), capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 1
    assert message in result.stderr


def test_exporter_needs_the_driver_and_a_free_port(built, exporter_root, tmp_path):
    bare = extract(built, tmp_path / "bare", "datacenter-gpu-manager-4-core", "datacenter-gpu-manager-exporter")
    result = subprocess.run([str(bare / "usr/bin/dcgm-exporter")], env=env_for(bare), capture_output=True, text=True,
                            timeout=30)  # fmt: skip
    assert result.returncode == 1 and "Cannot init NVML library; err: ERROR_LIBRARY_NOT_FOUND" in result.stderr
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run([str(exporter_root / "usr/bin/dcgm-exporter"), "-a", f"{LOOPBACK}:{port}"],
                                env=env_for(exporter_root), capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 1
    assert f'error="listen tcp {LOOPBACK}:{port}: bind: address already in use"' in result.stderr


def test_exporter_with_a_remote_host_engine(exporter_root, tmp_path):
    exporter = str(exporter_root / "usr/bin/dcgm-exporter")
    engine_port = free_port()
    refused = subprocess.run([exporter, "-r", f"localhost:{engine_port}", "-a", f"{LOOPBACK}:{free_port()}"],
                             env=env_for(exporter_root), capture_output=True, text=True, timeout=30)  # fmt: skip
    assert refused.returncode == 1
    assert 'msg="error connecting to nv-hostengine: Host engine connection invalid/disconnected"' in refused.stderr
    engine = Daemon([str(exporter_root / "usr/bin/nv-hostengine"), "-n", "-p", str(engine_port)],
                    env_for(exporter_root), tmp_path / "engine.log")  # fmt: skip
    daemon = None
    try:
        deadline = time.monotonic() + 10
        while "Started host engine" not in engine.output():
            assert time.monotonic() < deadline, engine.output()
            time.sleep(0.05)
        daemon, port = start_exporter(exporter_root, tmp_path, "-r", f"localhost:{engine_port}")
        _text, families = scrape(port)
        assert {lab["Hostname"] for _n, lab, _v in families["DCGM_FI_DEV_GPU_TEMP"]["samples"]} == {"localhost"}
        engine.stop()
        # The host engine went away: the collector exits, as dcgm-exporter does on DCGM_ST_CONNECTION_NOT_VALID.
        with pytest.raises(OSError):
            get(port, "/metrics")
        assert daemon.proc.wait(10) == 1
        assert 'msg="Could not retrieve metrics: Host engine connection invalid/disconnected"' in daemon.output()
    finally:
        engine.stop()
        if daemon is not None:
            daemon.stop()


# ------------------------------------------------------------------------------------------------ grafana


def python_has_yaml() -> bool:
    return subprocess.run(["/usr/bin/python3", "-I", "-c", "import yaml"], capture_output=True).returncode == 0


needs_yaml = pytest.mark.skipif(
    not os.path.exists("/usr/bin/python3") or not python_has_yaml(),
    reason="the grafana stand-in needs python3-yaml for /usr/bin/python3 (apt-get install python3-yaml)",
)


def test_grafana_package_layout(built):
    path = built[f"grafana_{standin.GRAFANA_VERSION}_amd64.deb"]
    contents = subprocess.run(["dpkg-deb", "--contents", str(path)], capture_output=True, text=True, check=True)
    names = {line.split()[-1] for line in contents.stdout.splitlines()}
    for item in ("./usr/share/grafana/bin/grafana", "./usr/share/grafana/bin/grafana-server", "./usr/sbin/grafana",
                 "./usr/sbin/grafana-server", "./usr/sbin/grafana-cli", "./usr/share/grafana/conf/defaults.ini",
                 "./usr/share/grafana/conf/sample.ini", "./usr/share/grafana/conf/provisioning/dashboards/sample.yaml",
                 "./etc/default/grafana-server", "./usr/lib/systemd/system/grafana-server.service"):  # fmt: skip
        assert item in names, item
    unit = (standin.SOURCES / "grafana/grafana-server.service").read_text()
    for line in ("EnvironmentFile=/etc/default/grafana-server", "User=grafana", "Group=grafana",
                 "WorkingDirectory=/usr/share/grafana", "RuntimeDirectory=grafana",
                 "ExecStart=/usr/share/grafana/bin/grafana server"):  # fmt: skip
        assert f"\n{line}" in unit, line
    defaults = dict(
        line.split("=", 1)
        for line in (standin.SOURCES / "grafana/grafana-server.default").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert defaults["CONF_FILE"] == "/etc/grafana/grafana.ini"
    assert defaults["PROVISIONING_CFG_DIR"] == "/etc/grafana/provisioning"
    assert defaults["PID_FILE_DIR"] == "/var/run/grafana"


GOOD = {
    "uid": "pd-overview",
    "title": "PD overview",
    "tags": ["pdfleet"],
    "panels": [{"type": "timeseries", "datasource": {"type": "prometheus", "uid": "prometheus"},
                "targets": [{"expr": "sum(rate(sglang:num_requests_total[1m]))", "refId": "A"}]}],
}  # fmt: skip
ORPHAN = {"uid": "orphan", "title": "Orphan", "panels": [{"datasource": {"type": "prometheus", "uid": "nope"}}]}


def grafana_tree(built, root: Path, port: int, datasources: str | None = None) -> Path:
    extract(built, root, "grafana")
    (root / "etc/grafana").mkdir(parents=True, exist_ok=True)
    (root / "etc/grafana/grafana.ini").write_text(
        f"[server]\nhttp_addr = {LOOPBACK}\nhttp_port = {port}\n\n[security]\n;admin_user = admin\n"
        "admin_password = s3cret\n"
    )
    provisioning = root / "etc/grafana/provisioning"
    (provisioning / "datasources").mkdir(parents=True, exist_ok=True)
    (provisioning / "dashboards").mkdir(parents=True, exist_ok=True)
    (provisioning / "datasources/prometheus.yaml").write_text(datasources or (
        "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n    uid: prometheus\n"
        "    access: proxy\n    url: http://127.0.0.1:9090\n    isDefault: true\n"
    ))  # fmt: skip
    (provisioning / "dashboards/pdfleet.yaml").write_text(
        "apiVersion: 1\nproviders:\n  - name: pdfleet\n    folder: PD\n    type: file\n    updateIntervalSeconds: 1\n"
        "    options:\n      path: /var/lib/grafana/dashboards/pdfleet\n"
    )
    boards = root / "var/lib/grafana/dashboards/pdfleet"
    (boards / ".hidden").mkdir(parents=True, exist_ok=True)
    (boards / "overview.json").write_text(json.dumps(GOOD))
    (boards / "orphan.json").write_text(json.dumps(ORPHAN))
    (boards / "broken.json").write_text('{"uid": "broken", "title": "Broken",')
    (boards / "untitled.json").write_text(json.dumps({"uid": "untitled"}))
    (boards / ".hidden/skipped.json").write_text(json.dumps({"uid": "hidden", "title": "Hidden"}))
    return root


def grafana_argv(root: Path) -> list[str]:
    """The deb's unit's ExecStart with /etc/default/grafana-server's values."""
    return [str(root / "usr/share/grafana/bin/grafana"), "server", "--config=/etc/grafana/grafana.ini",
            "--pidfile=/var/run/grafana/grafana-server.pid", "--packaging=deb",
            "cfg:default.paths.logs=/var/log/grafana", "cfg:default.paths.data=/var/lib/grafana",
            "cfg:default.paths.plugins=/var/lib/grafana/plugins",
            "cfg:default.paths.provisioning=/etc/grafana/provisioning"]  # fmt: skip


@needs_yaml
def test_grafana_provisions_and_serves(built, tmp_path):
    port = free_port()
    root = grafana_tree(built, tmp_path / "root", port)
    daemon = Daemon(grafana_argv(root), env_for(root), tmp_path / "grafana.log")
    admin = ("admin", "s3cret")
    try:
        daemon.wait_http(port, "/api/health")
        status, body = get(port, "/api/health")
        assert status == 200 and json.loads(body) == {"commit": json.loads(body)["commit"], "database": "ok",
                                                      "version": "12.3.0"}  # fmt: skip
        assert get(port, "/api/search")[0] == 401
        assert get(port, "/api/search", ("admin", "wrong"))[0] == 401
        status, body = get(port, "/api/search", admin)
        hits = json.loads(body)
        assert [(h["type"], h["title"]) for h in hits] == [("dash-folder", "PD"), ("dash-db", "Orphan"),
                                                           ("dash-db", "PD overview")]  # fmt: skip
        overview = next(h for h in hits if h["uid"] == "pd-overview")
        assert overview["url"] == "/d/pd-overview/pd-overview" and overview["folderTitle"] == "PD"
        assert overview["tags"] == ["pdfleet"]
        status, body = get(port, "/api/dashboards/uid/pd-overview", admin)
        dashboard = json.loads(body)
        assert status == 200 and dashboard["dashboard"]["title"] == "PD overview"
        assert dashboard["dashboard"]["panels"] == GOOD["panels"]
        assert dashboard["meta"]["provisioned"] is True and dashboard["meta"]["folderTitle"] == "PD"
        assert dashboard["meta"]["provisionedExternalId"] == "overview.json"
        for missing in ("broken", "untitled", "hidden"):
            assert get(port, f"/api/dashboards/uid/{missing}", admin)[0] == 404, missing
        status, body = get(port, "/api/datasources", admin)
        [source] = json.loads(body)
        assert (source["name"], source["uid"], source["type"], source["url"], source["isDefault"]) == (
            "Prometheus", "prometheus", "prometheus", "http://127.0.0.1:9090", True)  # fmt: skip
        assert json.loads(get(port, "/api/datasources/uid/prometheus", admin)[1])["name"] == "Prometheus"
        # A dashboard added while it runs is read at the provider's next update interval.
        (root / "var/lib/grafana/dashboards/pdfleet/late.json").write_text(json.dumps({"uid": "late", "title": "Late"}))
        deadline = time.monotonic() + 10
        while get(port, "/api/dashboards/uid/late", admin)[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert (root / "var/run/grafana/grafana-server.pid").read_text() == str(daemon.proc.pid)
    finally:
        assert daemon.stop() == 0
    log = daemon.output()
    assert 'msg="failed to load dashboard from " file=/var/lib/grafana/dashboards/pdfleet/broken.json' in log
    assert 'msg="failed to save dashboard" file=/var/lib/grafana/dashboards/pdfleet/untitled.json' in log
    assert "pdfleet sandbox stand-in: the dashboard names a data source that is not provisioned" in log
    assert "datasource=nope" in log
    assert f'msg="HTTP Server Listen" address={LOOPBACK}:{port}' in log
    assert "broken.json" in (root / "var/log/grafana/grafana.log").read_text()


@needs_yaml
def test_grafana_anonymous_viewers_and_the_environment(built, tmp_path):
    port = free_port()
    root = grafana_tree(built, tmp_path / "root", free_port())  # the environment overrides grafana.ini's port
    env = env_for(root, GF_SERVER_HTTP_PORT=str(port), GF_AUTH_ANONYMOUS_ENABLED="true")
    daemon = Daemon(grafana_argv(root), env, tmp_path / "grafana.log")
    try:
        daemon.wait_http(port, "/api/health")
        assert get(port, "/api/search")[0] == 200
        assert get(port, "/api/dashboards/uid/pd-overview")[0] == 200
        assert get(port, "/api/datasources")[0] == 403  # a Viewer may not list data sources
    finally:
        assert daemon.stop() == 0


@needs_yaml
@pytest.mark.parametrize(
    ("datasources", "message"),
    [
        ("apiVersion: 1\ndatasources:\n  - name: [unclosed\n", "Datasource provisioning error"),
        (
            "apiVersion: 1\ndatasources:\n  - name: A\n    isDefault: true\n  - name: B\n    isDefault: true\n",
            "Only one datasource per organization can be marked as default",
        ),
    ],
)
def test_grafana_stops_on_a_broken_data_source_file(built, tmp_path, datasources, message):
    root = grafana_tree(built, tmp_path / "root", free_port(), datasources=datasources)
    result = subprocess.run(grafana_argv(root), env=env_for(root), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert message in result.stderr


def test_grafana_entry_points(built, tmp_path):
    root = extract(built, tmp_path / "root", "grafana")

    def run(program, *args):
        return subprocess.run([str(root / program.lstrip("/")), *args], env=env_for(root), capture_output=True,
                              text=True, timeout=30)  # fmt: skip

    assert run("/usr/sbin/grafana", "--version").stdout == "grafana version 12.3.0\n"
    server = run("/usr/sbin/grafana-server", "-v")
    assert server.stdout.startswith("Version 12.3.0 ") and "'grafana-server' program is deprecated" in server.stderr
    assert run("/usr/share/grafana/bin/grafana", "cli", "plugins", "ls").returncode == 1
