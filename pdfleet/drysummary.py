"""A per-host summary of `pyinfra --dry --json` (its "plan"): which operations would change each host, and which
would run only if an earlier one changes. Pure; `pdfleet dry-summary PLAN.json` prints it as Markdown (CI)."""

from __future__ import annotations

import json
from collections import defaultdict


def summarise(plan_json: str) -> dict[str, dict[str, list[str]]]:
    """{host: {"change": [operation names], "conditional": [...]}} for every host the plan mentions."""
    plan = json.loads(plan_json)["plan"]
    hosts: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"change": [], "conditional": []})
    for op in plan:
        for host in op["hosts_with_change"]:
            hosts[host]["change"].append(op["name"])
        for host in op["hosts_with_conditional_change"]:
            hosts[host]["conditional"].append(op["name"])
    return dict(sorted(hosts.items()))


def markdown(summary: dict[str, dict[str, list[str]]]) -> str:
    if not any(entry["change"] for entry in summary.values()):
        return "Nothing to change on any host.\n"
    lines = ["| host | would change | only if an earlier step changes |", "| --- | --- | --- |"]
    for host, entry in summary.items():
        if entry["change"]:
            lines.append(f"| {host} | {'<br>'.join(entry['change'])} | {len(entry['conditional'])} steps |")
    return "\n".join(lines) + "\n"
