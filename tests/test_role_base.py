"""roles.base on pyinfra's @fake connector: a fresh Ubuntu 24.04 host, a host running another distribution."""

from __future__ import annotations

import pytest
from pyinfra.api import DeployError

from roles.base import base
from tests.fakehosts import ROOT, converge

UBUNTU_2404 = {"cat /etc/os-release": ['NAME="Ubuntu"', "ID=ubuntu", 'VERSION_ID="24.04"']}
UBUNTU_2204 = {"cat /etc/os-release": ['NAME="Ubuntu"', "ID=ubuntu", 'VERSION_ID="22.04"']}


def test_fresh_host_gets_packages_hosts_limits_sysctls_and_a_persistent_journal():
    run = converge(base, {"decode-0": UBUNTU_2404})["decode-0"]
    install = [c for c in run.commands if "apt-get" in c and "install" in c]
    assert len(install) == 1
    for package in ("chrony", "numactl", "pciutils", "jq", "curl", "rsync"):
        assert f" {package}" in install[0], package
    hosts_block = [c for c in run.commands if "/etc/hosts" in c and "10.10.0.13 decode-0" in c]
    assert hosts_block and all(f"10.10.0.{n}" in hosts_block[-1] for n in (11, 12, 13, 14))
    assert "sysctl kernel.numa_balancing=0" in run.commands
    assert "sysctl vm.max_map_count=1048576" in run.commands
    # decode-0 is the decode head: dist-init 5757 and the ports SGLang binds next to it, plus HTTP.
    assert "sysctl net.ipv4.ip_local_reserved_ports=5757-5763,5770,8055,8730,9100,9400" in run.commands
    assert run.changes("journald keeps the journal on disk") is True
    assert not run.ran("chronyc reload sources")  # no site time servers in prod.yaml: nothing to reload


def test_another_distribution_stops_before_any_change():
    with pytest.raises(DeployError) as error:
        converge(base, {"decode-0": UBUNTU_2204}, dry=True)
    assert str(error.value) == (
        f"{ROOT / 'inventories/prod.yaml'}: node 'decode-0': field 'host.distribution': "
        "found ubuntu 22.04 on the host, expected ubuntu 24.04 (the inventory says ubuntu24.04)"
    )
