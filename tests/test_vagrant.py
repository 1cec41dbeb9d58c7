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


def _validate(directory: Path, vagrantfile: str) -> subprocess.CompletedProcess:
    """`vagrant validate` of this Vagrantfile text, with the libvirt provider (Debian's vagrant-libvirt)."""
    if not shutil.which("vagrant"):
        if os.environ.get("PDFLEET_REQUIRE_VAGRANT"):
            pytest.fail("vagrant is not installed (apt-get install vagrant vagrant-libvirt)")
        pytest.skip("vagrant is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Vagrantfile").write_text(vagrantfile)
    env = {**os.environ, "VAGRANT_HOME": str(directory / "vagrant.d"), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    result = subprocess.run(
        ["vagrant", "validate"], cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if "No usable default provider" in result.stdout + result.stderr:
        pytest.fail("vagrant has no provider to validate with: apt-get install vagrant-libvirt (.ci/run does)")
    return result


def test_vagrant_validate(tmp_path):
    result = _validate(tmp_path, (ROOT / "Vagrantfile").read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully." in result.stdout
    assert (tmp_path / ".vagrant/pdfleet_ed25519.pub").read_text().startswith("ssh-ed25519 ")


def test_vagrant_validate_refuses_a_wrong_provider_setting(tmp_path):
    """The provider's settings are checked too, so the test above would catch a misspelt one."""
    wrong = (ROOT / "Vagrantfile").read_text().replace("lv.memory = 4096", "lv.memroy = 4096")
    assert wrong != (ROOT / "Vagrantfile").read_text()
    result = _validate(tmp_path, wrong)
    assert result.returncode != 0
    assert "memroy" in result.stdout + result.stderr
