"""deploys/host.py's roles on pyinfra's @fake connector, answered with what a converged sandbox host really said
(tests/fixtures/converged-host/, recorded by tests/tools/record_host_answers.py): nothing changes and nothing but
the facts' read-only commands is sent; a driver bump, a module-option change and a pending mark each plan exactly
their steps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from roles import reboot
from roles.layers import HOST_LAYER
from tests.fakehosts import ROOT, converge, recorded

SANDBOX = ROOT / "inventories/sandbox.yaml"
# A host-layer-only host serves nothing yet: its instance's unit does not exist (`systemctl is-active` says so).
ANSWERS = {**recorded("decode-0"), re.compile(r"^systemctl is-active sglang-decode\.service \|\| true$"): "inactive"}
# Every node serves nothing: the rolling reboot's one wave (the other nodes are not in these runs).
WAVE = "Reboot | wave 1 of 1: prefill-0, prefill-1, decode-0, decode-1, spare-0 (serving nothing)"


@pytest.fixture(autouse=True)
def quick_reconnects(monkeypatch):
    monkeypatch.setattr(reboot, "RECONNECT_INTERVAL", 0)


def sandbox_with(tmp_path, **host_changes):
    doc = yaml.safe_load(SANDBOX.read_text())
    for dotted, value in host_changes.items():
        section = doc["host"]
        *parents, key = dotted.split("__")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[key] = value
    path = tmp_path / "sandbox.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def changes_sent(run) -> list[str]:
    """Commands that are not one of the recorded read-only fact commands."""
    return [c for c in run.commands if not any(p.match(c) for p in ANSWERS)]


def back_after_reboot() -> dict:
    return {re.compile(r"^test ! -e /run/pdfleet/reboot-required && systemctl is-system-running --wait$"): "running"}


def test_converged_host_changes_nothing_and_every_operation_says_so():
    run = converge(HOST_LAYER, {"decode-0": ANSWERS}, inventory_yaml=SANDBOX)["decode-0"]
    assert len(run.changed) >= 40
    assert [name for name, changed in run.changed.items() if changed] == []
    assert changes_sent(run) == []


def test_driver_bump_is_unhold_install_hold_mark_and_one_reboot(tmp_path):
    bumped = sandbox_with(tmp_path, nvidia__driver_version="580.165.02")
    run = converge(HOST_LAYER, {"decode-0": {**back_after_reboot(), **ANSWERS}}, inventory_yaml=bumped)["decode-0"]
    assert [name for name, changed in run.changed.items() if changed] == [
        "NVIDIA | pin the driver set",
        "NVIDIA | driver set installed and held",
        "NVIDIA | mark for reboot: new driver or nouveau blacklist",
        WAVE,
    ]
    sent = [c for c in changes_sent(run) if not c.startswith(("mkdir -p /tmp", "mv ", "chmod ", "chown ", "rm -f"))]
    names = "nvidia-driver-580-server-open nvidia-utils-580-server"
    assert [c.split(" ")[0:2] for c in sent if c.startswith(("apt-mark", "DEBIAN_FRONTEND"))] == [
        ["apt-mark", "unhold"],
        ["DEBIAN_FRONTEND=noninteractive", "apt-get"],
        ["apt-mark", "hold"],
    ]
    assert any(c.startswith("DEBIAN_FRONTEND") and names in c for c in sent)
    assert (
        "mkdir -p /run/pdfleet && echo 'NVIDIA 580.165.02 set installed or nouveau blacklisted' >> "
        + ("/run/pdfleet/reboot-required")
        in sent
    )
    assert sent[-3:] == [
        'logger -t pdfleet "reboot (wave 1/1): $(paste -sd";" /run/pdfleet/reboot-required)"',
        "( sleep 1 && systemctl reboot ) </dev/null >/dev/null 2>&1 &",
        "test ! -e /run/pdfleet/reboot-required && systemctl is-system-running --wait",  # back: a fresh /run
    ]
    # The NVIDIA services are left to the reboot: restarting them against the old module would fail.
    assert not any("systemctl" in c and "nvidia" in c for c in sent)


def test_changed_module_options_rebuild_the_initramfs_and_reboot(tmp_path):
    stale = {re.compile(r"sha1sum /etc/modprobe.d/pdfleet-deepep.conf"): "0" * 40 + "  x"}
    run = converge(HOST_LAYER, {"decode-0": {**stale, **back_after_reboot(), **ANSWERS}}, inventory_yaml=SANDBOX)
    changed = [name for name, did in run["decode-0"].changed.items() if did]
    assert changed == [
        "DeepEP | nvidia module options",
        "DeepEP | rebuild the initramfs with the new options",
        "DeepEP | mark for reboot: nvidia module options changed",
        WAVE,
    ]
    assert "update-initramfs -u -k all" in run["decode-0"].commands


def test_a_mark_left_by_an_earlier_run_reboots_even_when_nothing_changes():
    pending = {re.compile(r"^cat /run/pdfleet/reboot-required"): "kernel command line changed"}
    run = converge(HOST_LAYER, {"decode-0": {**pending, **back_after_reboot(), **ANSWERS}}, inventory_yaml=SANDBOX)
    assert [name for name, did in run["decode-0"].changed.items() if did] == [WAVE]


def test_deferred_reboots_change_nothing_and_say_which_host_needs_one(tmp_path, caplog):
    pending = {re.compile(r"^cat /run/pdfleet/reboot-required"): "kernel command line changed"}
    deferred = sandbox_with(tmp_path, reboot__defer=True)
    with caplog.at_level("INFO"):
        run = converge(HOST_LAYER, {"decode-0": {**pending, **ANSWERS}}, inventory_yaml=deferred)["decode-0"]
    assert [name for name, did in run.changed.items() if did] == []
    assert not any("systemctl reboot" in c for c in run.commands)
    assert "Reboot | still needed (reboots deferred): kernel command line changed" in caplog.text


def test_the_machine_running_pyinfra_is_never_rebooted():
    local_id = Path("/etc/machine-id").read_text().strip()
    answers = {
        re.compile(r"^cat /etc/machine-id$"): local_id,
        re.compile(r"^cat /run/pdfleet/reboot-required"): "kernel command line changed",
        **ANSWERS,
    }
    run = converge(HOST_LAYER, {"decode-0": answers}, inventory_yaml=SANDBOX)["decode-0"]
    assert not any("systemctl reboot" in c for c in run.commands)
    assert not any(name.startswith("Reboot | wave") for name in run.changed)
