"""Each node's firewall, from the inventory: an nftables table of pdfleet's own, rendered from the cluster's port
claims (`pdfleet.cluster.port_claims`) and `security:` (pdfleet/securityconfig.py).

Pure: `pdfleet.render` writes these files, roles/firewall.py applies them with the safety net:

- The cluster's own addresses and `security.admin_cidrs` reach every port: NCCL, Gloo, the DP-attention workers,
  the KV-transfer sockets and Mooncake's RPC bind ports chosen at run time, so no fixed list could hold them.
- `security.client_cidrs` reach the router's client port on the router's node, nothing else.
- The ports services of the plan claim on this node are dropped from anyone else, by name (`internal_tcp`), even
  if a later rule of another table were to open them; everything else is dropped by the chain's policy.
- Loopback, replies to the node's own connections, ICMP and ICMPv6 (neighbour discovery: IPv6 needs it; path MTU
  discovery: RoCE's large frames need it) pass.

The file replaces pdfleet's table in one transaction (`nft -f`: all or nothing) and leaves every other table
(Docker's, the distribution's) alone.
"""

from __future__ import annotations

import ipaddress

from pdfleet.cluster import Cluster, port_claims

TABLE = "inet pdfleet"
RULES_FILE = "/etc/pdfleet/firewall.nft"
UNIT = "pdfleet-firewall.service"
ROLLBACK_SCRIPT = "/usr/local/sbin/pdfleet-firewall-rollback"
ROLLBACK_UNIT = "pdfleet-firewall-rollback"  # a transient timer + service (systemd-run), armed while applying
ROLLBACK_DIR = "/run/pdfleet-firewall"  # what the rollback restores: the rules file and table as they were


def _split(addresses) -> tuple[list[str], list[str]]:
    found = [ipaddress.ip_network(a, strict=False) for a in addresses]
    v4 = sorted({n for n in found if n.version == 4}, key=lambda n: (n.network_address, n.prefixlen))
    v6 = sorted({n for n in found if n.version == 6}, key=lambda n: (n.network_address, n.prefixlen))

    def text(n) -> str:
        return str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)

    return [text(n) for n in v4], [text(n) for n in v6]


def _set(name: str, family: str, elements: list[str], interval: bool) -> list[str]:
    lines = [f"\tset {name} {{", f"\t\ttype {family}"]
    if interval:
        lines.append("\t\tflags interval")
    if elements:
        lines.append(f"\t\telements = {{ {', '.join(elements)} }}")
    lines.append("\t}")
    return lines


def claimed_ports(cluster: Cluster, node: str) -> list[tuple[int, str]]:
    """(port, what) of every service of the plan listening on the node, sorted, one line per port."""
    seen: dict[int, str] = {}
    for owner, port, what, *_ in port_claims(cluster):
        if owner == node and port is not None and port not in seen:
            seen[port] = what
    return sorted(seen.items())


def cluster_addresses(cluster: Cluster) -> list[str]:
    return [node.address for node in cluster.nodes]


