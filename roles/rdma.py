"""The RDMA stack and GPUDirect: the distribution's rdma-core and tools or NVIDIA's DOCA-OFED (inventory choice),
GDRCopy pinned and held, and the two modules GPUDirect needs loaded now and at every boot: `nvidia_peermem` (NICs
register GPU memory: NCCL, Mooncake without DMA-BUF) and GDRCopy's `gdrdrv` (NVSHMEM's CPU-assisted path).

A new DOCA-OFED or GDRCopy replaces kernel modules that are in use, so a change of the set marks the host for
reboot; modules are loaded now only when no reboot is pending (a module built for the next driver or kernel
would not load into this one), the boot loads them otherwise.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.operations import apt

from pdfleet.hostplan import GPUDIRECT_MODULES, INBOX_RDMA_PACKAGES, doca_key_url, rdma_pins
from roles import common, packages, reboot
from roles.facts import LoadedModules

DOCA_SOURCES = "/etc/apt/sources.list.d/pdfleet-doca.list"
DOCA_KEY = "/etc/apt/keyrings/pdfleet-doca.asc"
PIN_FILE = "/etc/apt/preferences.d/pdfleet-rdma.pref"
MODULES_FILE = "/etc/modules-load.d/pdfleet-gpudirect.conf"


@operation()
def modules_loaded(modules: list[str]):
    """
    Load kernel modules that are not loaded yet.

    + modules: module names, as sysfs spells them (underscores)
    """
    loaded = host.get_fact(LoadedModules)
    missing = [name for name in modules if name not in loaded]
    if not missing:
        host.noop(f"{', '.join(modules)} loaded")
        return
    yield StringCommand("modprobe", "-a", *(QuoteString(name) for name in missing))


@deploy("RDMA")
def rdma():
    cluster = common.cluster()
    config = cluster.host.rdma

    if config.stack == "doca-ofed" and config.source == "doca-repo":
        packages.vendor_repository("DOCA", doca_key_url(cluster), DOCA_KEY, DOCA_SOURCES)
    elif config.stack == "inbox":
        apt.packages(name="distribution's RDMA stack", packages=list(INBOX_RDMA_PACKAGES), no_recommends=True)

    common.put_rendered(PIN_FILE, name="pin GDRCopy" + (" and DOCA-OFED" if config.stack == "doca-ofed" else ""))
    label = f"GDRCopy {config.gdrcopy_version}" + (
        f" + DOCA-OFED {config.doca_version}" if config.stack == "doca-ofed" else ""
    )
    stack = packages.held_set(name="GDRCopy and RDMA set installed and held", pins=rdma_pins(cluster), label=label)
    reboot.request(
        name="mark for reboot: RDMA or GDRCopy modules replaced",
        reason=f"{label} installed",
        when=stack.did_change,
    )

    common.put_rendered(MODULES_FILE, name="GPUDirect modules at every boot")
    modules_loaded(name="GPUDirect modules loaded now", modules=list(GPUDIRECT_MODULES), _if=reboot.settled)
