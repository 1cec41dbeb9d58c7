"""roles.firewall on pyinfra's @fake connector: the safety net's order (arm, install, check and load, a new
connection through the rules, disarm), a session from an address the rules would shut out stopping before any
change, a failed confirmation leaving the rollback armed, a converged node changing nothing, and the firewall
switched off touching nothing. The new connection itself is the sandbox's to prove (tests/sandbox/test_firewall.py):
here `ssh_banner` answers for the node, so no packet leaves this machine."""

from __future__ import annotations

import hashlib

import pytest
import yaml
from pyinfra.api.exceptions import PyinfraError

import roles.firewall
from pdfleet import firewallplan as fw
from pdfleet.cluster import load_cluster
from pdfleet.render import render
from pdfleet.serving import plan
from roles.firewall import firewall
from tests.fakehosts import ROOT, converge, file_present

PROD = ROOT / "inventories/prod.yaml"
NODE = "decode-1"


def state(rules: str | None, table: str = "loaded", client: str = "10.10.0.200") -> dict:
    sha1 = hashlib.sha1(rules.encode()).hexdigest() if rules is not None else ""
    return {"nft list table inet pdfleet": [f"sha1={sha1}", f"table={table}", f"client={client}"]}


def rules(inventory=PROD) -> str:
    return render(plan(load_cluster(inventory)))[NODE][fw.RULES_FILE].content


@pytest.fixture
def banner(monkeypatch):
    """sshd's answer to the confirmation's new connection, and where it was asked for."""
    asked = []

    def answer(address, port, timeout=roles.firewall.BANNER_TIMEOUT_SECS):
        asked.append((address, port))
        return answer.reply

    answer.reply = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    answer.asked = asked
    monkeypatch.setattr(roles.firewall, "ssh_banner", answer)
    return answer


def position(run, fragment: str) -> int:
    return next(i for i, command in enumerate(run.commands) if fragment in command)


def test_new_rules_are_armed_installed_checked_loaded_confirmed_then_disarmed_in_that_order(banner):
    run = converge(firewall, {NODE: state(None, table="absent")})[NODE]
    arm = position(run, "systemd-run --quiet --unit=pdfleet-firewall-rollback --on-active=60s")
    keep = position(run, f"cp -p {fw.RULES_FILE} {fw.ROLLBACK_DIR}/firewall.nft")
    load = position(run, f"nft --check --file {fw.RULES_FILE} && nft --file {fw.RULES_FILE}")
    disarm = position(run, "systemctl stop pdfleet-firewall-rollback.timer && rm -rf")
    assert keep == arm < load < disarm
    assert banner.asked == [("10.10.0.14", 22)], "the confirmation opens a new connection to where pyinfra connects"
    assert run.changed["Firewall | rules"] and run.changed["Firewall | confirmed: disarm the rollback"]
    assert run.ran("systemctl enable pdfleet-firewall.service")


def test_a_failed_confirmation_stops_the_host_with_the_rollback_still_armed(banner):
    banner.reply = "no answer (timed out)"
    with pytest.raises(PyinfraError):
        converge(firewall, {NODE: state(None, table="absent")})


def test_a_confirmation_that_fails_is_reported_with_the_node_the_address_and_what_to_check(banner):
    banner.reply = "no answer (timed out)"
    cluster = load_cluster(PROD)
    with pytest.raises(Exception) as failed:
        roles.firewall._confirm(cluster, cluster.node(NODE), "10.10.0.14", 22)
    message = str(failed.value)
    assert "node 'decode-1'" in message and "10.10.0.14:22" in message and "within 60 s" in message
    assert "security.admin_cidrs" in message


def test_a_session_from_an_address_the_rules_would_shut_out_stops_before_any_change(banner):
    with pytest.raises(PyinfraError) as stopped:
        converge(firewall, {NODE: state(None, table="absent", client="192.0.2.7")}, dry=True)
    assert "192.0.2.7" in str(stopped.value) and "admin_cidrs" in str(stopped.value)
    assert banner.asked == []


def test_a_converged_node_changes_nothing(banner):
    wanted = rules()
    answers = {
        **state(wanted),
        **file_present(fw.RULES_FILE, wanted),
        **file_present(fw.ROLLBACK_SCRIPT, render(plan(load_cluster(PROD)))[NODE][fw.ROLLBACK_SCRIPT].content),
    }
    run = converge(firewall, {NODE: answers})[NODE]
    assert not run.ran("systemd-run") and not run.ran("nft --file") and banner.asked == []
    assert "Firewall | rules" not in run.will_change


def test_rules_present_but_not_loaded_are_loaded_again_through_the_safety_net(banner):
    wanted = rules()
    run = converge(firewall, {NODE: {**state(wanted, table="absent"), **file_present(fw.RULES_FILE, wanted)}})[NODE]
    assert run.ran("systemd-run --quiet --unit=pdfleet-firewall-rollback") and run.ran("nft --file")
    assert banner.asked == [("10.10.0.14", 22)]


def firewall_off(tmp_path):
    doc = yaml.safe_load(PROD.read_text())
    doc["security"] = {"firewall": False}
    inventory = tmp_path / "prod.yaml"
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    return inventory


def test_firewall_off_on_a_node_without_it_changes_nothing(tmp_path, banner):
    run = converge(firewall, {NODE: {}}, inventory_yaml=firewall_off(tmp_path))[NODE]
    assert [name for name, change in run.will_change.items() if change] == []
    assert not run.ran("nft delete") and not run.ran("apt-get") and not run.ran("systemd-run")


def test_firewall_off_takes_an_installed_firewall_off_the_node(tmp_path, banner):
    unit = f"/etc/systemd/system/{fw.UNIT}"
    left = {"systemctl is-enabled --quiet": ["table", "enabled", fw.RULES_FILE, fw.ROLLBACK_SCRIPT, unit]}
    answers = {
        **left,
        **file_present(fw.RULES_FILE, "x"),
        **file_present(fw.ROLLBACK_SCRIPT, "x"),
        **file_present(unit, "x"),
    }
    run = converge(firewall, {NODE: answers}, inventory_yaml=firewall_off(tmp_path))[NODE]
    table, disable = (
        position(run, f"nft delete table {fw.TABLE}"),
        position(run, f"systemctl disable --quiet {fw.UNIT}"),
    )
    removed = [position(run, f"rm -f {path}") for path in (unit, fw.RULES_FILE, fw.ROLLBACK_SCRIPT)]
    assert table < disable < min(removed)
    assert not run.ran("systemd-run") and banner.asked == []  # opening a node needs no safety net
