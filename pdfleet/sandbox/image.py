"""The sandbox image: one Debian bookworm rootfs, built once with mmdebstrap and shared by every host (read-only
lower layer of each host's overlay).

It holds what a freshly installed server holds (systemd, sshd, Python) and, instead of the internet:
- /srv/pdfleet-repo: an offline apt repository with the real Debian packages the deploys install and stand-in
  packages with the real names and versions of NVIDIA's and the RDMA vendor's packages (pdfleet.sandbox.debs);
- /srv/pdfleet-pypi: a static Python package index (PEP 503) with the real smg router and its dependencies and a
  stand-in sglang engine (pdfleet.sandbox.wheels).

The image is rebuilt only when its recipe changes: `stamp.json` holds a digest of every input.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

from pdfleet.benchclient import CLIENT as BENCH_CLIENT
from pdfleet.benchclient import CLIENT_VERSION as BENCH_CLIENT_VERSION
from pdfleet.benchclient import requirements as bench_requirements
from pdfleet.sandbox.paths import REPO_ROOT, SandboxPaths

SUITE = "bookworm"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "h200-8gpu-node"
HERE = Path(__file__).resolve().parent

# What a freshly installed server already has.
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "procps",
    "sudo",
    "apt-utils",
    "python3",
    "ca-certificates",
    "less",
    "kmod",
)
# Real Debian packages the deploys install, served by the offline repository.
REPO_PACKAGES = (
    "jq",
    "curl",
    "chrony",
    "numactl",
    "pciutils",
    "ethtool",
    "lsof",
    "python3-venv",
    "python3-pip",
    "rdma-core",
    "ibverbs-utils",
    "ibverbs-providers",
    "infiniband-diags",
    "perftest",
    "unattended-upgrades",
    "initramfs-tools",
    "rsync",
    "nftables",  # the firewall (roles/firewall.py): real nftables in each host's own network namespace
    # Monitoring (issue 16): Debian's own Prometheus 2.42 (with promtool) and node exporter 1.5. customize.sh
    # fetches them with --no-install-recommends: their Depends come along (adduser and a dozen small libjs-*/font
    # packages for Prometheus' web UI, about 25 MiB in all), their Recommends do not (prometheus-node-exporter is
    # listed here itself; prometheus-node-exporter-collectors, whose textfile timers would be a second set of
    # services, stays out, and apt installs fine without it whether or not a deploy passes --no-install-recommends).
    "prometheus",
    "prometheus-node-exporter",
    # Not installed by a deploy itself: the stand-in grafana package (standins/debs) depends on it to read YAML.
    "python3-yaml",
)
# Real wheels from PyPI for the local index: the PD router, Mooncake's transfer engine, uv (and what they need).
PYPI_REQUIREMENTS = ("smg==1.13.0", "mooncake-transfer-engine==0.3.13.post1", "uv==0.13.9")
# Earlier routers beside it, each fetched alone (one resolver run cannot hold two versions): a router upgrade.
PYPI_EARLIER_ROUTERS = ("smg==1.12.0",)

# Inputs whose change means a new image.
RECIPE_FILES = ("image.py", "customize.sh", "debs.py", "wheels.py")
RECIPE_TREES = ("standins",)


class ImageError(RuntimeError):
    pass


def _digest_tree(digest, path: Path) -> None:
    for item in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(item.relative_to(path)).encode())
        digest.update(item.read_bytes())


def recipe_digest() -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [SUITE, BASE_PACKAGES, REPO_PACKAGES, PYPI_REQUIREMENTS, PYPI_EARLIER_ROUTERS, bench_requirements()]
        ).encode()
    )
    for name in RECIPE_FILES:
        path = HERE / name
        if path.exists():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    for tree in RECIPE_TREES:
        if (HERE / tree).exists():
            _digest_tree(digest, HERE / tree)
    _digest_tree(digest, FIXTURES)
    return digest.hexdigest()


def is_current(paths: SandboxPaths) -> bool:
    if not (paths.rootfs / "usr/lib/systemd/systemd").exists() or not paths.image_stamp.exists():
        return False
    return json.loads(paths.image_stamp.read_text()).get("recipe") == recipe_digest()


def host_mirror() -> str:
    """The Debian mirror this machine's apt uses (a package registry it may reach)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _run(cmd: list[str], what: str, log) -> None:
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("    image | "):
            log(line.strip())
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-25:])
        raise ImageError(f"{what} failed (exit {result.returncode}):\n{tail}")


