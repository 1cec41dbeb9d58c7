"""Read-only: what `pdfleet status` shows (roles/status.py). Each node writes NODE.json under the directory in the
host data `pdfleet_status_out`; no operation, nothing changes on any node.

    pdfleet status inventories/prod.py [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

from pyinfra import host

from pdfleet.render import instance_inputs
from roles import common
from roles.status import RouterView, ServingNode, UnitStatus

serving = common.serving_plan()
node = common.node_name()
report: dict = {"node": node}
spec = serving.server(node)
if spec is not None:
    units = (spec.unit, spec.peer_watch_unit) if spec.nnodes > 1 else (spec.unit,)
    health = f"{spec.url}/health" if spec.serves_api else ""
    report["serving"] = {
        "instance": spec.instance,
        "role": spec.role,
        "rank": spec.rank,
        "units": host.get_fact(UnitStatus, units=units),
        **host.get_fact(ServingNode, instance=spec.instance, health_url=health),
        "wanted": instance_inputs(common.rendered_files(), serving, spec.instance),
    }
if serving.router.host == node:
    from pdfleet.serving import MEMBERS_UNIT, ROUTER_UNIT

    report["router"] = {
        "url": serving.router.url,
        "units": host.get_fact(UnitStatus, units=(ROUTER_UNIT, MEMBERS_UNIT)),
        "view": host.get_fact(RouterView),
    }
out = host.data.get("pdfleet_status_out")
if out:
    (Path(out) / f"{node}.json").write_text(json.dumps(report, indent=1))
else:
    print(json.dumps(report, indent=1))
