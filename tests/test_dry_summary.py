"""pdfleet dry-summary on plans shaped as pyinfra 3.10 prints them with --dry --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pdfleet.drysummary import markdown, summarise

PDFLEET = str(Path(sys.executable).parent / "pdfleet")


def op(name: str, change=(), conditional=()) -> dict:
    return {
        "op_hash": "0" * 40,
        "name": name,
        "names": [name],
        "args": [],
        "hosts_with_change": list(change),
        "hosts_with_conditional_change": list(conditional),
    }


BUMP = {
    "plan": [
        op("NVIDIA | pin the driver set", change=["decode-0", "decode-1"]),
        op("NVIDIA | driver set installed and held", change=["decode-0", "decode-1"]),
        op("NVIDIA | mark for reboot: new driver or nouveau blacklist", conditional=["decode-0", "decode-1"]),
        op("Base | packages"),
    ],
    "results": None,
}
CONVERGED = {"plan": [op("Base | packages"), op("Units | reload units", conditional=["decode-0"])], "results": None}


def test_per_host_changes_and_conditional_steps():
    summary = summarise(json.dumps(BUMP))
    assert summary["decode-0"] == {
        "change": ["NVIDIA | pin the driver set", "NVIDIA | driver set installed and held"],
        "conditional": ["NVIDIA | mark for reboot: new driver or nouveau blacklist"],
    }
    assert markdown(summary).splitlines()[2] == (
        "| decode-0 | NVIDIA | pin the driver set<br>NVIDIA | driver set installed and held | 1 steps |"
    )


def test_cli_exit_status_says_whether_anything_would_change(tmp_path):
    bump, converged, junk = tmp_path / "bump.json", tmp_path / "converged.json", tmp_path / "junk.json"
    bump.write_text(json.dumps(BUMP))
    converged.write_text(json.dumps(CONVERGED))
    junk.write_text("Connecting to hosts...")
    changed = subprocess.run([PDFLEET, "dry-summary", str(bump)], capture_output=True, text=True)
    assert changed.returncode == 1 and "| decode-1 |" in changed.stdout
    quiet = subprocess.run([PDFLEET, "dry-summary", str(converged)], capture_output=True, text=True)
    assert (quiet.returncode, quiet.stdout) == (0, "Nothing to change on any host.\n")
    bad = subprocess.run([PDFLEET, "dry-summary", str(junk)], capture_output=True, text=True)
    assert bad.returncode != 0 and f"{junk}: not the JSON of `pyinfra --dry --json`" in bad.stderr
