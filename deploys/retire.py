"""Retire a node from serving (`pdfleet replace-node` runs this on the node it replaces, before the inventory
changes): its instance's units and the router's, if it ran there, stopped, disabled and out of systemd's reach
(roles/retire.py), so that the node never rejoins the cluster if it comes back.

    pyinfra inventories/prod.py deploys/retire.py --limit OLD --data pdfleet_retire_note="replaced by spare-0"
"""

from pyinfra import host

from roles import common
from roles.retire import serving_units, units_retired

serving = common.serving_plan()
node = common.node_name()
units_retired(
    name="Retire | serving units stopped, disabled and removed",
    units=serving_units(serving.server(node), serving.router.host == node),
    note=str(host.data.get("pdfleet_retire_note") or f"retired from cluster {serving.cluster.name}"),
)
