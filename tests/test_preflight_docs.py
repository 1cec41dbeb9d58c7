"""docs/preflight.md must match the code: every threshold with its default, every check the code reports."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from pdfleet import preflight
from pdfleet.verifyconfig import GPU_MEMORY_MIB, default_verify_config
from tests.test_preflight import CLUSTER, measured, readings

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs/preflight.md").read_text()


def _rows(heading: str) -> dict[str, str]:
    """The first two cells of each row of the table under `heading`."""
    section = PAGE[PAGE.index(heading) :].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) >= 2 and not set(cells[0]) <= {"-", " "}:
            rows[cells[0]] = cells[1]
    return rows


def test_every_threshold_is_documented_with_its_default():
    rows = _rows("## Thresholds")
    defaults = dataclasses.asdict(default_verify_config())
    assert set(rows) - {"key"} == set(defaults)
    for key, value in defaults.items():
        if key == "gpu_memory_mib":
            assert value is None
            assert all(f"{model} {mib}" in rows[key] for model, mib in GPU_MEMORY_MIB.items())
        else:
            shown = {True: "true", False: "false"}.get(value, f"{value:g}" if isinstance(value, float) else str(value))
            assert rows[key] == shown, key


def test_every_check_the_code_reports_is_documented_and_nothing_else():
    names = set()
    fast = measured({"world": 8, "results": [{"size_mb": 4096, "busbw_gbs": 400.0}]})
    for facts in (readings(), readings(healthy=True, allreduce=fast)):
        for node in ("prefill-0", "decode-0"):
            names |= {r.check for r in preflight.check_node(facts, preflight.expectations(CLUSTER, node))}
    assert set(_rows("## The checks")) - {"check"} == names
    assert re.search(r"366 GB/s at 4 GiB", PAGE)
