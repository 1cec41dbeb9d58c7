"""roles.tuning on a sandbox host: the boot-time tuning unit installed, enabled and run (its writes to this
machine's PCI and sysfs settings refused: they are read-only in the sandbox), then nothing changes."""

from __future__ import annotations

from tests.sandbox.conftest import deploy, on_host

HOST = "decode-0"


def converge() -> dict:
    return deploy("tests/sandbox/deploys/tuning.py", "--limit", HOST)["totals"]


def test_tuning_unit_runs_and_a_second_converge_changes_nothing(sandbox):
    first = converge()
    assert first["error"] == 0 and first["success"] >= 3
    assert on_host(HOST, "systemctl is-active pdfleet-host-tuning.service").stdout == "active\n"
    assert on_host(HOST, "systemctl is-enabled pdfleet-host-tuning.service").stdout == "enabled\n"
    second = converge()
    assert second["success"] == 0 and second["error"] == 0
