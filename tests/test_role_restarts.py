"""roles/restarts.py on pyinfra's @fake hosts of the prod cluster: who starts, who rolls (drain, restart, health,
back), in which order, and the outage refused before any change."""

from __future__ import annotations

import json

import pytest
from pyinfra.api import DeployError
from pyinfra.api.exceptions import PyinfraError

from pdfleet.cluster import load_cluster
from pdfleet.render import instance_inputs, members_file, render
from pdfleet.serving import MEMBERS_AGENT, plan
from roles.deepgemm import CACHE_STAMP
from roles.restarts import restarts
from tests.fakehosts import ROOT, converge, file_present

PROD = ROOT / "inventories/prod.yaml"
NODES = ("prefill-0", "prefill-1", "decode-0", "decode-1")
AGENT = MEMBERS_AGENT.rsplit("/", 1)[1]


def answers(applied: dict[str, str | None], states: dict[str, str] | str = "active", drained=None) -> dict:
    serving = plan(load_cluster(PROD))
    by_node = {}
    for spec in serving.servers:
        state = states if isinstance(states, str) else states.get(spec.instance, "active")
        answer = {f"systemctl is-active {spec.unit}": state}
        if applied.get(spec.instance) is not None:
            answer[f"cat /var/lib/pdfleet/applied/{spec.instance}"] = applied[spec.instance]
        # Every node's DeepGEMM cache built for its key (prefill-1's was copied).
        answer.update(file_present(f"{spec.deep_gemm_dir}/{CACHE_STAMP}", spec.deep_gemm_key))
        by_node[spec.host] = answer
    router = by_node["prefill-0"]
    router["cat /etc/pdfleet/router-members.json"] = members_file(serving, drained).content
    # The router's view: every instance ready (what `pdfleet-router-members show` prints).
    router[f"{AGENT} show"] = json.dumps(
        {
            "router": "http://127.0.0.1:8000",
            "router_error": None,
            "workers": [
                {"instance": w.instance, "role": w.role, "url": w.url, "drained": None, "router": {"status": "ready"}}
                for w in serving.router.workers
            ],
        }
    )
    return by_node


def digests() -> dict[str, str]:
    serving = plan(load_cluster(PROD))
    files = render(serving)
    return {i.name: instance_inputs(files, serving, i.name) for i in serving.cluster.instances}


def test_a_converged_cluster_restarts_nothing():
    runs = converge(restarts, answers(digests()), inventory_yaml=PROD)
    for node in NODES:
        assert not any(runs[node].will_change.values()), node
        assert not runs[node].ran("systemctl restart") and not runs[node].ran(AGENT), node


def test_a_changed_prefill_rolls_through_the_router_and_nothing_else_moves():
    stale = dict(digests(), **{"prefill-1": "0" * 64})
    runs = converge(restarts, answers(stale), inventory_yaml=PROD)
    step = "Restart | prefill-1: running its current inputs, instances in turn"
    assert runs["prefill-1"].will_change[step] is True
    assert [n for n in NODES if any(runs[n].will_change.values())] == ["prefill-1"]
    router = runs["prefill-0"].commands
    drain = next(i for i, c in enumerate(router) if f"{AGENT} drain" in c)
    undrain = next(i for i, c in enumerate(router) if f"{AGENT} undrain" in c)
    assert "prefill-1 --by rolling" in router[drain] and drain < undrain
    assert runs["prefill-1"].ran("systemctl restart --no-block sglang-prefill-1.service")
    assert runs["prefill-1"].ran(f"echo {digests()['prefill-1']} > /var/lib/pdfleet/applied/prefill-1")
    assert runs["prefill-1"].ran("curl -fsS -o /dev/null --max-time 30 http://10.10.0.12:8055/health_generate")
    assert not runs["prefill-0"].ran("systemctl restart --no-block sglang-prefill-0")


