"""How validate + plan + render grow with cluster size.

Generates clusters of 4, 16, 64 and 256 nodes (half prefill instances of one node, half decode instances of two
nodes), and times, in this process: load_cluster (YAML parse + validation), plan, render. Reports the median of
several runs per size and the growth per node. Goal: 64 nodes under 1 s, linear growth.

    python benchmarks/render_scale.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pdfleet.cluster import load_cluster  # noqa: E402
from pdfleet.render import render  # noqa: E402
from pdfleet.serving import plan  # noqa: E402
from pdfleet.synthetic import inventory_document, write_inventory  # noqa: E402

SIZES = (4, 16, 64, 256)


def shape(nodes: int) -> tuple[list[int], list[int]]:
    """Half the nodes in 1-node prefill instances, half in 2-node decode instances (the reference ratio)."""
    return [1] * (nodes // 2), [2] * (nodes // 4)


def measure(nodes: int, repeat: int, workdir: Path) -> dict:
    prefill, decode = shape(nodes)
    path = write_inventory(workdir / str(nodes), inventory_document(prefill, decode)).with_suffix(".yaml")
    stages = {"validate": [], "plan": [], "render": [], "total": []}
    files = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        cluster = load_cluster(path)
        t1 = time.perf_counter()
        serving = plan(cluster)
        t2 = time.perf_counter()
        rendered = render(serving)
        t3 = time.perf_counter()
        files = sum(len(paths) for paths in rendered.values())
        for name, value in (("validate", t1 - t0), ("plan", t2 - t1), ("render", t3 - t2), ("total", t3 - t0)):
            stages[name].append(value)
    return {"nodes": nodes, "files": files, **{k: statistics.median(v) for k, v in stages.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(n, args.repeat, Path(tmp)) for n in SIZES]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"median of {args.repeat} runs per size (seconds)")
    print(
        f"{'nodes':>6} {'files':>6} {'validate':>9} {'plan':>8} {'render':>8} {'total':>8} {'ms/node':>8} {'x prev':>7}"
    )
    previous = None
    for r in results:
        growth = f"{r['total'] / previous['total']:.2f}" if previous else "-"
        print(
            f"{r['nodes']:>6} {r['files']:>6} {r['validate']:>9.4f} {r['plan']:>8.4f} {r['render']:>8.4f} "
            f"{r['total']:>8.4f} {1000 * r['total'] / r['nodes']:>8.2f} {growth:>7}"
        )
        previous = r
    per_node = [r["total"] / r["nodes"] for r in results]
    print(f"per-node cost at 256 vs 16 nodes: {per_node[-1] / per_node[1]:.2f}x (1.0 = linear)")


if __name__ == "__main__":
    main()
