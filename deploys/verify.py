"""Preflight: read every node, check it against the inventory, report. Read-only: no operation, no file written
on any host; the readings are pyinfra facts (roles.facts.NodeProbe, roles.facts.AllreduceBandwidth).

    pyinfra inventories/prod.py deploys/verify.py                 # a table per node, printed as each finishes
    pdfleet preflight inventories/prod.py [--limit NODE] [--json]  # the same, collected; exit 1 on any FAIL
    pdfleet preflight inventories/prod.py --local NODE             # this machine (pyinfra @local), checked as NODE

Host data it reads: `pdfleet_inventory` and `pdfleet_node` (inventories/NAME.py sets them; `pdfleet preflight
--local` passes them with --data), and `pdfleet_verify_out`: a directory on the machine running pyinfra where each
host's report is written as NODE.json (unset: the report is printed). docs/preflight.md describes the checks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pyinfra import host

from pdfleet import preflight
from pdfleet.inventory import load
from pdfleet.runtimeplan import serving_venv
from roles import facts

# The allreduce measurement's message sizes below the threshold's size (MiB), for the report's curve.
CURVE_MIB = (8, 64, 256, 1024)


def verify() -> None:
    inventory, node = host.data.get("pdfleet_inventory"), host.data.get("pdfleet_node")
    if not inventory or not node:
        raise SystemExit(f"{host.name}: no pdfleet_inventory/pdfleet_node host data: use inventories/NAME.py")
    cluster = load(inventory)
    expect = preflight.expectations(cluster, node)
    started = time.monotonic()
    probe = host.get_fact(facts.NodeProbe, model_path=cluster.model.path, units=expect.units)
    if not probe:  # the probe always exits 0 and prints its markers: nothing means the shell itself failed
        _write(preflight.NodeReport(node, host.name, (preflight.unreadable(),), round(time.monotonic() - started, 1)))
        return
    readings = preflight.facts_from_probe(probe)
    if cluster.verify.allreduce:
        allreduce = host.get_fact(
            facts.AllreduceBandwidth,
            # the serving runtime's Python has torch; the system's may (a bare node: not measured, WARN)
            pythons=(f"{serving_venv(cluster)}/bin/python3", "python3"),
            gpus=len(readings.gpus.gpus) if readings.gpus else 0,
            sizes_mib=tuple(sorted({*CURVE_MIB, cluster.verify.allreduce_size_mib})),
            iterations=cluster.verify.allreduce_iterations,
            timeout=cluster.verify.allreduce_timeout,
        )
        readings = preflight.facts_from_probe(probe, allreduce)
    report = preflight.NodeReport(
        node=node,
        host=host.name,
        results=tuple(preflight.check_node(readings, expect)),
        seconds=round(time.monotonic() - started, 1),
    )
    _write(report)


def _write(report: preflight.NodeReport) -> None:
    out = host.data.get("pdfleet_verify_out")
    if out:
        (Path(out) / f"{report.node}.json").write_text(json.dumps(report.to_dict(), indent=2))
    else:
        print(preflight.to_table([report]), flush=True)


verify()
