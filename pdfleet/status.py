"""`pdfleet status`: one screen for the person on call, from what deploys/status.py read on each node. Pure.

Per instance and rank: the serving unit's state, how often systemd restarted it and since when it runs, rank 0's
health, whether it is drained (by whom, why), the router's view of the instance, and whether the unit runs the
inputs the inventory gives now (a converge is pending when not). Then the router itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pdfleet.serving import ServingPlan


@dataclass(frozen=True)
class Row:
    instance: str
    role: str
    rank: int
    node: str
    unit: str  # active/running, activating/start-post, failed ..., or "unknown" when the node did not answer
    restarts: str
    since: str
    health: str  # rank 0: ok, or the HTTP status / "no answer"; other ranks: "-"
    drained: str  # "-" or "by operator: reason (since)"
    router: str  # the router's status of the instance (rank 0 only): ready, not_ready, failed, draining, absent
    inputs: str  # current, or "changed: converge pending", or "never started"


def rows(serving: ServingPlan, reports: dict[str, dict]) -> list[Row]:
    router = reports.get(serving.router.host, {}).get("router") or {}
    view = router.get("view") or {}
    by_instance = {w["instance"]: w for w in view.get("workers", [])}
    out = []
    for spec in serving.servers:
        report = (reports.get(spec.host) or {}).get("serving")
        if report is None:
            out.append(Row(spec.instance, spec.role, spec.rank, spec.host, "unknown", "-", "-", "-", "-", "-", "-"))
            continue
        unit = report["units"].get(spec.unit, {})
        worker = by_instance.get(spec.instance, {})
        drained = worker.get("drained")
        if spec.serves_api:
            code = report.get("health")
            health = "ok" if code == "200" else (f"HTTP {code}" if code and code != "000" else "no answer")
            in_router = (worker.get("router") or {}).get("status", "absent") if view else "unknown"
        else:
            health = in_router = "-"
        if report.get("applied") is None:
            inputs = "never started"
        elif report["applied"] == report.get("wanted"):
            inputs = "current"
        else:
            inputs = "changed: converge pending"
        out.append(
            Row(
                instance=spec.instance,
                role=spec.role,
                rank=spec.rank,
                node=spec.host,
                unit=f"{unit.get('ActiveState', '?')}/{unit.get('SubState', '?')}",
                restarts=unit.get("NRestarts", "?"),
                since=unit.get("ActiveEnterTimestamp") or "-",
                health=health,
                drained=f"by {drained['by']}: {drained.get('reason') or '-'} ({drained.get('since', '?')})"
                if drained
                else "-",
                router=in_router,
                inputs=inputs,
            )
        )
    return out


def router_lines(serving: ServingPlan, reports: dict[str, dict]) -> list[str]:
    router = (reports.get(serving.router.host) or {}).get("router")
    if router is None:
        return [f"router {serving.router.host}: no answer"]
    lines = [f"router {serving.router.url} on {serving.router.host}:"]
    for unit, props in router["units"].items():
        state = f"{props.get('ActiveState', '?')}/{props.get('SubState', '?')}"
        since = props.get("ActiveEnterTimestamp") or "-"
        lines.append(f"  {unit}: {state}, restarts {props.get('NRestarts', '?')}, since {since}")
    view = router.get("view") or {}
    if view.get("router_error") or view.get("error"):
        lines.append(f"  the router's worker list: {view.get('router_error') or view.get('error')}")
    return lines


def table(serving: ServingPlan, reports: dict[str, dict]) -> str:
    found = rows(serving, reports)
    head = ("INSTANCE", "ROLE", "RANK", "NODE", "UNIT", "RESTARTS", "SINCE", "HEALTH", "ROUTER", "DRAINED", "INPUTS")
    cells = [head] + [
        (r.instance, r.role, str(r.rank), r.node, r.unit, r.restarts, r.since, r.health, r.router, r.drained, r.inputs)
        for r in found
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
    return text + "\n" + "\n".join(router_lines(serving, reports)) + "\n"


def document(serving: ServingPlan, reports: dict[str, dict]) -> dict:
    return {
        "cluster": serving.cluster.name,
        "instances": [asdict(r) for r in rows(serving, reports)],
        "router": (reports.get(serving.router.host) or {}).get("router"),
    }


def attention(serving: ServingPlan, reports: dict[str, dict]) -> bool:
    """Whether something needs a person: a rank not running, rank 0 unhealthy or not ready in the router (and
    not drained on purpose), or a node that did not answer."""
    for row in rows(serving, reports):
        if row.unit != "active/running":
            return True
        if row.rank == 0 and row.drained == "-" and (row.health != "ok" or row.router != "ready"):
            return True
    return False
