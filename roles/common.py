"""What every role needs: this host's place in the cluster and the files `pdfleet.render` made for it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache
from io import StringIO
from pathlib import Path

from gevent.lock import BoundedSemaphore
from pyinfra import host, state
from pyinfra.api import OperationError
from pyinfra.operations import files

from pdfleet.cluster import Cluster, load_cluster
from pdfleet.render import RenderedFile, render
from pdfleet.serving import ServingPlan, plan

# The scripts pdfleet installs on nodes as they are (pdfleet/onhost/: standard library only).
ONHOST = Path(__file__).resolve().parent.parent / "pdfleet" / "onhost"


@lru_cache(maxsize=4)
def _cluster_and_files(
    inventory_yaml: str, rendered_as: str | None = None
) -> tuple[Cluster, ServingPlan, dict[str, dict[str, RenderedFile]]]:
    # Validated once per pyinfra run (the inventory module already refused a bad one before any contact). A staged
    # copy (blue/green) renders under the name of the inventory it stands for.
    cluster = load_cluster(inventory_yaml, rendered_as)
    serving = plan(cluster)
    return cluster, serving, render(serving)


def cluster() -> Cluster:
    return _cluster_and_files(host.data.pdfleet_inventory, host.data.get("pdfleet_inventory_name"))[0]


def serving_plan() -> ServingPlan:
    """Every node's serving command, environment and units, and the router's (pdfleet.serving)."""
    return _cluster_and_files(host.data.pdfleet_inventory, host.data.get("pdfleet_inventory_name"))[1]


def outgoing_plan(inventory_yaml: str) -> ServingPlan:
    """The serving plan of the set a blue/green switch replaces (the inventory as it was before the switch)."""
    return _cluster_and_files(inventory_yaml)[1]


def node_name() -> str:
    return host.data.pdfleet_node


def rendered_files() -> dict[str, dict[str, RenderedFile]]:
    """Every node's rendered files (for what spans nodes, like an instance's inputs over all its ranks)."""
    return _cluster_and_files(host.data.pdfleet_inventory, host.data.get("pdfleet_inventory_name"))[2]


def rendered(path: str) -> RenderedFile:
    """The text this host must hold at `path`, exactly as `pdfleet render` shows it."""
    return rendered_files()[node_name()][path]


def put_rendered(path: str, name: str, **kwargs):
    """Upload a rendered file (mode included); changes only when the text or mode differ."""
    wanted = rendered(path)
    return files.put(name=name, src=StringIO(wanted.content), dest=path, mode=wanted.mode, **kwargs)


def changed(*metas) -> Callable[[], bool]:
    """An `_if` that holds when any of these operations changed its host."""
    return lambda: any(meta.did_change() for meta in metas)


def dry_run() -> bool:
    """Whether pyinfra was started with --dry. Its CLI keeps the flag to itself (it plans, then decides whether to
    execute), so deploy code that must refuse a real run but describe the same plan under --dry reads it here."""
    return "--dry" in sys.argv[1:]


# One connection opened at a time by host_of: pyinfra's Host.connect is unguarded, and the operations of several
# hosts run at once (gevent), so two of them needing the router's node both opened a connection to it, and one
# waited on it for ever (a blue/green run, limited to its incoming nodes, hung there).
_connecting = BoundedSemaphore()


def host_of(node: str):
    """The pyinfra host of another node of the cluster, connected (a run limited to some nodes connects the others
    it needs, such as the router's node for a drain)."""
    for candidate in state.inventory:
        if candidate.data.get("pdfleet_node") == node:
            if not candidate.connected:
                with _connecting:
                    if not candidate.connected:  # unless connected while this one waited its turn
                        candidate.connect(raise_exceptions=True)
            return candidate
    raise OperationError(f"node {node} is not in this run's inventory")
