"""The NVIDIA set on a sandbox host with real apt and the stand-in packages: pinned install, idempotent second
run, a driver bump planned in --dry --diff and applied as one held set, the new driver in effect after reboot."""

from __future__ import annotations

import time
from pathlib import Path

from tests.sandbox.conftest import deploy, inventory_copy, on_host, pyinfra

HOST = "decode-1"
SET = ["nvidia-driver-580-server-open", "nvidia-utils-580-server", "nvidia-fabricmanager-580", "libnvidia-nscq-580"]


def inventory_with_driver(tmp_path: Path, version: str) -> Path:
    return inventory_copy(tmp_path, lambda doc: doc.update(host={"nvidia": {"driver_version": version}}))


def converge(inventory: Path) -> dict:
    return deploy("tests/sandbox/deploys/nvidia_set.py", "--limit", HOST, inventory=str(inventory))["totals"]


def installed() -> dict[str, str]:
    out = on_host(HOST, "dpkg-query -W -f='${Package} ${Version}\\n' " + " ".join(SET)).stdout
    return dict(line.split() for line in out.splitlines())


def test_driver_set_install_and_bump(sandbox, tmp_path):
    current = inventory_with_driver(tmp_path / "a", "580.159.04")
    first = converge(current)
    assert first["error"] == 0 and first["success"] == 2
    assert installed() == {
        "nvidia-driver-580-server-open": "580.159.04-0ubuntu1",
        "nvidia-utils-580-server": "580.159.04-0ubuntu1",
        "nvidia-fabricmanager-580": "580.159.04-1",
        "libnvidia-nscq-580": "580.159.04-1",
    }  # a newer set (580.165.02) is in the repository: the pin held the install to the inventory's version
    assert set(SET) <= set(on_host(HOST, "apt-mark showhold").stdout.split())
    # The driver answers (and, in the stand-in, counts as the loaded kernel module from now on).
    assert on_host(HOST, "nvidia-smi -L").stdout.count("NVIDIA H200") == 8
    assert converge(current) == {"hosts": 2, "success": 0, "error": 0, "no_change": 2}

    bumped = inventory_with_driver(tmp_path / "b", "580.165.02")
    dry = pyinfra("--dry", "--diff", "--limit", HOST, str(bumped), "tests/sandbox/deploys/nvidia_set.py")
    out = dry.stdout + dry.stderr
    assert "Will modify /etc/apt/preferences.d/pdfleet-nvidia.pref" in out
    assert "- Pin: version 580.159.04-*" in out and "+ Pin: version 580.165.02-*" in out
    assert installed()["nvidia-driver-580-server-open"] == "580.159.04-0ubuntu1"  # --dry changed nothing

    assert converge(bumped)["success"] == 2
    assert set(installed().values()) == {"580.165.02-0ubuntu1", "580.165.02-1"}
    assert set(SET) <= set(on_host(HOST, "apt-mark showhold").stdout.split())
    # Until the host reboots, the old kernel module is loaded: the real driver tools say so.
    mismatch = on_host(HOST, "nvidia-smi -L", check=False)
    assert mismatch.returncode != 0 and "Driver/library version mismatch" in mismatch.stdout + mismatch.stderr
    on_host(HOST, "systemctl reboot", check=False)
    deadline = time.monotonic() + 60
    while on_host(HOST, "systemctl is-system-running", check=False, timeout=10).stdout.strip() != "running":
        assert time.monotonic() < deadline, f"{HOST} did not come back"
        time.sleep(0.5)
    assert "<driver_version>580.165.02</driver_version>" in on_host(HOST, "nvidia-smi -q -x").stdout
    assert converge(bumped) == {"hosts": 2, "success": 0, "error": 0, "no_change": 2}