def ruleset(cluster: Cluster, node: str) -> str:
    """The nftables file of one node: pdfleet's table, replaced atomically when loaded."""
    security = cluster.security
    cluster_v4, cluster_v6 = _split(cluster_addresses(cluster))
    admin_v4, admin_v6 = _split(security.admin_cidrs)
    client_v4, client_v6 = _split(security.client_cidrs)
    claims = claimed_ports(cluster, node)
    router = cluster.router
    serves_clients = router.node == node
    internal = [port for port, _ in claims if not (serves_clients and port == router.port)]

    lines = [
        "#!/usr/sbin/nft -f",
        f"# Managed by pdfleet from {cluster.source.rsplit('/', 1)[-1]} (cluster {cluster.name}): edits here are"
        " overwritten on the next converge.",
        f"# Node {node}'s firewall, loaded by {UNIT}: it replaces pdfleet's table in one transaction and leaves",
        "# other tables alone.",
        "#",
        "# Ports of this node's services (everything else is dropped too, unless from the cluster or admin_cidrs):",
        f"#   {cluster.ssh.port:<5} sshd: admins, cluster",
    ]
    for port, what in claims:
        who = "clients (client_cidrs), cluster, admins" if serves_clients and port == router.port else "cluster, admins"
        lines.append(f"#   {port:<5} {what}: {who}")
    lines += [
        "",
        f"table {TABLE}",
        f"delete table {TABLE}",
        f"table {TABLE} {{",
        *_set("cluster_v4", "ipv4_addr", cluster_v4, False),
        *_set("cluster_v6", "ipv6_addr", cluster_v6, False),
        *_set("admin_v4", "ipv4_addr", admin_v4, True),
        *_set("admin_v6", "ipv6_addr", admin_v6, True),
    ]
    if serves_clients:
        lines += [*_set("client_v4", "ipv4_addr", client_v4, True), *_set("client_v6", "ipv6_addr", client_v6, True)]
    lines += [
        "\tset internal_tcp {",
        "\t\ttype inet_service",
        *([f"\t\telements = {{ {', '.join(map(str, internal))} }}"] if internal else []),
        "\t}",
        "",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        '\t\tiif "lo" accept',
        "\t\tct state established,related accept",
        "\t\tct state invalid drop",
        '\t\tmeta l4proto { 1, 58 } accept comment "ICMP, ICMPv6: ping, path MTU, IPv6 neighbour discovery"',
        '\t\tip saddr @cluster_v4 accept comment "cluster nodes: every port (NCCL, Mooncake pick theirs at run time)"',
        '\t\tip6 saddr @cluster_v6 accept comment "cluster nodes"',
        '\t\tip saddr @admin_v4 accept comment "admin_cidrs: SSH, monitoring, the engines for pdfleet\'s checks"',
        '\t\tip6 saddr @admin_v6 accept comment "admin_cidrs"',
        '\t\ttcp dport @internal_tcp drop comment "the services\' ports: cluster and admins only"',
    ]
    if serves_clients:
        lines += [
            f'\t\ttcp dport {router.port} ip saddr @client_v4 accept comment "router: client_cidrs"',
            f'\t\ttcp dport {router.port} ip6 saddr @client_v6 accept comment "router: client_cidrs"',
        ]
    lines += [
        '\t\tcounter comment "dropped by the policy"',
        "\t}",
        "}",
        "",
    ]
    return "\n".join(lines)


def admits(cluster: Cluster, address: str) -> bool:
    """Whether the firewall takes a new connection to SSH from `address` (the cluster's nodes and admin_cidrs)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    networks = [*cluster.security.admin_cidrs, *cluster_addresses(cluster)]
    for net in networks:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def arm_command(confirm_secs: int) -> str:
    """Keep what the rollback restores (the rules file and pdfleet's live table), then start the timer that runs it
    unless `disarm_command` stops it first. The timer belongs to the node's systemd: it fires even if pdfleet and its
    SSH connection are gone."""
    keep = (
        f"rm -rf {ROLLBACK_DIR} && mkdir -m 0700 {ROLLBACK_DIR}"
        f" && {{ ! test -e {RULES_FILE} || cp -p {RULES_FILE} {ROLLBACK_DIR}/firewall.nft; }}"
        f" && {{ printf 'table {TABLE}\\ndelete table {TABLE}\\n';"
        f" nft list table {TABLE} 2>/dev/null || true; }} > {ROLLBACK_DIR}/live.nft"
    )
    units = f"{ROLLBACK_UNIT}.timer {ROLLBACK_UNIT}.service"
    stop_old = f"systemctl stop {units} 2>/dev/null; systemctl reset-failed {units} 2>/dev/null; true"
    timer = (
        f"systemd-run --quiet --unit={ROLLBACK_UNIT} --on-active={confirm_secs}s"
        f" --timer-property=AccuracySec=1s --timer-property=RemainAfterElapse=no {ROLLBACK_SCRIPT}"
    )
    return f"{stop_old}; {keep} && {timer}"


def apply_command() -> str:
    """Check the new file, then load it: one transaction, the old table stays if anything in it is refused."""
    return f"nft --check --file {RULES_FILE} && nft --file {RULES_FILE}"


def disarm_command() -> str:
    """The new rules let pdfleet in: stop the rollback and forget what it would have restored. Fails when the timer
    fired already (the steps between arming and here took longer than firewall_confirm_secs)."""
    return (
        f"test -d {ROLLBACK_DIR} || {{ echo 'the rollback ran already: the rules were not confirmed in time;"
        f" run again (or raise security.firewall_confirm_secs)' >&2; exit 1; }};"
        f" systemctl stop {ROLLBACK_UNIT}.timer && rm -rf {ROLLBACK_DIR}"
    )
