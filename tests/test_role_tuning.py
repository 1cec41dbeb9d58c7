"""roles.tuning planned on pyinfra's @fake connector: a fresh host, and iommu passthrough switched off."""

from __future__ import annotations

from pdfleet.synthetic import inventory_document, write_inventory
from roles.tuning import tuning
from tests.fakehosts import converge


def run_for(tmp_path, iommu: bool):
    doc = inventory_document(prefill=[1], decode=[1])
    doc["host"] = {"tuning": {"iommu_passthrough": iommu}}
    path = write_inventory(tmp_path, doc).with_suffix(".yaml")
    return converge(tuning, {"prefill-0": {}}, inventory_yaml=path)["prefill-0"]


def test_fresh_host_gets_the_boot_unit_and_the_kernel_command_line(tmp_path):
    run = run_for(tmp_path, iommu=True)
    assert run.changes("boot-time tuning script") and run.changes("boot-time tuning unit verified and installed")
    # Verified where it was staged, and only then installed where systemd reads it.
    verify = "systemd-analyze verify /var/lib/pdfleet/units/pdfleet-host-tuning.service"
    install = "install -m 0644 /var/lib/pdfleet/units/pdfleet-host-tuning.service /etc/systemd/system/"
    assert run.ran(verify) and run.ran(install)
    assert run.commands.index(next(c for c in run.commands if verify in c)) < run.commands.index(
        next(c for c in run.commands if install in c)
    )
    assert run.ran("systemctl enable pdfleet-host-tuning.service")
    assert run.ran("update-grub") and run.ran("kernel command line changed")


def test_without_iommu_passthrough_no_boot_loader_change(tmp_path):
    run = run_for(tmp_path, iommu=False)
    assert not any("iommu" in name for name in run.will_change)
    assert not run.ran("update-grub") and not run.ran("reboot-required")