def test_the_last_decode_is_refused_before_any_change_and_restarts_with_the_switch():
    stale = dict(digests(), decode="0" * 64)
    with pytest.raises(DeployError, match="only decode instance: restarting it is an outage"):
        converge(restarts, answers(stale), inventory_yaml=PROD)
    runs = converge(restarts, answers(stale), inventory_yaml=PROD, extra_data={"pdfleet_allow_outage": "decode"})
    for node in ("decode-0", "decode-1"):  # both ranks, driven from rank 0's node: all stopped, then all started
        assert runs[node].ran("systemctl stop sglang-decode.service"), node
        assert runs[node].ran("systemctl start --no-block sglang-decode.service"), node
    stop_1 = runs["decode-1"].commands.index(next(c for c in runs["decode-1"].commands if "systemctl stop" in c))
    start_1 = runs["decode-1"].commands.index(next(c for c in runs["decode-1"].commands if "start --no-block" in c))
    assert stop_1 < start_1
    assert runs["prefill-0"].ran(f"{AGENT} drain") and runs["prefill-0"].ran(f"{AGENT} undrain")


def test_a_version_change_on_a_serving_cluster_is_refused_before_any_change_and_cut_over_with_the_switch(caplog):
    """Each instance records the SGLang version it started with; the inventory now says another one for all."""
    stale = {name: "0" * 64 for name in digests()}
    state = answers(stale)
    serving = plan(load_cluster(PROD))
    for spec in serving.servers:
        state[spec.host][f"cat /var/lib/pdfleet/sglang-version/{spec.instance}"] = "0.5.6.post2"
    with pytest.raises(DeployError, match=r"serves SGLang 0\.5\.6\.post2, the inventory says 0\.5\.23: prefill and"):
        converge(restarts, state, inventory_yaml=PROD, extra_data={"pdfleet_allow_outage": "decode"})
    state["prefill-0"]["/v1/chat/completions"] = "401"  # the router refuses the key: the cutover stops at once
    # prefill-0 stops there (the others go on, and this harness cannot then read prefill-0's operations not run)
    with pytest.raises((PyinfraError, RuntimeError)):
        converge(restarts, state, inventory_yaml=PROD, extra_data={"pdfleet_allow_outage": "all"})
    assert "Cutover | the router at http://127.0.0.1:8000/v1/chat/completions refused pdfleet's API key (HTTP 401)" in (
        caplog.text
    )
    state["prefill-0"]["/v1/chat/completions"] = "200"
    runs = converge(restarts, state, inventory_yaml=PROD, extra_data={"pdfleet_allow_outage": "all"})
    # The router's node (prefill-0) drains every instance at once, then every rank is stopped before any start.
    router = runs["prefill-0"]
    drains = [c for c in router.commands if f"{AGENT} drain" in c]
    assert len(drains) == 1 and all(f"drain /etc/pdfleet/router-members.json {n} " in drains[0] for n in digests())
    assert "version cutover" in drains[0]
    for node, unit in (
        ("prefill-0", "sglang-prefill-0"),
        ("prefill-1", "sglang-prefill-1"),
        ("decode-0", "sglang-decode"),
        ("decode-1", "sglang-decode"),
    ):
        commands = runs[node].commands
        stop = commands.index(f"systemctl stop {unit}.service")
        start = commands.index(next(c for c in commands if f"start --no-block {unit}.service" in c))
        assert stop < start, node
        if node != "decode-1":
            assert runs[node].ran(f"echo 0.5.23 > /var/lib/pdfleet/sglang-version/{unit.removeprefix('sglang-')}")
    # Nothing rolls: no instance is restarted on its own, no instance is drained on its own.
    assert not any(runs[node].ran("systemctl restart") for node in NODES)
    assert router.commands.index(drains[0]) < router.commands.index("systemctl stop sglang-prefill-0.service")
    undrains = [c for c in router.commands if f"{AGENT} undrain" in c]  # all at once, after every stop
    assert len(undrains) == 1 and all(
        f"undrain /etc/pdfleet/router-members.json {n} " in undrains[0] for n in digests()
    )
    # the first answer through the router times the outage; the probe carries the key from the header file
    assert router.ran("-H @/etc/pdfleet/keys/curl-authorization -H 'Content-Type: application/json'")
    step = "Restart | version cutover: every instance changing version drained and stopped"
    assert router.will_change[step] and not any(runs[n].will_change[step] for n in NODES if n != "prefill-0")


