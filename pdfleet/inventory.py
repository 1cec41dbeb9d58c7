"""The pyinfra side of an inventory: turn `NAME.yaml` into the groups and host data pyinfra expects.

`inventories/NAME.py` calls `pyinfra_groups(__file__)`. The YAML is validated first; on any problem the problems
are printed, one per line, and pyinfra stops before contacting a host (exit status 2, no traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pdfleet import knownhosts
from pdfleet.cluster import Cluster, Node, load_cluster
from pdfleet.errors import InventoryError

GROUPS = ("prefill", "decode", "router", "spare")


def yaml_for(inventory: str | Path) -> Path:
    """The YAML file of an inventory given as NAME.py or NAME.yaml."""
    path = Path(inventory)
    if path.suffix in (".yaml", ".yml"):
        return path
    return path.with_suffix(".yaml")


def display_path(path: Path) -> str:
    """A path as the person typed it, relative to the working directory where possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load(inventory: str | Path) -> Cluster:
    path = yaml_for(inventory)
    return load_cluster(path, display_path(path))


def host_data(cluster: Cluster, node_name: str, yaml_path: Path, rendered_as: str | None = None) -> dict:
    """What pyinfra knows about one host: how to reach it and where it sits in the cluster.

    + rendered_as: the inventory's name in rendered files and messages when `yaml_path` is a staged copy of it
      (blue/green's next set), so that the files it renders are those the inventory will render once rewritten
    """
    node = cluster.node(node_name)
    placement = cluster.placement(node_name)
    data = {
        "ssh_hostname": node.address,
        "ssh_user": cluster.ssh.user,
        "ssh_port": cluster.ssh.port,
        "pdfleet_inventory": str(yaml_path.resolve()),
        "pdfleet_cluster": cluster.name,
        "pdfleet_node": node.name,
        "pdfleet_address": node.address,
        "pdfleet_gpus": node.gpus,
        "pdfleet_hcas": list(node.hcas),
        "pdfleet_role": placement[0].role if placement else "spare",
        "pdfleet_instance": placement[0].name if placement else None,
        "pdfleet_rank": placement[1] if placement else None,
        "pdfleet_router": cluster.router.node == node_name,
    }
    if rendered_as:
        data["pdfleet_inventory_name"] = rendered_as
    if cluster.ssh.key:
        data["ssh_key"] = _beside(yaml_path, cluster.ssh.key)
    data["ssh_known_hosts_file"] = _beside(yaml_path, cluster.ssh.known_hosts)
    data["ssh_strict_host_key_checking"] = "yes" if cluster.ssh.strict_host_keys else "accept-new"
    return data


def _beside(yaml_path: Path, path: str) -> str:
    """A path from the inventory: ~ expanded, relative ones taken from the inventory file's directory."""
    expanded = Path(path).expanduser()
    return str(expanded if expanded.is_absolute() else (yaml_path.resolve().parent / expanded).resolve())


def groups(cluster: Cluster, yaml_path: Path, rendered_as: str | None = None) -> dict[str, list[tuple[str, dict]]]:
    """pyinfra groups: prefill, decode (nodes by role), router (the router's node), spare (nodes in no instance)."""
    out: dict[str, list[tuple[str, dict]]] = {name: [] for name in GROUPS}
    for node in cluster.nodes:
        data = host_data(cluster, node.name, yaml_path, rendered_as)
        placement = cluster.placement(node.name)
        out[placement[0].role if placement else "spare"].append((node.name, data))
        if cluster.router.node == node.name:
            out["router"].append((node.name, data))
    return out


def pyinfra_groups(inventory_py: str, rendered_as: str | None = None) -> dict[str, list[tuple[str, dict]]]:
    """Entry point for inventories/NAME.py; exits with the problem list on an invalid inventory.

    + rendered_as: for a staged copy of an inventory (pdfleet blue-green), the name of the inventory it stands for
    """
    yaml_path = yaml_for(inventory_py)
    try:
        cluster = load_cluster(yaml_path, rendered_as or display_path(yaml_path))
    except InventoryError as exc:
        print(f"pdfleet: {display_path(yaml_path)} is not a valid inventory; nothing was contacted:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    warn_unpinned(cluster, yaml_path)
    return groups(cluster, yaml_path, rendered_as)


def known_hosts_path(cluster: Cluster, yaml_path: Path) -> Path:
    return Path(_beside(yaml_path, cluster.ssh.known_hosts))


def unpinned(cluster: Cluster, yaml_path: Path) -> list[Node]:
    """The nodes whose host key `ssh.known_hosts` does not hold (plain or hashed entries)."""
    path = known_hosts_path(cluster, yaml_path)
    text = path.read_text(errors="replace") if path.is_file() else ""
    return [node for node in cluster.nodes if not knownhosts.is_pinned(text, node.address, cluster.ssh.port)]


def warn_unpinned(cluster: Cluster, yaml_path: Path) -> None:
    """First contact: tell the person how to pin the keys of nodes pyinfra is about to refuse (or, with
    strict_host_keys false, to trust blindly)."""
    missing = unpinned(cluster, yaml_path)
    if not missing:
        return
    path = known_hosts_path(cluster, yaml_path)
    inventory_py = display_path(yaml_path.with_suffix(".py"))
    outcome = (
        "pyinfra will refuse to connect to them"
        if cluster.ssh.strict_host_keys
        else "ssh.strict_host_keys is false: their keys will be pinned unchecked at first contact"
    )
    print(
        f"pdfleet: {len(missing)} node(s) have no pinned SSH host key in {path} (ssh.known_hosts of "
        f"{display_path(yaml_path)}); {outcome}:",
        file=sys.stderr,
    )
    for node in missing:
        print(f"  {node.name} {node.address}", file=sys.stderr)
    print(
        "  Pin each after checking its key out of band: on the node's console, `ssh-keygen -lf "
        "/etc/ssh/ssh_host_ed25519_key.pub` prints the fingerprint; then\n"
        f"    pdfleet trust-host {inventory_py} NODE --fingerprint SHA256:...\n"
        "  scans the node, compares, and pins it only if they match (without --fingerprint it shows the scanned "
        "one and asks).",
        file=sys.stderr,
    )
