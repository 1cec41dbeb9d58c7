"""roles.nvidia planned on pyinfra's @fake connector: what a fresh host gets, and no fabric manager without
NVSwitches. (Its converge, reboot and rerun with real apt and systemd are in tests/sandbox/test_role_nvidia.py.)"""

from __future__ import annotations

from pdfleet.synthetic import inventory_document, write_inventory
from roles.nvidia import nvidia
from tests.fakehosts import converge


def plan_for(tmp_path, nvswitch: bool, source: str = "cuda-repo"):
    doc = inventory_document(prefill=[1], decode=[1])
    doc["nodes"][1]["nvswitch"] = nvswitch
    doc["host"] = {"nvidia": {"source": source}}
    path = write_inventory(tmp_path, doc).with_suffix(".yaml")
    return converge(nvidia, {"decode-0": {}}, inventory_yaml=path, dry=True)["decode-0"]


def test_fresh_host_plan(tmp_path):
    run = plan_for(tmp_path, nvswitch=True)
    for name in (
        "CUDA repository signing key",
        "CUDA repository",
        "pin the driver set",
        "driver set installed and held",
        "blacklist nouveau",
        "fabric manager enabled",
    ):
        assert run.changes(name) is True, name
    assert any("fabric manager running" in name for name in run.will_change)


def test_no_fabric_manager_without_nvswitch(tmp_path):
    run = plan_for(tmp_path, nvswitch=False, source="os-archive")
    assert not any("fabric manager" in name for name in run.will_change)
    assert not any("CUDA repository" in name for name in run.will_change)
    assert run.changes("driver set installed and held") is True
