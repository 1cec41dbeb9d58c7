"""The serving plan: the published recipe flag for flag, general topologies, router and precompile commands."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from pdfleet import dialects
from pdfleet.inventory import load
from pdfleet.runtimeplan import serving_venv
from pdfleet.serving import plan
from pdfleet.synthetic import inventory_document, write_inventory

ROOT = Path(__file__).resolve().parent.parent
PROD = ROOT / "inventories/prod.py"

# The published 2P1D DeepSeek-V3.2 recipe (issue #2), written out by hand from the recipe text: the 0.5.6.post2
# plan must reproduce it flag for flag. Prefill, then what decode has instead.
RECIPE_COMMON = (
    "--model-path /models/DeepSeek-V3.2 --host 0.0.0.0 --port 8055 --trust-remote-code "
    "--served-model-name DeepSeek-V3.2"
)
RECIPE_PREFILL = (
    "--tp 8 --dp 8 --enable-dp-attention --moe-dense-tp-size 1 --enable-dp-lm-head --moe-a2a-backend deepep "
    "--deepep-mode normal --ep-num-redundant-experts 0 --load-balance-method round_robin "
    "--enable-expert-distribution-metrics --mem-fraction-static 0.8 --max-running-requests 512 "
    "--chunked-prefill-size 65536 --speculative-algorithm EAGLE --speculative-num-steps 1 "
    "--speculative-eagle-topk 1 --speculative-num-draft-tokens 2 --attention-backend nsa "
    "--tool-call-parser deepseekv32 --reasoning-parser deepseek-v3 --disaggregation-mode prefill "
    "--disaggregation-transfer-backend mooncake "
    "--disaggregation-ib-device mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7 --enable-metrics"
)
RECIPE_DECODE = (
    "--tp 16 --dp 16 --enable-dp-attention --moe-dense-tp-size 1 --enable-dp-lm-head --moe-a2a-backend deepep "
    "--deepep-mode low_latency --ep-num-redundant-experts 0 --prefill-round-robin-balance "
    "--enable-expert-distribution-metrics --mem-fraction-static 0.8 --max-running-requests 1024 "
    "--cuda-graph-bs 1 2 3 4 5 6 8 10 12 16 24 32 64 --speculative-algorithm EAGLE --speculative-num-steps 1 "
    "--speculative-eagle-topk 1 --speculative-num-draft-tokens 2 --attention-backend nsa "
    "--tool-call-parser deepseekv32 --reasoning-parser deepseek-v3 --disaggregation-mode decode "
    "--disaggregation-transfer-backend mooncake "
    "--disaggregation-ib-device mlx5_0,mlx5_1,mlx5_2,mlx5_5,mlx5_6,mlx5_7,mlx5_8,mlx5_9 --nnodes 2 --node-rank {rank} "
    "--dist-init-addr 10.10.0.13:5757 --enable-metrics"
)


def options(argv) -> dict[str, tuple[str, ...]]:
    """Flags of an argv with their values, order-insensitive."""
    out: dict[str, tuple[str, ...]] = {}
    flag = None
    for arg in argv:
        if arg.startswith("--"):
            flag = arg
            assert flag not in out, f"{flag} given twice"
            out[flag] = ()
        else:
            out[flag] += (arg,)
    return out


def test_0_5_6_post2_plan_is_the_published_recipe_flag_for_flag():
    serving = plan(load(PROD).with_sglang_version("0.5.6.post2"))
    by_host = {s.host: s for s in serving.servers}
    prefill = options(by_host["prefill-0"].server_args)
    # The one flag pdfleet adds: the bootstrap port, explicit because the router names it too.
    assert prefill.pop("--disaggregation-bootstrap-port") == ("8998",)
    assert prefill == options(f"{RECIPE_COMMON} {RECIPE_PREFILL}".split())
    for rank, host in enumerate(["decode-0", "decode-1"]):
        assert options(by_host[host].server_args) == options(
            f"{RECIPE_COMMON} {RECIPE_DECODE}".format(rank=rank).split()
        )


def test_recipe_environment_on_every_node():
    for spec in plan(load(PROD)).servers:
        hcas = (
            "mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7"
            if spec.role == "prefill"
            else "mlx5_0,mlx5_1,mlx5_2,mlx5_5,mlx5_6,mlx5_7,mlx5_8,mlx5_9"
        )
        assert spec.env == {
            "GLOO_SOCKET_IFNAME": "bond0",
            "MC_GID_INDEX": "3",
            "MC_IB_TC": "98",
            "NCCL_IB_GID_INDEX": "3",
            "NCCL_IB_HCA": "=" + hcas,
            "NCCL_IB_TC": "98",
            "NCCL_SOCKET_IFNAME": "=bond0",
            "NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME": "bond0",
            "NVSHMEM_HCA_LIST": hcas,
            "NVSHMEM_IB_GID_INDEX": "3",
            "NVSHMEM_IB_TRAFFIC_CLASS": "98",
            "SGLANG_DG_CACHE_DIR": spec.deep_gemm_dir,
            "SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT": "80",
            "SGLANG_DISAGGREGATION_WAITING_TIMEOUT": "80",
            "SGLANG_DP_ATTENTION_HANDSHAKE_PORT_DELTA": "30",
        }, spec.host


def test_debug_logging_switch_adds_the_recipe_debug_flags_only_when_on(tmp_path):
    doc = inventory_document(prefill=[1], decode=[1], sglang_version="0.5.6.post2")
    off = plan(load(write_inventory(tmp_path / "off", doc))).servers[0].server_args
    doc["sglang"]["debug_logging"] = True
    on = plan(load(write_inventory(tmp_path / "on", doc))).servers[0].server_args
    assert set(options(on)) - set(options(off)) == {
        "--log-requests",
        "--log-requests-level",
        "--collect-tokens-histogram",
        "--enable-cache-report",
    }


def test_each_deep_gemm_key_has_its_own_cache_directory():
    """Nodes of one key share a directory name (a peer's copy lands in the same place); another key, such as the
    next SGLang version's, gets another directory, so the old cache stays for a rollback."""
    servers = plan(load(PROD)).servers
    for spec in servers:
        assert re.fullmatch(r"/var/cache/pdfleet/deep_gemm/[0-9a-f]{16}", spec.deep_gemm_dir), spec.deep_gemm_dir
    by_key = {}
    for spec in servers:
        by_key.setdefault(spec.deep_gemm_key, set()).add(spec.deep_gemm_dir)
    assert len(by_key) >= 2 and all(len(dirs) == 1 for dirs in by_key.values())
    assert len({d for dirs in by_key.values() for d in dirs}) == len(by_key)
    other = plan(dataclasses.replace(load(PROD), sglang_version="0.5.6.post2")).servers
    assert {s.deep_gemm_dir for s in other}.isdisjoint({s.deep_gemm_dir for s in servers})


def test_precompile_is_the_serving_command_plus_timeout():
    venv = serving_venv(load(PROD))
    assert re.fullmatch(r"/opt/pdfleet/sglang/sglang-0\.5\.23-[0-9a-f]{12}", venv), venv
    for spec in plan(load(PROD)).servers:
        assert spec.precompile_argv[:3] == (f"{venv}/bin/python3", "-m", "sglang.compile_deep_gemm")
        assert spec.precompile_argv[3:] == (*spec.server_args, "--timeout", "3600")


def test_router_plan_prod():
    router = plan(load(PROD)).router
    assert router.host == "prefill-0"
    assert router.url == "http://10.10.0.11:8000"
    args = list(router.router_args)
    # Workers are registered through the router's API (pdfleet-router-members), never on its command line.
    assert "--prefill" not in args and "--decode" not in args and args[0] == "--pd-disaggregation"
    values = dict(zip(args[1::2], args[2::2], strict=False))
    assert values["--health-check-interval-secs"] == "2" and values["--health-failure-threshold"] == "2"
    assert values["--retry-max-retries"] == "5" and values["--shutdown-grace-period-secs"] == "180"
    assert router.stop_timeout == 210  # the unit waits longer than the router's own grace
    assert [(w.instance, w.role, w.url) for w in router.workers] == [
        ("prefill-0", "prefill", "http://10.10.0.11:8055"),
        ("prefill-1", "prefill", "http://10.10.0.12:8055"),
        ("decode", "decode", "http://10.10.0.13:8055"),  # decode rank 1 (10.10.0.14) serves no API
    ]
    prefill, decode = router.workers[0].spec, router.workers[2].spec
    assert prefill["bootstrap_port"] == 8998 and "bootstrap_port" not in decode
    # A prefill's failure is counted against its decode too: the decode's breaker stays off by default.
    assert prefill["resilience"] == {"cb_failure_threshold": 1, "cb_timeout_secs": 5}
    # smg 1.13.0 ignores a worker's disable_circuit_breaker: a threshold never reached turns it off.
    assert decode["resilience"] == {"cb_failure_threshold": 1_000_000_000, "cb_timeout_secs": 5}
    assert values["--cb-failure-threshold"] == "1000000000"  # router-wide: as off as the decode's
    assert router.workers[0].load_path == "/v1/loads"
    assert plan(load(PROD).with_sglang_version("0.5.6.post2")).router.workers[0].load_path == "/get_load"


@pytest.mark.parametrize("shape", [([1], [1]), ([2, 1, 1], [4]), ([1] * 5, [2, 2, 1])])
def test_general_topologies(tmp_path, shape):
    prefill_sizes, decode_sizes = shape
    cluster = load(write_inventory(tmp_path, inventory_document(prefill=prefill_sizes, decode=decode_sizes)))
    serving = plan(cluster)
    assert len(serving.servers) == sum(prefill_sizes) + sum(decode_sizes)
    for instance in cluster.instances:
        specs = [s for s in serving.servers if s.instance == instance.name]
        head = cluster.node(instance.head)
        assert [s.rank for s in specs] == list(range(instance.nnodes))
        assert instance.tp == 8 * instance.nnodes == instance.dp == instance.ep
        for spec in specs:
            opts = options(spec.server_args)
            assert opts["--tp-size"] == (str(instance.tp),)
            if instance.nnodes > 1:
                assert opts["--nnodes"] == (str(instance.nnodes),)
                assert opts["--node-rank"] == (str(spec.rank),)
                assert opts["--dist-init-addr"] == (f"{head.address}:5757",)
            else:
                assert "--nnodes" not in opts and "--dist-init-addr" not in opts
    workers = serving.router.workers
    assert [w.role for w in workers].count("prefill") == len(prefill_sizes)
    assert [w.role for w in workers].count("decode") == len(decode_sizes)
    assert all(
        w.url == f"http://{cluster.node(cluster_instance(cluster, w.instance).head).address}:8055" for w in workers
    )


def test_deep_gemm_keys_group_nodes_that_can_share_a_cache():
    specs = {s.host: s for s in plan(load(PROD)).servers}
    key = {host: json.loads(s.deep_gemm_key.rsplit("sha256:", 1)[0]) for host, s in specs.items()}
    assert specs["prefill-0"].deep_gemm_key == specs["prefill-1"].deep_gemm_key
    assert specs["decode-0"].deep_gemm_key == specs["decode-1"].deep_gemm_key
    assert specs["prefill-0"].deep_gemm_key != specs["decode-0"].deep_gemm_key
    assert key["prefill-0"]["model"]["revision"] == "a7e62ac04ecb2c0a54d736dc46601c5606cf10a6"
    assert key["prefill-0"]["gpu_arch"] == "sm_90a"
    assert "--node-rank" not in key["decode-1"]["server_args"]


def test_every_dialect_is_reachable_from_an_inventory():
    for version in dialects.DIALECTS:
        assert plan(load(PROD).with_sglang_version(version)).sglang_version == version


def cluster_instance(cluster, name):
    return next(i for i in cluster.instances if i.name == name)


def test_synthetic_clusters_past_one_subnet_are_valid_inventories(tmp_path):
    # benchmarks/render_scale.py builds 256 nodes: every generated address must pass the inventory's own checks
    # (an earlier generator wrote 10.20.0.256 and the benchmark died in CI).
    cluster = load(write_inventory(tmp_path, inventory_document(prefill=[1] * 128, decode=[2] * 64)))
    addresses = [node.address for node in cluster.nodes]
    assert len(addresses) == len(set(addresses)) == 256
    assert all(0 < int(address.rsplit(".", 1)[1]) < 255 for address in addresses)
