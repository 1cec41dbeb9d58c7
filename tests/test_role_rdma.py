"""roles.rdma on pyinfra's @fake connector: DOCA-OFED from NVIDIA's repository, the inbox stack, GPUDirect
modules loaded only when missing and only when no reboot is pending."""

from __future__ import annotations

from pdfleet.synthetic import inventory_document, write_inventory
from roles.rdma import rdma
from tests.fakehosts import ROOT, converge

LIVE = {"grep -H . /sys/module/*/initstate": ["/sys/module/nvidia/initstate:live"]}


def inbox_inventory(tmp_path):
    doc = inventory_document(prefill=[1], decode=[1])
    doc["host"] = {"rdma": {"stack": "inbox"}}
    return write_inventory(tmp_path, doc).with_suffix(".yaml")


def test_doca_from_nvidia_repository_pinned_held_and_a_reboot_requested():
    run = converge(rdma, {"decode-0": LIVE})["decode-0"]
    assert run.ran("https://linux.mellanox.com/public/repo/doca/GPG-KEY-Mellanox.pub")
    assert run.ran("apt-get update -q")
    install = [c for c in run.commands if "apt-get install" in c]
    assert install and install[0].endswith("gdrdrv-dkms libgdrapi gdrcopy-tests gdrcopy doca-ofed")
    assert run.ran("echo 'GDRCopy 2.5.1 + DOCA-OFED 3.1.0 installed' >> /run/pdfleet/reboot-required")
    # The new modules load at the reboot, not into the running kernel.
    assert not run.ran("modprobe")


def test_inbox_stack_from_the_distribution(tmp_path):
    run = converge(rdma, {"decode-0": LIVE}, inventory_yaml=inbox_inventory(tmp_path), dry=True)["decode-0"]
    assert run.changes("distribution's RDMA stack") is True
    assert not any("DOCA" in name for name in run.will_change)


def test_missing_gpudirect_module_is_loaded_on_a_settled_host():
    installed = {
        "apt-mark showhold": ["gdrdrv-dkms", "libgdrapi", "gdrcopy-tests", "gdrcopy", "doca-ofed"],
        "dpkg -l": [
            "hi  gdrdrv-dkms  2.5.1-1  amd64  x",
            "hi  libgdrapi  2.5.1-1  amd64  x",
            "hi  gdrcopy-tests  2.5.1-1  amd64  x",
            "hi  gdrcopy  2.5.1-1  amd64  x",
            "hi  doca-ofed  3.1.0-091000-25.07-ubuntu2404  amd64  x",
        ],
        "grep -H . /sys/module/*/initstate": [
            "/sys/module/nvidia/initstate:live",
            "/sys/module/nvidia_peermem/initstate:live",
        ],
    }
    run = converge(rdma, {"decode-0": installed}, inventory_yaml=ROOT / "inventories/prod.yaml")["decode-0"]
    assert not run.ran("apt-get install")
    assert run.ran("modprobe -a gdrdrv") and not run.ran("modprobe -a nvidia_peermem")
