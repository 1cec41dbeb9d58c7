"""roles/reboot.py's rolling reboots on pyinfra's @fake hosts of the prod cluster, every host marked for a reboot:
hosts serving nothing in one wave; a serving cluster one instance at a time, each drained through the router's
membership agent before its hosts reboot and put back after, the decode's two nodes in one wave, and the last
decode instance not rebooted without the outage switch."""

from __future__ import annotations

import json

from pdfleet.cluster import load_cluster
from pdfleet.serving import MEMBERS_AGENT, plan
from roles.reboot import MARK, rolling
from tests.fakehosts import ROOT, converge

PROD = ROOT / "inventories/prod.yaml"
AGENT = MEMBERS_AGENT.rsplit("/", 1)[1]


def answers(state: str) -> dict:
    serving = plan(load_cluster(PROD))
    by_node = {}
    for spec in serving.servers:
        by_node[spec.host] = {
            f"cat {MARK}": "new NVIDIA driver set",
            f"systemctl is-active {spec.unit}": state,
            "systemctl is-system-running --wait": "running",
        }
    by_node["prefill-0"][f"{AGENT} show"] = json.dumps(
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


def planned(runs, node: str) -> list[str]:
    return [name for name, change in runs[node].will_change.items() if change]


def test_hosts_serving_nothing_reboot_in_one_wave():
    runs = converge(rolling, answers("inactive"), inventory_yaml=PROD, dry=True)
    for node in ("prefill-0", "prefill-1", "decode-0", "decode-1"):
        assert planned(runs, node) == [
            "Reboot | wave 1 of 1: prefill-0, prefill-1, decode-0, decode-1 (serving nothing)"
        ], node


def test_a_serving_cluster_drains_each_instance_reboots_it_and_puts_it_back_the_last_decode_needs_the_switch():
    runs = converge(rolling, answers("active"), inventory_yaml=PROD, dry=True)
    assert planned(runs, "prefill-0") == [
        "Reboot | wave 1 of 3: prefill-0 out of the router",
        "Reboot | wave 1 of 3: prefill-0 (prefill-0)",
        "Reboot | wave 1 of 3: prefill-0 back into the router",
    ]
    # The decode is the only decode instance: without the switch its nodes are listed, not rebooted.
    assert planned(runs, "decode-0") == []
    warned = [n for n in runs["decode-0"].will_change if "not without the outage switch" in n]
    assert warned == ["Reboot | wave 3 of 3: decode (decode-0, decode-1): not without the outage switch"]

    runs = converge(rolling, answers("active"), inventory_yaml=PROD, extra_data={"pdfleet_allow_outage": "decode"})
    assert runs["decode-0"].changed["Reboot | wave 3 of 3: decode out of the router"]
    agent = [c for c in runs["prefill-0"].commands if AGENT in c and " show" not in c]
    verbs = [(c.split(AGENT, 1)[1].split()[0], c.split()[4]) for c in agent]
    assert verbs == [
        ("drain", "prefill-0"), ("undrain", "prefill-0"),
        ("drain", "prefill-1"), ("undrain", "prefill-1"),
        ("drain", "decode"), ("undrain", "decode"),
    ]  # fmt: skip
    for node in ("decode-0", "decode-1"):  # both ranks stopped before the reboot, started after
        sent = runs[node].commands
        stop = next(i for i, c in enumerate(sent) if "systemctl stop sglang-decode" in c)
        reboot = next(i for i, c in enumerate(sent) if "systemctl reboot" in c)
        start = next(i for i, c in enumerate(sent) if "systemctl start --no-block sglang-decode" in c)
        assert stop < reboot < start, node
