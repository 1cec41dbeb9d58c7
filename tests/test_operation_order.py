"""Every operation call of the deploys keeps its own place in pyinfra's operation order, on every host.

pyinfra identifies an operation by the line numbers of its callers, without file names. Two roles called from one
line of a deploy file, with operations on the same line number of their modules, become one operation shared by
the hosts: pyinfra then refuses the whole run ("Cycle detected in operation ordering DAG") or, worse, runs
one host's operation in another's place. `roles.layers.apply` gives each role its own position; this test
generates the deploys' operations on @fake hosts of a 2P1D cluster, as pyinfra's CLI does, and checks that no
place holds two differently named operations and that pyinfra can order them.
"""

from __future__ import annotations

import pytest
from pyinfra.context import ctx_state

from pdfleet.synthetic import inventory_document, write_inventory
from roles.health import health_gate
from roles.layers import HOST_LAYER, SERVING_LAYER
from roles.runtime import serving_runtime
from tests.fakehosts import prepared, recorded

DEPLOYS = {
    "host.py": HOST_LAYER,
    "serve.py": SERVING_LAYER,
    "pd.py": (*HOST_LAYER, *SERVING_LAYER, health_gate),
    "prepare.py": (serving_runtime,),
}


def cluster_inventory(tmp_path, runtime_kind: str):
    doc = inventory_document(prefill=[1, 1], decode=[2])
    doc["host"] = {"distribution": "debian12"}  # the recorded host's distribution, so base's check passes
    # the recorded host's SSH session came from the sandbox's admin address: the firewall's pre-check admits it
    doc["security"]["admin_cidrs"].append("10.77.0.1/32")
    if runtime_kind == "container":
        doc["runtime"] = {"kind": "container", "image": "lmsysorg/sglang@sha256:" + "ab" * 32}
    path = write_inventory(tmp_path, doc).with_suffix(".yaml")
    nodes = [node["name"] for node in doc["nodes"]]
    return path, nodes


@pytest.mark.parametrize("runtime_kind", ["venv", "container"])
@pytest.mark.parametrize("deploy_file", sorted(DEPLOYS))
def test_no_two_operations_share_a_place_in_the_order(tmp_path, deploy_file, runtime_kind):
    inventory, nodes = cluster_inventory(tmp_path, runtime_kind)
    # Every host answers as a converged sandbox host: each role then takes its usual, longest path.
    state = prepared(DEPLOYS[deploy_file], {node: recorded("decode-0") for node in nodes}, inventory)

    shared = {meta.op_order: sorted(meta.names) for meta in state.op_meta.values() if len(meta.names) > 1}
    assert shared == {}, f"{deploy_file}: operations merged by pyinfra (order: names): {shared}"
    with ctx_state.use(state):
        order = state.get_op_order()  # raises on a cycle
    # Each host's operations run in the order its roles generated them.
    for host in state.inventory:
        mine = [op_hash for op_hash in order if op_hash in state.ops[host]]
        assert mine == host.op_hash_order, host.name
    # the roles did generate their operations (prepare.py: the image pull alone for kind container)
    assert len(order) >= {"prepare.py": 4 if runtime_kind == "venv" else 1}.get(deploy_file, 20)
