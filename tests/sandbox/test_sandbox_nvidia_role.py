"""roles.nvidia on a fresh sandbox host: the set installed and held, nouveau blacklisted, a reboot marked and the
services left for that boot; after the reboot the services run; then nothing changes."""

from __future__ import annotations

import time

from tests.sandbox.conftest import deploy, on_host

HOST = "prefill-0"


def converge() -> dict:
    return deploy("tests/sandbox/deploys/nvidia.py", "--limit", HOST)


def changed(results: dict) -> set[str]:
    return {op["name"] for op in results["operations"] if op["success"]}


def test_nvidia_role_fresh_host_reboot_then_converged(sandbox):
    first = converge()
    assert first["totals"]["error"] == 0
    assert {
        "NVIDIA | driver set installed and held",
        "NVIDIA | blacklist nouveau",
        "NVIDIA | mark for reboot: new driver or nouveau blacklist",
    } <= changed(first)
    assert "NVIDIA | fabric manager running" not in changed(first)  # left for the boot after the new driver
    assert "NVIDIA 580.159.04 set installed" in on_host(HOST, "cat /run/pdfleet/reboot-required").stdout

    on_host(HOST, "systemctl reboot", check=False)
    deadline = time.monotonic() + 60
    while on_host(HOST, "systemctl is-system-running", check=False, timeout=10).stdout.strip() != "running":
        assert time.monotonic() < deadline, f"{HOST} did not come back"
        time.sleep(0.5)
    assert on_host(HOST, "test -e /run/pdfleet/reboot-required", check=False).returncode == 1

    second = converge()
    assert second["totals"]["error"] == 0
    for unit in ("nvidia-persistenced", "nvidia-fabricmanager", "nvidia-dcgm"):
        assert on_host(HOST, f"systemctl is-active {unit}").stdout == "active\n", unit
    third = converge()
    assert third["totals"]["success"] == 0 and third["totals"]["error"] == 0, changed(third)
