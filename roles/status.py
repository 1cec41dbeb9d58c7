"""What `pdfleet status` reads (deploys/status.py): facts only, nothing changes on any node.

On every serving node: its serving unit's state, restarts and since when, the inputs digest it was last started
with and the one the inventory gives now (a differing one means a converge is pending), rank 0's /health. On the
router's node: the router's and the membership agent's units, the membership (drained instances) and the router's
own view of every worker (`pdfleet-router-members show`).
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from pdfleet.serving import MEMBERS_AGENT, MEMBERS_FILE
from roles.restarts import APPLIED_DIR

UNIT_PROPERTIES = ("ActiveState", "SubState", "NRestarts", "ActiveEnterTimestamp", "MainPID")
_MARK = "@@pdfleet-status"


class UnitStatus(FactBase):
    """`systemctl show` of some units: {unit: {property: value}}."""

    def command(self, units: tuple[str, ...]) -> str:
        props = " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
        return "; ".join(f"echo {_MARK} {shlex.quote(u)}; systemctl show {props} {shlex.quote(u)}" for u in units)

    def process(self, output: list[str]) -> dict:
        found: dict[str, dict] = {}
        current = None
        for line in output:
            if line.startswith(_MARK + " "):
                current = found.setdefault(line.split(" ", 1)[1], {})
            elif current is not None and "=" in line:
                key, _, value = line.partition("=")
                current[key] = value
        return found


class ServingNode(FactBase):
    """The inputs digest an instance was last started with, and the HTTP status of rank 0's /health (or none)."""

    def command(self, instance: str, health_url: str) -> str:
        health = (
            f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {shlex.quote(health_url)} || true"
            if health_url
            else "echo -"
        )
        return f"cat {APPLIED_DIR}/{shlex.quote(instance)} 2>/dev/null || echo; {health}"

    def process(self, output: list[str]) -> dict:
        lines = [*output, "", ""]
        return {"applied": lines[0].strip() or None, "health": lines[1].strip() or None}


class RouterView(FactBase):
    """`pdfleet-router-members show`: the membership and the router's view of each worker; None without one."""

    def command(self) -> str:
        return f"python3 {MEMBERS_AGENT} show {MEMBERS_FILE} 2>&1 || true"

    def process(self, output: list[str]) -> dict | None:
        try:
            return json.loads("\n".join(output))
        except ValueError:
            return {"error": " ".join(output)[-300:]}
