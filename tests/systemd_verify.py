"""Run `systemd-analyze verify` on rendered units, in a throw-away root.

verify also checks that each Exec*= command exists and is executable, and that Requires= targets exist. The
commands (the SGLang venv, docker, smg) are installed on real hosts by other roles, so the verify root holds
empty executables at exactly the paths the units name, beside a copy of this machine's systemd unit tree.
Any output at all counts as a failure: systemd reports unknown keys as warnings with exit status 0.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SYSTEMD_UNIT_TREE = Path("/usr/lib/systemd/system")
EXEC_KEYS = ("ExecStart=", "ExecStartPre=", "ExecStartPost=", "ExecStop=", "ExecCondition=", "ExecReload=")


def commands_of(unit_text: str) -> set[str]:
    """The absolute paths of the programs a unit's Exec*= lines run."""
    commands = set()
    for line in unit_text.splitlines():
        for key in EXEC_KEYS:
            if line.startswith(key):
                program = line[len(key) :].lstrip("-@:+!").split()[0]
                commands.add(program)
    return commands


def verify_units(units: dict[str, str], root: Path) -> tuple[int, str]:
    """Verify units {file name: text} together; returns (exit status, everything systemd-analyze printed)."""
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    shutil.copytree(SYSTEMD_UNIT_TREE, root / SYSTEMD_UNIT_TREE.relative_to("/"), symlinks=True)
    for name, text in units.items():
        (unit_dir / name).write_text(text)
        for program in commands_of(text):
            stub = root / program.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--generators=no", f"--root={root}", *units],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()
