"""The PD router on its node: the smg unit, the membership it routes to, and the agent that keeps them equal.

The router's worker list is desired state: `pdfleet.render.members_file` renders every instance's worker spec
into /etc/pdfleet/router-members.json, and pdfleet-router-members (pdfleet/onhost/router_members.py, a service
beside the router) registers and removes workers through smg's worker API until the router matches it. A change
of membership is a change of that file, shown by `--dry --diff`, applied without restarting the router.

Instances drained on the router's node (`pdfleet drain`, or a rolling restart that an interrupted run left
half-way) are recorded in the same file; a converge reads them back (`RouterMembership`) and keeps them, so a
converge never puts a drained instance back into the router.
"""

from __future__ import annotations

import json
from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.operations import files

from pdfleet import apikeys as keyfiles
from pdfleet.render import members_file
from pdfleet.serving import MEMBERS_AGENT, MEMBERS_FILE, MEMBERS_UNIT, ROUTER_UNIT
from roles import apikeys, common
from roles.unitfiles import service_current

AGENT_SOURCE = common.ONHOST / "router_members.py"


class RouterMembership(FactBase):
    """The instances drained in the router's membership file: {instance: {by, reason, since}}; {} without one."""

    def command(self) -> str:
        return f"cat {MEMBERS_FILE} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict:
        try:
            document = json.loads("\n".join(output))
        except ValueError:
            return {}
        drained = document.get("drained") if isinstance(document, dict) else None
        return drained if isinstance(drained, dict) else {}

    @staticmethod
    def default() -> dict:
        return {}


@deploy("Router")
def router():
    serving = common.serving_plan()
    if serving.router.host != common.node_name():
        return
    files.directory(name="agent directory", path=MEMBERS_AGENT.rsplit("/", 1)[0], mode="0755")
    agent = files.put(name="membership agent installed", src=str(AGENT_SOURCE), dest=MEMBERS_AGENT, mode="0755")
    drained = host.get_fact(RouterMembership)
    # blue/green's switch: the set being replaced stays a member beside the new one (roles/switch.py)
    outgoing = host.data.get("pdfleet_outgoing")
    wanted = members_file(serving, drained, common.outgoing_plan(outgoing) if outgoing else None)
    files.put(
        name="membership (drained instances kept)", src=StringIO(wanted.content), dest=MEMBERS_FILE, mode=wanted.mode
    )
    # the router's client key, the agent's key and the health gate's header file: a changed key restarts both (with
    # keys off, files left by a run with keys are removed)
    keyed = tuple(apikeys.put(keyfiles.router_files(apikeys.keys())))  # keys() is None when keys are off
    service_current(ROUTER_UNIT, "router", reads=keyed)
    service_current(MEMBERS_UNIT, "membership agent", reads=(agent, *keyed))
