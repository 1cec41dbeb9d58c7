"""roles.weights, roles.deepgemm and the restart rule of roles.units on pyinfra's @fake connector, plus the pure
plans behind them (pdfleet.weightsplan, ServingPlan.deep_gemm_source, pdfleet.render.instance_inputs)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from pyinfra.api import DeployError

from pdfleet.cluster import load_cluster
from pdfleet.render import instance_inputs, render
from pdfleet.serving import plan
from pdfleet.synthetic import inventory_document, write_inventory
from pdfleet.weightsplan import StagedWeights, copy_waves, staged_problem, stager_config
from roles.weights import weights
from tests.fakehosts import ROOT, converge

PROD = ROOT / "inventories/prod.yaml"
REPO = "deepseek-ai/DeepSeek-V3.2"
REVISION = "a7e62ac04ecb2c0a54d736dc46601c5606cf10a6"
NODES = ("prefill-0", "prefill-1", "decode-0", "decode-1")
STAGE = "python3 /usr/local/lib/pdfleet/pdfleet-weights.py stage /etc/pdfleet/weights.json"


def staged_answer(revision: str = REVISION, sizes: dict | None = None) -> dict:
    files = {"config.json": 1200, "model-00001-of-00002.safetensors": 5_000_000, "model-00002-of-00002.safetensors": 7}
    stamp = {"repo": REPO, "revision": revision, "files": files, "checksums": False}
    listing = [f"{size} {name}" for name, size in (sizes or files).items()]
    return {"/.pdfleet/verified.json": [json.dumps(stamp), "--- pdfleet sizes", *listing]}


def test_fresh_cluster_the_seed_stages_first_with_the_token_and_the_others_copy_after(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    runs = converge(weights, {node: {} for node in NODES}, inventory_yaml=PROD, dry=True)
    seed = runs["prefill-0"]
    assert seed.changes("staged on the seed (peers, else the hub)") is True
    assert seed.changes("copied from peers (wave 1 of 1)") is False
    assert seed.changes("hub token (seed only)") is True
    for node in NODES[1:]:
        assert runs[node].changes("staged on the seed (peers, else the hub)") is False
        assert runs[node].changes("copied from peers (wave 1 of 1)") is True
        assert runs[node].changes("hub token (seed only)") is False
    applied = converge(weights, {node: {} for node in NODES}, inventory_yaml=PROD)
    assert all(applied[node].ran(STAGE) for node in NODES)
    assert applied["prefill-0"].ran("install -d -m 0700 /etc/pdfleet/secrets")
    assert applied["prefill-0"].ran("chmod 0600 /etc/pdfleet/secrets/hub-token")
    for node in NODES:
        assert not applied[node].ran("hf_secret_value_123"), f"the token reached a command line on {node}"
        assert applied[node].ran("systemd-analyze verify /var/lib/pdfleet/units/pdfleet-share.service")


def test_a_verified_copy_is_never_fetched_again(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    runs = converge(weights, {node: staged_answer() for node in NODES}, inventory_yaml=PROD)
    for node in NODES:
        assert not runs[node].ran(STAGE)
        assert runs[node].changed["Weights | staged on the seed (peers, else the hub)"] is False
        assert runs[node].changed["Weights | copied from peers (wave 1 of 1)"] is False


def test_another_revision_or_a_short_file_stages_again(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    short = {"config.json": 1200, "model-00001-of-00002.safetensors": 4_000_000, "model-00002-of-00002.safetensors": 7}
    answers = {
        "prefill-0": staged_answer(revision="0" * 40),
        "prefill-1": staged_answer(sizes=short),
        "decode-0": staged_answer(),
        "decode-1": staged_answer(),
    }
    runs = converge(weights, answers, inventory_yaml=PROD)
    assert runs["prefill-0"].ran(STAGE) and runs["prefill-1"].ran(STAGE)
    assert not runs["decode-0"].ran(STAGE) and not runs["decode-1"].ran(STAGE)


def test_a_token_file_others_can_read_stops_the_deploy_before_any_change(tmp_path):
    token = tmp_path / "token"
    token.write_text("hf_readable_by_all\n")
    os.chmod(token, 0o644)
    doc = inventory_document(prefill=[1], decode=[1])
    doc["model"]["token_file"] = str(token)
    inventory = write_inventory(tmp_path / "inv", doc).with_suffix(".yaml")
    with pytest.raises(DeployError) as caught:
        converge(weights, {"prefill-0": {}, "decode-0": {}}, inventory_yaml=inventory)
    message = str(caught.value)
    assert "model: field 'token_file'" in message and "mode 0644" in message and "chmod 600" in message
    assert "hf_readable_by_all" not in message


def test_staged_problem_names_what_is_wrong():
    files = {"a.safetensors": 10, "config.json": 3}
    stamp = {"repo": REPO, "revision": REVISION, "files": files}
    assert staged_problem(StagedWeights(stamp, dict(files)), REPO, REVISION) is None
    assert staged_problem(StagedWeights(None, {}), REPO, REVISION) == "not staged (no verified stamp)"
    assert staged_problem(StagedWeights(None, {"a.safetensors": 4}), REPO, REVISION).startswith("partly staged")
    assert staged_problem(StagedWeights(stamp, {"config.json": 3}), REPO, REVISION) == (
        "1 file(s) missing, first a.safetensors"
    )
    assert staged_problem(StagedWeights(stamp, {"a.safetensors": 9, "config.json": 3}), REPO, REVISION) == (
        "1 file(s) of the wrong size, first a.safetensors: 9 bytes, expected 10"
    )
    assert staged_problem(StagedWeights(stamp, dict(files)), REPO, "f" * 40) == (
        f"holds {REPO}@{REVISION[:12]}, not {REPO}@ffffffffffff"
    )


def load_cluster_from(doc: dict):
    with tempfile.TemporaryDirectory() as directory:
        return load_cluster(write_inventory(Path(directory), doc).with_suffix(".yaml"))


def test_only_the_seed_may_use_the_wan_and_everyone_tries_the_seed_first():
    cluster = load_cluster(PROD)
    seed = stager_config(cluster, "prefill-0")
    assert seed["endpoint"] == "https://huggingface.co" and seed["token_file"] == "/etc/pdfleet/secrets/hub-token"
    assert [p["name"] for p in seed["peers"]] == ["prefill-1", "decode-0", "decode-1"]
    other = stager_config(cluster, "decode-1")
    assert other["endpoint"] is None and other["token_file"] is None
    assert [p["name"] for p in other["peers"]] == ["prefill-0", "prefill-1", "decode-0"]


def test_copies_fan_out_from_the_seed_in_waves_no_source_serving_more_than_its_share():
    # The reference cluster: one wave, every copy from the seed (3 per source by default).
    assert copy_waves(load_cluster(PROD)) == [
        {"prefill-1": "prefill-0", "decode-0": "prefill-0", "decode-1": "prefill-0"}
    ]
    for size, per_source, wave_sizes in ((32, 3, [3, 12, 16]), (32, 1, [1, 2, 4, 8, 16]), (4, 1, [1, 2]), (2, 3, [1])):
        doc = inventory_document(prefill=[1] * (size - 1), decode=[1])
        doc["share"] = {"copies_per_source": per_source}
        cluster = load_cluster_from(doc)
        waves = copy_waves(cluster)
        assert [len(wave) for wave in waves] == wave_sizes
        holders = {cluster.model.seed}
        for wave in waves:
            assert set(wave.values()) <= holders, "a source copies before it holds the weights"
            assert max(list(wave.values()).count(source) for source in set(wave.values())) <= per_source
            assert not set(wave) & holders
            holders |= set(wave)
        assert holders == {node.name for node in cluster.nodes}
    # Each node tries its wave's source first, then the seed.
    doc = inventory_document(prefill=[1, 1], decode=[1, 1])
    doc["share"] = {"copies_per_source": 1}
    cluster = load_cluster_from(doc)
    assert copy_waves(cluster) == [{"prefill-1": "prefill-0"}, {"decode-0": "prefill-0", "decode-1": "prefill-1"}]
    assert [p["name"] for p in stager_config(cluster, "decode-1")["peers"]] == ["prefill-1", "prefill-0", "decode-0"]


def test_each_wave_copies_only_its_nodes_and_a_later_wave_waits_for_the_earlier(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    doc = inventory_document(prefill=[1, 1], decode=[1, 1])
    doc["share"] = {"copies_per_source": 1}
    inventory = write_inventory(tmp_path, doc).with_suffix(".yaml")
    nodes = [node["name"] for node in doc["nodes"]]
    runs = converge(weights, {node: {} for node in nodes}, inventory_yaml=inventory, dry=True)
    plan = {
        node: sorted(name for name, change in runs[node].will_change.items() if change and "copied from peers" in name)
        for node in nodes
    }
    assert plan == {
        "prefill-0": [],
        "prefill-1": ["Weights | copied from peers (wave 1 of 2)"],
        "decode-0": ["Weights | copied from peers (wave 2 of 2)"],
        "decode-1": ["Weights | copied from peers (wave 2 of 2)"],
    }
    order = list(runs["decode-1"].will_change)
    assert (
        order.index("Weights | staged on the seed (peers, else the hub)")
        < order.index("Weights | copied from peers (wave 1 of 2)")
        < order.index("Weights | copied from peers (wave 2 of 2)")
    )


def test_deep_gemm_compiles_once_per_key_and_later_instances_copy_rank_by_rank(tmp_path):
    doc = inventory_document(prefill=[1, 1, 1], decode=[2, 2])
    serving = plan(load_cluster(write_inventory(tmp_path, doc).with_suffix(".yaml")))
    sources = {spec.host: serving.deep_gemm_source(spec.host) for spec in serving.servers}
    assert sources == {
        "prefill-0": None,
        "prefill-1": "prefill-0",
        "prefill-2": "prefill-0",
        "decode-0-0": None,  # both ranks of the first decode instance compile together
        "decode-0-1": None,
        "decode-1-0": "decode-0-0",
        "decode-1-1": "decode-0-1",
    }


def test_a_change_on_one_rank_changes_the_digest_of_every_rank_of_that_instance_only(tmp_path):
    doc = inventory_document(prefill=[1], decode=[2])
    before = plan(load_cluster(write_inventory(tmp_path / "a", doc).with_suffix(".yaml")))
    doc["nodes"][2]["hcas"] = ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_9"]
    after = plan(load_cluster(write_inventory(tmp_path / "b", doc).with_suffix(".yaml")))
    old, new = render(before), render(after)
    assert old["decode-0-0"] == new["decode-0-0"]  # rank 0's files stay as they are ...
    assert old["decode-0-1"]["/etc/pdfleet/decode-0.env"] != new["decode-0-1"]["/etc/pdfleet/decode-0.env"]
    assert instance_inputs(old, before, "decode-0") != instance_inputs(new, after, "decode-0")  # ... its digest not
    assert instance_inputs(old, before, "prefill-0") == instance_inputs(new, after, "prefill-0")