def build(paths: SandboxPaths, log=print, force: bool = False) -> bool:
    """Build the image unless the cached one is current. Returns True when it built."""
    if not force and is_current(paths):
        return False
    if shutil.which("mmdebstrap") is None:
        raise ImageError(
            "mmdebstrap is not installed: apt-get install mmdebstrap (the sandbox builds its image with it)"
        )
    from pdfleet.sandbox import debs, wheels  # the stand-ins are only needed to build

    started = time.monotonic()
    paths.image.mkdir(parents=True, exist_ok=True)
    staging = paths.image / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    standin_debs = staging / "debs"
    pypi = staging / "pypi"
    wheel_dir = pypi / "wheels"
    standin_debs.mkdir(parents=True)
    wheel_dir.mkdir(parents=True)

    log("image | build the stand-in vendor packages")
    debs.build_standin_debs(standin_debs, FIXTURES)
    log("image | build the stand-in sglang wheels and fetch the real smg router and the bench client's wheels")
    cached = paths.downloads / "wheels"
    cached.mkdir(parents=True, exist_ok=True)
    # The index's `sglang` is the stand-in engine; `pdfleet bench` installs sglang at the bench client's version and
    # runs `python -m sglang.bench_serving`: that stand-in wheel carries the real module, read from the real wheel
    # (which stays out of the index).
    client = wheels.real_module(
        f"{BENCH_CLIENT}=={BENCH_CLIENT_VERSION}", "sglang/bench_serving.py", paths.downloads / "real-sglang"
    )
    for version in wheels.STANDIN_SGLANG_VERSIONS:
        extra = {"sglang/bench_serving.py": client} if version == BENCH_CLIENT_VERSION else None
        wheels.build_standin_sglang_wheel(wheel_dir, version=version, extra=extra)
    fetched = wheels.download_wheels(list(PYPI_REQUIREMENTS), cached)
    for router in PYPI_EARLIER_ROUTERS:
        fetched += wheels.download_wheels([router], cached)
    bench = [line for line in bench_requirements() if not line.startswith(f"{BENCH_CLIENT}==")]
    fetched += wheels.download_wheels(bench, cached, no_deps=True)
    for wheel in fetched:
        shutil.copy2(wheel, wheel_dir / wheel.name)
    wheels.write_simple_index(wheel_dir, pypi / "simple")

    new_rootfs = paths.image / "rootfs.new"
    shutil.rmtree(new_rootfs, ignore_errors=True)
    log(f"image | mmdebstrap {SUITE} ({len(BASE_PACKAGES)} base packages) from {host_mirror()}")
    _run(
        [
            "mmdebstrap",
            "--mode=root",
            "--variant=minbase",
            "--quiet",
            "--skip=cleanup/apt/lists",  # the hosts' apt must know the offline repository without an update
            f"--include={','.join(BASE_PACKAGES)}",
            f"--customize-hook=bash {HERE / 'customize.sh'} \"$1\" {standin_debs} {pypi} '{' '.join(REPO_PACKAGES)}'",
            SUITE,
            str(new_rootfs),
            host_mirror(),
        ],
        "mmdebstrap",
        log,
    )
    if paths.rootfs.exists():
        shutil.rmtree(paths.rootfs)
    new_rootfs.rename(paths.rootfs)
    shutil.rmtree(staging, ignore_errors=True)
    size = sum(p.stat().st_size for p in paths.rootfs.rglob("*") if p.is_file() and not p.is_symlink())
    paths.image_stamp.write_text(
        json.dumps(
            {"recipe": recipe_digest(), "built_seconds": round(time.monotonic() - started, 1), "bytes": size}, indent=1
        )
        + "\n"
    )
    log(f"image | built in {time.monotonic() - started:.1f} s, {size / 2**20:.0f} MiB")
    return True
