"""DeepEP's driver options: `NVreg_EnableStreamMemOPs=1` and `PeerMappingOverride=1` for the nvidia module.

NVSHMEM's IBGDA transport, which DeepEP's internode kernels use, needs both (DeepEP docs/nvshmem.md). The nvidia
module reads them when it loads, from the initramfs: so when the options file changes, the initramfs is rebuilt
and the host is marked for reboot. Nothing happens when it is already in place.
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import files, server

from roles import common, reboot

OPTIONS_FILE = "/etc/modprobe.d/pdfleet-deepep.conf"


@deploy("DeepEP")
def deepep_driver_options():
    if common.cluster().host.deepep_driver_options:
        options = common.put_rendered(OPTIONS_FILE, name="nvidia module options")
    else:
        options = files.file(name="no nvidia module options", path=OPTIONS_FILE, present=False)
    server.shell(
        name="rebuild the initramfs with the new options",
        commands=["update-initramfs -u -k all"],
        _if=options.did_change,
    )
    reboot.request(
        name="mark for reboot: nvidia module options changed",
        reason="nvidia module options changed (DeepEP)",
        when=options.did_change,
    )
