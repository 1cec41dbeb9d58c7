"""What every node needs before the GPU stack: the distribution the inventory names, base packages, one clock
(chrony), every cluster node in /etc/hosts, memlock and nofile limits, kernel settings (each with its reason in
/etc/sysctl.d), a journal that survives reboots, and unattended upgrades kept off the held vendor packages."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import DeployError, FactBase, deploy
from pyinfra.operations import apt, files, server, systemd

from pdfleet.hostconfig import DISTRIBUTIONS
from pdfleet.hostplan import BASE_PACKAGES, hosts_entries, sysctls
from roles import common

LIMITS_FILE = "/etc/security/limits.d/90-pdfleet.conf"
SYSCTL_FILE = "/etc/sysctl.d/90-pdfleet.conf"
JOURNALD_FILE = "/etc/systemd/journald.conf.d/90-pdfleet.conf"
UNATTENDED_FILE = "/etc/apt/apt.conf.d/51pdfleet-unattended-upgrades"
CHRONY_SOURCES = "/etc/chrony/sources.d/pdfleet.sources"
HOSTS_MARKER = "# {mark} pdfleet: cluster nodes"


class OsRelease(FactBase):
    """/etc/os-release as {KEY: value}."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self) -> str:
        return "cat /etc/os-release 2>/dev/null || true"

    def process(self, output: list[str]) -> dict:
        release = {}
        for line in output:
            key, sep, value = line.partition("=")
            if sep:
                release[key.strip()] = value.strip().strip('"')
        return release


def check_distribution() -> None:
    """Stop before any change when the host runs something else than the inventory says (the repository paths,
    package names and kernel flavours all follow from it)."""
    cluster = common.cluster()
    _, _, os_id, version_id = DISTRIBUTIONS[cluster.host.distribution]
    release = host.get_fact(OsRelease)
    found = f"{release.get('ID', '?')} {release.get('VERSION_ID', '?')}"
    if (release.get("ID"), release.get("VERSION_ID")) != (os_id, version_id):
        raise DeployError(
            f"{cluster.source}: node '{common.node_name()}': field 'host.distribution': found {found} on the host, "
            f"expected {os_id} {version_id} (the inventory says {cluster.host.distribution})"
        )


@deploy("Base")
def base():
    cluster = common.cluster()
    config = cluster.host.base
    check_distribution()

    apt.packages(
        name="packages",
        packages=sorted({*BASE_PACKAGES, *config.extra_packages}),
        no_recommends=True,
    )

    if config.ntp_servers:
        sources = common.put_rendered(CHRONY_SOURCES, name="time servers")
    else:
        sources = files.file(name="distribution's time servers", path=CHRONY_SOURCES, present=False)
    systemd.service(name="time sync running", service="chrony.service", running=True, enabled=True)
    server.shell(
        name="time sync reads the new servers",
        commands=["chronyc reload sources"],
        _if=sources.did_change,
    )

    files.block(
        name="cluster nodes in /etc/hosts",
        path="/etc/hosts",
        content="\n".join(f"{address} {name}" for address, name in hosts_entries(cluster)),
        marker=HOSTS_MARKER,
    )
    common.put_rendered(LIMITS_FILE, name="memlock and nofile limits")

    common.put_rendered(SYSCTL_FILE, name="kernel settings at every boot")
    for setting in sysctls(cluster, common.node_name()):
        server.sysctl(name=f"{setting.key} now", key=setting.key, value=setting.value)

    journald = common.put_rendered(JOURNALD_FILE, name="persistent journal")
    systemd.service(
        name="journald keeps the journal on disk",
        service="systemd-journald.service",
        restarted=True,
        _if=journald.did_change,
    )
    common.put_rendered(UNATTENDED_FILE, name="unattended upgrades leave the held packages alone")
