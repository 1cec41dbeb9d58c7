"""What every role needs: this host's place in the cluster and the files `pdfleet.render` made for it."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from io import StringIO

from pyinfra import host
from pyinfra.operations import files

from pdfleet.cluster import Cluster, load_cluster
from pdfleet.render import RenderedFile, render
from pdfleet.serving import ServingPlan, plan


@lru_cache(maxsize=4)
def _cluster_and_files(inventory_yaml: str) -> tuple[Cluster, ServingPlan, dict[str, dict[str, RenderedFile]]]:
    # Validated once per pyinfra run (the inventory module already refused a bad one before any contact).
    cluster = load_cluster(inventory_yaml)
    serving = plan(cluster)
    return cluster, serving, render(serving)


def cluster() -> Cluster:
    return _cluster_and_files(host.data.pdfleet_inventory)[0]


def serving_plan() -> ServingPlan:
    """Every node's serving command, environment and units, and the router's (pdfleet.serving)."""
    return _cluster_and_files(host.data.pdfleet_inventory)[1]


def node_name() -> str:
    return host.data.pdfleet_node


def rendered_files() -> dict[str, dict[str, RenderedFile]]:
    """Every node's rendered files (for what spans nodes, like an instance's inputs over all its ranks)."""
    return _cluster_and_files(host.data.pdfleet_inventory)[2]


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
