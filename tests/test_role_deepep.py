"""roles.deepep against pyinfra's @fake connector: a fresh host, a converged host, a disabled switch."""

from __future__ import annotations

from pdfleet.inventory import load
from pdfleet.render import render
from pdfleet.serving import plan
from roles.deepep import OPTIONS_FILE, deepep_driver_options
from tests.fakehosts import ROOT, converge, file_present

WANTED = render(plan(load(ROOT / "inventories/prod.py")))["decode-1"][OPTIONS_FILE].content


def test_fresh_host_gets_the_options_an_initramfs_and_a_reboot_mark():
    run = converge(deepep_driver_options, {"decode-1": {}})["decode-1"]
    assert run.changes("DeepEP | nvidia module options") is True
    assert run.ran("update-initramfs -u -k all")
    assert run.ran(
        "mkdir -p /run/pdfleet && echo 'nvidia module options changed (DeepEP)' >> /run/pdfleet/reboot-required"
    )


def test_converged_host_changes_nothing():
    run = converge(deepep_driver_options, {"decode-1": file_present(OPTIONS_FILE, WANTED)})["decode-1"]
    assert run.changes("DeepEP | nvidia module options") is False
    assert not run.ran("update-initramfs")
    assert not run.ran("reboot-required")


def test_changed_options_rebuild_and_mark_only_that_host():
    stale = WANTED.replace("NVreg_EnableStreamMemOPs=1", "NVreg_EnableStreamMemOPs=0")
    runs = converge(
        deepep_driver_options,
        {"decode-0": file_present(OPTIONS_FILE, WANTED), "decode-1": file_present(OPTIONS_FILE, stale)},
    )
    assert not runs["decode-0"].ran("update-initramfs")
    assert runs["decode-1"].ran("update-initramfs -u -k all") and runs["decode-1"].ran("reboot-required")
