"""A node address where it meets a port: `HOST:PORT` and URLs, and the addresses a service listens on.

An IPv6 address takes brackets wherever a port follows it (`[fd00::11]:8055`, `http://[fd00::11]:8055/health`,
RFC 3986 section 3.2.2), and stays bare where a program wants the address alone (rsyncd's `address =`, an
allow list, a socket). An IPv4 address or a host name comes out exactly as written. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress


def is_ipv6(address: str) -> bool:
    """True for an IPv6 address (bare or bracketed), False for IPv4 and host names."""
    try:
        return ipaddress.ip_address(address.strip("[]")).version == 6
    except ValueError:
        return False


def bracket(address: str) -> str:
    """The address as the host part of `HOST:PORT` or a URL: an IPv6 address in brackets, anything else as is."""
    return f"[{address}]" if is_ipv6(address) and not address.startswith("[") else address


def host_port(address: str, port: int) -> str:
    """`10.0.0.1:80`, `node-1:80`, `[fd00::1]:80`."""
    return f"{bracket(address)}:{port}"


def url(address: str, port: int, path: str = "", scheme: str = "http") -> str:
    """`http://10.0.0.1:80/health`, `http://[fd00::1]:80/health`."""
    return f"{scheme}://{host_port(address, port)}{path}"


def wildcard(address: str) -> str:
    """Every address of the node, in the family the node is reached by: `0.0.0.0` or `::`."""
    return "::" if is_ipv6(address) else "0.0.0.0"


def loopback(address: str) -> str:
    """The node's loopback in the family of its address, for a probe of a service listening on `wildcard`:
    `127.0.0.1` or `::1` (a `::` listener takes IPv4 too only while net.ipv6.bindv6only is 0)."""
    return "::1" if is_ipv6(address) else "127.0.0.1"
