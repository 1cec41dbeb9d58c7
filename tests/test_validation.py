"""Validation before contact: one line per problem, naming the file, place, field, found and expected."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pdfleet.cluster import load_cluster
from pdfleet.errors import InventoryError

ROOT = Path(__file__).resolve().parent.parent
PROD = yaml.safe_load((ROOT / "inventories/prod.yaml").read_text())


def line_of(tmp_path: Path, needle: str, after: str | None = None) -> int:
    """The 1-based line containing `needle` (after the line equal to `after`) in the file problems_of() wrote."""
    lines = (tmp_path / "bad.yaml").read_text().splitlines()
    start = lines.index(after) if after else 0
    return next(number for number, line in enumerate(lines, 1) if number > start and needle in line)


def problems_of(tmp_path: Path, document: dict | str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(InventoryError) as caught:
        load_cluster(path, "bad.yaml")
    return [str(p) for p in caught.value.problems]


def prod() -> dict:
    return copy.deepcopy(PROD)


def node(doc: dict, name: str) -> dict:
    return next(n for n in doc["nodes"] if n["name"] == name)


def instance(doc: dict, name: str) -> dict:
    return next(i for i in doc["instances"] if i["name"] == name)


def test_prod_inventory_is_valid():
    cluster = load_cluster(ROOT / "inventories/prod.yaml")
    assert [(i.name, i.role, i.tp, i.dp, i.ep, i.nnodes) for i in cluster.instances] == [
        ("prefill-0", "prefill", 8, 8, 8, 1),
        ("prefill-1", "prefill", 8, 8, 8, 1),
        ("decode", "decode", 16, 16, 16, 2),
    ]
    assert cluster.placement("decode-1")[1] == 1
    assert cluster.node("decode-0").hcas[3] == "mlx5_5"  # per-node override of the default HCA list
    assert cluster.node("prefill-0").hcas == tuple(f"mlx5_{i}" for i in range(8))


def test_unknown_field_is_an_error_with_its_line(tmp_path):
    text = (ROOT / "inventories/prod.yaml").read_text().replace("  gid_index: 3 ", "  gid_idnex: 4\n  gid_index: 3 ", 1)
    problems = problems_of(tmp_path, text)
    line = line_of(tmp_path, "gid_idnex")
    assert problems == [
        f"bad.yaml:{line}: network: field 'gid_idnex': found an unknown field, expected one of: gid_index, "
        "mooncake, nccl, nvshmem, traffic_class"
    ]


def test_unknown_field_in_a_node(tmp_path):
    doc = prod()
    node(doc, "decode-1")["hca"] = ["mlx5_0"]
    [problem] = problems_of(tmp_path, doc)
    assert "node 'decode-1': field 'hca': found an unknown field, expected one of: " in problem
    assert "hcas" in problem


def test_missing_required_fields(tmp_path):
    doc = prod()
    del doc["model"]["revision"]
    del node(doc, "prefill-1")["address"]
    problems = problems_of(tmp_path, doc)
    assert any("model: field 'revision': found nothing (the field is missing), expected a value" in p for p in problems)
    assert any("node 'prefill-1': field 'address': found nothing (the field is missing)" in p for p in problems)
    assert len(problems) == 2


def test_duplicate_node_names_and_addresses(tmp_path):
    doc = prod()
    node(doc, "prefill-1")["name"] = "prefill-0"
    node(doc, "decode-1")["address"] = node(doc, "decode-0")["address"]
    problems = problems_of(tmp_path, doc)
    assert any(
        "node 'prefill-0': field 'name': found 'prefill-0', expected a unique node name (also used on line" in p
        for p in problems
    )
    assert any(
        "node 'decode-1': field 'address': found '10.10.0.13', expected a unique address (node 'decode-0' has it)" in p
        for p in problems
    )


def test_duplicate_yaml_key_is_not_silently_dropped(tmp_path):
    text = (
        (ROOT / "inventories/prod.yaml")
        .read_text()
        .replace("cluster:\n  name: prod", "cluster:\n  name: prod\n  name: staging", 1)
    )
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith("bad.yaml:9: cluster: field 'name': found a second 'name' key (first on line 8)")


def test_node_in_two_instances(tmp_path):
    doc = prod()
    instance(doc, "prefill-1")["nodes"] = ["prefill-0"]
    problems = problems_of(tmp_path, doc)
    assert any(
        "instance 'prefill-1': field 'nodes[0]': found node 'prefill-0', already in instance 'prefill-0', "
        "expected each node in at most one instance" in p
        for p in problems
    )


def test_ranks_must_be_0_to_n_minus_1(tmp_path):
    doc = prod()
    instance(doc, "decode")["nodes"][1]["rank"] = 2
    problems = problems_of(tmp_path, doc)
    line = line_of(tmp_path, "  nodes:", after="- name: decode")  # the instance's `nodes:` key
    assert problems == [
        f"bad.yaml:{line}: instance 'decode': field 'nodes': found ranks [0, 2], expected ranks 0..1, each once"
    ]


def test_prefill_and_decode_tp_must_be_multiples(tmp_path):
    doc = prod()
    instance(doc, "prefill-0")["tp"] = 6
    instance(doc, "prefill-0")["dp"] = 6
    instance(doc, "prefill-0")["ep"] = 6
    problems = problems_of(tmp_path, doc)
    line = line_of(tmp_path, "- name: prefill-0", after="instances:")
    assert problems == [
        f"bad.yaml:{line}: instance 'prefill-0': field 'tp': found tp=6 beside decode instance 'decode' tp=16, "
        "expected prefill and decode TP sizes where one is a multiple of the other"
    ]


def test_dp_attention_size_must_divide_tp(tmp_path):
    doc = prod()
    instance(doc, "decode")["dp"] = 12
    [problem] = problems_of(tmp_path, doc)
    assert problem.endswith("instance 'decode': field 'dp': found 12, expected a DP-attention size that divides tp=16")


def test_tp_must_fit_the_gpus(tmp_path):
    doc = prod()
    instance(doc, "decode")["tp"] = 32
    instance(doc, "decode")["dp"] = 32
    instance(doc, "decode")["ep"] = 32
    [problem] = problems_of(tmp_path, doc)
    assert "field 'tp': found 32, expected a multiple of 2 node(s) using at most 8 GPUs each (<= 16)" in problem


def test_ep_must_equal_tp_for_deepep(tmp_path):
    doc = prod()
    instance(doc, "decode")["ep"] = 8
    [problem] = problems_of(tmp_path, doc)
    assert "field 'ep': found 8, expected ep = tp = 16 (DeepEP and Mooncake support only ep_size == tp_size)" in problem


def test_hca_lists_of_different_length_in_one_instance(tmp_path):
    doc = prod()
    node(doc, "decode-1")["hcas"] = ["mlx5_0", "mlx5_1"]
    [problem] = problems_of(tmp_path, doc)
    assert problem.endswith(
        "instance 'decode': field 'nodes': found HCA lists of different lengths: decode-0=8, decode-1=2, "
        "expected the same number of HCAs on every node of an instance"
    )


def test_hca_list_missing(tmp_path):
    doc = prod()
    del doc["defaults"]["hcas"]
    problems = problems_of(tmp_path, doc)
    assert len(problems) == 2  # prefill-0 and prefill-1 relied on the default; the decode nodes have their own
    assert "node 'prefill-0': field 'hcas': found no HCAs, expected the RDMA HCAs instance 'prefill-0'" in problems[0]


@pytest.mark.parametrize(
    "where, value, field",
    [
        ("nccl", {"traffic_class": 136}, "nccl.traffic_class"),
        ("nvshmem", {"traffic_class": 16}, "nvshmem.traffic_class"),
        ("mooncake", {"gid_index": 0}, "mooncake.gid_index"),
    ],
)
def test_traffic_class_and_gid_must_agree_across_libraries(tmp_path, where, value, field):
    doc = prod()
    doc["network"][where] = value
    [problem] = problems_of(tmp_path, doc)
    wanted = 98 if "traffic_class" in field else 3
    assert f"network: field '{field}': found {next(iter(value.values()))}, expected {wanted} (network." in problem
    assert "NCCL, NVSHMEM and Mooncake must use one value" in problem


def test_env_that_contradicts_the_traffic_class(tmp_path):
    doc = prod()
    instance(doc, "decode")["env"] = {"NVSHMEM_IB_TRAFFIC_CLASS": 16}
    [problem] = problems_of(tmp_path, doc)
    assert problem == (
        f"bad.yaml:{line_of(tmp_path, 'NVSHMEM_IB_TRAFFIC_CLASS')}: instance 'decode': field "
        "'env.NVSHMEM_IB_TRAFFIC_CLASS': found '16', expected 98 "
        "(network.traffic_class): NCCL, NVSHMEM and Mooncake must use one value"
    )


def test_two_services_on_one_port(tmp_path):
    doc = prod()
    doc["router"]["port"] = 8055  # prefill-0 serves its instance's HTTP API on 8055
    [problem] = problems_of(tmp_path, doc)
    assert problem == (
        f"bad.yaml:{line_of(tmp_path, 'port: 8055')}: router: field 'port': found port 8055 on node 'prefill-0', "
        "already used by instance "
        "'prefill-0' http, expected a port no other service of that node uses"
    )


def test_dist_init_block_collides_with_http(tmp_path):
    doc = prod()
    instance(doc, "decode")["ports"] = {"dist_init": 8052}  # 8052..8057 overlaps 8055
    [problem] = problems_of(tmp_path, doc)
    assert "found port 8055 on node 'decode-0', already used by instance 'decode' http" in problem


def test_router_on_a_node_that_does_not_exist(tmp_path):
    doc = prod()
    doc["router"]["node"] = "router-0"
    [problem] = problems_of(tmp_path, doc)
    line = line_of(tmp_path, "node: router-0")
    assert problem == (
        f"bad.yaml:{line}: router: field 'node': found 'router-0', expected a node listed under nodes: "
        "prefill-0, prefill-1, decode-0, decode-1"
    )


def test_relative_model_path(tmp_path):
    doc = prod()
    doc["model"]["path"] = "models/DeepSeek-V3.2"
    [problem] = problems_of(tmp_path, doc)
    assert "model: field 'path': found 'models/DeepSeek-V3.2', expected an absolute path" in problem


def test_unpinned_model_revision(tmp_path):
    doc = prod()
    doc["model"]["revision"] = "main"
    [problem] = problems_of(tmp_path, doc)
    assert "field 'revision': found 'main', expected a pinned commit: 40 lowercase hex characters" in problem


def test_sglang_version_without_a_dialect(tmp_path):
    doc = prod()
    doc["sglang"]["version"] = "0.4.9"
    [problem] = problems_of(tmp_path, doc)
    assert problem.endswith(
        "sglang: field 'version': found '0.4.9', expected a version pdfleet has a flag dialect for: 0.5.6.post2, 0.5.23"
    )


def test_container_runtime_needs_an_image_digest(tmp_path):
    doc = prod()
    doc["runtime"] = {"kind": "container", "image": "lmsysorg/sglang:v0.5.23"}
    [problem] = problems_of(tmp_path, doc)
    assert "runtime: field 'image': found 'lmsysorg/sglang:v0.5.23', expected an image pinned by digest" in problem


def test_wrong_types_are_named(tmp_path):
    doc = prod()
    doc["network"]["gid_index"] = "three"
    doc["defaults"]["gpus"] = True
    problems = problems_of(tmp_path, doc)
    assert any("network: field 'gid_index': found 'three', expected an integer from 0 to 255" in p for p in problems)
    assert any("defaults: field 'gpus': found true, expected an integer from 1 to 64" in p for p in problems)


def test_env_values_must_read_the_same_in_systemd_and_docker(tmp_path):
    doc = prod()
    doc["env"] = {"NCCL_DEBUG": "INFO WARN"}
    [problem] = problems_of(tmp_path, doc)
    assert "inventory: field 'env.NCCL_DEBUG': found 'INFO WARN', expected a value without spaces" in problem


def test_yaml_syntax_error_names_the_line(tmp_path):
    [problem] = problems_of(tmp_path, "cluster:\n  name: prod\nnodes: [\n")
    assert problem.startswith("bad.yaml:4: yaml: field '-': found a syntax error")


def test_all_problems_are_reported_at_once(tmp_path):
    doc = prod()
    doc["router"]["node"] = "nowhere"
    doc["model"]["path"] = "relative"
    instance(doc, "decode")["nodes"][1]["rank"] = 5
    assert len(problems_of(tmp_path, doc)) == 3


def test_host_layer_knobs_are_validated(tmp_path):
    doc = prod()
    doc["host"] = {"nvidia": {"driver_version": "580", "source": "ppa"}, "tuning": {"transparent_hugepage": "never"}}
    problems = problems_of(tmp_path, doc)
    assert any(
        "host: field 'nvidia.driver_version': found '580', expected an exact driver version like 580.159.04" in p
        for p in problems
    )
    assert any("host: field 'nvidia.source': found 'ppa', expected cuda-repo or os-archive" in p for p in problems)
    assert any("host: field 'tuning.transparent_hugepage': found an unknown field" in p for p in problems)
    assert len(problems) == 3


def test_host_layer_defaults():
    host = load_cluster(ROOT / "inventories/prod.yaml").host
    assert (host.nvidia.driver_version, host.nvidia.branch, host.nvidia.source) == ("580.159.04", "580", "cuda-repo")
    assert host.rdma.stack == "doca-ofed" and host.deepep_driver_options is True
    assert (host.tuning.transparent_hugepages, host.tuning.numa_balancing, host.reboot.parallel) == (
        "madvise",
        False,
        32,
    )


def test_share_silent_timeout_has_a_floor(tmp_path):
    doc = prod()
    doc["share"] = {"silent_timeout": 2}
    [problem] = problems_of(tmp_path, doc)
    assert problem.endswith("share: field 'silent_timeout': found 2, expected an integer of at least 5")
    assert load_cluster(ROOT / "inventories/prod.yaml").share_silent_timeout == 60
