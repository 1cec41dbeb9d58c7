"""The Vagrantfile describes the same four nodes as inventories/vagrant.yaml, and Vagrant accepts it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pdfleet.inventory import load

ROOT = Path(__file__).resolve().parent.parent


def test_vagrantfile_nodes_match_the_vagrant_inventory():
    vagrantfile = (ROOT / "Vagrantfile").read_text()
    declared = dict(re.findall(r'"([a-z0-9-]+)"\s*=>\s*"([0-9.]+)"', vagrantfile))
    cluster = load(ROOT / "inventories/vagrant.py")
    assert declared == {node.name: node.address for node in cluster.nodes}
    assert [node.name for node in cluster.nodes] == [node.name for node in load(ROOT / "inventories/prod.py").nodes]


def test_vagrant_validate(tmp_path):
    if not shutil.which("vagrant"):
        if os.environ.get("PDFLEET_REQUIRE_VAGRANT"):
            pytest.fail("vagrant is not installed (apt-get install vagrant)")
        pytest.skip("vagrant is not installed")
    shutil.copy(ROOT / "Vagrantfile", tmp_path / "Vagrantfile")
    env = {**os.environ, "VAGRANT_HOME": str(tmp_path / "vagrant.d"), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    result = subprocess.run(
        ["vagrant", "validate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully." in result.stdout
    assert (tmp_path / ".vagrant/pdfleet_ed25519.pub").read_text().startswith("ssh-ed25519 ")
