"""Firewall: pdfleet's nftables table on every node (pdfleet/firewallplan.py renders it from the port claims and
`security:`), applied with a safety net so that a wrong rule cannot lock the operator out.

A new ruleset goes in the way `iptables-apply` does it, without a person at the keyboard:
1. Before anything, the address this SSH session comes from must be one the new rules admit (admin_cidrs or a
   cluster node): if not, stop and change nothing.
2. Arm: keep the rules file and pdfleet's live table as they are, and start a timer of the node's own systemd that
   puts both back after `security.firewall_confirm_secs`.
3. Install the file (shown by `--dry --diff` like every file), check it with `nft --check`, load it (one
   transaction).
4. Confirm from this machine: a NEW TCP connection to the node's sshd, through the new rules, must get sshd's
   banner (the running SSH session proves nothing: its packets are an established connection).
5. Disarm the timer; enable the boot-time unit. If step 3 or 4 fails, or pdfleet dies between 2 and 5, the node
   rolls back by itself.

`security.firewall: false` takes pdfleet's firewall off a node that has one (its table, boot-time unit, files; other
tables stay), and on a node without one does nothing.
"""

from __future__ import annotations

import hashlib
import socket

from pyinfra import host
from pyinfra.api import DeployError, FactBase, deploy
from pyinfra.operations import apt, files, python, server, systemd

from pdfleet import firewallplan as fw
from pdfleet.serving import UNIT_DIR
from roles import common
from roles.unitfiles import rendered_unit

BANNER_TIMEOUT_SECS = 10


class FirewallState(FactBase):
    """The rules file's sha1, whether pdfleet's table is loaded, and the address this SSH session comes from."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self) -> str:
        return (
            f'echo "sha1=$(sha1sum {fw.RULES_FILE} 2>/dev/null | cut -c1-40)"; '
            f"if nft list table {fw.TABLE} >/dev/null 2>&1; then echo table=loaded; else echo table=absent; fi; "
            'echo "client=${SSH_CLIENT%% *}"'
        )

    def process(self, output: list[str]) -> dict:
        return dict(line.partition("=")[::2] for line in output if "=" in line)


class FirewallLeftovers(FactBase):
    """What pdfleet's firewall left on a node where it is switched off: 'table' (loaded), 'enabled' (the boot-time
    unit) and the paths of its files that exist."""

    @staticmethod
    def default() -> list:
        return []

    def command(self) -> str:
        paths = " ".join((fw.RULES_FILE, fw.ROLLBACK_SCRIPT, f"{UNIT_DIR}/{fw.UNIT}"))
        return (
            f"if nft list table {fw.TABLE} >/dev/null 2>&1; then echo table; fi; "
            f"if systemctl is-enabled --quiet {fw.UNIT} 2>/dev/null; then echo enabled; fi; "
            f"for path in {paths}; do if test -e $path; then echo $path; fi; done"
        )

    def process(self, output: list[str]) -> list:
        return [line.strip() for line in output if line.strip()]


def _switch_off() -> None:
    """Take pdfleet's firewall off this node: the node is then open to whatever other tables allow."""
    left = host.get_fact(FirewallLeftovers)
    if not left:
        host.noop("security.firewall is false and this node holds no pdfleet firewall")
        return
    unit_path = f"{UNIT_DIR}/{fw.UNIT}"
    if "table" in left:
        server.shell(
            name="switched off: pdfleet's table removed (other tables stay)", commands=[f"nft delete table {fw.TABLE}"]
        )
    if "enabled" in left:
        server.shell(name="switched off: boot-time unit disabled", commands=[f"systemctl disable --quiet {fw.UNIT}"])
    if unit_path in left:
        files.file(name="switched off: boot-time unit removed", path=unit_path, present=False)
        systemd.daemon_reload(name="switched off: reload units")
    if fw.RULES_FILE in left:
        files.file(name="switched off: rules removed", path=fw.RULES_FILE, present=False)
    if fw.ROLLBACK_SCRIPT in left:
        files.file(name="switched off: rollback script removed", path=fw.ROLLBACK_SCRIPT, present=False)


def ssh_banner(address: str, port: int, timeout: float = BANNER_TIMEOUT_SECS) -> str:
    """sshd's first line on a new connection, or an exception saying why there was none."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        first = sock.recv(256).decode("ascii", "replace")
    return first.splitlines()[0] if first else ""


def _confirm(cluster, node, address: str, port: int) -> None:
    try:
        banner = ssh_banner(address, port)
    except OSError as exc:
        banner = f"no answer ({exc})"
    if not banner.startswith("SSH-"):
        raise DeployError(
            f"Firewall | node '{node.name}': a new connection from this machine to sshd at {address}:{port} through "
            f"the new rules got {banner!r}, expected sshd's banner: the node puts its previous rules back by itself "
            f"within {cluster.security.firewall_confirm_secs} s. Check security.admin_cidrs in {cluster.source}."
        )


@deploy("Firewall")
def firewall():
    cluster = common.cluster()
    if not cluster.security.firewall:
        _switch_off()
        return
    node = cluster.node(common.node_name())
    wanted = common.rendered(fw.RULES_FILE).content
    state = host.get_fact(FirewallState)

    apt.packages(name="nftables installed", packages=["nftables"], no_recommends=True)
    common.put_rendered(fw.ROLLBACK_SCRIPT, name="rollback script")
    unit = rendered_unit(fw.UNIT, name="boot-time unit verified and installed")
    systemd.daemon_reload(name="reload units", _if=unit.did_change)

    current = state.get("sha1") == hashlib.sha1(wanted.encode()).hexdigest() and state.get("table") == "loaded"
    if current:
        host.noop(f"{fw.RULES_FILE} is current and loaded")
    else:
        client = state.get("client", "")
        if client and not fw.admits(cluster, client):
            raise DeployError(
                f"{cluster.source}: node '{node.name}': field 'security.admin_cidrs': this SSH session comes from "
                f"{client}, which the new rules would not admit; expected admin_cidrs to hold it (nothing was changed)"
            )
        server.shell(
            name=f"arm the rollback ({cluster.security.firewall_confirm_secs} s)",
            commands=[fw.arm_command(cluster.security.firewall_confirm_secs)],
        )
        common.put_rendered(fw.RULES_FILE, name="rules")
        server.shell(name="check and load the rules (one transaction)", commands=[fw.apply_command()])
        python.call(
            name="a new SSH connection gets through",
            function=_confirm,
            cluster=cluster,
            node=node,
            # where pyinfra itself connects to (the node's address unless the inventory's data says otherwise)
            address=host.data.get("ssh_hostname") or node.address,
            port=int(host.data.get("ssh_port") or cluster.ssh.port),
        )
        server.shell(name="confirmed: disarm the rollback", commands=[fw.disarm_command()])
    systemd.service(name="loaded at boot", service=fw.UNIT, enabled=True, running=True)
