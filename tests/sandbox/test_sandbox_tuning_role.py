"""roles.tuning on a sandbox host: the boot-time tuning unit installed, enabled and run (its writes to this
machine's PCI and sysfs settings refused: they are read-only in the sandbox), then nothing changes."""

from __future__ import annotations

import json
import subprocess

from tests.sandbox.conftest import INVENTORY, PYINFRA, ROOT, on_host

HOST = "decode-0"


def deploy() -> dict:
    result = subprocess.run(
        [PYINFRA, "-y", "--json", "--limit", HOST, INVENTORY, "tests/sandbox/deploys/tuning.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)["results"]["totals"]


def test_tuning_unit_runs_and_a_second_converge_changes_nothing(sandbox):
    first = deploy()
    assert first["error"] == 0 and first["success"] >= 3
    assert on_host(HOST, "systemctl is-active pdfleet-host-tuning.service").stdout == "active\n"
    assert on_host(HOST, "systemctl is-enabled pdfleet-host-tuning.service").stdout == "enabled\n"
    second = deploy()
    assert second["success"] == 0 and second["error"] == 0
