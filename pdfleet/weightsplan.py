"""Where each node's weights and DeepGEMM kernels come from, as data: the stager's configuration, the share that
peers copy from, and the stamp a staged model directory carries.

The WAN is crossed once per cluster: the seed node (`model.seed`, default the first node) downloads from the hub
or a mirror; every other node copies from a peer inside the cluster, in waves that fan out from the seed
(`copy_waves`). The seed itself tries its
peers before the hub, so a replaced seed does not download again what the cluster already holds. Peers serve
their model directory and DeepGEMM cache read-only through an rsync daemon (`share.port`) that answers only the
cluster's own addresses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pdfleet.cluster import Cluster

STAGER = "/usr/local/lib/pdfleet/pdfleet-weights.py"  # pdfleet/onhost/weights.py, as is
STAGER_CONFIG = "/etc/pdfleet/weights.json"
TOKEN_FILE = "/etc/pdfleet/secrets/hub-token"  # only on the seed, 0600 in a 0700 directory
SHARE_CONFIG = "/etc/pdfleet/rsyncd.conf"
SHARE_UNIT = "pdfleet-share.service"
WEIGHTS_MODULE = "weights"  # rsync module: the model directory
CACHE_MODULE = "deep-gemm"  # rsync module: the DeepGEMM cache
STAMP = ".pdfleet/verified.json"  # written by the stager after verification, removed before any change
CACHE_STAMP = "pdfleet.key"  # in the DeepGEMM cache: the key it was built for


def copy_waves(cluster: Cluster) -> list[dict[str, str]]:
    """Every node but the seed, in waves, each with the peer it copies from: {node: source} per wave.

    A node that holds the weights (the seed, then every node of an earlier wave) serves at most
    `share.copies_per_source` copies in a wave, so no node's link carries the whole cluster: 4 nodes take one
    wave (3 copies from the seed, by default), 32 nodes three (3, 12, 16). Nodes in the inventory's order,
    sources in the order they got the weights.
    """
    per_source = cluster.share_copies_per_source
    holders = [cluster.model.seed]
    waiting = [node.name for node in cluster.nodes if node.name != cluster.model.seed]
    waves = []
    while waiting:
        wave = {}
        for index, node in enumerate(waiting[: len(holders) * per_source]):
            wave[node] = holders[index // per_source]
        waiting = waiting[len(wave) :]
        holders.extend(wave)
        waves.append(wave)
    return waves


def copy_source(cluster: Cluster, node: str) -> str | None:
    """The peer `node` copies from in its wave (None for the seed)."""
    return next((wave[node] for wave in copy_waves(cluster) if node in wave), None)


def peers(cluster: Cluster, node: str) -> list[dict]:
    """The nodes this node may copy from, in the order it tries them: its wave's source, then the seed, then the
    inventory's order (a source that fails or lacks the weights is skipped by the stager)."""
    first = [copy_source(cluster, node), cluster.model.seed]
    ordered = sorted(cluster.nodes, key=lambda n: first.index(n.name) if n.name in first else len(first))
    return [{"name": n.name, "address": n.address, "port": cluster.share_port} for n in ordered if n.name != node]


def stager_config(cluster: Cluster, node: str) -> dict:
    """What pdfleet-weights.py needs on one node (no secret: the token is a separate root-only file)."""
    model = cluster.model
    seed = node == model.seed
    return {
        "node": node,
        "repo": model.repo,
        "revision": model.revision,
        "path": model.path,
        "endpoint": model.endpoint if seed else None,  # None: peers only, never the WAN
        "token_file": TOKEN_FILE if seed else None,
        "peers": peers(cluster, node),
        "checksums": model.checksums,
        "workers": model.download_workers,
        "free_margin_bytes": model.free_margin_gb * 10**9,
    }


def stager_config_text(cluster: Cluster, node: str) -> str:
    return json.dumps(stager_config(cluster, node), indent=2) + "\n"


@dataclass(frozen=True)
class StagedWeights:
    """A model directory as a fact reads it: the stamp (None when absent or unreadable) and the files' sizes."""

    stamp: dict | None
    sizes: dict  # {path relative to the model directory: bytes}, the stager's own .pdfleet/ left out


def staged_problem(state: StagedWeights, repo: str, revision: str) -> str | None:
    """Why the directory does not hold a verified copy of repo@revision, or None when it does."""
    stamp = state.stamp
    if stamp is None:
        return "not staged (no verified stamp)" if not state.sizes else "partly staged (no verified stamp)"
    if stamp.get("repo") != repo or stamp.get("revision") != revision:
        return f"holds {stamp.get('repo')}@{str(stamp.get('revision'))[:12]}, not {repo}@{revision[:12]}"
    files = stamp.get("files") or {}
    if not files:
        return "the stamp lists no files"
    missing = sorted(name for name in files if name not in state.sizes)
    if missing:
        return f"{len(missing)} file(s) missing, first {missing[0]}"
    wrong = sorted(name for name, size in files.items() if state.sizes[name] != size)
    if wrong:
        name = wrong[0]
        return (
            f"{len(wrong)} file(s) of the wrong size, first {name}: {state.sizes[name]} bytes, expected {files[name]}"
        )
    return None


def human_bytes(count: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def staged_summary(state: StagedWeights) -> str:
    files = (state.stamp or {}).get("files") or {}
    return f"{len(files)} files, {human_bytes(sum(files.values()))}"
