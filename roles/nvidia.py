"""The NVIDIA driver set: package source, the driver, fabric manager, NSCQ and DCGM pinned and held as one set,
nouveau blacklisted, the persistence daemon at every boot, the fabric manager on NVSwitch nodes.

A change that only a reboot applies (a new driver, the nouveau blacklist) marks the host for reboot and leaves
the NVIDIA services to start at that boot: restarting them against a kernel module of another version fails
("Driver/library version mismatch"), as a fabric manager of another version refuses to start.
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd

from pdfleet.hostplan import cuda_mirror, nvidia_pins
from roles import common, packages, reboot

PIN_FILE = "/etc/apt/preferences.d/pdfleet-nvidia.pref"
BLACKLIST_FILE = "/etc/modprobe.d/pdfleet-blacklist-nouveau.conf"
PERSISTENCED_DROPIN = "/etc/systemd/system/nvidia-persistenced.service.d/pdfleet.conf"
PERSISTENCED_UNIT = "/lib/systemd/system/nvidia-persistenced.service"
CUDA_SOURCES = "/etc/apt/sources.list.d/pdfleet-cuda.list"
# NVIDIA's CUDA repository signing key, published beside the repository; apt reads armored keys named .asc.
CUDA_KEY_NAME = "3bf863cc.pub"
CUDA_KEY = "/etc/apt/keyrings/pdfleet-cuda.asc"


@deploy("NVIDIA")
def nvidia():
    cluster = common.cluster()
    config = cluster.host.nvidia
    node = cluster.node(common.node_name())

    if config.source == "cuda-repo":
        packages.vendor_repository(
            "CUDA", cuda_mirror(cluster).rstrip("/") + "/" + CUDA_KEY_NAME, CUDA_KEY, CUDA_SOURCES
        )

    apt.packages(name="initramfs and module tools", packages=["initramfs-tools", "kmod"])
    common.put_rendered(PIN_FILE, name="pin the driver set")
    driver = packages.held_set(
        name="driver set installed and held",
        pins=nvidia_pins(cluster),
        label=f"NVIDIA {config.driver_version} set",
    )
    blacklist = common.put_rendered(BLACKLIST_FILE, name="blacklist nouveau")
    server.shell(
        name="rebuild the initramfs without nouveau",
        commands=["update-initramfs -u -k all"],
        _if=blacklist.did_change,
    )

    def settled() -> bool:
        """No reboot pending from this run: the loaded kernel module matches the installed tools."""
        return not (driver.did_change() or blacklist.did_change())

    reboot.request(
        name="mark for reboot: new driver or nouveau blacklist",
        reason=f"NVIDIA {config.driver_version} set installed or nouveau blacklisted",
        when=lambda: not settled(),
    )

    override = common.put_rendered(PERSISTENCED_DROPIN, name="persistence daemon keeps running")
    files.link(
        name="persistence daemon at every boot",
        path="/etc/systemd/system/multi-user.target.wants/nvidia-persistenced.service",
        target=PERSISTENCED_UNIT,
    )
    systemd.daemon_reload(name="reload units", _if=override.did_change)
    systemd.service(
        name="persistence daemon running",
        service="nvidia-persistenced.service",
        running=True,
        restarted=False,
        _if=settled,
    )
    if node.nvswitch:
        systemd.service(name="fabric manager enabled", service="nvidia-fabricmanager.service", enabled=True)
        systemd.service(
            name="fabric manager running", service="nvidia-fabricmanager.service", running=True, _if=settled
        )
    systemd.service(name="DCGM enabled", service="nvidia-dcgm.service", enabled=True)
    systemd.service(name="DCGM running", service="nvidia-dcgm.service", running=True, _if=settled)