def test_a_fresh_cluster_starts_everything_at_once_the_copies_after_their_source():
    fresh = answers({}, "inactive")
    for node in NODES:
        fresh[node] = {command: answer for command, answer in fresh[node].items() if CACHE_STAMP not in str(command)}
    runs = converge(restarts, fresh, inventory_yaml=PROD)
    names = list(runs["prefill-1"].will_change)
    assert names == [
        "Restart | version cutover: every instance changing version drained and stopped",
        "Restart | DeepGEMM cache of a compiling node taken from a peer holding its key",
        "Restart | prefill-0: running its current inputs, instances in turn",
        "Restart | decode: running its current inputs, instances in turn",
        "Restart | DeepGEMM caches copied from the compiling instances",
        "Restart | prefill-1: running its current inputs, instances in turn",
        "Restart | version cutover: every instance healthy and back in the router, the outage timed",
        "Restart | DeepGEMM caches of older keys removed",
    ]
    for node, unit in (
        ("prefill-0", "sglang-prefill-0"),
        ("decode-1", "sglang-decode"),
        ("prefill-1", "sglang-prefill-1"),
    ):
        assert runs[node].ran(f"systemctl start --no-block {unit}.service"), node
    assert not any(runs[node].ran(AGENT) for node in NODES)  # nothing served yet: nothing to drain
    key_dir = plan(load_cluster(PROD)).server("prefill-1").deep_gemm_dir.rsplit("/", 1)[1]
    assert runs["prefill-1"].ran(f"rsync://10.10.0.11:8730/deep-gemm/{key_dir}/pdfleet.key")


def test_a_failed_instance_with_current_inputs_is_started_and_one_left_out_by_a_roll_is_put_back():
    runs = converge(restarts, answers(digests(), {"decode": "failed"}), inventory_yaml=PROD)
    assert runs["decode-1"].ran("systemctl start --no-block sglang-decode.service")
    assert not runs["decode-1"].ran("systemctl restart")
    assert runs["decode-1"].ran(f"echo {digests()['decode']} > /var/lib/pdfleet/applied/decode")  # unchanged
    left_out = {"prefill-1": {"by": "rolling", "reason": "rolling restart", "since": "2026-12-06T03:00:00Z"}}
    runs = converge(restarts, answers(digests(), drained=left_out), inventory_yaml=PROD)
    assert runs["prefill-0"].ran(f"{AGENT} undrain") and not runs["prefill-1"].ran("systemctl restart")
    operator = {"prefill-1": {"by": "operator", "reason": "disk", "since": "2026-12-06T03:00:00Z"}}
    runs = converge(restarts, answers(digests(), drained=operator), inventory_yaml=PROD)
    assert not runs["prefill-0"].ran(f"{AGENT} undrain")  # an operator's drain stays


def test_a_replaced_compiling_node_takes_its_cache_from_a_peer_with_its_key_before_it_starts():
    """prefill-0 compiles for its key (first instance); re-imaged, it holds no cache: it copies prefill-1's (same
    key) before its instance starts, instead of compiling. decode-1, rank 1 of the compiling decode, the same from
    decode-0. The nodes whose cache is current do nothing."""
    serving = plan(load_cluster(PROD))
    state = answers(digests())
    for node in ("prefill-0", "decode-1"):
        stamp = f"{serving.server(node).deep_gemm_dir}/{CACHE_STAMP}"
        state[node] = {command: answer for command, answer in state[node].items() if stamp not in str(command)}
    runs = converge(restarts, state, inventory_yaml=PROD)
    step = "Restart | DeepGEMM cache of a compiling node taken from a peer holding its key"
    port = serving.cluster.share_port
    assert runs["prefill-0"].will_change[step] and runs["decode-1"].will_change[step]
    assert runs["prefill-0"].ran(f"rsync://10.10.0.12:{port}/"), runs["prefill-0"].commands
    assert runs["decode-1"].ran(f"rsync://10.10.0.13:{port}/"), runs["decode-1"].commands
    for node in ("prefill-1", "decode-0"):
        assert not runs[node].will_change[step], node
