"""pdfleet.bluegreenplan and the pieces blue/green's switch renders: decided offline from the prod inventory with
four spares, the rewritten inventory read back through the real loader; the router's membership during the switch;
the CLI's --dry and its refusals, run as a person runs them."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pdfleet.bluegreenplan import Refused, plan_blue_green
from pdfleet.cluster import load_cluster
from pdfleet.render import members_file, outgoing_name
from pdfleet.serving import plan

ROOT = Path(__file__).resolve().parent.parent
DECODE_HCAS = "    hcas: [mlx5_0, mlx5_1, mlx5_2, mlx5_5, mlx5_6, mlx5_7, mlx5_8, mlx5_9]\n"
SPARES = (
    "  # Spares: a second set for blue/green.\n"
    "  - name: spare-0\n    address: 10.10.0.21\n"
    "  - name: spare-1\n    address: 10.10.0.22\n"
    "  - name: spare-2\n    address: 10.10.0.23\n" + DECODE_HCAS + "  - name: spare-3\n    address: 10.10.0.24\n"
)


def inventory(tmp_path: Path, spares: str = SPARES + DECODE_HCAS) -> Path:
    text = (ROOT / "inventories/prod.yaml").read_text()
    anchor = DECODE_HCAS + "\n# Serving instances."
    assert anchor in text
    text = text.replace(anchor, DECODE_HCAS + spares + "\n# Serving instances.", 1)
    path = tmp_path / "prod.yaml"
    path.write_text(text)
    shutil.copy(ROOT / "inventories/prod.py", tmp_path / "prod.py")
    return path


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def test_every_instance_moves_to_a_spare_on_the_new_version_and_only_those_lines_change(tmp_path):
    path = inventory(tmp_path)
    move = plan_blue_green(load_cluster(path), path, "0.5.6.post2")
    assert move.moves == (("prefill-0", "spare-0"), ("prefill-1", "spare-1"), ("decode-0", "spare-2"),
                          ("decode-1", "spare-3"))  # fmt: skip
    removed, added = changed_lines(move.old_text, move.new_text)
    assert [line.split("#")[0].rstrip() for line in removed] == [
        "    nodes: [prefill-0]",
        "    nodes: [prefill-1]",
        "      - {node: decode-0, rank: 0}",
        "      - {node: decode-1, rank: 1}",
        "  version: 0.5.23",
    ]
    assert [line.split("#")[0].rstrip() for line in added] == [
        "    nodes: [spare-0]",
        "    nodes: [spare-1]",
        "      - {node: spare-2, rank: 0}",
        "      - {node: spare-3, rank: 1}",
        "  version: 0.5.6.post2",
    ]
    assert "# flags are generated in this version's dialect" in added[-1]  # comments kept
    written = tmp_path / "after.yaml"
    written.write_text(move.new_text)
    after = load_cluster(written)
    assert after.sglang_version == "0.5.6.post2"
    assert [after.placement(n)[0].name for n in ("spare-0", "spare-1", "spare-2", "spare-3")] == [
        "prefill-0", "prefill-1", "decode", "decode"
    ]  # fmt: skip
    assert all(after.placement(n) is None for n in ("prefill-0", "prefill-1", "decode-0", "decode-1"))
    assert after.router.node == "prefill-0" and move.router_url == "http://10.10.0.11:8000"  # the router stays


@pytest.mark.parametrize(
    ("version", "spares", "message"),
    [
        ("0.5.23", SPARES + DECODE_HCAS, "already serves SGLang 0.5.23"),
        ("0.6.0", SPARES + DECODE_HCAS, "--version: found '0.6.0', expected one of"),
        ("0.5.6.post2", "  - name: spare-0\n    address: 10.10.0.21\n", "it has 1 (spare-0)"),
        ("0.5.6.post2", SPARES, "spare spare-3 cannot take decode-1's place: spare-3's hcas is"),
    ],
)
def test_refusals_say_what_to_do_and_change_nothing(tmp_path, version, spares, message):
    path = inventory(tmp_path, spares)
    before = path.read_text()
    with pytest.raises(Refused, match="nothing was changed") as refused:
        plan_blue_green(load_cluster(path), path, version)
    assert message in str(refused.value)
    assert path.read_text() == before


def test_during_the_switch_the_router_holds_both_sets_each_with_its_version(tmp_path):
    path = inventory(tmp_path)
    move = plan_blue_green(load_cluster(path), path, "0.5.6.post2")
    written = tmp_path / "next.yaml"
    written.write_text(move.new_text)
    incoming, outgoing = plan(load_cluster(written)), plan(load_cluster(path))
    doc = json.loads(members_file(incoming, {}, outgoing).content)
    by_name = {w["instance"]: w["spec"] for w in doc["workers"]}
    assert sorted(by_name) == sorted(
        ["prefill-0", "prefill-1", "decode"]
        + [outgoing_name(n, "0.5.23") for n in ("prefill-0", "prefill-1", "decode")]
    )
    assert by_name["prefill-0"]["url"] == "http://10.10.0.21:8055"
    assert by_name["prefill-0@0.5.23"]["url"] == "http://10.10.0.11:8055"
    assert {by_name[n]["pairing_protocol"] for n in ("prefill-0", "prefill-1", "decode")} == {"sglang-0.5.6.post2"}
    assert {by_name[n]["pairing_protocol"] for n in by_name if "@" in n} == {"sglang-0.5.23"}
    # without a switch under way, the membership is the inventory's alone
    assert [w["instance"] for w in json.loads(members_file(incoming).content)["workers"]] == [
        w.instance for w in incoming.router.workers
    ]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / ".venv/bin/pdfleet"), *args], capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL
    )


def test_dry_prints_the_steps_and_the_diff_and_changes_nothing(tmp_path):
    path = inventory(tmp_path)
    before = path.read_text()
    result = run_cli("blue-green", str(tmp_path / "prod.py"), "--version", "0.5.6.post2", "--dry")
    assert result.returncode == 0, result.stderr
    assert "+    nodes: [spare-0]" in result.stdout and "+  version: 0.5.6.post2" in result.stdout
    for step in ("stage", "bring up", "switch", "retire", "inventory", "converge"):
        assert f"  {step:<10} would run" in result.stdout, step
    assert "spare-2 takes decode-0's place (SGLang 0.5.6.post2)" in result.stderr
    assert "nothing was changed" in result.stderr
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["prod.py", "prod.yaml"]


def test_without_spares_it_refuses_before_any_contact_and_names_the_window_instead():
    result = run_cli("blue-green", "inventories/prod.py", "--version", "0.5.6.post2", "--yes")
    assert result.returncode == 2
    assert "needs a spare node (in no instance) for each of the 4 serving nodes" in result.stderr
    assert "pdfleet_allow_outage=all" in result.stderr
