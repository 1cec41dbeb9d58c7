"""Stand-in .deb packages for the sandbox: the real names and versions of the vendor packages a GPU node needs (NVIDIA
driver set, fabric manager, NSCQ, DCGM and its Prometheus exporter, container toolkit, the Docker engine, GDRCopy,
DOCA-OFED's RDMA tools) and of Grafana (whose apt repository cannot be reached here), whose tools print outputs
captured on a real 8xH200 node and whose daemons run under systemd.

The deploy code installs them with apt exactly as it installs the real ones: same package names, versions shaped
like the real ones, the real dependency pins (the driver meta depends on its parts at exactly its own version, the
fabric manager on nvidia-kernel-common at exactly its version), the real unit files (changes noted in each unit),
and postinst scripts only where the real package's postinst does something a host can observe (system users and
groups it creates; the Docker units it enables and starts). Every package says "pdfleet sandbox stand-in: ..." in
its description and ships /usr/share/doc/<package>/README.pdfleet-standin.

Two driver sets exist, 580.159.04 (the captured one) and 580.165.02 (same content; its tools report 580.165.02),
so a deploy can be tested moving the whole set (driver, fabric manager, NSCQ) to a new version. The tools simulate
the loaded kernel module: after a driver upgrade without reboot, nvidia-smi fails with "Driver/library version
mismatch" and the fabric manager refuses to start, until the host reboots (a fresh /run).

`STANDIN_PACKAGES` lists the packages (data only); `build_standin_debs(out_dir, fixtures_dir)` builds them all,
byte for byte reproducibly (dpkg-deb --root-owner-group, xz, fixed mtimes, SOURCE_DATE_EPOCH, one xz thread). The
tools are Python 3 (the image has it) or POSIX sh; their sources are under standins/debs/ and are described in
standins/debs/README.md. Every tool reads and writes below $PDFLEET_STANDIN_ROOT (default /), so tests run them from
a `dpkg-deb -x` tree.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOURCES = Path(__file__).resolve().parent / "standins" / "debs"
LIB = SOURCES / "_lib" / "standin_lib.py"
SOURCE_DATE_EPOCH = 1735689600  # 2025-01-01 00:00:00 UTC: the mtime of every file in every package
MAINTAINER = "pdfleet sandbox <pdfleet-sandbox@localhost>"
STANDIN = "pdfleet sandbox stand-in: "
# A package that would ship a kernel module leaves a marker here; the sandbox's modprobe (standins/kernel) then
# simulates loading it. The content names the modules it depends on.
MODULE_MARKERS = "/usr/lib/pdfleet-standin/modules"
NVIDIA_DATA = "/usr/share/pdfleet-standin/nvidia"
RDMA_DATA = "/usr/share/pdfleet-standin/rdma"

CAPTURED_DRIVER = "580.159.04"  # the driver of the node the fixtures come from
DRIVER_VERSIONS = ("580.159.04", "580.165.02")
DCGM_VERSION = "4.4.1"
DCGM_EXPORTER_VERSION = "4.6.0"  # dcgm-exporter's release for DCGM 4.4.1 (its tag 4.4.1-4.6.0)
GRAFANA_VERSION = "12.3.0"
GRAFANA_HOME = "/usr/share/grafana"
TOOLKIT_VERSION = "1.18.0"
DOCKER_VERSION = "28.5.1"
CONTAINERD_VERSION = "1.7.28"
GDRCOPY_VERSION = "2.5.1"
OFED_VERSION = "25.07-0.9.7"
RDMA_CORE_VERSION = "2507mlnx58-1.2507097"
MLNX_TOOLS_VERSION = "25.07-0.2507097"
MLNX_OFED_KERNEL_VERSION = "25.07.OFED.25.07.0.9.7.1-1"
DOCA_OFED_VERSION = "3.1.0-091000-25.07-debian12"

# The field list of the captured nvidia-smi-query-gpu.csv (fixtures README).
QUERY_GPU_FIELDS = (
    "index,name,uuid,pci.bus_id,driver_version,vbios_version,memory.total,persistence_mode,compute_mode,"
    "clocks.max.sm,power.limit,ecc.mode.current,ecc.errors.uncorrected.volatile.total,mig.mode.current,"
    "temperature.gpu"
)


@dataclass(frozen=True)
class File:
    """One file of a package. Its content comes from exactly one of: `source` (a path under standins/debs/: for
    text, `@@KEY@@` is replaced from the package's substitutions and a `from standin_lib import ...` line by the
    helper library), `fixture` (a file of the fixtures directory; `part` "list"/"table" splits the -L + default
    capture), or `text`. Mode: 0755 for scripts (#!), else 0644, unless given."""

    path: str
    source: str | None = None
    fixture: str | None = None
    part: str | None = None
    text: str | None = None
    mode: int | None = None


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    summary: str  # after "pdfleet sandbox stand-in: "
    details: str = ""  # the long description: what the stand-in does and does not do
    depends: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    section: str = "misc"
    priority: str = "optional"
    architecture: str = "amd64"
    files: tuple[File, ...] = ()
    scripts: tuple[tuple[str, str], ...] = ()  # (postinst|prerm|postrm, text)
    substitutions: tuple[tuple[str, str], ...] = ()

    @property
    def filename(self) -> str:
        """Debian's file name: the version without its epoch."""
        return f"{self.name}_{self.version.split(':', 1)[-1]}_{self.architecture}.deb"

    @property
    def description(self) -> str:
        return STANDIN + self.summary

    @property
    def units(self) -> tuple[str, ...]:
        """The systemd unit files it ships (names)."""
        return tuple(Path(path).name for path in self.unit_paths)

    @property
    def unit_paths(self) -> tuple[str, ...]:
        """Where its unit files go (/lib/systemd/system or, as newer vendor packages do, /usr/lib/systemd/system)."""
        return tuple(
            f.path for f in self.files if f.path.startswith(("/lib/systemd/system/", "/usr/lib/systemd/system/"))
        )


# ------------------------------------------------------------------------------------------ maintainer scripts


def _systemd_scripts(units: tuple[str, ...], enable_and_start: bool, preamble: str = "") -> tuple[tuple[str, str], ...]:
    """What dh_installsystemd generates: enable (and start) the units on install, stop on remove, forget on purge."""
    names = " ".join(units)
    postinst = "#!/bin/sh\nset -e\n" + preamble
    if enable_and_start:
        postinst += f"""if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || \\
        [ "$1" = "abort-remove" ]; then
\tfor unit in {names}; do
\t\tdeb-systemd-helper unmask "$unit" >/dev/null || true
\t\tif deb-systemd-helper --quiet was-enabled "$unit"; then
\t\t\tdeb-systemd-helper enable "$unit" >/dev/null || true
\t\telse
\t\t\tdeb-systemd-helper update-state "$unit" >/dev/null || true
\t\tfi
\tdone
\tif [ -d /run/systemd/system ]; then
\t\tsystemctl --system daemon-reload >/dev/null || true
\t\tif [ -n "$2" ]; then _dh_action=restart; else _dh_action=start; fi
\t\tdeb-systemd-invoke $_dh_action {names} >/dev/null || true
\tfi
fi
"""
    prerm = f"""#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
\tdeb-systemd-invoke stop {names} >/dev/null || true
fi
"""
    postrm = f"""#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
\tsystemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = "purge" ] && [ -x /usr/bin/deb-systemd-helper ]; then
\tdeb-systemd-helper purge {names} >/dev/null || true
\tdeb-systemd-helper unmask {names} >/dev/null || true
fi
"""
    return (("postinst", postinst), ("prerm", prerm), ("postrm", postrm))


def _system_user(name: str, comment: str) -> str:
    return f"""if [ "$1" = "configure" ] && ! getent passwd {name} >/dev/null; then
\tuseradd --system --user-group --no-create-home --home-dir / --shell /usr/sbin/nologin --comment "{comment}" {name}
fi
"""


def _postinst(body: str) -> tuple[tuple[str, str], ...]:
    return (("postinst", "#!/bin/sh\nset -e\n" + body),)


# ------------------------------------------------------------------------------------------ the packages


def _driver_set(driver: str) -> list[Package]:
    ubuntu = f"{driver}-0ubuntu1"
    nvidia = f"{driver}-1"
    subs = (("DRIVER_VERSION", driver),)
    pin = f"(= {ubuntu})"
    data = [
        File(f"{NVIDIA_DATA}/nvidia-smi-q.xml", fixture="nvidia-smi-q.xml"),
        File(f"{NVIDIA_DATA}/nvidia-smi-q.txt", fixture="nvidia-smi-q.txt"),
        File(f"{NVIDIA_DATA}/nvidia-smi-L.txt", fixture="nvidia-smi-L-and-default.txt", part="list"),
        File(f"{NVIDIA_DATA}/nvidia-smi.txt", fixture="nvidia-smi-L-and-default.txt", part="table"),
        File(f"{NVIDIA_DATA}/nvidia-smi-query-gpu.csv", fixture="nvidia-smi-query-gpu.csv"),
        File(f"{NVIDIA_DATA}/nvidia-smi-query-gpu.fields", text=QUERY_GPU_FIELDS + "\n"),
        File(f"{NVIDIA_DATA}/nvidia-smi-topo-m.txt", fixture="nvidia-smi-topo-m.txt"),
        File(f"{NVIDIA_DATA}/nvidia-smi-topo-p2p-n.txt", fixture="nvidia-smi-topo-p2p-n.txt"),
        File(f"{NVIDIA_DATA}/nvidia-smi-nvlink-s.txt", fixture="nvidia-smi-nvlink-s.txt"),
        File(f"{NVIDIA_DATA}/captured-version", text=CAPTURED_DRIVER + "\n"),
        File(f"{NVIDIA_DATA}/driver-version", text=driver + "\n"),
        File(f"{NVIDIA_DATA}/README", source="nvidia/README.data"),
    ]
    return [
        Package(
            "nvidia-driver-580-server-open",
            ubuntu,
            f"NVIDIA driver metapackage (open kernel modules), {driver}",
            "Depends on its parts at exactly its own version, as Ubuntu's does; installs no kernel module.",
            depends=(
                f"nvidia-utils-580-server {pin}",
                f"nvidia-compute-utils-580-server {pin}",
                f"nvidia-kernel-common-580-server {pin}",
                f"libnvidia-compute-580-server {pin}",
            ),
            section="restricted/libs",
        ),
        Package(
            "nvidia-utils-580-server",
            ubuntu,
            f"NVIDIA driver support binaries (nvidia-smi), {driver}",
            "nvidia-smi answers from outputs captured on an 8xH200 node (under " + NVIDIA_DATA + "), reporting "
            "driver " + driver + "; -pm changes persistence mode until the next boot; after a driver upgrade "
            "without reboot it fails with 'Driver/library version mismatch', like the real one.",
            depends=(f"libnvidia-compute-580-server {pin}", "python3"),
            section="restricted/utils",
            files=(File("/usr/bin/nvidia-smi", source="nvidia/nvidia_smi.py"), *data),
            substitutions=subs,
        ),
        Package(
            "nvidia-compute-utils-580-server",
            ubuntu,
            f"NVIDIA compute utilities (nvidia-persistenced), {driver}",
            "nvidia-persistenced forks, writes its pid file and socket and drops to --user like the real daemon. "
            "nvidia-persistenced.service is Ubuntu's unit, unchanged (StopWhenUnneeded=true, no [Install]). "
            "postinst creates the nvidia-persistenced system user, as the real package does.",
            depends=(f"libnvidia-compute-580-server {pin}", "python3"),
            section="restricted/utils",
            files=(
                File("/usr/bin/nvidia-persistenced", source="nvidia/nvidia_persistenced.py"),
                File("/lib/systemd/system/nvidia-persistenced.service", source="nvidia/nvidia-persistenced.service"),
            ),
            scripts=_postinst(_system_user("nvidia-persistenced", "NVIDIA Persistence Daemon")),
            substitutions=subs,
        ),
        Package(
            "nvidia-kernel-common-580-server",
            ubuntu,
            f"shared files used with the NVIDIA kernel modules, {driver}",
            "No kernel modules, firmware or udev rules: markers for the sandbox's simulated modules (nvidia, "
            "loaded at boot as udev would, nvidia_uvm, nvidia_modeset, nvidia_peermem; see standins/kernel).",
            section="restricted/libs",
            files=(
                File(f"{MODULE_MARKERS}/nvidia", text=""),
                File(f"{MODULE_MARKERS}/nvidia.autoload", text=""),
                File(f"{MODULE_MARKERS}/nvidia_uvm", text="nvidia\n"),
                File(f"{MODULE_MARKERS}/nvidia_modeset", text="nvidia\n"),
                File(f"{MODULE_MARKERS}/nvidia_peermem", text="nvidia\n"),
            ),
        ),
        Package(
            "libnvidia-compute-580-server",
            ubuntu,
            f"NVIDIA libcompute package (CUDA driver, NVML), {driver}",
            "Documentation only: no libcuda / libnvidia-ml.",
            section="restricted/libs",
        ),
        Package(
            "nvidia-fabricmanager-580",
            nvidia,
            f"Fabric Manager for NVSwitch based systems, {driver}",
            "nv-fabricmanager prints 'Fabric Manager version is : " + driver + "', refuses to start when the "
            "loaded driver has another version (the real error text), daemonizes and logs like the real one. "
            "nvidia-fabricmanager.service is the real unit (PIDFile under /run, no LimitCORE); not enabled by "
            "the package.",
            depends=(f"nvidia-kernel-common-580-server {pin}", "python3"),
            section="multiverse/libs",
            files=(
                File("/usr/bin/nv-fabricmanager", source="nvidia/nv_fabricmanager.py"),
                File("/usr/bin/nvidia-fabricmanager-start.sh", source="nvidia/nvidia-fabricmanager-start.sh"),
                File("/usr/share/nvidia/nvswitch/fabricmanager.cfg", source="nvidia/fabricmanager.cfg"),
                File("/lib/systemd/system/nvidia-fabricmanager.service", source="nvidia/nvidia-fabricmanager.service"),
            ),
            substitutions=subs,
        ),
        Package(
            "libnvidia-nscq-580",
            nvidia,
            f"NVSwitch Configuration and Query library, {driver}",
            "Documentation only: no libnvidia-nscq.",
            section="multiverse/libs",
        ),
    ]


def _dcgm() -> list[Package]:
    version = f"1:{DCGM_VERSION}-1"
    subs = (("DCGM_VERSION", DCGM_VERSION),)
    return [
        Package(
            "datacenter-gpu-manager-4-core",
            version,
            f"NVIDIA Data Center GPU Manager {DCGM_VERSION} (nv-hostengine, dcgmi)",
            "nv-hostengine listens where the real one does (127.0.0.1:5555); dcgmi answers 'discovery -l' with the "
            "GPUs of the installed driver and 'diag -r 1..4' with every test passing, in DCGM's own table "
            "layout, and fails like the real one without a host engine. nvidia-dcgm.service is the real unit; "
            "not enabled by the package. postinst creates the nvidia-dcgm service account.",
            depends=("python3",),
            section="utils",
            files=(
                File("/usr/bin/nv-hostengine", source="dcgm/nv_hostengine.py"),
                File("/usr/bin/dcgmi", source="dcgm/dcgmi.py"),
                File("/lib/systemd/system/nvidia-dcgm.service", source="dcgm/nvidia-dcgm.service"),
            ),
            scripts=_postinst(_system_user("nvidia-dcgm", "NVIDIA DCGM service account")),
            substitutions=subs,
        ),
        Package(
            "datacenter-gpu-manager-4-cuda13",
            version,
            f"NVIDIA Data Center GPU Manager {DCGM_VERSION}, CUDA 13 diagnostics",
            "Documentation only; pulls in datacenter-gpu-manager-4-core at exactly its version.",
            depends=(f"datacenter-gpu-manager-4-core (= {version})",),
            section="utils",
        ),
        Package(
            "datacenter-gpu-manager-exporter",
            f"{DCGM_EXPORTER_VERSION}-1",
            f"NVIDIA DCGM exporter {DCGM_EXPORTER_VERSION} for Prometheus (dcgm-exporter), for DCGM {DCGM_VERSION}",
            "dcgm-exporter serves GET /metrics on :9400 in dcgm-exporter's own format: the fields of its counters "
            "file, one sample per GPU of the installed driver's captured nvidia-smi XML, with the real labels; "
            "flags -f/-a/-c/-r/-n as the real one; embedded DCGM (needs the driver) unless -r names a host engine. "
            "Faults for tests: /run/pdfleet-standin/dcgm-faults.json. nvidia-dcgm-exporter.service and "
            "default-counters.csv are those of dcgm-exporter 4.4.1-4.6.0; the unit is not enabled by the package.",
            depends=(f"datacenter-gpu-manager-4-core (= {version})", "python3"),
            section="utils",
            files=(
                File("/usr/bin/dcgm-exporter", source="dcgm/dcgm_exporter.py"),
                File("/etc/dcgm-exporter/default-counters.csv", source="dcgm/default-counters.csv"),
                File(
                    "/usr/lib/systemd/system/nvidia-dcgm-exporter.service", source="dcgm/nvidia-dcgm-exporter.service"
                ),
            ),
            substitutions=(*subs, ("EXPORTER_VERSION", DCGM_EXPORTER_VERSION)),
        ),
    ]


def _grafana() -> list[Package]:
    conf = sorted(p.relative_to(SOURCES / "grafana") for p in (SOURCES / "grafana" / "conf").rglob("*") if p.is_file())
    postinst = f"""#!/bin/sh
set -e
# What Grafana's postinst does (packaging/deb/control/postinst): the grafana system user and group, its data and
# log directories, /etc/grafana/grafana.ini and the provisioning directories from the samples when they are
# missing, /etc/grafana readable by the group only; a fresh install is not started, an upgrade restarts it.
[ -f /etc/default/grafana-server ] && . /etc/default/grafana-server
if [ "$1" = configure ]; then
\tGRAFANA_USER=${{GRAFANA_USER:-grafana}}
\tGRAFANA_GROUP=${{GRAFANA_GROUP:-grafana}}
\tGRAFANA_HOME=${{GRAFANA_HOME:-{GRAFANA_HOME}}}
\tDATA_DIR=${{DATA_DIR:-/var/lib/grafana}}
\tCONF_FILE=${{CONF_FILE:-/etc/grafana/grafana.ini}}
\tPROVISIONING_CFG_DIR=${{PROVISIONING_CFG_DIR:-/etc/grafana/provisioning}}
\tgetent group "$GRAFANA_GROUP" >/dev/null 2>&1 || addgroup --system --quiet "$GRAFANA_GROUP"
\tif ! id "$GRAFANA_USER" >/dev/null 2>&1; then
\t\tadduser --system --home "$GRAFANA_HOME" --no-create-home --ingroup "$GRAFANA_GROUP" --disabled-password \\
\t\t\t--shell /bin/false "$GRAFANA_USER"
\tfi
\tmkdir -p /var/log/grafana "$DATA_DIR"
\tchown -R "$GRAFANA_USER:$GRAFANA_GROUP" /var/log/grafana "$DATA_DIR"
\tchmod 755 /var/log/grafana "$DATA_DIR"
\tmkdir -p "$(dirname "$CONF_FILE")"
\tif [ ! -f "$CONF_FILE" ]; then
\t\tcp "$GRAFANA_HOME/conf/sample.ini" "$CONF_FILE"
\t\tcp "$GRAFANA_HOME/conf/ldap.toml" /etc/grafana/ldap.toml
\tfi
\tif [ ! -d "$PROVISIONING_CFG_DIR" ]; then
\t\tfor kind in dashboards datasources; do
\t\t\tmkdir -p "$PROVISIONING_CFG_DIR/$kind"
\t\t\tcp "$GRAFANA_HOME/conf/provisioning/$kind/sample.yaml" "$PROVISIONING_CFG_DIR/$kind/sample.yaml"
\t\tdone
\tfi
\tfor kind in plugins access-control alerting; do
\t\tif [ ! -d "$PROVISIONING_CFG_DIR/$kind" ]; then
\t\t\tmkdir -p "$PROVISIONING_CFG_DIR/$kind"
\t\t\tcp "$GRAFANA_HOME/conf/provisioning/$kind/sample.yaml" "$PROVISIONING_CFG_DIR/$kind/sample.yaml"
\t\tfi
\tdone
\tchown -Rh "root:$GRAFANA_GROUP" /etc/grafana/*
\tchmod 755 /etc/grafana
\tfind /etc/grafana -type f -exec chmod 640 {{}} +
\tfind /etc/grafana -type d -exec chmod 755 {{}} +
\tif [ -z "$2" ]; then
\t\techo "### NOT starting on installation, please execute the following statements to configure grafana to" \\
\t\t\t"start automatically using systemd"
\t\techo " sudo /bin/systemctl daemon-reload"
\t\techo " sudo /bin/systemctl enable grafana-server"
\t\techo "### You can start grafana-server by executing"
\t\techo " sudo /bin/systemctl start grafana-server"
\telif [ "$RESTART_ON_UPGRADE" = "true" ] && [ -d /run/systemd/system ]; then
\t\tsystemctl daemon-reload
\t\tsystemctl restart grafana-server || true
\tfi
fi
"""
    prerm = """#!/bin/sh
set -e
if [ "$1" = remove ]; then
\techo "Stopping and disabling grafana-server service..."
\tif [ -d /run/systemd/system ]; then
\t\tsystemctl stop grafana-server || true
\t\tsystemctl disable grafana-server || true
\tfi
fi
"""
    wrapper = "grafana/grafana-wrapper.sh"
    return [
        Package(
            "grafana",
            GRAFANA_VERSION,
            f"Grafana {GRAFANA_VERSION} (grafana server: provisioned data sources and dashboards, HTTP API)",
            "grafana server reads Grafana's settings (defaults.ini, --config, GF_* variables, cfg: arguments), "
            "provisions data sources and file-provider dashboards from /etc/grafana/provisioning as Grafana does "
            "(a broken dashboard file is logged and left out; a broken provisioning file stops the server) and "
            "answers /api/health, /api/search, /api/folders, /api/dashboards/uid/UID and /api/datasources on "
            "[server] http_port (3000), with basic auth for the admin user or anonymous access. No web UI. "
            "grafana-server.service is Grafana's unit; postinst creates the grafana user and group and "
            "/etc/grafana/grafana.ini as Grafana's does and does not start or enable it.",
            depends=("adduser", "python3", "python3-yaml"),
            section="default",
            files=(
                File(f"{GRAFANA_HOME}/bin/grafana", source="grafana/grafana.py"),
                File(f"{GRAFANA_HOME}/bin/grafana-server", source=wrapper),
                File(f"{GRAFANA_HOME}/bin/grafana-cli", source=wrapper),
                File("/usr/sbin/grafana", source=wrapper),
                File("/usr/sbin/grafana-server", source=wrapper),
                File("/usr/sbin/grafana-cli", source=wrapper),
                *(File(f"{GRAFANA_HOME}/{path.as_posix()}", source=f"grafana/{path.as_posix()}") for path in conf),
                File("/etc/default/grafana-server", source="grafana/grafana-server.default"),
                File("/usr/lib/systemd/system/grafana-server.service", source="grafana/grafana-server.service"),
            ),
            scripts=(("postinst", postinst), ("prerm", prerm)),
            substitutions=(("GRAFANA_VERSION", GRAFANA_VERSION),),
        )
    ]


def _container_toolkit() -> list[Package]:
    version = f"{TOOLKIT_VERSION}-1"
    subs = (("TOOLKIT_VERSION", TOOLKIT_VERSION),)
    tool = "container-toolkit/nvidia_container_toolkit.py"
    return [
        Package(
            "libnvidia-container1",
            version,
            f"NVIDIA container runtime library {TOOLKIT_VERSION}",
            "Documentation only.",
            section="libs",
        ),
        Package(
            "libnvidia-container-tools",
            version,
            f"NVIDIA container runtime library, command-line tools {TOOLKIT_VERSION} (nvidia-container-cli)",
            "nvidia-container-cli answers --version and info (GPUs of the installed driver).",
            depends=(f"libnvidia-container1 (>= {version})", "python3"),
            section="utils",
            files=(File("/usr/bin/nvidia-container-cli", source="container-toolkit/nvidia_container_cli.py"),),
            substitutions=subs,
        ),
        Package(
            "nvidia-container-toolkit-base",
            version,
            f"NVIDIA Container Toolkit base {TOOLKIT_VERSION} (nvidia-ctk, nvidia-container-runtime)",
            "nvidia-ctk: --version, 'runtime configure --runtime=docker' (edits /etc/docker/daemon.json exactly "
            "as the real one) and 'cdi generate'. nvidia-container-runtime and nvidia-cdi-hook answer --version.",
            depends=("python3",),
            section="utils",
            files=(
                File("/usr/bin/nvidia-ctk", source=tool),
                File("/usr/bin/nvidia-container-runtime", source=tool),
                File("/usr/bin/nvidia-cdi-hook", source=tool),
            ),
            substitutions=subs,
        ),
        Package(
            "nvidia-container-toolkit",
            version,
            f"NVIDIA Container Toolkit {TOOLKIT_VERSION} (nvidia-container-runtime-hook)",
            "The hook the stand-in docker requires for --gpus, as the real engine does.",
            depends=(
                f"nvidia-container-toolkit-base (= {version})",
                f"libnvidia-container-tools (>= {version})",
                "libnvidia-container-tools (<< 2.0.0)",
            ),
            section="utils",
            files=(File("/usr/bin/nvidia-container-runtime-hook", source=tool),),
            substitutions=subs,
        ),
    ]


def _docker() -> list[Package]:
    docker = f"5:{DOCKER_VERSION}-1~debian.12~bookworm"
    containerd = f"{CONTAINERD_VERSION}-1~debian.12~bookworm"
    docker_group = """if [ "$1" = "configure" ] && ! getent group docker >/dev/null; then
\tgroupadd --system docker
fi
"""
    return [
        Package(
            "containerd.io",
            containerd,
            f"An open and reliable container runtime, {CONTAINERD_VERSION}",
            "containerd serves its socket and tells systemd it is ready; it runs no containers. containerd.service "
            "is the real unit (without modprobe and resource directives); enabled and started on install, as the "
            "real package does.",
            depends=("python3",),
            conflicts=("containerd", "runc"),
            replaces=("containerd", "runc"),
            section="devel",
            files=(
                File("/usr/bin/containerd", source="docker/containerd.py"),
                File("/lib/systemd/system/containerd.service", source="docker/containerd.service"),
            ),
            scripts=_systemd_scripts(("containerd.service",), enable_and_start=True),
            substitutions=(("CONTAINERD_VERSION", CONTAINERD_VERSION),),
        ),
        Package(
            "docker-ce-cli",
            docker,
            f"Docker CLI {DOCKER_VERSION}: version, info, pull, images, inspect, run, ps, stop, kill, rm, rmi, logs",
            "docker run runs the command on the host with the stand-in sglang image's venv first on PATH and the "
            "container's environment (image Env, --env-file, -e), exec'ing so that a systemd unit supervises it; "
            "images must have been pulled (pulling records them); state in /var/lib/docker-standin.",
            depends=("python3",),
            conflicts=("docker", "docker-engine", "docker.io"),
            section="admin",
            files=(File("/usr/bin/docker", source="docker/docker.py"),),
            substitutions=(("DOCKER_VERSION", DOCKER_VERSION),),
        ),
        Package(
            "docker-ce",
            docker,
            f"Docker: the open-source application container engine, {DOCKER_VERSION} (dockerd)",
            "dockerd loads /etc/docker/daemon.json (runtimes, default-runtime) at start and on reload, serves the "
            "API socket (socket activation or -H) and tells systemd it is ready. docker.service and docker.socket "
            "are the real units (without resource directives); postinst creates the docker group and enables and "
            "starts them, as the real package does.",
            depends=(f"containerd.io (>= {CONTAINERD_VERSION})", "docker-ce-cli", "python3"),
            conflicts=("docker", "docker-engine", "docker.io"),
            section="admin",
            files=(
                File("/usr/bin/dockerd", source="docker/dockerd.py"),
                File("/lib/systemd/system/docker.service", source="docker/docker.service"),
                File("/lib/systemd/system/docker.socket", source="docker/docker.socket"),
            ),
            scripts=_systemd_scripts(("docker.socket", "docker.service"), enable_and_start=True, preamble=docker_group),
            substitutions=(("DOCKER_VERSION", DOCKER_VERSION),),
        ),
    ]


def _gdrcopy() -> list[Package]:
    version = f"{GDRCOPY_VERSION}-1"
    return [
        Package(
            "libgdrapi",
            version,
            f"A low-latency GPU memory copy library, {GDRCOPY_VERSION}",
            "Documentation only: no libgdrapi.",
            section="libs",
        ),
        Package(
            "gdrcopy-tests",
            version,
            f"Test utilities for GDRCopy {GDRCOPY_VERSION} (gdrcopy_copybw)",
            "gdrcopy_copybw prints GDRCopy 2.5.1's output for an H200 (synthesised bandwidths); it does not check "
            "for the gdrdrv module, which cannot be loaded in the sandbox.",
            depends=(f"libgdrapi (>= {version})", "python3"),
            section="utils",
            files=(File("/usr/bin/gdrcopy_copybw", source="gdrcopy/gdrcopy_copybw.py"),),
        ),
        Package(
            "gdrdrv-dkms",
            version,
            f"gdrdrv driver in DKMS format, {GDRCOPY_VERSION}",
            "Ships nothing a kernel could load and does not depend on dkms: kernel modules cannot be built or "
            "loaded in the sandbox. Its marker lets the sandbox's modprobe simulate loading gdrdrv.",
            section="kernel",
            files=(
                File(
                    f"/usr/src/gdrdrv-{GDRCOPY_VERSION}/README.pdfleet-standin",
                    text="pdfleet sandbox stand-in: no gdrdrv source; modules cannot be loaded in the sandbox.\n",
                ),
                File(f"{MODULE_MARKERS}/gdrdrv", text="nvidia\n"),
            ),
        ),
        Package(
            "gdrcopy",
            version,
            f"GDRCopy meta-package, {GDRCOPY_VERSION}",
            "Depends on its parts at exactly its own version, as the real one does.",
            depends=(f"gdrdrv-dkms (= {version})", f"libgdrapi (= {version})", f"gdrcopy-tests (= {version})"),
        ),
    ]


def _doca() -> list[Package]:
    ofed_packages = ";".join(
        (
            f"ibverbs-utils {RDMA_CORE_VERSION}",
            f"infiniband-diags {RDMA_CORE_VERSION}",
            f"mlnx-tools {MLNX_TOOLS_VERSION}",
            f"mlnx-ofed-kernel-utils {MLNX_OFED_KERNEL_VERSION}",
        )
    )
    same_name = (
        "DOCA-OFED ships this package under Debian's own name with a higher version, so apt installs it over "
        "Debian's (44.0); it does the same here. The outputs are synthesised (see the pdfleet source)."
    )
    return [
        Package(
            "ibverbs-utils",
            RDMA_CORE_VERSION,
            "examples for the libibverbs library (ibv_devinfo), DOCA-OFED 3.1",
            "ibv_devinfo [-l] [-v] [-d mlx5_N] prints eight active ConnectX-7 HCAs mlx5_0..mlx5_7, RoCE (Ethernet "
            "link layer) at 400 Gb/s, RoCE v2 IPv4 GID at index 3. " + same_name,
            depends=("python3",),
            section="net",
            files=(
                File("/usr/bin/ibv_devinfo", source="doca/ibv_devinfo.py"),
                File(f"{RDMA_DATA}/ibv_devinfo.txt", source="doca/canned/ibv_devinfo.txt"),
                File(f"{RDMA_DATA}/ibv_devinfo-v.txt", source="doca/canned/ibv_devinfo-v.txt"),
            ),
        ),
        Package(
            "infiniband-diags",
            RDMA_CORE_VERSION,
            "InfiniBand diagnostic programs (ibstat), DOCA-OFED 3.1",
            "ibstat [-l|-s|-p] [CA [PORT]] prints the same eight HCAs. " + same_name,
            depends=("python3",),
            section="net",
            files=(
                File("/usr/sbin/ibstat", source="doca/ibstat.py"),
                File(f"{RDMA_DATA}/ibstat.txt", source="doca/canned/ibstat.txt"),
            ),
        ),
        Package(
            "mlnx-tools",
            MLNX_TOOLS_VERSION,
            "Mellanox userland tools and scripts (ibdev2netdev, show_gids), DOCA-OFED 3.1",
            "ibdev2netdev [-v] and show_gids [DEV] print the same eight HCAs and their RoCE netdevs "
            "(synthesised; " + RDMA_DATA + "/netdevs.txt lists the netdevs, MACs and addresses they assume).",
            depends=("python3",),
            section="net",
            files=(
                File("/usr/sbin/ibdev2netdev", source="doca/ibdev2netdev.py"),
                File("/usr/sbin/show_gids", source="doca/show_gids.py"),
                File(f"{RDMA_DATA}/ibdev2netdev.txt", source="doca/canned/ibdev2netdev.txt"),
                File(f"{RDMA_DATA}/ibdev2netdev-v.txt", source="doca/canned/ibdev2netdev-v.txt"),
                File(f"{RDMA_DATA}/show_gids.txt", source="doca/canned/show_gids.txt"),
                File(f"{RDMA_DATA}/netdevs.txt", source="doca/canned/netdevs.txt"),
            ),
        ),
        Package(
            "mlnx-ofed-kernel-utils",
            MLNX_OFED_KERNEL_VERSION,
            "Userspace tools of the DOCA-OFED kernel drivers (ofed_info), DOCA-OFED 3.1",
            f"ofed_info -s prints OFED-internal-{OFED_VERSION}: as DOCA-OFED 3.1.0 does. No kernel modules.",
            depends=("python3",),
            section="kernel",
            files=(File("/usr/bin/ofed_info", source="doca/ofed_info.py"),),
            substitutions=(("OFED_VERSION", OFED_VERSION), ("OFED_PACKAGES", ofed_packages)),
        ),
        Package(
            "doca-ofed",
            DOCA_OFED_VERSION,
            "DOCA-OFED 3.1.0 metapackage (RDMA userspace tools)",
            "Pulls in the stand-ins of the DOCA-OFED userspace tools.",
            depends=(
                f"ibverbs-utils (>= {RDMA_CORE_VERSION})",
                f"infiniband-diags (>= {RDMA_CORE_VERSION})",
                f"mlnx-tools (>= {MLNX_TOOLS_VERSION})",
                f"mlnx-ofed-kernel-utils (>= {MLNX_OFED_KERNEL_VERSION})",
            ),
            section="net",
        ),
    ]


STANDIN_PACKAGES: tuple[Package, ...] = tuple(
    [pkg for driver in DRIVER_VERSIONS for pkg in _driver_set(driver)]
    + _dcgm()
    + _grafana()
    + _container_toolkit()
    + _docker()
    + _gdrcopy()
    + _doca()
)


# ------------------------------------------------------------------------------------------ building


class DebBuildError(RuntimeError):
    pass


def _inline_lib(text: str) -> str:
    """Replace the `from standin_lib import ...` line of a tool by the helper library itself."""
    pattern = re.compile(r"^from standin_lib import (\([^)]*\)|[^\n]*)\n", re.MULTILINE)
    if not pattern.search(text):
        return text
    lib = LIB.read_text()
    body = lib.split('"""', 2)[2].lstrip("\n")  # drop the library's docstring
    marker = "# --- inlined from pdfleet/sandbox/standins/debs/_lib/standin_lib.py by pdfleet.sandbox.debs ---\n"
    return pattern.sub(lambda _m: marker + body + "# --- end of standin_lib ---\n", text, count=1)


def _split_capture(text: str, part: str) -> str:
    """nvidia-smi-L-and-default.txt holds `nvidia-smi -L`, an empty line, then plain `nvidia-smi`."""
    cut = text.index("\n\n")
    return text[: cut + 1] if part == "list" else text[cut + 2 :]


def _content(package: Package, item: File, fixtures_dir: Path) -> bytes:
    if item.fixture is not None:
        data = (fixtures_dir / item.fixture).read_text()
        return (_split_capture(data, item.part) if item.part else data).encode()
    if item.text is not None:
        return item.text.encode()
    if item.source is None:
        raise DebBuildError(f"{package.name}: {item.path} has no content")
    text = (SOURCES / item.source).read_text()
    text = _inline_lib(text)
    for key, value in package.substitutions:
        text = text.replace(f"@@{key}@@", value)
    leftover = re.search(r"@@[A-Z_]+@@", text)
    if leftover:
        raise DebBuildError(f"{package.name}: {item.path}: no value for {leftover.group(0)}")
    return text.encode()


def _control(package: Package, installed_kib: int) -> str:
    lines = [
        f"Package: {package.name}",
        f"Version: {package.version}",
        f"Architecture: {package.architecture}",
        f"Maintainer: {MAINTAINER}",
        f"Installed-Size: {installed_kib}",
    ]
    for key, values in (
        ("Depends", package.depends),
        ("Conflicts", package.conflicts),
        ("Replaces", package.replaces),
        ("Provides", package.provides),
    ):
        if values:
            lines.append(f"{key}: {', '.join(values)}")
    lines += [f"Section: {package.section}", f"Priority: {package.priority}", f"Description: {package.description}"]
    details = package.details or "Part of the pdfleet sandbox: a simulated GPU cluster without GPUs."
    words, line = details.split(), ""
    for word in words:
        if line and len(line) + 1 + len(word) > 78:
            lines.append(" " + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(" " + line)
    return "\n".join(lines) + "\n"


def _readme(package: Package) -> str:
    return (
        f"{package.name} {package.version}: {package.description}\n\n"
        f"{package.details}\n\n"
        "This is not the vendor's package. It belongs to the pdfleet sandbox (simulated hosts without GPUs or RDMA "
        "NICs) and carries the real package's name and version so that deploys install it exactly as on real hosts.\n"
    )


def _build_one(package: Package, staging: Path, out_dir: Path, fixtures_dir: Path) -> Path:
    root = staging / package.filename[: -len(".deb")]
    files: dict[str, tuple[bytes, int]] = {}
    for item in package.files:
        content = _content(package, item, fixtures_dir)
        mode = item.mode if item.mode is not None else (0o755 if content.startswith(b"#!") else 0o644)
        files[item.path] = (content, mode)
    files[f"/usr/share/doc/{package.name}/README.pdfleet-standin"] = (_readme(package).encode(), 0o644)

    for path, (content, mode) in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)
    debian = root / "DEBIAN"
    debian.mkdir(parents=True)
    installed_kib = sum((len(c) + 1023) // 1024 for c, _ in files.values()) or 1
    (debian / "control").write_text(_control(package, installed_kib))
    (debian / "md5sums").write_text(
        "".join(f"{hashlib.md5(c).hexdigest()}  {p.lstrip('/')}\n" for p, (c, _) in sorted(files.items()))
    )
    conffiles = sorted(p for p in files if p.startswith("/etc/"))
    if conffiles:
        (debian / "conffiles").write_text("".join(f"{p}\n" for p in conffiles))
    for name, text in package.scripts:
        script = debian / name
        script.write_text(text)
        script.chmod(0o755)
    for item in debian.iterdir():
        if item.name not in dict(package.scripts):
            item.chmod(0o644)

    for directory, subdirs, names in os.walk(root, topdown=False):
        for name in names:
            os.utime(Path(directory) / name, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH), follow_symlinks=False)
        for name in subdirs:
            (Path(directory) / name).chmod(0o755)
            os.utime(Path(directory) / name, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))
    root.chmod(0o755)
    os.utime(root, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))

    deb = out_dir / package.filename
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH), LC_ALL="C.UTF-8", TZ="UTC")
    result = subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--threads-max=1", "--build", str(root), str(deb)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise DebBuildError(f"dpkg-deb --build {package.name} failed:\n{result.stderr.strip()}")
    return deb


def build_standin_debs(out_dir: Path, fixtures_dir: Path) -> list[Path]:
    """Build every package of STANDIN_PACKAGES into out_dir (reproducibly); returns the .deb paths in that order."""
    if shutil.which("dpkg-deb") is None:
        raise DebBuildError("dpkg-deb is not installed (apt-get install dpkg)")
    missing = sorted(
        {f.fixture for p in STANDIN_PACKAGES for f in p.files if f.fixture} - {p.name for p in fixtures_dir.iterdir()}
    )
    if missing:
        raise DebBuildError(f"{fixtures_dir}: missing fixture files {', '.join(missing)}")
    captured = re.search(r"<driver_version>([^<]+)</driver_version>", (fixtures_dir / "nvidia-smi-q.xml").read_text())
    if captured is None or captured.group(1) != CAPTURED_DRIVER:
        raise DebBuildError(f"{fixtures_dir}: the captured driver is not {CAPTURED_DRIVER}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pdfleet-debs-") as staging:
        return [_build_one(package, Path(staging), out_dir, fixtures_dir) for package in STANDIN_PACKAGES]
