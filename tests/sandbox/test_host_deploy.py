"""deploys/host.py on fresh sandbox hosts, as a person runs it: converge with the hosts rebooting together (they
serve nothing yet: one wave, read back from each host's own journal), a second run and a --dry run with nothing to
change, and a driver bump: exactly its plan in --dry --diff, then applied with one reboot per host, one at a time
(`host.reboot.parallel: 1`), and converged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sandbox.conftest import deploy, inventory_copy, on_host, pdfleet, pyinfra

# the inventory's order: the reboot order, one by one (the spare serves nothing, as every host before serve.py)
HOSTS = ["prefill-0", "prefill-1", "decode-0", "decode-1", "spare-0"]
RESULTS: dict[str, dict] = {}  # figures for the closing note, printed at the end of the module


@pytest.fixture(scope="module")
def fresh(sandbox):
    """Hosts made anew from the image before (other sandbox tests ran deploys on them) and after (the next ones
    expect hosts without a driver)."""
    pdfleet("sandbox", "down")
    pdfleet("sandbox", "up")
    yield
    print("\nhost.py figures:", json.dumps(RESULTS, indent=1))
    pdfleet("sandbox", "down")
    pdfleet("sandbox", "up")


def inventory_with(tmp_path: Path, parallel: int | None = None, **nvidia) -> Path:
    def edit(doc):
        doc["host"].setdefault("nvidia", {}).update(nvidia)
        if parallel is not None:
            doc["host"].setdefault("reboot", {})["parallel"] = parallel

    return inventory_copy(tmp_path, edit)


def reboot_windows() -> list[tuple[str, int, int]]:
    """Per host: when its reboot was asked (the previous boot's last pdfleet journal entry) and when the next
    boot finished (systemd's "Startup finished"), in microseconds since the epoch; sorted by the first."""
    windows = []
    for host in HOSTS:
        asked = on_host(host, "journalctl -b -1 -t pdfleet -o json -n 1 --no-pager").stdout.strip()
        manager = on_host(host, "journalctl -b 0 _PID=1 -o json --no-pager").stdout.splitlines()
        booted = [e for e in map(json.loads, manager) if str(e.get("MESSAGE", "")).startswith("Startup finished")]
        assert asked and booted, f"{host}: no reboot in its journal"
        windows.append((host, int(json.loads(asked)["__REALTIME_TIMESTAMP"]), int(booted[0]["__REALTIME_TIMESTAMP"])))
    return sorted(windows, key=lambda w: w[1])


def assert_one_at_a_time(windows) -> None:
    assert [host for host, _, _ in windows] == HOSTS
    for (host, _, finished), (next_host, asked, _) in zip(windows, windows[1:], strict=False):
        assert asked > finished, f"{next_host} went down before {host} was back"


def assert_together(windows) -> None:
    """Every host went down before any came back: one wave."""
    assert sorted(host for host, _, _ in windows) == sorted(HOSTS)
    last_asked = max(asked for _, asked, _ in windows)
    first_back = min(finished for _, _, finished in windows)
    assert last_asked < first_back, f"not one wave: {windows}"


def dry_plan(inventory: str) -> dict[str, dict[str, list[str]]]:
    result = pyinfra("--dry", "--json", inventory, "deploys/host.py")
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        op["name"]: {"change": op["hosts_with_change"], "conditional": op["hosts_with_conditional_change"]}
        for op in json.loads(result.stdout)["plan"]
    }


def test_fresh_hosts_converge_rebooting_together(fresh):
    first = deploy("deploys/host.py")
    RESULTS["first run totals"] = first["totals"]
    assert first["totals"]["error"] == 0 and first["totals"]["success"] >= 100
    windows = reboot_windows()
    RESULTS["first run reboot windows (s after the first ask)"] = {
        host: [round((a - windows[0][1]) / 1e6, 1), round((b - windows[0][1]) / 1e6, 1)] for host, a, b in windows
    }
    assert_together(windows)
    for host in HOSTS:
        live = on_host(host, "grep -l live /sys/module/*/initstate").stdout
        assert "/sys/module/nvidia_peermem/" in live and "/sys/module/gdrdrv/" in live  # loaded at boot
        services = ["chrony", "nvidia-persistenced", "nvidia-fabricmanager", "nvidia-dcgm"]
        active = on_host(host, f"systemctl is-active {' '.join(services)}", check=False).stdout.split()
        down = [service for service, state in zip(services, active, strict=True) if state != "active"]
        if down:
            units = " ".join(f"-u {service}" for service in down)
            journal = on_host(host, f"journalctl -b -o short-monotonic --no-pager {units}").stdout[-4000:]
            pytest.fail(f"{host}: not active after the converge: {down}; their journal:\n{journal}")
        # The daemon systemd supervises is the one that wrote the pid file (the unit has no PIDFile=: guessed).
        main_pid = on_host(host, "systemctl show -p MainPID --value nvidia-persistenced").stdout.strip()
        assert main_pid == on_host(host, "cat /run/nvidia-persistenced/nvidia-persistenced.pid").stdout.strip()
        assert on_host(host, "sysctl -n vm.max_map_count").stdout.strip() == "1048576"  # applied at boot
        assert "10.77.0.14 decode-1" in on_host(host, "cat /etc/hosts").stdout
        assert on_host(host, "test -d /var/log/journal && echo persistent").stdout.strip() == "persistent"
    held = on_host("decode-0", "apt-mark showhold").stdout.split()
    assert {"nvidia-driver-580-server-open", "nvidia-fabricmanager-580", "gdrdrv-dkms", "doca-ofed"} <= set(held)
    assert "Package-Blacklist" in on_host("decode-0", "apt-config dump | grep -A3 Package-Blacklist").stdout


def test_second_run_and_dry_run_change_nothing(fresh):
    second = deploy("deploys/host.py")
    RESULTS["second run totals"] = second["totals"]
    assert second["totals"]["success"] == 0 and second["totals"]["error"] == 0
    plan = dry_plan("inventories/sandbox.py")
    RESULTS["dry run: operations with a change"] = sum(bool(op["change"]) for op in plan.values())
    RESULTS["dry run: operations with a conditional change"] = sum(bool(op["conditional"]) for op in plan.values())
    assert {name: op["change"] for name, op in plan.items() if op["change"]} == {}


def test_driver_bump_plans_exactly_then_reboots_one_at_a_time_and_converges(fresh, tmp_path):
    bumped = str(inventory_with(tmp_path, parallel=1, driver_version="580.165.02"))
    plan = dry_plan(bumped)
    changing = {name: sorted(op["change"]) for name, op in plan.items() if op["change"]}
    assert changing == {
        "NVIDIA | pin the driver set": sorted(HOSTS),
        "NVIDIA | driver set installed and held": sorted(HOSTS),
    }
    conditional_on_the_bump = {name for name, op in plan.items() if op["conditional"]}
    assert "NVIDIA | mark for reboot: new driver or nouveau blacklist" in conditional_on_the_bump
    diff = pyinfra("--dry", "--diff", bumped, "deploys/host.py")
    out = diff.stdout + diff.stderr
    assert "- Pin: version 580.159.04-*" in out and "+ Pin: version 580.165.02-*" in out
    assert "580.159.04" in on_host("decode-0", "nvidia-smi --query-gpu=driver_version --format=csv,noheader").stdout

    applied = deploy("deploys/host.py", inventory=bumped)
    RESULTS["driver bump totals"] = applied["totals"]
    assert applied["totals"]["error"] == 0
    windows = reboot_windows()
    RESULTS["driver bump reboot order"] = [host for host, _, _ in windows]
    assert_one_at_a_time(windows)
    for host in HOSTS:
        assert "<driver_version>580.165.02</driver_version>" in on_host(host, "nvidia-smi -q -x").stdout
        assert on_host(host, "systemctl is-active nvidia-fabricmanager").stdout.strip() == "active"
    again = deploy("deploys/host.py", inventory=bumped)
    RESULTS["after the bump, again"] = again["totals"]
    assert again["totals"]["success"] == 0 and again["totals"]["error"] == 0
