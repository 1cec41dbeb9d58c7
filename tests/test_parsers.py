"""Every generated command line, parsed by the targeted program's own parser.

SGLang: each node's launch arguments and its DeepGEMM precompile arguments go through `ServerArgs.add_cli_args`
(and compile_deep_gemm's own arguments) of the pinned version, installed without its GPU dependencies by
.ci/install-parsers.sh. The router's arguments go through smg's own launcher. Without those environments these
tests skip locally and fail in CI (PDFLEET_REQUIRE_PARSERS=1).
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path

import pytest

from pdfleet import dialects
from pdfleet.inventory import load
from pdfleet.options import Opt
from pdfleet.profiles import deepseek_v32_opts
from pdfleet.serving import plan
from pdfleet.synthetic import inventory_document, write_inventory

pytestmark = pytest.mark.parsers

ROOT = Path(__file__).resolve().parent.parent
PARSERS = ROOT / ".cache/parsers"
PROD = ROOT / "inventories/prod.py"
SHAPES = [([1, 1], [2]), ([2, 1], [4]), ([1, 1, 1], [2, 1])]


def _need(path: Path) -> None:
    if not path.exists():
        message = f"{path} is missing: run .ci/install-parsers.sh"
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(message)
        pytest.skip(message)


def sglang_parse(version: str, cases: list[dict]) -> dict[str, dict]:
    """Parse cases [{id, kind, args}] with SGLang `version`'s own parser; returns results by id."""
    python, site = PARSERS / "venv/bin/python", PARSERS / f"sglang-{version}"
    _need(python)
    _need(site)
    result = subprocess.run(
        [str(python), str(ROOT / "tests/tools/sglang_argcheck.py")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = {r["id"]: r for r in json.loads(result.stdout)}
    assert {r["sglang_version"] for r in results.values()} == {version}
    return results


def smg_parse(cases: list[dict]) -> dict[str, dict]:
    python = PARSERS / "smg-venv/bin/python"
    _need(python)
    result = subprocess.run(
        [str(python), str(ROOT / "tests/tools/smg_argcheck.py")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {r["id"]: r for r in json.loads(result.stdout)}


@cache
def plans(tmp_root: str) -> list:
    """The prod plan and generated topologies, for every dialect."""
    out = []
    for version in dialects.DIALECTS:
        out.append((f"prod-{version}", plan(load(PROD).with_sglang_version(version))))
        for index, (prefill, decode) in enumerate(SHAPES):
            doc = inventory_document(prefill=prefill, decode=decode, sglang_version=version)
            doc["sglang"]["debug_logging"] = index == 1  # the debug flags must parse too
            path = write_inventory(Path(tmp_root) / f"{version}-{index}", doc)
            out.append((f"shape{index}-{version}", plan(load(path))))
    return out


@pytest.fixture(scope="module")
def all_plans(tmp_path_factory):
    return plans(str(tmp_path_factory.mktemp("shapes")))


@pytest.mark.parametrize("version", list(dialects.DIALECTS))
def test_every_generated_argv_parses_with_sglangs_own_parser(all_plans, version):
    cases, specs = [], {}
    for name, serving in all_plans:
        if serving.sglang_version != version:
            continue
        for spec in serving.servers:
            key = f"{name}/{spec.host}"
            specs[key] = spec
            cases.append({"id": f"{key}/server", "kind": "server", "args": list(spec.server_args)})
            cases.append({"id": f"{key}/compile", "kind": "compile_deep_gemm", "args": list(spec.precompile_args)})
    results = sglang_parse(version, cases)
    failures = {k: r["error"] for k, r in results.items() if not r["ok"]}
    assert failures == {}
    assert len(results) == 2 * len(specs) >= 2 * (4 + 4 + 7 + 6)
    # No flag only by prefix matching or deprecated: 0.5.6.post2 keeps the recipe's own --tp/--dp spelling.
    allowed_abbreviations = {"--tp", "--dp"} if version == "0.5.6.post2" else set()
    for key, result in results.items():
        assert {a["given"] for a in result["abbreviations"]} <= allowed_abbreviations, (key, result["abbreviations"])
        assert result["warnings"] == [], (key, result["warnings"])

    # What the parser understood is what the plan meant.
    for key, spec in specs.items():
        ns = results[f"{key}/server"]["namespace"]
        instance_gpus = 8 * spec.nnodes
        assert ns["tp_size"] == instance_gpus, key
        assert ns["disaggregation_mode"] == spec.role
        assert ns["moe_a2a_backend"] == "deepep"
        assert ns["deepep_mode"] == ("normal" if spec.role == "prefill" else "low_latency")
        assert ns["nnodes"] == spec.nnodes and ns["node_rank"] == spec.rank
        assert ns["port"] == 8055 and ns["host"] == "0.0.0.0"
        assert ns["speculative_algorithm"] == "EAGLE"
        if version == "0.5.6.post2":
            assert ns["dp_size"] == instance_gpus and ns["enable_dp_attention"] is True
            assert ns["attention_backend"] == "nsa"
        else:
            assert ns["attn_dp_size"] == instance_gpus and ns["dp_size"] == 1
            assert ns["attention_backend"] == "dsa"
            assert ns["expert_balancedness_report_mode"] == "server_log"
            if spec.role == "prefill":
                assert ns["load_balance_method"] == "follow_bootstrap_room"
        if spec.role == "decode" and version == "0.5.23":
            assert ns["cuda_graph_bs_decode"] == [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 64]
        compiled = results[f"{key}/compile"]["namespace"]
        assert compiled["timeout"] == 3600
        assert {k: v for k, v in compiled.items() if k != "timeout"} == ns


def test_the_untranslated_recipe_fails_the_newest_parser():
    """The check can fail: the recipe as published (0.5.6.post2 spelling) is rejected by 0.5.23's parser."""
    cluster = load(PROD)
    instance = cluster.instances[2]
    raw = [a for o in deepseek_v32_opts(cluster, instance, 0, cluster.node("decode-0")) for a in Opt.argv(o)]
    result = sglang_parse("0.5.23", [{"id": "raw", "kind": "server", "args": raw}])["raw"]
    assert result["ok"] is False
    assert "--cuda-graph-bs" in result["error"]


def test_router_argv_parses_with_smgs_own_parser(all_plans):
    cases, routers = [], {}
    for name, serving in all_plans:
        routers[name] = serving
        cases.append({"id": name, "args": list(serving.router.router_args)})
    cases.append({"id": "bad", "args": ["--pd-disaggregation", "--prefill-policy", "bucketz"]})
    results = smg_parse(cases)
    assert results.pop("bad")["ok"] is False
    for name in routers:
        result = results[name]
        assert result["ok"], (name, result["error"])
        assert result["warnings"] == [], name
        parsed = result["parsed"]
        assert parsed["pd_disaggregation"] is True
        # No worker on the command line: pdfleet-router-members registers them through the worker API.
        assert parsed["prefill"] == [] and parsed["decode"] == []
        assert (parsed["port"], parsed["prometheus_port"]) == (8000, 29000)
        assert parsed["worker_startup_timeout_secs"] == 3600
        assert (parsed["effective_prefill_policy"], parsed["effective_decode_policy"]) == ("cache_aware", "round_robin")
