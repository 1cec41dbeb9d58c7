"""Security (`security:` in the inventory): the nodes' firewall and the API keys of the router and the engines.
Every knob has a default but `admin_cidrs`, which the firewall needs (no default can know where the operators
are); the comment beside each says what it does. docs/security.md tells the whole story."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pdfleet.reader import Section

ANYWHERE = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Security:
    firewall: bool
    admin_cidrs: tuple[str, ...]
    client_cidrs: tuple[str, ...]
    firewall_confirm_secs: int
    api_keys: bool
    client_keys_env: str
    client_keys_file: str | None
    engine_key_env: str
    engine_key_file: str | None

    def networks(self, which: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(IPv4 networks, IPv6 networks) of `admin_cidrs` or `client_cidrs`, as nftables writes them."""
        found = [ipaddress.ip_network(c) for c in getattr(self, which)]
        return (
            tuple(str(n) for n in found if n.version == 4),
            tuple(str(n) for n in found if n.version == 6),
        )


def _network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=True)
        return True
    except ValueError:
        return False


def read_security_config(top: Section) -> Security:
    s = top.section("security", "security")
    firewall = s.boolean("firewall", True)  # nftables on every node: internal ports to the cluster only, else dropped
    cidrs = {
        "check": _network,
        "expected": "a list of networks like 10.0.0.0/24 or fd00::/64 (no host bits set)",
        "item": "a network like 10.0.0.0/24 or fd00::/64 (no host bits set)",
        "unique": "network",
        "same": ipaddress.ip_network,
    }
    # networks trusted with every port of every node (SSH, Prometheus, Grafana, engines): operators, pdfleet
    admin_cidrs = s.string_list("admin_cidrs", None, **cidrs)
    if firewall and admin_cidrs is None and not s.has("admin_cidrs"):
        s.error(
            "admin_cidrs",
            "nothing",
            "the networks operators and pdfleet connect from, like [10.0.0.0/24] (the firewall drops SSH from anywhere "
            "else), or firewall: false",
        )
    elif firewall and admin_cidrs == ():
        s.error("admin_cidrs", "an empty list", "at least one network, else no one could reach SSH")
    config = Security(
        firewall=firewall,
        admin_cidrs=admin_cidrs or (),
        # networks the router's client port (router.port) accepts connections from
        client_cidrs=s.string_list("client_cidrs", ANYWHERE, **cidrs),
        # seconds a new ruleset waits for pdfleet's new SSH connection before it is rolled back by the node itself
        firewall_confirm_secs=s.integer("firewall_confirm_secs", 60, lo=10, hi=3600),
        # on: the router takes only requests carrying a client key, the engines only the engine key; off: open
        api_keys=s.boolean("api_keys", True),
        # environment variable holding the router's client keys, comma-separated (or client_keys_file)
        client_keys_env=s.env_name("client_keys_env", "PDFLEET_CLIENT_KEYS"),
        client_keys_file=s.string("client_keys_file", None),  # a root-only file, one key per line (beside this file)
        # environment variable holding the engines' key: only the router and pdfleet's own checks hold it
        engine_key_env=s.env_name("engine_key_env", "PDFLEET_ENGINE_KEY"),
        engine_key_file=s.string("engine_key_file", None),  # or a root-only file holding it (beside this file)
    )
    s.finish()
    return config
