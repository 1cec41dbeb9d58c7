"""roles.packages.held_set on pyinfra's @fake connector: fresh host, converged host, a driver version bump."""

from __future__ import annotations

from pyinfra.api import deploy

from pdfleet.hostplan import nvidia_pins
from pdfleet.inventory import load
from roles.packages import held_set
from tests.fakehosts import ROOT, converge

PINS = nvidia_pins(load(ROOT / "inventories/prod.py"))
NAMES = " ".join(p.name for p in PINS)


@deploy("NVIDIA set")
def nvidia_set():
    held_set(name="NVIDIA | driver set installed and held", pins=PINS, label="NVIDIA 580.159.04 set")


def dpkg_l(version: str, dcgm: str = "1:4.4.1-1", state: str = "hi") -> str:
    rows = []
    for pin in PINS:
        v = dcgm if pin.name.startswith("datacenter") else f"{version}-0ubuntu1"
        rows.append(f"{state}  {pin.name}  {v}  amd64  stand-in")
    return "\n".join(rows)


def test_fresh_host_installs_the_set_in_one_transaction_and_holds_it():
    run = converge(nvidia_set, {"decode-0": {}})["decode-0"]
    assert run.changes("driver set installed and held") is True
    installs = [c for c in run.commands if "apt-get install" in c]
    assert len(installs) == 1 and installs[0].endswith(NAMES)
    assert run.ran(f"apt-mark hold {NAMES}")
    assert not run.ran("apt-mark unhold")


def test_converged_host_changes_nothing():
    answers = {"dpkg -l": dpkg_l("580.159.04"), "apt-mark showhold": [p.name for p in PINS]}
    run = converge(nvidia_set, {"decode-0": answers})["decode-0"]
    assert run.changes("driver set installed and held") is False
    assert not run.ran("apt-get install") and not run.ran("apt-mark hold")


def test_a_driver_bump_unholds_installs_the_new_set_together_and_holds_again():
    answers = {"dpkg -l": dpkg_l("580.95.05"), "apt-mark showhold": [p.name for p in PINS]}
    run = converge(nvidia_set, {"decode-0": answers})["decode-0"]
    changing = [c for c in run.commands if c.startswith(("apt-mark unhold", "DEBIAN_FRONTEND", "apt-mark hold"))]
    assert [c.split()[0] + " " + c.split()[1] for c in changing] == [
        "apt-mark unhold",
        "DEBIAN_FRONTEND=noninteractive apt-get",
        "apt-mark hold",
    ]
    assert changing[0] == f"apt-mark unhold {NAMES}"


def test_an_unheld_but_correct_set_is_only_held():
    answers = {"dpkg -l": dpkg_l("580.159.04", state="ii"), "apt-mark showhold": ""}
    run = converge(nvidia_set, {"decode-0": answers})["decode-0"]
    assert run.changes("driver set installed and held") is True
    assert run.ran(f"apt-mark hold {NAMES}")
    assert not run.ran("apt-get install")
