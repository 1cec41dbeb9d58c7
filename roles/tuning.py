"""Host tuning: PCIe ACS off on every bridge, CPU governor and transparent huge pages at every boot (a oneshot
unit, since none of them survives a reboot), IOMMU passthrough on the kernel command line (boot loader + reboot).
What each setting does and why is written in the rendered files (templates/host/)."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import server

from roles import common, reboot
from roles.unitfiles import service_current

SCRIPT = "/usr/local/sbin/pdfleet-host-tuning"
UNIT = "pdfleet-host-tuning.service"
GRUB_FILE = "/etc/default/grub.d/90-pdfleet-iommu.cfg"


@deploy("Tuning")
def tuning():
    config = common.cluster().host.tuning
    script = common.put_rendered(SCRIPT, name="boot-time tuning script")
    # A oneshot that stays active: "running" means applied since boot, a restart applies it again.
    service_current(UNIT, "boot-time tuning", reads=(script,))
    if config.iommu_passthrough:
        grub = common.put_rendered(GRUB_FILE, name="iommu=pt on the kernel command line")
        server.shell(name="update the boot loader", commands=["update-grub"], _if=grub.did_change)
        reboot.request(
            name="mark for reboot: kernel command line",
            reason="kernel command line changed",
            when=grub.did_change,
        )
