"""The sandbox as users and deploys see it: real hosts over SSH, isolated from each other and from this machine."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tests.sandbox.conftest import INVENTORY, ROOT, deploy, inventory_copy, on_host, pdfleet, pyinfra

HOSTS = ["prefill-0", "prefill-1", "decode-0", "decode-1", "spare-0"]


def test_every_host_runs_systemd_and_sshd(sandbox):
    status = pdfleet("sandbox", "status").stdout.splitlines()
    assert status[0].split() == ["HOST", "ADDRESS", "PID1", "STATE"]
    assert sorted((line.split()[0], line.split()[-1]) for line in status[1 : 1 + len(HOSTS)]) == sorted(
        (h, "running") for h in HOSTS
    )
    for host in HOSTS:
        assert on_host(host, "hostname; ps -p 1 -o comm=").stdout.split() == [host, "systemd"]


def test_up_again_is_a_no_op(sandbox):
    again = pdfleet("sandbox", "up")
    assert "sandbox already up (5 hosts): nothing to do" in again.stdout


def test_hosts_reach_each_other_by_name_and_nothing_else(sandbox):
    result = on_host("prefill-0", "ping -c1 -W2 decode-1 >/dev/null && echo reached")
    assert result.stdout.strip() == "reached"
    # No route off the bridge: the kernel refuses before any packet is sent (this machine's own uplink address
    # and a public one alike).
    for target in ("192.0.2.2", "1.1.1.1"):
        result = on_host("decode-0", f"ip route get {target}", check=False)
        assert result.returncode != 0 and "Network is unreachable" in result.stderr
    probe = (
        "import socket,errno\ntry:\n socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
        "except OSError as e:\n print(errno.errorcode[e.errno])"
    )
    assert on_host("decode-0", f'python3 -c "{probe}"').stdout.strip() == "ENETUNREACH"


def test_a_file_written_on_one_host_is_absent_on_another(sandbox):
    on_host("prefill-0", "echo mine > /root/isolation-check")
    assert on_host("prefill-0", "cat /root/isolation-check").stdout == "mine\n"
    assert on_host("decode-0", "test -e /root/isolation-check", check=False).returncode == 1


def test_global_sysctls_are_read_only_and_this_machine_is_untouched(sandbox):
    before = Path("/proc/sys/vm/swappiness").read_text()
    result = on_host("prefill-1", "sysctl -w vm.swappiness=1", check=False)
    assert result.returncode != 0 and 'permission denied on key "vm.swappiness"' in result.stderr
    assert Path("/proc/sys/vm/swappiness").read_text() == before
    # PCI config space and the like stay out of reach too.
    result = on_host("prefill-1", "touch /proc/bus/pci/devices", check=False)
    assert result.returncode != 0 and "Read-only file system" in result.stderr
    # Per-namespace keys work: they are the host's own.
    on_host("prefill-1", "sysctl -w net.ipv4.tcp_keepalive_time=123")
    assert Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text().strip() != "123"


def _deploy() -> dict:
    return deploy("tests/sandbox/deploy_smoke.py")["totals"]


def test_a_real_deploy_twice_changes_nothing_the_second_time(sandbox):
    first = _deploy()
    assert first["error"] == 0
    second = _deploy()
    assert second == {"hosts": 35, "success": 0, "error": 0, "no_change": 35}
    for host in HOSTS:
        assert on_host(host, "cat /run/pdfleet-smoke").stdout == f"hello from {host}\n"
        assert on_host(host, "jq -n 1").stdout == "1\n"  # installed from the offline repository


def test_a_template_change_shows_in_dry_diff(sandbox):
    _deploy()
    result = pyinfra(
        "--dry",
        "--diff",
        INVENTORY,
        "tests/sandbox/deploy_smoke.py",
        "--data",
        "smoke_greeting=bonjour",
        "--limit",
        "decode-1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "[decode-1]  Will modify /etc/pdfleet-smoke/smoke.env" in out
    assert "- GREETING=hello" in out and "+ GREETING=bonjour" in out
    assert re.search(r"Smoke \| render /etc/pdfleet-smoke/smoke.env\s+1 \(decode-1\)", out)
    # --dry changed nothing.
    assert on_host("decode-1", "grep GREETING /etc/pdfleet-smoke/smoke.env").stdout == "GREETING=hello\n"


def test_a_rebooted_host_comes_back_with_its_disk(sandbox):
    on_host("decode-1", "echo kept > /root/reboot-check")
    before = on_host("decode-1", "systemctl show -p ActiveEnterTimestampMonotonic --value multi-user.target").stdout
    on_host("decode-1", "systemctl reboot", check=False)
    deadline = time.monotonic() + 60
    while True:
        result = on_host("decode-1", "systemctl is-system-running", check=False, timeout=10)
        if result.stdout.strip() == "running":
            pid1_start = on_host("decode-1", "ps -p 1 -o lstart=").stdout
            if on_host("decode-1", "cat /root/reboot-check", check=False).stdout == "kept\n" and pid1_start:
                break
        assert time.monotonic() < deadline, "decode-1 did not come back within 60 s"
        time.sleep(0.5)
    console = (ROOT / ".cache/sandbox/hosts/decode-1/console.log").read_text()
    assert "decode-1: rebooted" in console and "decode-1: boot 2" in console
    after = on_host("decode-1", "systemctl show -p ActiveEnterTimestampMonotonic --value multi-user.target").stdout
    assert after != before


def _leftovers() -> list[str]:
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith("pdfsb-")]
    if subprocess.run(["ip", "link", "show", "pdfsb0"], capture_output=True).returncode == 0:
        found.append("bridge pdfsb0")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if ": vpdfsb" in line]
    for base in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if (base / "pdfleet-sandbox").exists():
            found.append(f"cgroup {base / 'pdfleet-sandbox'}")
    mounts = Path("/proc/mounts").read_text()
    found += [f"mount {line.split()[1]}" for line in mounts.splitlines() if ".cache/sandbox" in line]
    sandbox_dir = str(ROOT / ".cache/sandbox")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if sandbox_dir in cmdline or "pdfleet/sandbox/supervise.sh" in cmdline:
                found.append(f"process {proc.name}: {cmdline.replace(chr(0), ' ')[:80]}")
    if (ROOT / ".cache/sandbox/hosts").exists() and any((ROOT / ".cache/sandbox/hosts").iterdir()):
        found.append("host disks under .cache/sandbox/hosts")
    return found


def test_down_leaves_nothing_behind_and_a_cached_up_is_quick(sandbox, tmp_path):
    # A host started from another inventory (one more spare) goes down with a plain `down` too.
    spare = inventory_copy(tmp_path, lambda doc: doc["nodes"].append({"name": "spare-1", "address": "10.77.0.16"}))
    result = pdfleet("sandbox", "up", "-i", str(spare))
    assert "spare-1 started" in result.stdout
    assert pdfleet("sandbox", "ssh", "-i", str(spare), "spare-1", "hostname").stdout == "spare-1\n"
    result = pdfleet("sandbox", "down")
    assert re.fullmatch(r"sandbox down in \d+\.\d s\n", result.stdout)
    assert _leftovers() == []
    started = time.monotonic()
    result = pdfleet("sandbox", "up")
    took = time.monotonic() - started
    assert (
        "sandbox up in" in result.stdout
        and "prefill-0, prefill-1, decode-0, decode-1, spare-0 started" in result.stdout
    )
    assert took < 15, f"a cached up took {took:.1f} s"
    assert on_host("decode-1", "systemctl is-system-running").stdout == "running\n"


def test_deploy_code_knows_nothing_of_the_sandbox():
    """The simulated hosts differ from real ones only in their image: no deploy code mentions stand-ins."""
    deploy_code = [
        *ROOT.glob("deploys/**/*.py"),
        *ROOT.glob("roles/**/*.py"),
        *ROOT.glob("templates/**/*"),
        *(ROOT / "pdfleet").glob("*.py"),
    ]
    offenders = [
        str(path.relative_to(ROOT))
        for path in deploy_code
        if path.is_file()
        and path.name != "cli.py"
        and re.search(r"stand-?in|sandbox|pdfleet-pypi|pdfleet-repo", path.read_text(), re.IGNORECASE)
    ]
    assert offenders == []
