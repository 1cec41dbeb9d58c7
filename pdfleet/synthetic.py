"""Generated inventories of any size and shape, for tests and benchmarks.

`inventory_document(prefill=[1, 1], decode=[2])` is the reference 2P1D cluster: one entry per instance, the
number of nodes it spans. The result is the same mapping a person would write in inventories/NAME.yaml.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REVISION = "a7e62ac04ecb2c0a54d736dc46601c5606cf10a6"


def inventory_document(
    prefill: list[int],
    decode: list[int],
    gpus: int = 8,
    sglang_version: str = "0.5.23",
    name: str = "synthetic",
) -> dict:
    nodes: list[dict] = []
    instances: list[dict] = []

    def add_instance(role: str, index: int, size: int) -> None:
        members = []
        for rank in range(size):
            number = len(nodes)
            node = f"{role}-{index}-{rank}" if size > 1 else f"{role}-{index}"
            # 250 hosts per /24 (.1 to .250): no network or broadcast address, whatever the cluster's size.
            subnet, host_number = divmod(number, 250)
            nodes.append({"name": node, "address": f"10.{20 + subnet // 256}.{subnet % 256}.{host_number + 1}"})
            members.append({"node": node, "rank": rank})
        instances.append({"name": f"{role}-{index}", "role": role, "nodes": members})

    for i, size in enumerate(prefill):
        add_instance("prefill", i, size)
    for i, size in enumerate(decode):
        add_instance("decode", i, size)
    return {
        "cluster": {"name": name},
        "defaults": {
            "gpus": gpus,
            "management_interface": "bond0",
            "hcas": [f"mlx5_{i}" for i in range(gpus)],
        },
        "network": {"traffic_class": 98, "gid_index": 3},
        "nodes": nodes,
        "instances": instances,
        "router": {"node": nodes[0]["name"]},
        "model": {"repo": "deepseek-ai/DeepSeek-V3.2", "revision": REVISION, "path": "/models/DeepSeek-V3.2"},
        "sglang": {"version": sglang_version},
        "runtime": {"kind": "venv", "wheels": {"mooncake-transfer-engine": "0.3.13.post1"}},
        "security": {"admin_cidrs": ["10.0.0.0/16"]},
    }


def write_inventory(directory: Path, document: dict, name: str = "synthetic") -> Path:
    """Write NAME.yaml (and NAME.py for pyinfra) into directory; returns the .py path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    py = directory / f"{name}.py"
    py.write_text(
        "from pdfleet.inventory import pyinfra_groups\n\n"
        "_groups = pyinfra_groups(__file__)\n"
        'prefill, decode, router, spare = (_groups[g] for g in ("prefill", "decode", "router", "spare"))\n'
    )
    return py
