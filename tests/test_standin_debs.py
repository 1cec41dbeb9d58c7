"""The sandbox's stand-in vendor packages (pdfleet.sandbox.debs).

Built once per module into a temporary directory; every tool runs from a `dpkg-deb -x` tree with
PDFLEET_STANDIN_ROOT pointing at it, so nothing here touches this machine's /usr, /etc, /run, apt or dpkg state.
What is checked: reproducible builds; the real package names, versions and exact dependency pins; tools printing
the captured outputs byte for byte (and the second driver set its own version); the daemons behaving towards
systemd as the real ones (fork + pid file, notify, sockets); the docker pull/run/ps/stop round trip; the units
passing `systemd-analyze verify`; an apt repository of the .debs resolving the pinned driver set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from pdfleet.sandbox import debs as standin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from systemd_verify import verify_units  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "h200-8gpu-node"
DRIVER, NEXT_DRIVER = standin.DRIVER_VERSIONS
UBUNTU = f"{DRIVER}-0ubuntu1"
DIGEST = "sha256:" + hashlib.sha256(b"pdfleet test image").hexdigest()
IMAGE = f"lmsysorg/sglang@{DIGEST}"

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (package dpkg)")


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("debs")
    started = time.monotonic()
    paths = standin.build_standin_debs(out, FIXTURES)
    assert time.monotonic() - started < 20
    return {path.name: path for path in paths}


def deb(built: dict[str, Path], name: str, version: str | None = None) -> Path:
    for package in standin.STANDIN_PACKAGES:
        if package.name == name and (version is None or package.version == version):
            return built[package.filename]
    raise KeyError(f"{name} {version}")


def extract(built: dict[str, Path], root: Path, *packages: str | tuple[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for item in packages:
        name, version = item if isinstance(item, tuple) else (item, None)
        subprocess.run(["dpkg-deb", "-x", str(deb(built, name, version)), str(root)], check=True)
    return root


def run(root: Path, program: str, *args: str, env: dict | None = None, timeout: float = 30, **kwargs):
    """Run an installed stand-in tool of the tree under root (bytes out)."""
    environment = {"PATH": os.environ["PATH"], "PDFLEET_STANDIN_ROOT": str(root), "LC_ALL": "C.UTF-8"}
    environment.update(env or {})
    kwargs.setdefault("capture_output", True)
    return subprocess.run([str(root / program.lstrip("/")), *args], env=environment, timeout=timeout, **kwargs)


def start_daemon(root: Path, program: str, *args: str) -> tuple[int, bytes, bytes]:
    """Run a forking daemon's start command; its output goes to files (the daemon keeps them open, as it keeps
    the journal under systemd), read back once the starter has exited."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        result = run(root, program, *args, stdout=out, stderr=err, capture_output=False)
        time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        return result.returncode, out.read(), err.read()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def field(path: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "--field", str(path), name], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def short_root():
    """A root short enough for unix socket paths (108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="pdsb", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gone(pid: int) -> bool:
    """Exited (a daemon's zombie waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def kill_pidfile(path: Path) -> None:
    pid = int(path.read_text())
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if gone(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def daemons():
    """Pid files of daemons a test starts: whatever still runs at the end is killed."""
    pidfiles: list[Path] = []
    yield pidfiles
    for pidfile in pidfiles:
        if pidfile.exists():
            pid = int(pidfile.read_text())
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------------ packages

REAL_NAMES = {
    "nvidia-driver-580-server-open", "nvidia-utils-580-server", "nvidia-compute-utils-580-server",
    "nvidia-kernel-common-580-server", "libnvidia-compute-580-server", "nvidia-fabricmanager-580",
    "libnvidia-nscq-580", "datacenter-gpu-manager-4-core", "datacenter-gpu-manager-4-cuda13",
    "datacenter-gpu-manager-exporter", "grafana",
    "libnvidia-container1", "libnvidia-container-tools", "nvidia-container-toolkit-base", "nvidia-container-toolkit",
    "containerd.io", "docker-ce-cli", "docker-ce", "libgdrapi", "gdrcopy-tests", "gdrdrv-dkms", "gdrcopy",
    "ibverbs-utils", "infiniband-diags", "mlnx-tools", "mlnx-ofed-kernel-utils", "doca-ofed",
}  # fmt: skip


def test_builds_every_package_reproducibly(built, tmp_path):
    assert {p.name for p in standin.STANDIN_PACKAGES} == REAL_NAMES
    assert len(built) == len(standin.STANDIN_PACKAGES) == 34
    again = standin.build_standin_debs(tmp_path, FIXTURES)
    for path in again:
        assert path.read_bytes() == built[path.name].read_bytes(), f"{path.name} differs between two builds"


@pytest.mark.parametrize("package", standin.STANDIN_PACKAGES, ids=lambda p: f"{p.name}={p.version}")
def test_control_fields(built, package):
    path = built[package.filename]
    assert field(path, "Package") == package.name
    assert field(path, "Version") == package.version
    assert field(path, "Architecture") == "amd64"
    assert field(path, "Description").startswith("pdfleet sandbox stand-in: ")
    contents = subprocess.run(["dpkg-deb", "--contents", str(path)], capture_output=True, text=True, check=True)
    lines = contents.stdout.splitlines()
    assert all(" root/root " in line and " 2025-01-01 00:00 " in line for line in lines)
    assert any(line.endswith(f"./usr/share/doc/{package.name}/README.pdfleet-standin") for line in lines)
    for item in package.files:
        entry = next(line for line in lines if line.endswith(" ." + item.path))
        if item.path.startswith(("/usr/bin/", "/usr/sbin/")):
            assert entry.startswith("-rwxr-xr-x"), entry


@pytest.mark.parametrize("driver", standin.DRIVER_VERSIONS)
def test_driver_set_pins_its_own_version(built, driver):
    ubuntu = f"{driver}-0ubuntu1"
    meta = deb(built, "nvidia-driver-580-server-open", ubuntu)
    assert field(meta, "Depends") == (
        f"nvidia-utils-580-server (= {ubuntu}), nvidia-compute-utils-580-server (= {ubuntu}), "
        f"nvidia-kernel-common-580-server (= {ubuntu}), libnvidia-compute-580-server (= {ubuntu})"
    )
    fabricmanager = deb(built, "nvidia-fabricmanager-580", f"{driver}-1")
    assert f"nvidia-kernel-common-580-server (= {ubuntu})" in field(fabricmanager, "Depends").split(", ")
    assert field(deb(built, "libnvidia-nscq-580", f"{driver}-1"), "Version") == f"{driver}-1"
    for name in ("nvidia-utils-580-server", "nvidia-compute-utils-580-server", "nvidia-kernel-common-580-server"):
        assert field(deb(built, name, ubuntu), "Version") == ubuntu


def test_other_versions_and_pins(built):
    assert (
        field(deb(built, "datacenter-gpu-manager-4-cuda13"), "Depends") == "datacenter-gpu-manager-4-core (= 1:4.4.1-1)"
    )
    assert field(deb(built, "docker-ce"), "Version") == "5:28.5.1-1~debian.12~bookworm"
    assert "containerd.io (>= 1.7.28)" in field(deb(built, "docker-ce"), "Depends")
    assert field(deb(built, "containerd.io"), "Version") == "1.7.28-1~debian.12~bookworm"
    assert field(deb(built, "nvidia-container-toolkit"), "Depends").startswith(
        "nvidia-container-toolkit-base (= 1.18.0-1)"
    )
    assert field(deb(built, "gdrcopy"), "Depends") == (
        "gdrdrv-dkms (= 2.5.1-1), libgdrapi (= 2.5.1-1), gdrcopy-tests (= 2.5.1-1)"
    )
    assert field(deb(built, "doca-ofed"), "Version") == "3.1.0-091000-25.07-debian12"
    assert deb(built, "docker-ce").name == "docker-ce_28.5.1-1~debian.12~bookworm_amd64.deb"  # no epoch in file names


# ------------------------------------------------------------------------------------------------ nvidia-smi

CAPTURES = {
    "-q -x": "nvidia-smi-q.xml",
    "-q": "nvidia-smi-q.txt",
    "topo -m": "nvidia-smi-topo-m.txt",
    "topo -p2p n": "nvidia-smi-topo-p2p-n.txt",
    "nvlink -s": "nvidia-smi-nvlink-s.txt",
    f"--query-gpu={standin.QUERY_GPU_FIELDS} --format=csv,noheader,nounits": "nvidia-smi-query-gpu.csv",
}


@pytest.fixture(scope="module")
def smi_root(built, tmp_path_factory) -> Path:
    return extract(built, tmp_path_factory.mktemp("smi"), ("nvidia-utils-580-server", UBUNTU))


@pytest.mark.parametrize("command", CAPTURES)
def test_nvidia_smi_prints_the_captures(smi_root, command):
    result = run(smi_root, "/usr/bin/nvidia-smi", *command.split())
    assert result.returncode == 0, result.stderr
    assert result.stdout == fixture(CAPTURES[command])


def test_nvidia_smi_list_and_default_table(smi_root):
    listed = run(smi_root, "/usr/bin/nvidia-smi", "-L")
    table = run(smi_root, "/usr/bin/nvidia-smi")
    assert listed.stdout + b"\n" + table.stdout == fixture("nvidia-smi-L-and-default.txt")
    assert listed.stdout.count(b"\n") == 8 and table.stdout.startswith(b"Sun Nov 22 10:36:14 2026")


def test_nvidia_smi_query_gpu_from_the_xml(smi_root):
    csv = fixture("nvidia-smi-query-gpu.csv").decode().splitlines()
    columns = standin.QUERY_GPU_FIELDS.split(",")
    fields = ["index", "uuid", "pci.bus_id", "memory.total", "power.limit", "persistence_mode"]
    result = run(smi_root, "/usr/bin/nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits")
    expected = [", ".join(row.split(", ")[columns.index(f)] for f in fields) for row in csv]
    assert result.stdout.decode().splitlines() == expected
    with_units = run(smi_root, "/usr/bin/nvidia-smi", "--query-gpu=name,memory.total,fan.speed", "--format=csv")
    assert with_units.stdout.decode().splitlines()[:2] == [
        "name, memory.total [MiB], fan.speed [%]",
        "NVIDIA H200, 143771 MiB, [N/A]",
    ]


def test_nvidia_smi_errors_like_the_real_one(smi_root):
    unknown = run(smi_root, "/usr/bin/nvidia-smi", "--bogus")
    assert unknown.returncode == 2
    assert unknown.stdout == b"Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n"
    bad_field = run(smi_root, "/usr/bin/nvidia-smi", "--query-gpu=index,bogus", "--format=csv")
    assert (bad_field.returncode, bad_field.stdout) == (2, b'Field "bogus" is not a valid field to query.\n\n')
    not_simulated = run(smi_root, "/usr/bin/nvidia-smi", "-q", "-d", "PERFORMANCE")
    assert not_simulated.returncode == 2 and b"stand-in does not answer" in not_simulated.stderr
    assert run(smi_root, "/usr/bin/nvidia-smi", "-x").returncode == 2
    missing_gpu = run(smi_root, "/usr/bin/nvidia-smi", "-i", "8", "-L")
    assert (missing_gpu.returncode, missing_gpu.stdout) == (6, b"No devices were found\n")


def test_nvidia_smi_gpu_selection_and_persistence_mode(built, tmp_path):
    root = extract(built, tmp_path, ("nvidia-utils-580-server", UBUNTU))
    lines = fixture("nvidia-smi-L-and-default.txt").splitlines(keepends=True)
    assert run(root, "/usr/bin/nvidia-smi", "-L", "-i", "3").stdout == lines[3]
    uuid = lines[5].split(b"UUID: ")[1].rstrip(b")\n").decode()
    assert run(root, "/usr/bin/nvidia-smi", "-L", "--id=" + uuid).stdout == lines[5]
    enable = run(root, "/usr/bin/nvidia-smi", "-pm", "1")
    assert enable.stdout.decode().splitlines()[0] == "Persistence mode is already Enabled for GPU 00000000:00:06.0."
    assert enable.stdout.decode().splitlines()[-1] == "All done."
    disable = run(root, "/usr/bin/nvidia-smi", "-i", "1", "-pm", "0")
    assert disable.stdout == b"Disabled persistence mode for GPU 00000000:00:07.0.\nAll done.\n"
    query = run(root, "/usr/bin/nvidia-smi", "--query-gpu=index,persistence_mode", "--format=csv,noheader")
    assert query.stdout.decode().splitlines()[:3] == ["0, Enabled", "1, Disabled", "2, Enabled"]
    xml = run(root, "/usr/bin/nvidia-smi", "-q", "-x", "-i", "1").stdout.decode()
    assert xml.count("<gpu id=") == 1 and "<persistence_mode>Disabled</persistence_mode>" in xml
    (root / "run").joinpath("pdfleet-standin/nvidia-persistence-disabled").unlink()  # a reboot forgets -pm
    assert run(root, "/usr/bin/nvidia-smi", "-q", "-x").stdout == fixture("nvidia-smi-q.xml")


def test_second_driver_set_reports_its_own_version(built, tmp_path):
    root = extract(built, tmp_path, ("nvidia-utils-580-server", f"{NEXT_DRIVER}-0ubuntu1"))
    xml = run(root, "/usr/bin/nvidia-smi", "-q", "-x").stdout
    assert xml == fixture("nvidia-smi-q.xml").replace(DRIVER.encode(), NEXT_DRIVER.encode())
    assert DRIVER.encode() not in xml
    table = run(root, "/usr/bin/nvidia-smi").stdout.decode()
    assert f"NVIDIA-SMI {NEXT_DRIVER}             Driver Version: {NEXT_DRIVER}     CUDA Version: 13.0" in table
    version = run(root, "/usr/bin/nvidia-smi", "--version").stdout.decode()
    assert version.splitlines()[0] == f"NVIDIA-SMI version  : {NEXT_DRIVER}"


def test_driver_upgrade_without_reboot_is_a_version_mismatch(built, tmp_path):
    root = extract(
        built, tmp_path, ("nvidia-utils-580-server", UBUNTU), ("nvidia-fabricmanager-580", f"{NEXT_DRIVER}-1")
    )
    assert run(root, "/usr/bin/nvidia-smi", "-L").returncode == 0  # loads the 580.159.04 module
    extract(  # upgrade, no reboot
        built,
        root,
        ("nvidia-utils-580-server", f"{NEXT_DRIVER}-0ubuntu1"),
        ("nvidia-compute-utils-580-server", f"{NEXT_DRIVER}-0ubuntu1"),
    )
    persistenced = run(root, "/usr/bin/nvidia-persistenced")
    assert persistenced.returncode == 1 and b"NVRM: API mismatch" in persistenced.stderr
    mismatch = run(root, "/usr/bin/nvidia-smi", "-L")
    assert mismatch.returncode == 18
    assert (
        mismatch.stdout
        == b"Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.165\n"
    )
    (root / "run/pdfleet-standin/nvidia-kmod-version").unlink()  # reboot: /run is empty again
    assert run(root, "/usr/bin/nvidia-smi", "-L").returncode == 0
    assert (root / "run/pdfleet-standin/nvidia-kmod-version").read_text() == NEXT_DRIVER + "\n"


# ------------------------------------------------------------------------------------------------ daemons


def test_fabric_manager(built, tmp_path, daemons):
    root = extract(built, tmp_path, ("nvidia-utils-580-server", UBUNTU), ("nvidia-fabricmanager-580", f"{DRIVER}-1"))
    pidfile = root / "run/nvidia-fabricmanager/nv-fabricmanager.pid"
    daemons.append(pidfile)
    assert (
        run(root, "/usr/bin/nv-fabricmanager", "--version").stdout == f"Fabric Manager version is : {DRIVER}\n".encode()
    )
    assert run(root, "/usr/bin/nvidia-fabricmanager-start.sh", "--mode", "precheck").returncode == 0
    status, out, err = start_daemon(root, "/usr/bin/nvidia-fabricmanager-start.sh", "--mode", "start")  # forks
    assert status == 0, err
    assert out.startswith(b"Detected Pre-NVL5 system\nConnected to 1 node.\n")
    pid = int(pidfile.read_text())
    os.kill(pid, 0)
    assert "Successfully configured all the available NVSwitches" in (root / "var/log/fabricmanager.log").read_text()
    assert run(root, "/usr/bin/nvidia-fabricmanager-start.sh", "--mode", "stop").returncode == 0
    assert gone(pid)


def test_fabric_manager_refuses_a_driver_of_another_version(built, tmp_path):
    root = extract(
        built, tmp_path, ("nvidia-utils-580-server", UBUNTU), ("nvidia-fabricmanager-580", f"{NEXT_DRIVER}-1")
    )
    result = run(root, "/usr/bin/nvidia-fabricmanager-start.sh", "--mode", "start")
    assert result.returncode == 1
    assert (
        f"fabric manager NVIDIA GPU driver interface version {NEXT_DRIVER} don't match with driver version {DRIVER}. "
        "Please update with matching NVIDIA driver package."
    ).encode() in result.stderr


def test_persistence_daemon(built, tmp_path, daemons):
    root = extract(built, tmp_path, ("nvidia-utils-580-server", UBUNTU), ("nvidia-compute-utils-580-server", UBUNTU))
    pidfile = root / "var/run/nvidia-persistenced/nvidia-persistenced.pid"
    daemons.append(pidfile)
    missing_user = run(root, "/usr/bin/nvidia-persistenced", "--user", "no-such-user-pdfleet")
    assert missing_user.returncode == 1 and b"Failed to find user 'no-such-user-pdfleet'" in missing_user.stderr
    status, _out, err = start_daemon(root, "/usr/bin/nvidia-persistenced", "--verbose")
    assert status == 0, err
    assert (root / "var/run/nvidia-persistenced/socket").is_socket()
    assert b"device 0000:00:06.0 - registered" in err
    kill_pidfile(pidfile)
    assert b"version " + DRIVER.encode() in run(root, "/usr/bin/nvidia-persistenced", "--version").stdout


# What a service manager sees when a Type=forking starter exits (a subreaper, as systemd is for its services):
# the processes left as its children. Prints them and the pid file's content as JSON, then ends the daemon.
_SUBREAPER_PROBE = r"""
import ctypes, json, os, signal, subprocess, sys
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
status = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
left = []
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            left.append(int(entry))
daemon = int(open(sys.argv[1]).read())
print(json.dumps({"status": status, "left": sorted(left), "daemon": daemon}))
os.kill(daemon, signal.SIGKILL)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def test_a_forking_daemon_is_the_only_process_left_when_its_starter_exits(built, tmp_path, daemons):
    """systemd guesses a Type=forking service's main PID from what is left when the starter exits (Ubuntu's
    nvidia-persistenced.service has no PIDFile=): an intermediate child still running then is taken for the
    daemon, and its exit stops the service. The stand-in reaps it first; here it takes its time exiting."""
    root = extract(built, tmp_path, ("nvidia-utils-580-server", UBUNTU), ("nvidia-compute-utils-580-server", UBUNTU))
    pidfile = root / "var/run/nvidia-persistenced/nvidia-persistenced.pid"
    daemons.append(pidfile)
    env = {"PATH": os.environ["PATH"], "PDFLEET_STANDIN_ROOT": str(root), "LC_ALL": "C.UTF-8",
           "PDFLEET_STANDIN_INTERMEDIATE_EXIT_DELAY": "0.5"}  # fmt: skip
    probe = subprocess.run(
        [sys.executable, "-c", _SUBREAPER_PROBE, str(pidfile), str(root / "usr/bin/nvidia-persistenced")],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    seen = json.loads(probe.stdout)
    assert seen["status"] == 0
    assert seen["left"] == [seen["daemon"]], f"left behind by the starter: {seen}"


def expected_discovery() -> str:
    root = ET.fromstring(fixture("nvidia-smi-q.xml").decode().split("\n", 2)[2])
    rule = "+--------+" + "-" * 70 + "+\n"
    text = "8 GPUs found.\n" + rule + f"| GPU ID | {'Device Information':<68} |\n" + rule
    for i, gpu in enumerate(root.findall("gpu")):
        if i:
            text += rule
        text += f"| {i:<6} | {'Name: ' + gpu.findtext('product_name'):<68} |\n"
        text += f"| {'':<6} | {'PCI Bus ID: ' + gpu.findtext('pci/pci_bus_id'):<68} |\n"
        text += f"| {'':<6} | {'Device UUID: ' + gpu.findtext('uuid'):<68} |\n"
    text += rule
    text += "4 NvSwitches found.\n+-----------+\n| Switch ID |\n+-----------+\n"
    text += "".join(f"| {i:<9} |\n" for i in range(4)) + "+-----------+\n"
    text += "0 ConnectX found.\n+----------+\n| ConnectX |\n+----------+\n+----------+\n"
    text += "0 CPUs found.\n" + rule + f"| CPU ID | {'Device Information':<68} |\n" + rule + rule
    return text


EXPECTED_DIAG = (
    f"""Successfully ran diagnostic for group.
+---------------------------+------------------------------------------------+
| Diagnostic                | Result                                         |
+===========================+================================================+
|-----  Metadata  ----------+------------------------------------------------|
| DCGM Version              | 4.4.1                                          |
| Driver Version Detected   | {DRIVER}                                     |
| GPU Device IDs Detected   | 2335, 2335, 2335, 2335, 2335, 2335, 2335, 2335 |
|-----  Deployment  --------+------------------------------------------------|
| software                  | Pass                                           |
"""
    + "".join(f"|                           | GPU{i}: Pass                                     |\n" for i in range(8))
    + ("+---------------------------+------------------------------------------------+\n")
)


def test_dcgm_host_engine_and_dcgmi(built, tmp_path):
    root = extract(built, tmp_path, ("nvidia-utils-580-server", UBUNTU), "datacenter-gpu-manager-4-core")
    port = free_port()
    host = f"127.0.0.1:{port}"
    engine = subprocess.Popen(
        [str(root / "usr/bin/nv-hostengine"), "-n", "-p", str(port)],
        stdout=subprocess.PIPE,
        env={"PATH": os.environ["PATH"], "PDFLEET_STANDIN_ROOT": str(root)},
    )
    try:
        assert engine.stdout.readline() == f"Started host engine version 4.4.1 using port number: {port} \n".encode()
        discovery = run(root, "/usr/bin/dcgmi", "discovery", "-l", "--host", host)
        assert discovery.returncode == 0, discovery.stderr
        assert discovery.stdout.decode() == expected_discovery()
        diag = run(root, "/usr/bin/dcgmi", "diag", "-r", "1", "--host", host)
        assert diag.stdout.decode() == EXPECTED_DIAG
        assert b"Hostengine build info:" in run(root, "/usr/bin/dcgmi", "-v", "--host", host).stdout
    finally:
        stop(engine)
    refused = run(root, "/usr/bin/dcgmi", "discovery", "-l", "--host", host)
    assert refused.returncode == 235
    assert refused.stdout.decode() == (
        f"Error: unable to establish a connection to the specified host: {host}\n"
        "Error: Unable to connect to host engine. Host engine connection invalid/disconnected.\n"
    )


# ------------------------------------------------------------------------------------------------ toolkit


def test_nvidia_ctk(built, tmp_path):
    root = extract(built, tmp_path, ("nvidia-utils-580-server", UBUNTU), "nvidia-container-toolkit-base")
    version = run(root, "/usr/bin/nvidia-ctk", "--version")
    assert version.stdout == (
        b"NVIDIA Container Toolkit CLI version 1.18.0\ncommit: f8daa5e26de9fd7eb79259040b6dd5a52060048c\n"
    )
    expected = '{\n    "runtimes": {\n        "nvidia": {\n            "args": [],\n            "path": "nvidia-container-runtime"\n        }\n    }\n}'  # noqa: E501
    daemon_json = root / "etc/docker/daemon.json"
    first = run(root, "/usr/bin/nvidia-ctk", "runtime", "configure", "--runtime=docker")
    assert first.returncode == 0, first.stderr
    assert daemon_json.read_text() == expected
    assert b"Config file does not exist; using empty config" in first.stderr
    assert b"Wrote updated config to /etc/docker/daemon.json" in first.stderr
    second = run(root, "/usr/bin/nvidia-ctk", "runtime", "configure", "--runtime", "docker")
    assert daemon_json.read_text() == expected and b"Loading config from /etc/docker/daemon.json" in second.stderr
    daemon_json.write_text('{"log-driver": "journald", "data-root": "/data/docker"}')
    run(root, "/usr/bin/nvidia-ctk", "runtime", "configure", "--runtime=docker", "--set-as-default")
    assert json.loads(daemon_json.read_text()) == {
        "data-root": "/data/docker",
        "default-runtime": "nvidia",
        "log-driver": "journald",
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}},
    }
    assert daemon_json.read_text().startswith('{\n    "data-root": "/data/docker",\n    "default-runtime": "nvidia"')
    spec = run(root, "/usr/bin/nvidia-ctk", "cdi", "generate")
    assert spec.returncode == 0, spec.stderr
    loaded = yaml.safe_load(spec.stdout)
    uuids = [
        line.split(b"UUID: ")[1].rstrip(b")").decode()
        for line in fixture("nvidia-smi-L-and-default.txt").splitlines()[:8]
    ]
    assert loaded["kind"] == "nvidia.com/gpu"
    assert [d["name"] for d in loaded["devices"]] == [x for i in range(8) for x in (str(i), uuids[i])] + ["all"]
    assert run(root, "/usr/bin/nvidia-ctk", "runtime", "configure", "--runtime=containerd").returncode == 1


# ------------------------------------------------------------------------------------------------ docker


@pytest.fixture
def engine(built, short_root):
    """containerd + dockerd stand-ins serving under a temporary root; yields a function running the docker CLI."""
    root = extract(built, short_root, "containerd.io", "docker-ce", "docker-ce-cli")
    env = {"PATH": os.environ["PATH"], "PDFLEET_STANDIN_ROOT": str(root)}
    containerd = subprocess.Popen([str(root / "usr/bin/containerd")], env=env, stderr=subprocess.DEVNULL)
    dockerd = subprocess.Popen(
        [
            str(root / "usr/bin/dockerd"),
            "-H",
            "unix:///run/docker.sock",
            "--containerd=/run/containerd/containerd.sock",
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    wait_for(root / "run/docker.sock")

    def docker(*args, **kwargs):
        return run(root, "/usr/bin/docker", *args, env={"DOCKER_HOST": "unix:///run/docker.sock"}, **kwargs)

    docker.root, docker.dockerd = root, dockerd
    yield docker
    for name in docker("ps", "-q").stdout.split():
        docker("rm", "-f", name.decode())
    stop(dockerd)
    stop(containerd)


def test_docker_pull_run_ps_stop(engine):
    docker = engine
    version = docker("version", "--format", "{{.Client.Version}} {{.Server.Version}} {{.Server.APIVersion}}")
    assert version.stdout == b"28.5.1 28.5.1 1.51\n"
    not_pulled = docker("run", "--rm", IMAGE, "true")
    assert not_pulled.returncode == 125 and f"Unable to find image '{IMAGE}' locally".encode() in not_pulled.stderr
    pulled = docker("pull", IMAGE)
    assert pulled.returncode == 0, pulled.stderr
    lines = pulled.stdout.decode().splitlines()
    assert lines[0] == f"docker.io/{IMAGE}: Pulling from lmsysorg/sglang"
    assert lines[-3:] == [f"Digest: {DIGEST}", f"Status: Downloaded newer image for {IMAGE}", f"docker.io/{IMAGE}"]
    again = docker("pull", IMAGE).stdout.decode().splitlines()
    assert again[-2] == f"Status: Image is up to date for {IMAGE}"
    images = docker("images", "--digests").stdout.decode().splitlines()
    assert images[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
    assert images[1].split()[:3] == ["lmsysorg/sglang", "<none>", DIGEST]
    inspected = json.loads(docker("image", "inspect", IMAGE).stdout)
    assert inspected[0]["RepoDigests"] == [IMAGE]
    assert docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", IMAGE).stdout == f"{IMAGE}\n".encode()

    env_file = docker.root / "serve.env"
    env_file.write_text("# secrets\nHF_TOKEN=hf_x y\nMC_GID_INDEX=3\n")
    echoed = docker(
        "run", "--rm", "--name", "probe", "--network=host", "--ipc=host", "--privileged", "--shm-size=32g",
        "--ulimit=memlock=-1", f"--env-file={env_file}", "-e", "EXTRA=1", IMAGE,
        "sh", "-c", 'echo "$HF_TOKEN|$MC_GID_INDEX|$EXTRA|$PATH|$HOME"',
    )  # fmt: skip
    assert echoed.returncode == 0, echoed.stderr
    venv = f"{docker.root}/opt/sglang-standin-image/venv/bin"
    assert (
        echoed.stdout.decode()
        == f"hf_x y|3|1|{venv}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root\n"
    )
    assert docker("ps", "-a", "-q").stdout == b""  # --rm

    foreground = subprocess.Popen(
        [str(docker.root / "usr/bin/docker"), "run", "--name", "engine", IMAGE, "sleep", "60"],
        env={
            "PATH": os.environ["PATH"],
            "PDFLEET_STANDIN_ROOT": str(docker.root),
            "DOCKER_HOST": "unix:///run/docker.sock",
        },
    )
    try:
        deadline = time.monotonic() + 10
        while b"engine" not in docker("ps", "--format", "{{.Names}}").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pid = docker("inspect", "--format", "{{.State.Pid}}", "engine").stdout.strip()
        assert int(pid) == foreground.pid  # exec'd: the unit running `docker run` supervises the command itself
        ps = docker("ps").stdout.decode().splitlines()
        assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        assert '"sleep 60"' in ps[1] and " Up " in ps[1] and ps[1].endswith("engine")
        clash = docker("run", "--name", "engine", IMAGE, "true")
        assert clash.returncode == 125 and b'The container name "/engine" is already in use' in clash.stderr
        stopped = docker("stop", "--time=2", "engine")
        assert stopped.stdout == b"engine\n"
        assert foreground.wait(timeout=5) == -signal.SIGTERM
    finally:
        stop(foreground)
    assert "Exited" in docker("ps", "-a", "--format", "{{.Status}}").stdout.decode()
    assert docker("rm", "engine").stdout == b"engine\n"

    detached = docker("run", "-d", "--name", "bg", IMAGE, "sh", "-c", "echo ready; sleep 60")
    container_id = detached.stdout.decode().strip()
    assert len(container_id) == 64
    assert docker("ps", "--format", "{{.ID}} {{.Names}}").stdout == f"{container_id[:12]} bg\n".encode()
    busy = docker("rm", "bg")
    assert busy.returncode == 1 and b"container is running" in busy.stderr
    assert docker("stop", "-t", "1", "bg").returncode == 0
    deadline = time.monotonic() + 5
    while b"Exited (143)" not in docker("ps", "-a").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert docker("logs", "bg").stdout == b"ready\n"
    assert docker("rm", "-f", "bg").returncode == 0
    assert docker("inspect", "bg").returncode == 1
    assert docker("run", "--rm", IMAGE, "no-such-command").returncode == 127

    stop(docker.dockerd)
    down = docker("ps")
    assert down.returncode == 1
    assert (
        down.stderr
        == b"Cannot connect to the Docker daemon at unix:///run/docker.sock. Is the docker daemon running?\n"
    )


def test_docker_gpus_and_the_nvidia_runtime(built, engine):
    docker = engine
    docker("pull", IMAGE)
    no_hook = docker("run", "--rm", "--gpus=all", IMAGE, "true")
    assert no_hook.returncode == 125
    assert b'could not select device driver "" with capabilities: [[gpu]]' in no_hook.stderr
    extract(built, docker.root, "nvidia-container-toolkit", "nvidia-container-toolkit-base")
    assert docker("run", "--rm", "--gpus", "all", IMAGE, "true").returncode == 0
    unknown = docker("run", "--rm", "--runtime=nvidia", IMAGE, "true")
    assert b"unknown or invalid runtime name: nvidia" in unknown.stderr
    run(docker.root, "/usr/bin/nvidia-ctk", "runtime", "configure", "--runtime=docker")
    assert docker("run", "--rm", "--runtime=nvidia", IMAGE, "true").returncode == 125  # not reloaded yet
    docker.dockerd.send_signal(signal.SIGHUP)  # the unit's ExecReload
    deadline = time.monotonic() + 5
    while b"nvidia" not in docker("info", "--format", "{{json .Runtimes}}").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert docker("run", "--rm", "--runtime=nvidia", "--gpus=all", IMAGE, "true").returncode == 0
    assert " Runtimes: io.containerd.runc.v2 nvidia runc" in docker("info").stdout.decode()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="needs systemd-socket-activate")
def test_engine_speaks_systemds_protocols(built, short_root):
    """What docker.socket + docker.service (Type=notify, -H fd://) and containerd.service (Type=notify) rely on:
    readiness notification and a listening socket handed over by socket activation."""
    root = extract(built, short_root, "containerd.io", "docker-ce", "docker-ce-cli")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(root / "notify"))
    notify.settimeout(10)
    env = {"PATH": os.environ["PATH"], "PDFLEET_STANDIN_ROOT": str(root), "NOTIFY_SOCKET": str(root / "notify")}
    containerd = subprocess.Popen([str(root / "usr/bin/containerd")], env=env, stderr=subprocess.DEVNULL)
    (root / "run").mkdir(exist_ok=True)
    activator = subprocess.Popen(
        ["systemd-socket-activate", "-l", str(root / "run/docker.sock"), "-E", f"PDFLEET_STANDIN_ROOT={root}",
         "-E", f"NOTIFY_SOCKET={root / 'notify'}", str(root / "usr/bin/dockerd"), "-H", "fd://",
         "--containerd=/run/containerd/containerd.sock"],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert notify.recv(64) == b"READY=1"  # containerd
        wait_for(root / "run/docker.sock")
        info = run(
            root,
            "/usr/bin/docker",
            "info",
            "--format",
            "{{.ServerVersion}}",
            env={"DOCKER_HOST": "unix:///run/docker.sock"},
        )
        assert info.stdout == b"28.5.1\n", info.stderr  # the first connection started dockerd on the passed socket
        assert notify.recv(64) == b"READY=1"  # dockerd
    finally:
        stop(activator)
        stop(containerd)
        notify.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_docker_bind_mounts(engine):
    docker = engine
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("no mount namespaces here")
    docker("pull", IMAGE)
    source = docker.root / "models"
    source.mkdir()
    (source / "config.json").write_text("{}")
    target = docker.root / "in-container" / "models"
    result = docker(
        "run", "--rm", "-v", f"{source}:{target}:ro", IMAGE,
        "sh", "-c", f"cat {target}/config.json; touch {target}/x 2>/dev/null || echo read-only",
    )  # fmt: skip
    assert result.stdout == b"{}read-only\n", result.stderr
    assert not (source / "x").exists()


# ------------------------------------------------------------------------------------------------ RDMA, GDRCopy

CANNED = standin.SOURCES / "doca" / "canned"


@pytest.fixture(scope="module")
def rdma_root(built, tmp_path_factory):
    return extract(
        built,
        tmp_path_factory.mktemp("rdma"),
        "ibverbs-utils",
        "infiniband-diags",
        "mlnx-tools",
        "mlnx-ofed-kernel-utils",
    )


def test_canned_rdma_outputs_are_what_the_generator_writes(tmp_path):
    sys.path.insert(0, str(standin.SOURCES / "doca"))
    try:
        import generate_canned
    finally:
        sys.path.pop(0)
    generate_canned.main(tmp_path)
    for path in CANNED.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_rdma_tools(rdma_root):
    assert run(rdma_root, "/usr/bin/ibv_devinfo").stdout == (CANNED / "ibv_devinfo.txt").read_bytes()
    assert run(rdma_root, "/usr/bin/ibv_devinfo", "-l").stdout == (
        b"8 HCAs found:\n" + b"".join(b"\tmlx5_%d\n" % i for i in range(8)) + b"\n"
    )
    one = run(rdma_root, "/usr/bin/ibv_devinfo", "-d", "mlx5_3").stdout.decode()
    assert one.startswith("hca_id:\tmlx5_3\n") and one.count("hca_id:") == 1
    assert "\t\t\tstate:\t\t\tPORT_ACTIVE (4)\n" in one and "\t\t\tlink_layer:\t\tEthernet\n" in one
    verbose = run(rdma_root, "/usr/bin/ibv_devinfo", "-v").stdout.decode()
    gid3 = [line for line in verbose.splitlines() if "GID[  3]" in line]
    assert gid3 == [f"\t\t\tGID[  3]:\t\t::ffff:10.100.{i}.11, RoCE v2" for i in range(8)]
    missing = run(rdma_root, "/usr/bin/ibv_devinfo", "-d", "mlx5_9")
    assert (missing.returncode, missing.stderr) == (255, b"IB device 'mlx5_9' wasn't found\n")
    assert run(rdma_root, "/usr/sbin/ibstat").stdout == (CANNED / "ibstat.txt").read_bytes()
    assert run(rdma_root, "/usr/sbin/ibstat", "-l").stdout == b"".join(b"mlx5_%d\n" % i for i in range(8))
    port = run(rdma_root, "/usr/sbin/ibstat", "mlx5_2", "1").stdout.decode().splitlines()
    assert port[:4] == ["CA: 'mlx5_2'", "Port 1:", "State: Active", "Physical state: LinkUp"] and "Rate: 400" in port
    assert (
        run(rdma_root, "/usr/sbin/ibdev2netdev").stdout.decode().splitlines()[0] == "mlx5_0 port 1 ==> enp26s0np0 (Up)"
    )
    assert run(rdma_root, "/usr/sbin/ibdev2netdev", "-v").stdout == (CANNED / "ibdev2netdev-v.txt").read_bytes()
    gids = run(rdma_root, "/usr/sbin/show_gids", "mlx5_0").stdout.decode().splitlines()
    assert len(gids) == 7 and gids[-1] == "n_gids_found=4"
    assert gids[5].split("\t") == [
        "mlx5_0",
        "1",
        "3",
        "0000:0000:0000:0000:0000:ffff:0a64:000b",
        "10.100.0.11  ",
        "v2",
        "enp26s0np0",
    ]
    assert run(rdma_root, "/usr/sbin/show_gids").stdout == (CANNED / "show_gids.txt").read_bytes()
    assert run(rdma_root, "/usr/bin/ofed_info", "-s").stdout == b"OFED-internal-25.07-0.9.7:\n"


def test_gdrcopy_copybw(built, tmp_path):
    root = extract(built, tmp_path, ("nvidia-utils-580-server", UBUNTU), "gdrcopy-tests")
    lines = run(root, "/usr/bin/gdrcopy_copybw").stdout.decode().splitlines()
    assert lines[0] == "GPU id:0; name: NVIDIA H200; Bus id: 0000:00:06"
    assert lines[8:11] == ["selecting device 0", "testing size: 131072", "rounded size: 131072"]
    assert lines[-1] == "closing gdrdrv" and any(line.startswith("write BW: ") for line in lines)


# ------------------------------------------------------------------------------------------------ systemd, apt


def test_units_pass_systemd_analyze_verify(built, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze")
    trees = tmp_path / "trees"
    units = {}
    for package in standin.STANDIN_PACKAGES:
        if package.units:
            tree = extract(built, trees / package.filename, (package.name, package.version))
            for path in package.unit_paths:
                units[Path(path).name] = (tree / path.lstrip("/")).read_text()
    assert set(units) == {
        "nvidia-persistenced.service", "nvidia-fabricmanager.service", "nvidia-dcgm.service", "containerd.service",
        "docker.service", "docker.socket", "nvidia-dcgm-exporter.service", "grafana-server.service",
    }  # fmt: skip
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)  # ExecStopPost= commands, which the helper does not stub
    (root / "bin/rm").write_text("#!/bin/sh\n")
    (root / "bin/rm").chmod(0o755)
    status, output = verify_units(units, root)
    assert (status, output) == (0, "")


def test_maintainer_scripts(built, tmp_path):
    scripts = {}
    for package in standin.STANDIN_PACKAGES:
        for name, text in package.scripts:
            path = tmp_path / f"{package.name}.{name}"
            path.write_text(text)
            assert subprocess.run(["sh", "-n", str(path)], check=False).returncode == 0, path.name
            scripts[(package.name, name)] = text
    assert "deb-systemd-invoke $_dh_action docker.socket docker.service" in scripts[("docker-ce", "postinst")]
    assert "groupadd --system docker" in scripts[("docker-ce", "postinst")]
    assert "useradd --system" in scripts[("nvidia-compute-utils-580-server", "postinst")]
    assert "nvidia-dcgm" in scripts[("datacenter-gpu-manager-4-core", "postinst")]
    grafana = scripts[("grafana", "postinst")]
    assert 'addgroup --system --quiet "$GRAFANA_GROUP"' in grafana and '--ingroup "$GRAFANA_GROUP"' in grafana
    assert "systemctl enable" not in grafana.replace("sudo /bin/systemctl enable", "")  # not enabled on install
    assert not any(name == "datacenter-gpu-manager-exporter" for name, _ in scripts)  # not enabled either
    assert not any(name.startswith("nvidia-fabricmanager") for name, _ in scripts)  # enabling it is the deploy's job
    control = subprocess.run(
        ["dpkg-deb", "--ctrl-tarfile", str(deb(built, "docker-ce"))], capture_output=True, check=True
    )
    assert b"./postinst" in subprocess.run(["tar", "-t"], input=control.stdout, capture_output=True, check=True).stdout


def apt(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    options = [
        f"-oDir::Etc::sourcelist={tmp / 'sources.list'}",
        f"-oDir::Etc::sourceparts={tmp / 'sources.list.d'}",
        f"-oDir::Etc::preferences={tmp / 'preferences'}",
        f"-oDir::Etc::preferencesparts={tmp / 'preferences.d'}",
        f"-oDir::State={tmp / 'state'}",
        f"-oDir::State::Lists={tmp / 'state/lists'}",
        f"-oDir::State::status={tmp / 'status'}",
        f"-oDir::Cache={tmp / 'cache'}",
        f"-oDir::Log={tmp / 'log'}",
        "-oAPT::Sandbox::User=root",
        "-oDebug::NoLocking=true",
        "-oAPT::Architecture=amd64",
        "-oAPT::Architectures::=amd64",
    ]
    return subprocess.run(["apt-get", *options, *args], capture_output=True, text=True, check=False)


def test_apt_repository_resolves_the_pinned_sets(built, tmp_path):
    if shutil.which("apt-ftparchive") is None:
        pytest.skip("needs apt-ftparchive (apt-get install apt-utils)")
    repo = tmp_path / "repo"
    repo.mkdir()
    for path in built.values():
        shutil.copy(path, repo / path.name)
    packages = subprocess.run(["apt-ftparchive", "packages", "."], cwd=repo, capture_output=True, text=True, check=True)
    (repo / "Packages").write_text(packages.stdout)
    release = subprocess.run(["apt-ftparchive", "release", "."], cwd=repo, capture_output=True, text=True, check=True)
    (repo / "Release").write_text(release.stdout)
    apt_dir = tmp_path / "apt"
    for sub in ("sources.list.d", "preferences.d", "state/lists/partial", "cache/archives/partial", "log"):
        (apt_dir / sub).mkdir(parents=True)
    (apt_dir / "sources.list").write_text(f"deb [trusted=yes] file:{repo} ./\n")
    # What the sandbox image has installed already (the stand-ins need only python3 from it).
    (apt_dir / "status").write_text(
        "Package: python3\nStatus: install ok installed\nPriority: optional\nSection: python\n"
        "Maintainer: Matthias Klose <doko@debian.org>\nArchitecture: amd64\nVersion: 3.11.2-1+b1\n"
        "Description: interactive high-level object-oriented language (default version)\n\n"
        # grafana's other dependencies: adduser comes with openssh-server, python3-yaml from the offline repository.
        "Package: adduser\nStatus: install ok installed\nPriority: important\nSection: admin\n"
        "Maintainer: Debian Adduser Developers <adduser@packages.debian.org>\nArchitecture: all\nVersion: 3.134\n"
        "Description: add and remove users and groups\n\n"
        "Package: python3-yaml\nStatus: install ok installed\nPriority: optional\nSection: python\n"
        "Maintainer: Debian Python Team <team+python@tracker.debian.org>\nArchitecture: amd64\n"
        "Version: 6.0-3+b2\nDescription: YAML parser and emitter for Python3\n\n"
    )
    update = apt(apt_dir, "update")
    assert update.returncode == 0, update.stdout + update.stderr

    request = (
        "install",
        "--simulate",
        f"nvidia-driver-580-server-open={UBUNTU}",
        f"nvidia-fabricmanager-580={DRIVER}-1",
    )
    # As on a real host whose repository carries both driver sets: apt takes the newest candidate for the
    # dependencies of a pinned meta package and does not backtrack. Pinning only the top-level packages fails.
    bare = apt(apt_dir, *request)
    assert bare.returncode != 0
    assert f"Depends: nvidia-utils-580-server (= {UBUNTU}) but {NEXT_DRIVER}-0ubuntu1 is to be installed" in bare.stdout
    # The whole set pinned, as the deploy pins it (an apt preferences file; naming every package works too).
    (apt_dir / "preferences").write_text(
        "Package: nvidia-* libnvidia-compute-580-server libnvidia-nscq-580\n"
        f"Pin: version {DRIVER}-*\nPin-Priority: 1001\n"
    )
    driver = apt(apt_dir, *request)
    assert driver.returncode == 0, driver.stdout + driver.stderr
    installed = {
        line.split()[1]: line.split()[2].strip("()[]")
        for line in driver.stdout.splitlines()
        if line.startswith("Inst ")
    }
    assert installed == {
        "nvidia-driver-580-server-open": UBUNTU,
        "nvidia-utils-580-server": UBUNTU,
        "nvidia-compute-utils-580-server": UBUNTU,
        "nvidia-kernel-common-580-server": UBUNTU,
        "libnvidia-compute-580-server": UBUNTU,
        "nvidia-fabricmanager-580": f"{DRIVER}-1",
    }
    (apt_dir / "preferences").unlink()
    explicit = apt(
        apt_dir, *request, *(f"{name}={UBUNTU}" for name in (
            "nvidia-utils-580-server", "nvidia-compute-utils-580-server", "nvidia-kernel-common-580-server",
            "libnvidia-compute-580-server",
        ))
    )  # fmt: skip
    assert explicit.returncode == 0, explicit.stdout + explicit.stderr

    mixed = apt(
        apt_dir,
        "install",
        "--simulate",
        f"nvidia-driver-580-server-open={UBUNTU}",
        f"nvidia-fabricmanager-580={NEXT_DRIVER}-1",
    )
    assert mixed.returncode != 0 and "nvidia-kernel-common-580-server" in mixed.stdout

    rest = apt(
        apt_dir, "install", "--simulate", "doca-ofed", "docker-ce", "nvidia-container-toolkit",
        "datacenter-gpu-manager-4-cuda13", "gdrcopy", f"libnvidia-nscq-580={DRIVER}-1",
        "datacenter-gpu-manager-exporter", "grafana",
    )  # fmt: skip
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert "Inst ibverbs-utils (2507mlnx58-1.2507097" in rest.stdout
    assert "Inst docker-ce (5:28.5.1-1~debian.12~bookworm" in rest.stdout
    assert "Inst datacenter-gpu-manager-exporter (4.6.0-1" in rest.stdout
    assert "Inst grafana (12.3.0" in rest.stdout
