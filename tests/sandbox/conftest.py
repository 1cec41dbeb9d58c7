"""The simulated cluster for the sandbox tests: up once per test session, down at its end, also on failure.

Needs root, mmdebstrap and a cgroup2 hierarchy. Without them these tests skip, unless PDFLEET_REQUIRE_SANDBOX=1
(CI), where a missing prerequisite is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pdfleet.sandbox.paths import RELATIVE_PATHS

ROOT = Path(__file__).resolve().parents[2]
PDFLEET = str(Path(sys.executable).parent / "pdfleet")
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
INVENTORY = "inventories/sandbox.py"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the sandbox needs root"
    if not shutil.which("mmdebstrap"):
        return "mmdebstrap is not installed"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/sandbox/" in str(item.fspath):
            item.add_marker(pytest.mark.sandbox)


def pdfleet(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([PDFLEET, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert result.returncode == 0, f"pdfleet {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def on_host(host: str, command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a shell command on a sandbox host over real ssh."""
    result = pdfleet("sandbox", "ssh", host, command, check=False, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{host}: {command}\n{result.stdout}\n{result.stderr}"
    return result


def pyinfra(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real pyinfra CLI, as a person runs it from the repository root (no stdin: CI has none)."""
    return subprocess.run(
        [PYINFRA, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def inventory_copy(directory: Path, change) -> Path:
    """A copy of inventories/sandbox.yaml (same file name, so rendered headers match) with `change(doc)` applied,
    its relative paths made absolute, and the pyinfra inventory beside it; returns the .py's path."""
    doc = yaml.safe_load((ROOT / "inventories/sandbox.yaml").read_text())
    for section, key in RELATIVE_PATHS:
        doc[section][key] = str((ROOT / "inventories" / doc[section][key]).resolve())
    change(doc)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sandbox.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (directory / "sandbox.py").write_text((ROOT / "inventories/sandbox.py").read_text())
    return directory / "sandbox.py"


def deploy(deploy_file: str, *extra: str, inventory: str = INVENTORY) -> dict:
    """`pyinfra -y --json INVENTORY DEPLOY`; returns its results ({"operations": [...], "totals": {...}})."""
    result = pyinfra("-y", "--json", *extra, inventory, deploy_file)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)["results"]


@pytest.fixture(scope="session")
def sandbox():
    reason = _missing()
    if reason:
        if os.environ.get("PDFLEET_REQUIRE_SANDBOX"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        up = pdfleet("sandbox", "up", timeout=900)
        yield up
    finally:
        pdfleet("sandbox", "down", check=False)
